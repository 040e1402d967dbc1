"""Building and checking pipeline graphs before anything runs."""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

import modelyard
from modelyard.errors import InvalidInputError, PipelineError
from modelyard.pipelines import Pipeline, Step, StepOutput

HERE = __file__


@modelyard.step
def load(n: int = 3) -> list[int]:
    return list(range(n))


@modelyard.step
def double(data: list[int], factor: int = 2) -> list[int]:
    return [x * factor for x in data]


@modelyard.step(outputs=2)
def split(data: list[int]) -> Any:
    return data[:1], data[1:]


@modelyard.step
def split_annotated(data: list[int]) -> tuple[list[int], list[int]]:
    return data[:1], data[1:]


@modelyard.step(outputs=("head", "tail"))
def split_named(data: list[int]) -> dict[str, list[int]]:
    return {"head": data[:1], "tail": data[1:]}


@modelyard.step
def combine(a: list[int], b: list[int]) -> int:
    return sum(a) + sum(b)


@modelyard.step
def returns_callable() -> Callable[[int], int]:
    return lambda x: x


@modelyard.step
def returns_file() -> io.TextIOWrapper:
    raise NotImplementedError


class Scale(Step):
    def __init__(self, factor: float = 2.0) -> None:
        self.factor = factor

    def run(self, data: list[int]) -> list[float]:
        return [x * self.factor for x in data]


class Offset(Step):
    """Uses the base constructor to store its parameters."""

    def run(self, data: list[int]) -> list[int]:
        return [x + self.by for x in data]  # type: ignore[attr-defined]


def _line_of(text: str) -> int:
    with open(HERE) as fh:
        for number, line in enumerate(fh, 1):
            if text in line:
                return number
    raise AssertionError(text)


def test_graph_is_traced_in_call_order_with_inputs_and_params() -> None:
    @modelyard.pipeline
    def flow(n: int = 4) -> Any:
        data = load(n=n)
        return double(data, factor=3)

    graph = flow.build(**flow.resolve_params())
    assert [node.id for node in graph.nodes] == ["load", "double"]
    load_node, double_node = graph.nodes
    assert load_node.params == {"n": 4}
    assert double_node.params == {"factor": 3}
    assert double_node.inputs["data"].node is load_node
    assert isinstance(graph.returned, StepOutput)
    assert graph.returned.node is double_node
    assert double_node.where.startswith(f"{HERE}:")


def test_a_step_called_twice_gets_distinct_ids() -> None:
    @modelyard.pipeline
    def flow() -> Any:
        a = load(n=1)
        b = load(n=2)
        return combine(a, b)

    graph = flow.build()
    assert [node.id for node in graph.nodes] == ["load", "load_2", "combine"]
    assert graph.node("combine").inputs["b"].node.id == "load_2"


def test_missing_input_names_the_step_and_the_call_site() -> None:
    @modelyard.pipeline
    def flow() -> Any:
        a = load()
        return combine(a)  # missing-input-line

    with pytest.raises(InvalidInputError) as info:
        flow.build()
    message = str(info.value)
    assert "'combine'" in message
    assert "'b'" in message
    assert f"{HERE}:{_line_of('missing-input-line')}" in message


def test_unknown_step_argument_is_an_error_naming_the_definition() -> None:
    @modelyard.pipeline
    def flow() -> Any:
        return load(n=1, bogus=2)

    with pytest.raises(InvalidInputError) as info:
        flow.build()
    assert "'bogus'" in str(info.value)
    # a decorated function's location is its first decorator's line
    assert f"{HERE}:{_line_of('def load(') - 1}" in str(info.value)


def test_cycle_through_after_is_reported_with_the_steps() -> None:
    @modelyard.pipeline
    def flow() -> Any:
        a = load(n=1)
        b = double(a)
        a.after(b)
        return b

    with pytest.raises(PipelineError, match="cycle") as info:
        flow.build()
    assert "load" in str(info.value)
    assert "double" in str(info.value)


def test_after_orders_without_data() -> None:
    @modelyard.pipeline
    def flow() -> Any:
        a = load(n=1)
        return load(n=2).after(a)

    graph = flow.build()
    assert [u.id for u in graph.node("load_2").upstream()] == ["load"]


@pytest.mark.parametrize(
    ("bad_step", "type_name"),
    [(returns_callable, "Callable"), (returns_file, "TextIOWrapper")],
)
def test_unserialisable_output_annotation_is_refused(bad_step: Any, type_name: str) -> None:
    @modelyard.pipeline
    def flow() -> Any:
        return bad_step()

    with pytest.raises(PipelineError) as info:
        flow.build()
    message = str(info.value)
    assert type_name in message
    assert bad_step.name in message
    assert f"{HERE}:" in message
    assert "trust=True" in message


def test_trusted_step_may_declare_any_output() -> None:
    trusted = returns_callable.with_options(trust=True)

    @modelyard.pipeline
    def flow() -> Any:
        return trusted()

    assert [n.id for n in flow.build().nodes] == ["returns_callable"]


def test_non_json_parameter_is_refused_at_the_call_site() -> None:
    @modelyard.pipeline
    def flow() -> Any:
        return double(load(), factor=object())  # bad-param-line

    with pytest.raises(InvalidInputError, match="JSON") as info:
        flow.build()
    assert f"{HERE}:{_line_of('bad-param-line')}" in str(info.value)


def test_outputs_unpack_when_declared_by_count_annotation_or_names() -> None:
    @modelyard.pipeline
    def flow() -> Any:
        data = load()
        a, b = split(data)
        c, d = split_annotated(data)
        head, tail = split_named(data)
        return combine(a, d), combine(head, tail), combine(b, c)

    graph = flow.build()
    first = graph.node("combine")
    assert first.inputs["a"].key == (0,)
    assert first.inputs["b"].key == (1,)
    assert graph.node("combine_2").inputs["a"].key == ("head",)


def test_unpacking_an_undeclared_output_says_how_to_declare_it() -> None:
    @modelyard.pipeline
    def flow() -> Any:
        a, b = load()
        return combine(a, b)

    with pytest.raises(PipelineError, match=r"outputs=2"):
        flow.build()


def test_a_handle_cannot_be_used_as_a_condition() -> None:
    @modelyard.pipeline
    def flow() -> Any:
        data = load()
        if data:
            return double(data)
        return data

    with pytest.raises(PipelineError, match="lazy handle"):
        flow.build()


def test_class_form_steps_store_constructor_params() -> None:
    @modelyard.pipeline
    def flow() -> Any:
        data = load()
        return Offset(by=1)(data=Scale(factor=3.0)(data=data))

    graph = flow.build()
    assert graph.node("Scale").params == {"init.factor": 3.0}
    assert graph.node("Offset").params == {"init.by": 1}
    assert Scale(factor=2.0).run([1, 2]) == [2.0, 4.0]
    assert repr(Scale(factor=2.0)) == "Scale(factor=2.0)"


def test_steps_outside_a_pipeline_are_plain_functions() -> None:
    assert load(n=2) == [0, 1]
    assert double([1], factor=5) == [5]


def test_pipeline_with_no_steps_is_an_error() -> None:
    @modelyard.pipeline
    def flow() -> int:
        return 1

    with pytest.raises(PipelineError, match="calls no step"):
        flow.build()


def test_a_pipeline_is_not_called_directly() -> None:
    @modelyard.pipeline
    def flow() -> Any:
        return load()

    with pytest.raises(PipelineError, match=r"flow\.run"):
        flow()


# ---------------------------------------------------------------- parameters
@modelyard.pipeline(name="params_flow")
def params_flow(n: int = 3, rate: float = 0.5, verbose: bool = False, label: str = "x") -> Any:
    return load(n=n)


def test_params_precedence_defaults_config_arguments() -> None:
    out = params_flow.resolve_params({"n": 7}, config={"n": 5, "rate": 0.1})
    assert out == {"n": 7, "rate": 0.1, "verbose": False, "label": "x"}


def test_cli_strings_are_typed_by_the_signature() -> None:
    out = params_flow.resolve_params(
        {"n": "12", "rate": "0.25", "verbose": "true", "label": "7"}, strings=True
    )
    assert out == {"n": 12, "rate": 0.25, "verbose": True, "label": "7"}


@pytest.mark.parametrize("real", [True, False], ids=["typing objects", "strings"])
def test_cli_strings_for_optional_parameters_keep_the_inner_type(real: bool) -> None:
    import typing

    def fn(tag: Any = None, version: Any = None, n: Any = None, flag: Any = None) -> Any:
        return load()

    if real:
        fn.__annotations__ = {
            "tag": typing.Optional[str],  # noqa: UP045 - the spelling users write
            "version": str | None,
            "n": typing.Optional[int],  # noqa: UP045
            "flag": bool | None,
        }
    else:  # `from __future__ import annotations`
        fn.__annotations__ = {
            "tag": "Optional[str]",
            "version": "str | None",
            "n": "None | int",
            "flag": "typing.Optional[bool]",
        }
    flow = Pipeline(fn, name="optional_flow")
    out = flow.resolve_params(
        {"tag": "2024", "version": "1.10", "n": "3", "flag": "no"}, strings=True
    )
    assert out == {"tag": "2024", "version": "1.10", "n": 3, "flag": False}
    assert flow.resolve_params({"n": "none", "flag": "null"}, strings=True)["n"] is None
    with pytest.raises(InvalidInputError, match="must be a int, got 'x'"):
        flow.resolve_params({"n": "x"}, strings=True)


def test_unknown_parameter_lists_the_valid_ones() -> None:
    with pytest.raises(InvalidInputError) as info:
        params_flow.resolve_params({"m": "1"}, strings=True)
    assert "'m'" in str(info.value)
    assert "n, rate, verbose, label" in str(info.value)


def test_project_params_apply_to_the_pipelines_that_declare_them() -> None:
    out = params_flow.resolve_params(config={"nope": 1, "n": 4})
    assert out["n"] == 4
    assert "nope" not in out
    scoped = params_flow.resolve_params(config={"n": 4, "params_flow": {"n": 9}})
    assert scoped["n"] == 9


def test_unknown_parameter_in_a_pipelines_own_table_names_the_source() -> None:
    with pytest.raises(
        InvalidInputError, match=r"tool\.modelyard\.pipeline\.params\.params_flow\]"
    ):
        params_flow.resolve_params(config={"params_flow": {"nope": 1}})


def test_badly_typed_string_names_the_type() -> None:
    with pytest.raises(InvalidInputError, match="must be a int, got 'abc'"):
        params_flow.resolve_params({"n": "abc"}, strings=True)


def test_missing_required_parameter() -> None:
    @modelyard.pipeline
    def needs(path: str) -> Any:
        return load()

    with pytest.raises(InvalidInputError, match=r"-p path=VALUE"):
        needs.resolve_params()


# ---------------------------------------------------------------- the public names
def test_modelyard_pipeline_is_the_decorator_and_pipelines_the_package() -> None:
    import types

    assert isinstance(params_flow, Pipeline)
    assert modelyard.pipelines.Step is Step
    assert modelyard.pipeline is modelyard.pipelines.pipeline
    assert isinstance(modelyard.pipeline, types.FunctionType)
    assert isinstance(modelyard.Pipeline, type)

    @modelyard.pipeline
    def bare() -> Any:
        return load()

    @modelyard.pipeline(name="named")
    def other() -> Any:
        return load()

    assert isinstance(bare, Pipeline)
    assert other.name == "named"


def test_public_names_resolve_in_a_fresh_interpreter_in_either_order() -> None:
    code = (
        "import modelyard\n"
        "p = modelyard.pipeline\n"
        "import modelyard.pipelines.runner\n"
        "assert modelyard.pipeline is p\n"
        "assert modelyard.pipelines.Step is not None\n"
        "assert callable(modelyard.step) and callable(modelyard.pipeline)\n"
        "@modelyard.pipeline\n"
        "def f():\n"
        "    return None\n"
        "print(type(f).__name__)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "Pipeline"


@pytest.mark.parametrize(
    "statement",
    ["from modelyard.pipeline import log_metric", "import modelyard.pipeline.runner"],
)
def test_the_old_package_name_says_where_the_package_went(statement: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", statement], capture_output=True, text=True, check=False
    )
    assert done.returncode == 1
    assert "ModuleNotFoundError" in done.stderr
    assert "the pipelines package is 'modelyard.pipelines" in done.stderr
