"""A sweep's study as users see it: a real sweep into a store, a real ``modelyard ui`` process
over it (on SQLite and PostgreSQL) and the pages in a real headless Chromium; and the same study
through ``modelyard runs trials`` and ``modelyard runs list --parent``."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest

from modelyard.errors import InvalidInputError
from tests.conftest import DATABASES
from tests.sweep.conftest import Project
from tests.ui.conftest import PAGE_SIZE, Filled, UIServer, database_url, start_ui

pytest.importorskip("optuna")

EVIL = "<img src=x onerror=\"document.title='pwned'\">b"

# fit fails for depth 5 (a FAIL trial, listed after the completed ones); kind EVIL scores more
PIPELINE = """
import modelyard
from modelyard.pipelines import log_metric


@modelyard.step
def load() -> int:
    return 1


@modelyard.step
def fit(x: int, C: float = 1.0, depth: int = 1, kind: str = "a") -> float:
    if depth == 5:
        raise RuntimeError("depth 5 does not fit")
    score = -((C - 2.0) ** 2) - (depth - 3) ** 2 + (0.5 if kind != "a" else 0.0)
    log_metric("score", score)
    return score


@modelyard.pipeline
def train(C: float = 1.0, depth: int = 1, kind: str = "a"):
    return fit(load(), C=C, depth=depth, kind=kind)
"""
TRIALS = 14  # more than a UI page (PAGE_SIZE = 10)


@dataclass
class Studied:
    """A store with two finished studies of the same pipeline, and the sweeps' own results."""

    settings: Any
    high: Any  # SweepResult, maximize
    low: Any  # SweepResult, minimize
    other_run: str  # a run that is no study


def _expected(result: Any) -> list[int]:
    """Trial numbers best first: completed by the objective (earlier first among equals), then
    the others by number."""
    sign = -1.0 if result.direction == "maximize" else 1.0
    done = [t for t in result.trials if t.state == "COMPLETE"]
    rest = [t for t in result.trials if t.state != "COMPLETE"]
    done.sort(key=lambda t: (sign * t.value, t.number))
    return [t.number for t in done] + sorted(t.number for t in rest)


def _sweep(root: Path, db_url: str) -> Studied:
    from modelyard.sweep import Choice, FloatRange, run_sweep
    from modelyard.workspace import Workspace

    home = root / "home"
    home.mkdir()
    project = Project(root / "project", home, db_url)
    project.root.mkdir()
    settings = project.settings()
    mod = project.module(PIPELINE)
    try:
        space = {"C": FloatRange(0.1, 4.0), "depth": Choice([1, 3, 5]), "kind": Choice(["a", EVIL])}
        high = run_sweep(
            mod.train, space, trials=TRIALS, metric="score", study="high", sampler="random",
            seed=3, settings=settings,
        )  # fmt: skip
        low = run_sweep(
            mod.train, {"C": FloatRange(0.1, 4.0)}, trials=4, metric="score", study="low",
            direction="minimize", sampler="random", seed=1, settings=settings,
        )  # fmt: skip
    finally:
        for name in project.modules:
            sys.modules.pop(name, None)
    tc = Workspace.open(settings).tracking
    other = tc.start_run(experiment="other", name="plain", capture_lineage=False)
    other.end("FINISHED")
    return Studied(settings, high, low, other.id)


@pytest.fixture(scope="module", params=DATABASES)
def studied(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Studied]:
    root = tmp_path_factory.mktemp("studies")
    with database_url(request.param, root) as db_url, pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(root / "project"))
        mp.setattr(sys, "dont_write_bytecode", True)
        found = _sweep(root, db_url)
        # the sweeps must have made what the checks below look for
        assert {t.state for t in found.high.trials} == {"COMPLETE", "FAIL"}
        assert any(t.params["kind"] == EVIL for t in found.high.trials)
        yield found


@pytest.fixture(scope="module")
def ui(studied: Studied) -> Iterator[UIServer]:
    yield from start_ui(Filled(studied.settings, [], "", [], ""), token=None)


@dataclass
class Row:
    trial: str
    classes: str
    href: str
    cells: list[str] = field(default_factory=list)


class _Trials(HTMLParser):
    """The rows of ``#trials-table``: data-trial, class, first link, cell texts."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[Row] = []
        self.header: list[str] = []
        self._in_table = self._in_head = False
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "table" and a.get("id") == "trials-table":
            self._in_table = True
        elif self._in_table and tag == "thead":
            self._in_head = True
        elif self._in_table and tag == "tr" and "data-trial" in a:
            self.rows.append(Row(a["data-trial"] or "", a.get("class") or "", ""))
        elif self._in_table and tag in ("td", "th"):
            self._cell = []
        elif self._in_table and tag == "a" and self.rows and not self.rows[-1].href:
            self.rows[-1].href = a.get("href") or ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._in_table = False
        elif tag == "thead":
            self._in_head = False
        elif tag in ("td", "th") and self._cell is not None:
            text = "".join(self._cell).strip()
            if self._in_head:
                self.header.append(text)
            elif self.rows:
                self.rows[-1].cells.append(text)
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _table(text: str) -> _Trials:
    parser = _Trials()
    parser.feed(text)
    return parser


def _get(ui: UIServer, path: str) -> httpx.Response:
    return httpx.get(ui.url + path, timeout=30)


def test_the_study_page_lists_its_trials_best_first_a_page_at_a_time(
    ui: UIServer, studied: Studied
) -> None:
    high = studied.high
    pages = [_get(ui, f"/studies/{high.run_id}"), _get(ui, f"/studies/{high.run_id}?page=2")]
    assert [p.status_code for p in pages] == [200, 200]
    first, second = (_table(p.text) for p in pages)
    assert len(first.rows) == PAGE_SIZE
    assert len(second.rows) == TRIALS - PAGE_SIZE
    rows = first.rows + second.rows
    assert [int(r.trial) for r in rows] == _expected(high)
    assert first.header[:2] == ["trial", "state"]
    assert first.header[2:5] == ["C", "depth", "kind"]  # the swept params, then the objective
    assert first.header[5].startswith("score")

    # the best trial is first, marked, and the only one marked
    best = high.best
    assert best is not None
    assert int(rows[0].trial) == best.number
    assert "best" in rows[0].classes.split()
    assert "best" in rows[0].cells[0]
    assert [r for r in rows if "best" in r.classes.split()] == [rows[0]]
    assert float(rows[0].cells[5]) == pytest.approx(best.value, rel=1e-5)

    # each row links to its trial's run page; failed trials come last, without a value
    by_number = {t.number: t for t in high.trials}
    for r in rows:
        trial = by_number[int(r.trial)]
        assert r.href == f"/runs/{trial.run_id}"
        assert r.cells[1] == trial.state
        assert r.cells[4] == trial.params["kind"]  # the text shown is the value, tags and all
    states = [r.cells[1] for r in rows]
    assert "FAIL" in states
    assert states == sorted(states, key=lambda s: s != "COMPLETE")
    assert all(r.cells[5] == "-" for r in rows if r.cells[1] == "FAIL")

    # pager: next on the first page, previous (no next) on the second
    assert f'href="/studies/{high.run_id}?page=2"' in pages[0].text
    assert 'id="prev"' not in pages[0].text
    assert 'id="next"' not in pages[1].text
    assert f"trials 11\u2013{TRIALS} of {TRIALS}" in pages[1].text

    # the HTML in a swept value is text: escaped, never markup
    for page in pages:
        assert EVIL not in page.text
    assert "&lt;img src=x onerror=" in pages[0].text + pages[1].text


def test_a_minimised_study_lists_its_lowest_value_first(ui: UIServer, studied: Studied) -> None:
    low = studied.low
    rows = _table(_get(ui, f"/studies/{low.run_id}").text).rows
    assert [int(r.trial) for r in rows] == _expected(low)
    values = [float(r.cells[3]) for r in rows]
    assert values == sorted(values)
    assert low.best is not None
    assert int(rows[0].trial) == low.best.number
    assert "best" in rows[0].classes.split()


def test_the_study_run_page_shows_the_best_trials_and_a_trial_links_back(
    ui: UIServer, studied: Studied
) -> None:
    high = studied.high
    page = _get(ui, f"/runs/{high.run_id}")
    assert page.status_code == 200
    rows = _table(page.text).rows
    assert [int(r.trial) for r in rows] == _expected(high)[:10]
    assert f'href="/studies/{high.run_id}"' in page.text
    assert EVIL not in page.text

    trial = high.trials[0]
    trial_page = _get(ui, f"/runs/{trial.run_id}")
    assert f'id="study-link" href="/studies/{high.run_id}"' in trial_page.text
    assert _table(trial_page.text).rows == []  # a trial is no study


def test_bad_study_pages_say_what_is_wrong(ui: UIServer, studied: Studied) -> None:
    sid = studied.high.run_id
    for bad in ("abc", "0", "-1"):
        page = _get(ui, f"/studies/{sid}?page={bad}")
        assert page.status_code == 400
        assert "page must be a whole number from 1" in page.text
    beyond = _get(ui, f"/studies/{sid}?page=99")
    assert beyond.status_code == 200
    assert "no trials on this page" in beyond.text
    assert 'id="prev"' in beyond.text
    other = _get(ui, f"/studies/{studied.other_run}")
    assert other.status_code == 400
    assert "is not a sweep&#39;s study" in other.text
    assert _get(ui, "/studies/" + "0" * 32).status_code == 404


def _cli(studied: Studied, args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    from modelyard.cli import main

    s = studied.settings
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MODELYARD_HOME", str(s.resolved_home))
        mp.setenv("MODELYARD_DB_URL", s.resolved_db_url)
        mp.setenv("MODELYARD_ARTIFACT_URL", s.resolved_artifact_url)
        mp.chdir(s.project_root)
        code = main(args)
    out = capsys.readouterr()
    assert code == 0, out.err
    return out.out


def test_runs_trials_shows_a_study_by_name_best_first(
    studied: Studied, capsys: pytest.CaptureFixture[str]
) -> None:
    high = studied.high
    data = json.loads(_cli(studied, ["runs", "trials", "high", "--max", "5", "--json"], capsys))
    assert data["run_id"] == high.run_id
    assert data["total"] == TRIALS
    assert data["params"] == ["C", "depth", "kind"]
    assert [t["number"] for t in data["trials"]] == _expected(high)[:5]
    assert data["best_run_id"] == high.best.run_id

    # text, page 3 of 5 a page, by the study run's id prefix
    out = _cli(studied, ["runs", "trials", high.run_id[:10], "-n", "5", "--page", "3"], capsys)
    lines = out.splitlines()
    assert lines[0].startswith("study 'high'")
    assert lines[1].split()[:2] == ["TRIAL", "STATE"]
    assert [int(line.split()[0]) for line in lines[2:]] == _expected(high)[10:]
    assert "*" not in out  # the best is on page 1

    first = _cli(studied, ["runs", "trials", "high", "-n", "3"], capsys).splitlines()
    assert first[2].startswith("*")
    assert first[2].split()[1] == str(high.best.number)
    assert first[-1] == f"trials 1-3 of {TRIALS}: --page 2"


def test_runs_list_parent_lists_a_studys_trials(
    studied: Studied, capsys: pytest.CaptureFixture[str]
) -> None:
    high = studied.high
    args = ["runs", "list", "--parent", high.run_id[:8], "-n", "100", "--json"]
    data = json.loads(_cli(studied, args, capsys))
    assert sorted(r["id"] for r in data["runs"]) == sorted(t.run_id for t in high.trials)
    args += ["--filter", "status = 'FAILED'"]
    failed = json.loads(_cli(studied, args, capsys))
    assert sorted(r["id"] for r in failed["runs"]) == sorted(
        t.run_id for t in high.trials if t.state == "FAIL"
    )


def test_trials_page_refuses_bad_arguments(studied: Studied) -> None:
    from modelyard.sweep.trials import trials_page
    from modelyard.workspace import Workspace

    ws = Workspace.open(studied.settings)
    with pytest.raises(InvalidInputError, match="limit must be an integer from 1 to 1000"):
        trials_page(ws, studied.high.run_id, limit=0)
    with pytest.raises(InvalidInputError, match="offset must be an integer >= 0"):
        trials_page(ws, studied.high.run_id, offset=-1)
    with pytest.raises(InvalidInputError, match="not a sweep's study"):
        trials_page(ws, studied.other_run)


@pytest.mark.slow
def test_a_study_in_a_real_browser(ui: UIServer, studied: Studied, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def numbers(d: Any) -> list[str]:
        found: list[str] = d.execute_script(
            "return Array.from(document.querySelectorAll('#trials-table tr.trial'))"
            ".map(tr => tr.dataset.trial)"
        )
        return found

    high = studied.high
    order = [str(n) for n in _expected(high)]
    wait = WebDriverWait(browser, 20)
    browser.get(ui.url + f"/runs/{high.run_id}")
    wait.until(lambda d: numbers(d) == order[:10])
    browser.find_element(By.ID, "all-trials").click()
    wait.until(lambda d: d.current_url.endswith(f"/studies/{high.run_id}"))
    browser.find_element(By.ID, "next").click()
    wait.until(lambda d: numbers(d) == order[10:])
    browser.find_element(By.CSS_SELECTOR, "#trials-table a.run-link").click()
    wait.until(lambda d: "/runs/" in d.current_url)
    browser.find_element(By.ID, "study-link").click()
    wait.until(lambda d: numbers(d) == order[:10])
    best = browser.find_element(By.CSS_SELECTOR, "#trials-table tr.best")
    assert best.get_attribute("data-trial") == order[0]
    assert "pwned" not in browser.title
    kinds = browser.execute_script(
        "return Array.from(document.querySelectorAll('#trials-table td.param'))"
        ".map(td => td.textContent)"
    )
    assert EVIL in kinds
