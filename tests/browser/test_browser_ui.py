"""The pages in a real browser: sign in, see the DAG list, trigger a run (a bad conf first),
watch the grid turn green as the scheduler runs it, collapse a task group, open a task's log,
and look at the graph and the Gantt chart. A screenshot of each page is saved."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from orchestrator.services.clock import SystemClock
from orchestrator.services.runs import trigger_run
from orchestrator.store import dags as dag_store
from orchestrator.store import runs as run_store
from tests.browser.conftest import PASSWORD, USER, Site

pytestmark = pytest.mark.browser


def sign_in(page: Any, site: Site, path: str = "/") -> None:
    page.goto(f"{site.url}{path}")
    page.fill('input[name="username"]', USER)
    page.fill('input[name="password"]', PASSWORD)
    page.click('button:has-text("Sign in")')


def test_sign_in_trigger_watch_the_grid_turn_green_and_read_a_log(
    site: Site, browser_page: Any, screenshots: Path
) -> None:
    page = browser_page

    def shot(name: str) -> None:
        page.screenshot(path=str(screenshots / f"{name}.png"), full_page=True)

    page.goto(f"{site.url}/login")
    shot("01-login")
    sign_in(page, site)
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
    assert page.locator("svg.gantt rect.bar.pulling").count() == 4  # queued, pulling, running
    shot("08-run-gantt")

    page.click("nav.tabs >> text=Durations")
    page.wait_for_selector("svg.durations")
    shot("09-durations")
    assert len(list(screenshots.glob("*.png"))) >= 9


def test_a_running_attempt_s_log_is_followed_live(
    site: Site, browser_page: Any, screenshots: Path
) -> None:
    page = browser_page
    with site.sessions.begin() as session:
        spec = dag_store.get_dag_spec(session, "slow")
        run_id = trigger_run(session, spec, now=SystemClock().now()).run_id
    deadline = time.monotonic() + 15
    while not site.runtime.started and time.monotonic() < deadline:
        time.sleep(0.1)
    (container_id,) = site.runtime.started
    sign_in(page, site, f"/dags/slow/runs/{quote(run_id, safe='')}/tasks/wait")
    page.wait_for_selector("text=following…")
    page.wait_for_function(
        "document.querySelector('pre.log').textContent.includes('waiting for input')"
    )
    site.runtime.emit(container_id, b"got 42 rows\n")
    page.wait_for_function("document.querySelector('pre.log').textContent.includes('42 rows')")
    page.screenshot(path=str(screenshots / "10-log-following.png"), full_page=True)

    site.runtime.finish(container_id, 0, logs=b"done\n")
    # the stream ends with the attempt and the page is drawn again, finished
    page.wait_for_selector(".ti-state:has-text('success')")
    assert "done" in page.inner_text("pre.log")
    assert page.locator("text=following…").count() == 0
    page.screenshot(path=str(screenshots / "11-log-finished.png"), full_page=True)


def test_a_mapped_task_opens_into_its_instances_and_a_group_sums_up_its_tasks(
    site: Site, browser_page: Any, screenshots: Path
) -> None:
    page = browser_page
    with site.sessions.begin() as session:
        spec = dag_store.get_dag_spec(session, "fanout")
        trigger_run(session, spec, now=SystemClock().now())
    sign_in(page, site, "/dags/fanout")
    page.wait_for_selector('#grid a.run-head[data-state="success"]')
    mapped = page.locator("#grid a.cell.mapped")
    assert mapped.get_attribute("data-counts") == "3 success"
    assert page.locator("#grid tr.instance-row:visible").count() == 0  # closed at first
    page.click('.map-toggle[data-group="map:fetch"]')
    visible = page.locator("#grid tr.instance-row:visible")
    assert visible.count() == 3
    states = page.eval_on_selector_all(
        "#grid a.instance-cell", "cells => cells.map(c => c.dataset.state)"
    )
    assert states == ["success"] * 3
    page.click('.group-toggle[data-group="load"]')
    assert page.is_hidden('tr[data-task="load.all"]')
    group_cell = page.locator('tr.group-row[data-group="load"] a.group-cell')
    assert group_cell.get_attribute("data-state") == "success"
    page.screenshot(path=str(screenshots / "13-grid-mapped-open.png"), full_page=True)
    page.click("#grid tr.instance-row a.instance-cell >> nth=1")
    page.wait_for_selector("text=fetch[1]")
    assert page.inner_text(".ti-state") == "success"


def test_a_form_without_the_session_s_csrf_token_is_refused(
    site: Site, browser_page: Any, screenshots: Path
) -> None:
    page = browser_page
    sign_in(page, site, "/dags/sales")
    page.wait_for_selector("text=No runs yet.")
    # a script posting the form's fields but not the token (what another site would send)
    status = page.evaluate(
        """() => fetch('/dags/sales/trigger', {
                method: 'POST', body: new URLSearchParams({conf: '{}'})
            }).then(response => response.status)"""
    )
    assert status == 403
    page.click("text=Trigger a run…")
    page.eval_on_selector('form.trigger input[name="csrf_token"]', "input => input.remove()")
    page.click('button:has-text("Trigger")')
    page.wait_for_selector("text=CSRF token")
    page.screenshot(path=str(screenshots / "12-csrf-refused.png"), full_page=True)
    with site.sessions() as session:
        assert run_store.count_runs(session, "sales") == 0
