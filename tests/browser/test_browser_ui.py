"""The pages in a real browser: sign in, see the DAG list, trigger a run (a bad conf first),
watch the grid turn green as the scheduler runs it, collapse a task group, open a task's log,
and look at the graph and the Gantt chart. A screenshot of each page is saved."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orchestrator.store import runs as run_store
from tests.browser.conftest import PASSWORD, USER, Site

pytestmark = pytest.mark.browser


def test_sign_in_trigger_watch_the_grid_turn_green_and_read_a_log(
    site: Site, browser_page: Any, screenshots: Path
) -> None:
    page = browser_page

    def shot(name: str) -> None:
        page.screenshot(path=str(screenshots / f"{name}.png"), full_page=True)

    page.goto(f"{site.url}/")
    page.fill('input[name="username"]', USER)
    page.fill('input[name="password"]', PASSWORD)
    shot("01-login")
    page.click('button:has-text("Sign in")')
    page.wait_for_selector('tr[data-dag="sales"]')
    shot("02-dag-list")

    page.click('a:has-text("sales")')
    page.wait_for_selector("text=No runs yet.")
    page.click("text=Trigger a run…")
    page.fill('textarea[name="conf"]', '{"rows": 0}')
    page.click('button:has-text("Trigger")')
    error = page.wait_for_selector(".trigger-error")
    assert "rows" in error.inner_text()
    shot("03-trigger-refused")
    with site.sessions() as session:
        assert run_store.count_runs(session, "sales") == 0

    page.fill('textarea[name="conf"]', '{"rows": 5}')
    page.click('button:has-text("Trigger")')
    page.wait_for_selector("text=Triggered manual__")
    # the grid redraws itself until the run has finished
    page.wait_for_selector('#grid a.run-head[data-state="success"]')
    states = page.eval_on_selector_all("#grid a.cell", "cells => cells.map(c => c.dataset.state)")
    assert states == ["success"] * 4
    shot("04-grid-green")

    page.click('.group-toggle[data-group="load"]')
    assert page.is_hidden('tr[data-task="load.orders"]')
    assert page.is_visible('tr[data-task="extract"]')
    shot("05-grid-group-collapsed")
    page.click('.group-toggle[data-group="load"]')

    page.click('tr[data-task="extract"] a.cell')
    log = page.wait_for_selector("pre.log")
    assert "hello from extract" in log.inner_text()
    assert page.inner_text(".ti-state") == "success"
    shot("06-task-instance-log")

    page.click("nav.tabs >> text=Graph")
    page.wait_for_selector("svg.graph g.node")
    assert page.locator("svg.graph g.node").count() == 4
    assert page.locator('svg.graph g.node[data-state="success"]').count() == 4
    shot("07-graph")

    page.click("nav.tabs >> text=Grid")
    page.click("#grid a.run-head")
    page.wait_for_selector("svg.gantt rect.bar.running")
    assert page.locator("svg.gantt rect.bar.running").count() == 4
    shot("08-run-gantt")

    page.click("nav.tabs >> text=Durations")
    page.wait_for_selector("svg.durations")
    shot("09-durations")
    assert len(list(screenshots.glob("*.png"))) >= 9
