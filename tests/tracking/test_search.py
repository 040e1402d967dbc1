"""Run search: grammar, SQL on both databases, ordering, pagination and errors."""

from __future__ import annotations

import pytest

from modelyard.errors import InvalidInputError, NotFoundError
from modelyard.tracking.client import TrackingClient
from modelyard.tracking.search import (
    Condition,
    OrderKey,
    like_to_glob,
    parse_filter,
    parse_order_by,
)

# ---------------------------------------------------------------- grammar (no database)


def test_parse_full_example() -> None:
    conds = parse_filter(
        "metrics.auc > 0.8 and params.lr = '0.1' and tags.team != 'x' "
        "AND attributes.status = 'FINISHED'"
    )
    assert conds == [
        Condition("metric", "auc", ">", 0.8, 0),
        Condition("param", "lr", "=", "0.1", 22),
        Condition("tag", "team", "!=", "x", 44),
        Condition("attribute", "status", "=", "FINISHED", 65),
    ]


def test_parse_keys_quotes_and_operators() -> None:
    conds = parse_filter(
        'metrics.`val loss` <= -1e-3 and metrics.train/acc>=.5 and tags."my tag" '
        "not like 'a%' and params.name = 'it''s' and start_time > 10 and name ilike 'X%'"
    )
    assert [(c.kind, c.key, c.op, c.value) for c in conds] == [
        ("metric", "val loss", "<=", -0.001),
        ("metric", "train/acc", ">=", 0.5),
        ("tag", "my tag", "NOT LIKE", "a%"),
        ("param", "name", "=", "it's"),
        ("attribute", "start_time", ">", 10.0),
        ("attribute", "name", "ILIKE", "X%"),
    ]
    assert parse_filter("metric.a == 1 and param.b <> 'c'")[1].op == "!="
    assert parse_filter(None) == []
    assert parse_filter("   ") == []


@pytest.mark.parametrize(
    ("text", "position", "needle"),
    [
        ("metrics.auc >", 13, "expected a value"),
        ("metrics.auc > 'x'", 14, "is a number"),
        ("params.lr = 0.1", 12, "quote the value"),
        ("params.lr > '0.1'", 11, "does not apply"),
        ("foo = 1", 0, "unknown name 'foo'"),
        ("metrics.auc ~ 1", 12, "expected an operator"),
        ("metrics.a > 1 or metrics.b < 2", 14, "'or' is not supported"),
        ("attributes.nope = 'x'", 11, "unknown attribute 'nope'"),
        ("metrics.a > 1 and", 17, "expected a condition"),
        ("metrics.a LIKE 'x'", 15, "cannot compare numbers"),
        ("params.a = 'open", 11, "not closed"),
        ("metrics.a > 1 metrics.b > 2", 14, "expected 'and'"),
        ("metrics. > 1", 8, "expected a key name"),
    ],
)
def test_filter_errors_point_at_the_token(text: str, position: int, needle: str) -> None:
    with pytest.raises(InvalidInputError) as err:
        parse_filter(text)
    exc = err.value
    assert exc.details["position"] == position
    assert needle in exc.message
    assert f"at character {position}" in exc.message
    # the caret line points under the offending character
    lines = exc.message.split("\n")
    assert lines[-1].index("^") - 2 == position
    assert exc.hint


def test_parse_order_by() -> None:
    assert parse_order_by(["metrics.auc DESC", "start_time", "params.lr asc"]) == [
        OrderKey("metric", "auc", True),
        OrderKey("attribute", "start_time", False),
        OrderKey("param", "lr", False),
    ]
    assert parse_order_by("tags.team") == [OrderKey("tag", "team", False)]
    for bad, needle in [
        ("metrics.auc DOWN", "ASC or DESC"),
        ("", "expected a name"),
        ("foo", "unknown name"),
        ("metrics.auc DESC x", "unexpected"),
    ]:
        with pytest.raises(InvalidInputError, match=needle) as err:
            parse_order_by([bad])
        assert repr(bad) in err.value.message


def test_like_to_glob() -> None:
    assert like_to_glob("a%b_c*[?]") == "a*b?c[*][[][?][]]"
    assert like_to_glob("a\\%b\\_\\\\") == "a%b_\\"


# ---------------------------------------------------------------- against the database


@pytest.fixture
def populated(client: TrackingClient) -> TrackingClient:
    """12 runs in 'exp' (auc = i/10 for i < 10, none for 10, 11) and 2 in 'other'."""
    for i in range(12):
        run = client.start_run(experiment="exp", name=f"run-{i:02d}", capture_lineage=False)
        run.log_param("lr", "0.1" if i % 2 == 0 else "0.01")
        run.set_tag("team", "Alpha" if i < 6 else "beta")
        if i < 10:
            run.log_metric("auc", i / 10)
        run.end("FINISHED" if i != 3 else "FAILED")
    for _ in range(2):
        with client.start_run(experiment="other", capture_lineage=False) as run:
            run.log_metric("auc", 0.99)
    return client


def _names(page: object) -> list[str]:
    return [r.name for r in page]  # type: ignore[attr-defined]


def test_search_metric_filter_and_order(populated: TrackingClient) -> None:
    page = populated.search_runs(
        experiment="exp", filter="metrics.auc >= 0.5", order_by=["metrics.auc DESC"]
    )
    assert _names(page) == ["run-09", "run-08", "run-07", "run-06", "run-05"]
    assert page.next_page_token is None
    top = page[0]
    assert top.metrics == {"auc": 0.9}
    assert top.params == {"lr": "0.01"}
    assert top.tags == {"team": "beta"}
    assert top.experiment == "exp"
    assert top.status == "FINISHED"
    assert "environment" not in top.lineage


def test_search_combined_conditions(populated: TrackingClient) -> None:
    page = populated.search_runs(
        filter="metrics.auc > 0.1 and params.lr = '0.1' and tags.team != 'beta' "
        "and attributes.status = 'FINISHED'",
        order_by="metrics.auc",
    )
    assert _names(page) == ["run-02", "run-04"]


def test_search_missing_keys_sort_last_both_directions(populated: TrackingClient) -> None:
    asc = _names(populated.search_runs(experiment="exp", order_by=["metrics.auc ASC"]))
    desc = _names(populated.search_runs(experiment="exp", order_by=["metrics.auc DESC"]))
    assert asc[:2] == ["run-00", "run-01"]
    assert sorted(asc[-2:]) == ["run-10", "run-11"]
    assert desc[0] == "run-09"
    assert sorted(desc[-2:]) == ["run-10", "run-11"]


def test_search_default_order_is_newest_first(populated: TrackingClient) -> None:
    names = _names(populated.search_runs(experiment="exp"))
    assert names == [f"run-{i:02d}" for i in reversed(range(12))]


def test_search_like_is_case_sensitive_ilike_is_not(populated: TrackingClient) -> None:
    like = populated.search_runs(filter="tags.team LIKE 'alp%'")
    assert len(like) == 0
    like = populated.search_runs(filter="tags.team LIKE 'Alp%'")
    assert len(like) == 6
    ilike = populated.search_runs(filter="tags.team ILIKE 'ALP%'")
    assert len(ilike) == 6
    not_like = populated.search_runs(filter="name NOT LIKE 'run-0_'")
    assert sorted(_names(not_like)) == ["run-10", "run-11"]


def test_search_pagination_covers_everything_once(populated: TrackingClient) -> None:
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        page = populated.search_runs(
            experiment=["exp", "other"],
            order_by=["metrics.auc DESC", "name"],
            max_results=4,
            page_token=token,
        )
        pages += 1
        seen += [r.id for r in page]
        token = page.next_page_token
        if token is None:
            break
    assert pages == 4
    assert len(seen) == 14
    assert len(set(seen)) == 14
    # pages cross from the runs having auc to those lacking it in the order of one long page
    whole = populated.search_runs(
        experiment=["exp", "other"], order_by=["metrics.auc DESC", "name"], max_results=100
    )
    assert seen == [r.id for r in whole]


def test_search_page_token_errors(populated: TrackingClient) -> None:
    page = populated.search_runs(experiment="exp", max_results=2)
    assert page.next_page_token
    with pytest.raises(InvalidInputError, match="different search"):
        populated.search_runs(
            experiment="exp", filter="metrics.auc > 0", page_token=page.next_page_token
        )
    with pytest.raises(InvalidInputError, match="invalid page token"):
        populated.search_runs(page_token="not-a-token!")
    with pytest.raises(InvalidInputError, match="max_results"):
        populated.search_runs(max_results=0)


def test_search_unknown_experiment_and_bad_filter(populated: TrackingClient) -> None:
    with pytest.raises(NotFoundError, match="'nope'"):
        populated.search_runs(experiment="nope")
    with pytest.raises(InvalidInputError, match="character 12"):
        populated.search_runs(filter="metrics.auc ! 1")
    assert len(populated.search_runs(experiment="exp", filter="metrics.auc > 5")) == 0


def test_search_numeric_attribute(populated: TrackingClient) -> None:
    runs = list(populated.search_runs(experiment="exp", order_by=["start_time"]))
    pivot = runs[5].start_time
    later = populated.search_runs(
        experiment="exp", filter=f"attributes.start_time > {pivot!r}", order_by="start_time"
    )
    assert [r.id for r in later] == [r.id for r in runs[6:]]


def test_search_is_one_query_plus_three_batched_reads(populated: TrackingClient) -> None:
    from sqlalchemy import event

    statements: list[str] = []

    def record(*args) -> None:  # type: ignore[no-untyped-def]
        statement = args[2]  # (conn, cursor, statement, parameters, context, executemany)
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    engine = populated.metadata_store.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        page = populated.search_runs(
            filter="metrics.auc > 0.2 and params.lr = '0.1' and tags.team LIKE '%'",
            order_by=["metrics.auc DESC", "params.lr"],
            max_results=3,
        )
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert len(page) == 3
    # ordered by a metric: the runs having it (through the (key, value) index), and, as this
    # page reaches their end, the runs lacking it; then the page's params, tags and metrics
    assert len(statements) == 5
    assert "FROM latest_metrics AS o0 JOIN runs" in statements[0]
    assert "NOT (EXISTS" in statements[1]
    assert all("EXISTS" in stmt for stmt in statements[:2])
    for stmt, table in zip(statements[2:], ["params", "run_tags", "latest_metrics"], strict=True):
        assert f"FROM {table}" in stmt


def test_backslash_escapes_in_like_mean_the_same_on_every_database(
    client: TrackingClient,
) -> None:
    for name, tag in (("percent", "a%b"), ("backslash", "a\\xb"), ("other", "azb")):
        with client.start_run(experiment="esc", name=name, capture_lineage=False) as run:
            run.set_tag("t", tag)
    # the string literal's own escape comes first: the filter text a\\%b is the LIKE pattern a\%b
    literal = client.search_runs(experiment="esc", filter="tags.t LIKE 'a\\\\%b'")
    assert _names(literal) == ["percent"]
    wildcard = client.search_runs(experiment="esc", filter="tags.t LIKE 'a%b'", order_by=["name"])
    assert _names(wildcard) == ["backslash", "other", "percent"]


def test_resolve_run_id_checks_that_a_full_id_exists(client: TrackingClient) -> None:
    with client.start_run(capture_lineage=False) as run:
        pass
    assert client.resolve_run_id(run.id) == run.id
    assert client.resolve_run_id(run.id[:8]) == run.id
    with pytest.raises(NotFoundError):
        client.resolve_run_id("0" * 32)
