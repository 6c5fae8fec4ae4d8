"""The UI pages: each renders for a seeded store, the charts hold what they show, the action
forms need an operator, change state and leave audit records, and a bad trigger creates
nothing."""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest
from sqlalchemy import event

from orchestrator.models.launch import LaunchRequest
from orchestrator.models.mapping import LiteralItems
from orchestrator.models.specs import DagSpec
from orchestrator.runtime.fake import FakeBehavior
from orchestrator.services import dag_views
from orchestrator.services.users import Role
from orchestrator.store import dags as dag_store
from orchestrator.store import runs as run_store
from orchestrator.store import task_instances as ti_store
from orchestrator.store import users as user_store
from orchestrator.web.dag_pages import MAX_INSTANCE_ROWS, grid_rows
from tests.unit.services.test_scheduler import t
from tests.unit.web.conftest import Web


def sign_in(web: Web, role: Role) -> None:
    web.sign_in(role)


def run_page(web: Web) -> str:
    return f"/dags/d/runs/{web.run_id}"


def audit_actions(web: Web) -> list[tuple[str, str | None]]:
    with web.harness.sessions() as session:
        return [(e.action, e.detail) for e in user_store.audit_entries(session)]


def run_count(web: Web) -> int:
    with web.harness.sessions() as session:
        return run_store.count_runs(session, "d")


def test_every_page_renders_for_a_viewer(web: Web) -> None:
    sign_in(web, Role.VIEWER)
    pages = [
        "/",
        "/dags/d",
        "/dags/d/graph",
        "/dags/d/durations",
        run_page(web),
        run_page(web) + "/tasks/a",
    ]
    for page in pages:
        response = web.client.get(page)
        assert response.status_code == 200, page
    chosen = web.client.get("/dags/d/graph", params={"run_id": web.run_id})
    assert chosen.status_code == 200 and "selected" in chosen.text
    ti = web.client.get(run_page(web) + "/tasks/a").text
    assert "hello from a" in ti and "second line" in ti  # the log
    assert '<pre class="output">&#34;a&#34;</pre>' in ti or '"a"' in ti  # the output


def test_pages_of_unknown_things_answer_404(web: Web) -> None:
    sign_in(web, Role.VIEWER)
    assert web.client.get("/dags/nope").status_code == 404
    assert web.client.get("/dags/d/runs/nope").status_code == 404
    assert web.client.get(run_page(web) + "/tasks/nope").status_code == 404


def test_dag_list_shows_schedule_latest_runs_and_import_errors(web: Web) -> None:
    with web.harness.sessions.begin() as session:
        dag_store.record_file_result(
            session,
            "/dags/broken.py",
            [],
            'Traceback (most recent call last):\nNameError: name "oops" is not defined',
            web.harness.clock.now(),
        )
    sign_in(web, Role.VIEWER)
    page = web.client.get("/").text
    assert "/dags/broken.py" in page and "NameError" in page
    assert page.index("/dags/broken.py") < page.index('data-dag="d"')  # errors first
    assert 'class="sq state-success" data-state="success"' in page
    assert "manual" in page  # no schedule


def test_grid_has_a_cell_per_task_and_run_linking_to_the_instance(web: Web) -> None:
    sign_in(web, Role.VIEWER)
    page = web.client.get("/dags/d").text
    cells = re.findall(r'class="sq state-(\w+) cell"', page)
    assert cells == ["success", "success"]
    assert f'href="/dags/d/runs/{web.run_id.replace(":", "%3A").replace("+", "%2B")}' in page
    assert 'data-live="0"' in page  # nothing left to watch


def test_grid_shows_only_the_latest_runs_asked_for(web: Web) -> None:
    for _ in range(3):
        web.harness.clock.advance(minutes=1)
        web.harness.trigger(DagSpec.model_validate_json(_spec_json(web)))
    sign_in(web, Role.VIEWER)
    page = web.client.get("/dags/d?runs=2").text
    assert len(re.findall(r'class="sq state-\w+ run-head"', page)) == 2
    assert "The latest 2 of 4 runs" in page
    assert 'data-live="1"' in page  # queued runs are watched


def _spec_json(web: Web) -> str:
    with web.harness.sessions() as session:
        return dag_store.get_dag_row(session, "d").spec_json


def test_task_groups_get_collapsible_header_rows(web: Web) -> None:
    grouped = DagSpec(
        dag_id="g",
        tasks=(
            t("extract"),
            t("load.one", "extract", group_id="load"),
            t("load.two", "extract", group_id="load"),
        ),
    )
    web.harness.trigger(grouped)
    sign_in(web, Role.VIEWER)
    page = web.client.get("/dags/g").text
    assert page.count('class="group-toggle" data-group="load"') == 1
    assert page.count('data-groups="load"') == 2


def mapped_and_grouped() -> DagSpec:
    """`fetch` maps over three cities (paris fails); group `load` holds one task that
    succeeds and one left upstream_failed."""
    return DagSpec(
        dag_id="m",
        fileloc="/dags/m.py",
        tasks=(
            t(
                "fetch",
                environment={"CITY": "{{ mapped.item }}"},
                expand={"item": LiteralItems(items=("amsterdam", "paris", "tokyo"))},
            ),
            t("load.one", group_id="load"),
            t("load.two", "fetch", group_id="load"),
        ),
    )


def fail_paris(request: LaunchRequest) -> FakeBehavior:
    return FakeBehavior(exit_code=1 if request.environment.get("CITY") == "paris" else 0)


def test_a_mapped_task_s_cell_sums_up_its_instances_and_opens_into_a_row_each(web: Web) -> None:
    web.harness.runtime.script = fail_paris
    run_id = web.harness.trigger(mapped_and_grouped())
    web.harness.tick(6)
    sign_in(web, Role.VIEWER)
    page = web.client.get("/dags/m").text
    cell = re.search(r'<a class="sq state-(\w+) cell mapped"[^>]*data-counts="([^"]*)"', page)
    assert cell is not None
    assert cell.groups() == ("failed", "1 failed, 2 success")
    # the square shows both: a third failed (red, at the bottom), two thirds success
    assert "linear-gradient(to top, #d32f2f 0.0% 33.3%, #2e8b3a 33.3% 100.0%)" in page
    assert 'data-group="map:fetch" data-label="fetch [3]"' in page
    rows = re.findall(
        r'<tr class="instance-row" data-task="fetch" data-map-index="(\d)"\s+'
        r'data-groups="map:fetch" hidden>.*?class="sq state-(\w+) instance-cell"',
        page,
        flags=re.S,
    )
    assert rows == [("0", "success"), ("1", "failed"), ("2", "success")]
    quoted = quote(run_id, safe="")
    assert f'href="/dags/m/runs/{quoted}/tasks/fetch?map_index=1"' in page


def test_a_group_row_sums_up_its_tasks_in_every_run(web: Web) -> None:
    web.harness.runtime.script = fail_paris
    web.harness.trigger(mapped_and_grouped())
    web.harness.tick(6)
    sign_in(web, Role.VIEWER)
    page = web.client.get("/dags/m").text
    group = re.search(
        r'<tr class="group-row" data-group="load".*?class="sq state-(\w+) group-cell"'
        r'[^>]*data-counts="([^"]*)"',
        page,
        flags=re.S,
    )
    assert group is not None
    assert group.groups() == ("upstream_failed", "1 upstream_failed, 1 success")


def test_a_mapped_task_opens_into_at_most_a_hundred_rows(web: Web) -> None:
    rows = grid_rows(mapped_and_grouped(), {"fetch": 250})
    instances = [r for r in rows if r.kind == "instance"]
    assert len(instances) == MAX_INSTANCE_ROWS == 100
    (more,) = [r for r in rows if r.kind == "more"]
    assert more.label.startswith("150 more instances")


def test_graph_has_a_node_per_task_and_an_edge_per_dependency(web: Web) -> None:
    sign_in(web, Role.VIEWER)
    page = web.client.get("/dags/d/graph").text
    nodes = re.findall(r'<g class="node" data-task="(\w+)" data-state="(\w+)"', page)
    assert nodes == [("a", "success"), ("b", "success")]
    assert len(re.findall(r'<path class="edge" data-from="a" data-to="b"', page)) == 1
    assert "<rect" in page and "<svg" in page


def test_gantt_has_a_bar_per_instance(web: Web) -> None:
    sign_in(web, Role.VIEWER)
    page = web.client.get(run_page(web)).text
    assert len(re.findall(r'class="bar running"', page)) == 2
    assert len(re.findall(r'class="bar queued"', page)) == 2


def test_gantt_shows_the_time_spent_pulling_the_image(
    web: Web, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime, clock = web.harness.runtime, web.harness.clock
    ensure_image = runtime.ensure_image

    def slow_pull(*args: object, **kwargs: object) -> None:
        clock.advance(seconds=7)  # the image takes 7 s to pull
        ensure_image(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(runtime, "ensure_image", slow_pull)
    run_id = web.harness.trigger(DagSpec(dag_id="p", fileloc="/dags/p.py", tasks=(t("pull"),)))
    web.harness.tick(3)
    with web.harness.sessions() as session:
        (attempts,) = ti_store.attempts_of_run(
            session, run_store.get_run(session, "p", run_id).id
        ).values()
    (attempt,) = attempts
    assert attempt.launch_started_at is not None and attempt.image_ready_at is not None
    assert (attempt.image_ready_at - attempt.launch_started_at).total_seconds() == 7
    assert attempt.start_date == attempt.image_ready_at  # the fake starts at once
    sign_in(web, Role.VIEWER)
    page = web.client.get(f"/dags/p/runs/{quote(run_id, safe='')}").text
    pulling = re.findall(r'<rect class="bar pulling"[^>]*? width="([\d.]+)"', page)
    assert len(pulling) == 1 and float(pulling[0]) > 100  # 7 of the run's 7 s
    assert "try 1: pulling the image" in page
    assert (
        page.index('class="bar queued"')
        < page.index('class="bar pulling"')
        < page.index('class="bar running"')
    )


def test_durations_chart_has_a_series_per_task(web: Web) -> None:
    web.harness.clock.advance(seconds=30)
    sign_in(web, Role.VIEWER)
    page = web.client.get("/dags/d/durations").text
    assert 'class="durations"' in page
    assert "<circle" in page  # one point per finished task instance


def test_a_viewer_sees_no_action_buttons_and_cannot_post_them(web: Web) -> None:
    sign_in(web, Role.VIEWER)
    for page in ("/", "/dags/d", run_page(web), run_page(web) + "/tasks/a"):
        text = web.client.get(page).text
        assert 'method="post" action="/dags' not in text, page
    posts = [
        ("/dags/d/pause", {"paused": "true"}),
        ("/dags/d/trigger", {"conf": "{}"}),
        (run_page(web) + "/clear", {}),
        (run_page(web) + "/mark", {"state": "failed"}),
        (run_page(web) + "/tasks/a/mark", {"state": "failed"}),
    ]
    for path, data in posts:
        assert web.post_form(path, data).status_code == 403, path
    assert run_count(web) == 1 and audit_actions(web) == []


def test_an_operator_sees_the_action_buttons(web: Web) -> None:
    sign_in(web, Role.OPERATOR)
    assert 'action="/dags/d/trigger"' in web.client.get("/dags/d").text
    assert 'action="/dags/d/pause"' in web.client.get("/").text
    assert "data-confirm=" in web.client.get(run_page(web)).text


@pytest.mark.parametrize(
    ("conf", "message"),
    [('{"rows": 0}', "rows"), ("{not json", "not valid JSON"), ("[1]", "JSON object")],
)
def test_trigger_with_bad_conf_shows_the_error_and_creates_nothing(
    web: Web, conf: str, message: str
) -> None:
    sign_in(web, Role.OPERATOR)
    response = web.post_form("/dags/d/trigger", data={"conf": conf})
    assert response.status_code == 422
    assert 'class="error trigger-error"' in response.text and message in response.text
    assert run_count(web) == 1 and audit_actions(web) == []


def test_trigger_queues_a_run_and_records_it(web: Web) -> None:
    web.harness.clock.advance(minutes=1)
    sign_in(web, Role.OPERATOR)
    response = web.post_form("/dags/d/trigger", data={"conf": '{"rows": 5}'})
    assert response.status_code == 200 and "Triggered manual__" in response.text
    assert run_count(web) == 2
    assert audit_actions(web) == [("trigger", '{"rows": 5}')]


def test_clear_with_downstream_resets_both_tasks_and_is_audited(web: Web) -> None:
    sign_in(web, Role.OPERATOR)
    response = web.post_form(run_page(web) + "/clear", data={"task_id": "a", "downstream": "true"})
    assert response.status_code == 200 and "Cleared:" in response.text
    states = {k: v.state for k, v in web.harness.tis(web.run_id).items()}
    assert states == {"a": "none", "b": "none"}
    assert audit_actions(web)[0][0] == "clear"
    assert '"downstream": true' in (audit_actions(web)[0][1] or "")


def test_mark_task_and_run_change_state_and_are_audited(web: Web) -> None:
    sign_in(web, Role.OPERATOR)
    web.post_form(run_page(web) + "/tasks/b/mark", data={"state": "failed"})
    assert web.harness.tis(web.run_id)["b"].state == "failed"
    web.post_form(run_page(web) + "/mark", data={"state": "success"})
    assert web.harness.run_state(web.run_id).value == "success"
    assert [a for a, _ in audit_actions(web)] == ["mark", "mark"]
    refused = web.post_form(run_page(web) + "/mark", data={"state": "running"})
    assert "Not marked" in refused.text


def test_pause_and_unpause_change_the_flag_and_are_audited(web: Web) -> None:
    sign_in(web, Role.OPERATOR)
    web.post_form("/dags/d/pause", data={"paused": "true", "next": "/"})
    with web.harness.sessions() as session:
        assert dag_store.get_dag_row(session, "d").is_paused
    page = web.client.get("/").text
    assert "paused: unpause" in page
    web.post_form("/dags/d/pause", data={"paused": "false", "next": "/"})
    with web.harness.sessions() as session:
        assert not dag_store.get_dag_row(session, "d").is_paused
    assert [a for a, _ in audit_actions(web)] == ["unpause", "pause"]


def test_a_running_attempt_s_page_follows_its_log(web: Web) -> None:
    web.harness.runtime.script = lambda _request: FakeBehavior(logs=b"started\n", hang=True)
    run_id = web.harness.trigger(DagSpec(dag_id="s", fileloc="/dags/s.py", tasks=(t("slow"),)))
    web.harness.tick(3)
    sign_in(web, Role.VIEWER)
    page = web.client.get(f"/dags/s/runs/{run_id}/tasks/slow").text
    assert "following…" in page and "started" in page
    assert re.search(r'data-follow="/api/v1/dags/s/runs/[^"]+/tasks/slow/logs\?follow=true', page)
    grid = web.client.get("/dags/s").text
    assert 'data-live="1"' in grid and 'data-state="running"' in grid


def test_the_grid_reads_only_the_runs_it_shows(web: Web) -> None:
    spec = DagSpec.model_validate_json(_spec_json(web))
    for _ in range(30):
        web.harness.clock.advance(minutes=1)
        web.harness.trigger(spec)
    statements: list[tuple[str, object]] = []

    def record(conn: object, cursor: object, sql: str, params: object, *args: object) -> None:
        statements.append((sql, params))

    engine = web.harness.sessions.kw["bind"]
    event.listen(engine, "before_cursor_execute", record)
    try:
        with web.harness.sessions() as session:
            shown = dag_views.grid(session, spec, 5)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert len(shown.runs) == 5 and shown.total_runs == 31
    ti_reads = [params for sql, params in statements if "FROM task_instances" in sql]
    assert len(ti_reads) == 1
    run_ids = [p for p in ti_reads[0] if isinstance(p, int)]  # type: ignore[attr-defined]
    assert sorted(run_ids) == sorted(r.id for r in shown.runs)
