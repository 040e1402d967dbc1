"""The UI in a real headless Chromium (Selenium) against a real ``modelyard ui`` process."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.ui.conftest import EVIL_NAME, EVIL_TAG, PAGE_SIZE, TOKEN, UIServer, screenshot_dir

pytestmark = pytest.mark.slow


def _wait(driver: Any, css: str, timeout_s: float = 20.0) -> Any:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout_s).until(
        ec.visibility_of_element_located((By.CSS_SELECTOR, css))
    )


def _until(driver: Any, predicate: Any, timeout_s: float = 20.0) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout_s).until(predicate)


def _names(driver: Any) -> list[str]:
    # one script call: htmx may swap the table between finding links and reading them
    names: list[str] = driver.execute_script(
        "return Array.from(document.querySelectorAll('#runs-table a.run-link'))"
        ".map(a => a.textContent)"
    )
    return names


def _shot(driver: Any, name: str) -> None:
    folder = screenshot_dir()
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(folder / f"{name}.png"))


@pytest.fixture
def page(ui: UIServer, browser: Any) -> Iterator[Any]:
    browser.delete_all_cookies()
    return browser


def test_search_sort_paginate_and_compare(ui: UIServer, page: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    page.get(ui.url + "/runs?experiment=sweep")
    _wait(page, "#runs-table")
    first = _names(page)
    assert len(first) == PAGE_SIZE
    assert first[0] == EVIL_NAME  # newest first, shown as text

    # search with the grammar of search_runs
    box = page.find_element(By.ID, "filter")
    box.send_keys("metrics.auc > 0.9 and params.depth != '3'", Keys.ENTER)
    _until(page, lambda d: "trial-21" not in _names(d) and len(_names(d)) == 3)
    assert sorted(_names(page)) == ["trial-22", "trial-23", "trial-24"]

    # sort by a metric column: descending, then ascending on a second click
    def auc_header(d: Any) -> str:
        text: str = d.execute_script(
            "const a = document.querySelector(\"#runs-table th.metric a[href*='auc']\");"
            "return a ? a.textContent : '';"
        )
        return text

    page.find_element(By.CSS_SELECTOR, "#runs-table th.metric a[href*='auc']").click()
    _until(page, lambda d: "\u25bc" in auc_header(d))
    assert _names(page) == ["trial-24", "trial-23", "trial-22"]
    page.find_element(By.CSS_SELECTOR, "#runs-table th.metric a[href*='auc']").click()
    _until(page, lambda d: "\u25b2" in auc_header(d))
    assert _names(page) == ["trial-22", "trial-23", "trial-24"]

    # paginate through every run of the experiment, sorted by auc
    page.get(ui.url + "/runs?experiment=sweep&order=metrics.auc+DESC")
    _wait(page, "#runs-table")
    seen = _names(page)
    assert seen[0] == "trial-24"
    _shot(page, "runs")
    while page.find_elements(By.ID, "next"):
        before = _names(page)
        page.find_element(By.ID, "next").click()
        _until(page, lambda d, before=before: _names(d) != before)
        seen += _names(page)
    assert len(seen) == 26
    assert len(set(seen)) == 26
    assert seen[-1] == EVIL_NAME  # auc 0.1, the lowest
    page.find_element(By.ID, "prev").click()
    _until(page, lambda d: _names(d) == seen[PAGE_SIZE : 2 * PAGE_SIZE])

    # compare two ticked runs
    page.get(ui.url + "/runs?experiment=sweep&filter=name+LIKE+%27trial-0_%27&order=name")
    _wait(page, "#runs-table")
    boxes = page.find_elements(By.CSS_SELECTOR, "#runs-table input[type=checkbox]")
    boxes[1].click()
    boxes[3].click()
    page.find_element(By.ID, "compare").click()
    table = _wait(page, "#compare-table")
    assert "trial-01" in table.text
    assert "trial-03" in table.text
    differ = [r.text for r in page.find_elements(By.CSS_SELECTOR, "#compare-table tr.differ")]
    assert any(r.startswith("lr") for r in differ)
    assert any(r.startswith("auc") for r in differ)
    same = [r.text for r in page.find_elements(By.CSS_SELECTOR, "#compare-table tr.same")]
    assert any(r.startswith("depth") for r in same) is False  # depth 3 vs 5 differ too
    _until(page, lambda d: len(d.find_elements(By.CSS_SELECTOR, ".chart canvas")) >= 2)
    _shot(page, "compare")


def test_a_malformed_search_shows_the_parse_error(ui: UIServer, page: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    page.get(ui.url + "/runs")
    _wait(page, "#runs-table")
    page.find_element(By.ID, "filter").send_keys("metrics.auc >> 0.5", Keys.ENTER)
    error = _wait(page, "#search-error")
    assert "invalid filter at character 13: metrics.auc is a number, got '>'" in error.text
    assert "^" in error.text
    assert not page.find_elements(By.ID, "runs-table")


def test_html_in_names_tags_and_params_is_shown_as_text(ui: UIServer, page: Any) -> None:
    from selenium.webdriver.common.by import By

    page.get(ui.url + f"/runs/{ui.filled.evil_id}")
    _wait(page, "#tags")
    assert EVIL_NAME in page.find_element(By.TAG_NAME, "h1").text
    assert EVIL_TAG in page.find_element(By.ID, "tags").text
    assert "<b>0.5</b>" in page.find_element(By.ID, "params").text
    assert page.title != "pwned"  # no script ran; the name is shown as text
    assert not page.find_elements(By.CSS_SELECTOR, "main img")
    page.get(ui.url + "/runs?experiment=sweep")
    _wait(page, "#runs-table")
    assert page.title != "pwned"  # no script ran; the name is shown as text


def test_unknown_ids_are_404_pages(ui: UIServer, page: Any) -> None:
    from selenium.webdriver.common.by import By

    for path in (
        "/runs/0123456789abcdef0123456789abcdef",
        "/pipelines/0123456789abcdef0123456789abcdef",
        "/models/no-such-model",
        "/models/churn/versions/99",
        "/runs?experiment=no-such-experiment",
        "/no/such/page",
    ):
        assert httpx.get(ui.url + path, timeout=30).status_code == 404, path
        page.get(ui.url + path)
        assert "404" in _wait(page, "h1.error-title").text, path
    page.get(ui.url + "/runs/0123456789abcdef0123456789abcdef")
    assert "not found" in page.find_element(By.ID, "error-message").text


def test_a_run_page_shows_charts_lineage_and_downloads(ui: UIServer, page: Any) -> None:
    from selenium.webdriver.common.by import By

    run_id = ui.filled.sweep_ids[0]
    page.get(ui.url + f"/runs/{run_id}")
    _until(page, lambda d: len(d.find_elements(By.CSS_SELECTOR, ".chart canvas")) == 2)
    assert "lr" in page.find_element(By.ID, "params").text
    assert "git commit" in page.find_element(By.ID, "lineage").text
    assert "churn v1" in page.find_element(By.CSS_SELECTOR, "dl.facts").text  # registered
    link = page.find_element(By.CSS_SELECTOR, "#artifacts a")
    assert link.text == "eval/report.txt"
    got = httpx.get(link.get_attribute("href"), timeout=30)
    assert got.status_code == 200
    assert got.content == b"confusion matrix: [[40, 2], [3, 55]]\n"
    _shot(page, "run")


def test_a_pipeline_page_shows_ran_and_cached_steps(ui: UIServer, page: Any) -> None:
    from selenium.webdriver.common.by import By

    first, _second, cached = ui.filled.pipeline_ids
    page.get(ui.url + "/pipelines")
    rows = _wait(page, "#pipelines-table").text
    assert rows.count("training") == 3
    page.get(ui.url + f"/pipelines/{first}")
    _wait(page, "#steps")
    states = [e.text for e in page.find_elements(By.CSS_SELECTOR, "#steps .step .state")]
    assert states == ["ran", "ran", "ran"]
    _shot(page, "pipeline")
    page.get(ui.url + f"/pipelines/{cached}")
    _wait(page, "#steps")
    states = [e.text for e in page.find_elements(By.CSS_SELECTOR, "#steps .step .state")]
    assert states == ["cached", "cached", "cached"]


def _production(ui: UIServer) -> int | None:
    from modelyard.registry.registry import Registry

    return Registry.from_settings(ui.filled.settings).get_model("churn").aliases.get("production")


def _history_len(ui: UIServer) -> int:
    from modelyard.registry.registry import Registry

    return len(Registry.from_settings(ui.filled.settings).alias_history("churn"))


def test_an_action_without_the_token_is_refused_and_changes_nothing(
    ui: UIServer, page: Any
) -> None:
    from selenium.webdriver.common.by import By

    before, moves = _production(ui), _history_len(ui)
    page.get(ui.url + "/models/churn")
    form = _wait(page, "#promote-form")
    form.find_element(By.NAME, "version").send_keys("v3")
    form.find_element(By.NAME, "token").send_keys("wrong-token")
    form.find_element(By.NAME, "actor").send_keys("mallory")
    form.find_element(By.ID, "promote").click()
    assert "401" in _wait(page, "h1.error-title").text
    assert "admin token is missing or wrong" in page.find_element(By.ID, "error-message").text
    # no token at all, straight to the endpoint
    sent = httpx.post(
        ui.url + "/models/churn/rollback", data={"alias": "production", "actor": "x"}, timeout=30
    )
    assert sent.status_code == 401
    assert _production(ui) == before
    assert _history_len(ui) == moves


def test_an_authorised_promote_moves_the_alias_and_records_who_and_why(
    ui: UIServer, page: Any
) -> None:
    from selenium.webdriver.common.by import By

    page.get(ui.url + "/models/churn")
    history = _wait(page, "#alias-history")
    _until(page, lambda d: d.execute_script("return document.readyState") == "complete")
    assert "latency regression" in history.text  # the rollback made while filling
    assert "rollback" in history.text
    form = page.find_element(By.ID, "promote-form")
    form.find_element(By.NAME, "version").send_keys("v3")
    form.find_element(By.NAME, "token").send_keys(TOKEN)
    form.find_element(By.NAME, "actor").send_keys("alice")
    form.find_element(By.NAME, "reason").send_keys("gate passed, <b>ship it</b>")
    form.find_element(By.ID, "promote").click()
    # read by script: the click loads a new page, so an element found before it goes stale;
    # wait for this promote's own entry (the gate's earlier entry also says "gate passed")
    _until(
        page,
        lambda d: (
            "ship it"
            in d.execute_script(
                "const e = document.querySelector('#alias-history li');return e ? e.innerText : '';"
            )
        ),
    )
    newest = page.execute_script("return document.querySelector('#alias-history li').innerText;")
    assert "production" in newest
    assert "v3" in newest
    assert "alice" in newest
    assert "<b>ship it</b>" in newest  # the reason is text, not markup
    assert _production(ui) == 3
    from modelyard.registry.registry import Registry

    event = Registry.from_settings(ui.filled.settings).alias_history("churn")[-1]
    assert (event.actor, event.reason, event.to_version) == (
        "alice",
        "gate passed, <b>ship it</b>",
        3,
    )
    _shot(page, "model")
    page.get(ui.url + "/models/churn/versions/3")
    assert "passed" in _wait(page, "#gate-verdict").text
    assert "accuracy" in page.find_element(By.ID, "gate-rules").text
    assert 'name = "churn"' in page.find_element(By.ID, "contract").text
    assert page.find_elements(By.ID, "profile")
    _shot(page, "version")


def test_a_running_run_page_refreshes_itself(ui: UIServer, page: Any) -> None:
    from selenium.webdriver.common.by import By

    from modelyard.tracking.client import TrackingClient

    tc = TrackingClient.from_settings(ui.filled.settings)
    run = tc.start_run(experiment="live", name="still-training", capture_lineage=False)
    page.get(ui.url + f"/runs/{run.id}")
    assert "RUNNING" in _wait(page, "h1 .status").text
    run.log_metric("loss", 0.5)
    run.end("FINISHED")
    _until(page, lambda d: "FINISHED" in d.find_element(By.CSS_SELECTOR, "h1 .status").text)


def test_an_authorised_abort_leaves_the_command_for_the_rollout(ui: UIServer, page: Any) -> None:
    from selenium.webdriver.common.by import By

    from modelyard.delivery.store import RolloutStore
    from modelyard.store.db import MetadataStore
    from tests.ui.conftest import start_rollout

    rollout_id = start_rollout(ui.filled.settings)
    page.get(ui.url + "/models/churn")
    _wait(page, "#rollout-link").click()
    form = _wait(page, "#abort-form")
    assert "25.0%" in page.find_element(By.ID, "rollout-weight").text
    form.find_element(By.NAME, "token").send_keys(TOKEN)
    form.find_element(By.NAME, "actor").send_keys("bob")
    form.find_element(By.TAG_NAME, "button").click()
    # the rollout page refreshes itself (never while a form field has the focus): read by script
    _until(
        page,
        lambda d: (
            "pending command"
            in d.execute_script(
                "const e = document.querySelector('dl.facts'); return e ? e.innerText : '';"
            )
        ),
    )
    stored = RolloutStore(MetadataStore.from_settings(ui.filled.settings))
    assert stored.get(rollout_id).command == "abort"
    assert stored.events(rollout_id)[-1].actor == "bob"
    _shot(page, "rollout")


def test_the_monitoring_page_opens_a_kept_report(ui: UIServer, page: Any) -> None:
    from selenium.webdriver.common.by import By

    from tests.ui.conftest import record_monitoring

    result_id = record_monitoring(ui.filled.settings)
    page.get(ui.url + "/models/churn/monitoring")
    link = _wait(page, f'#monitor-results a.report[href$="/reports/{result_id}"]')
    _shot(page, "monitoring")
    page.get(link.get_attribute("href"))  # the link opens a new tab; follow it here
    heading = _wait(page, "h1")
    assert heading.text == "modelyard monitoring: churn version 3"
    assert page.find_elements(By.CSS_SELECTOR, "svg")  # histograms drawn without scripts
