"""No import cycles between the pipeline's modules, nor the data frame adapters (lazy and
type-checking imports included): the graph, the steps and the runner build on each other in one
direction only."""

from __future__ import annotations

import pytest

grimp = pytest.importorskip("grimp")

PAIRS = [
    ("modelyard.pipelines.graph", "modelyard.pipelines.step"),
    ("modelyard.pipelines.graph", "modelyard.pipelines.runner"),
    ("modelyard.pipelines.runner", "modelyard.pipelines.step"),
    ("modelyard.pipelines.runner", "modelyard.pipelines.progress"),
    ("modelyard.pipelines.loader", "modelyard.pipelines.runner"),
    ("modelyard.data._views", "modelyard.data._frames"),
    ("modelyard.data._pandas", "modelyard.data._frames"),
    ("modelyard.data._polars", "modelyard.data._frames"),
    ("modelyard.data.contract", "modelyard.data._checks"),
]


@pytest.fixture(scope="module")
def graph() -> object:
    """The imports among the pipeline's and the data package's own modules."""
    full = grimp.build_graph("modelyard", exclude_type_checking_imports=False)
    for module in list(full.modules):
        if module != "modelyard" and not module.startswith(
            ("modelyard.pipelines", "modelyard.data")
        ):
            full.remove_module(module)
    return full


@pytest.mark.parametrize(("upper", "lower"), PAIRS)
def test_imports_go_one_way(graph: object, upper: str, lower: str) -> None:
    back = graph.find_shortest_chain(importer=lower, imported=upper)  # type: ignore[attr-defined]
    assert back is None, f"{lower} imports {upper} back: {' -> '.join(back)}"
