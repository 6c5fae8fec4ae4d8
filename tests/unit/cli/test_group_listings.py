"""Task groups collapse into one line in `dags show` and `runs show`; --expand and JSON list
every task."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from orchestrator.cli.groups import collapse, outermost_groups, summarize
from orchestrator.cli.main import app
from orchestrator.models.states import TaskState
from orchestrator.services.runs import trigger_run
from orchestrator.settings import Settings
from orchestrator.store import dags as dag_store
from orchestrator.store import runs as run_store
from orchestrator.store import task_instances as ti_store
from orchestrator.store.engine import make_engine, make_session_factory
from tests.support import FixedClock

GROUPED = """
from orchestrator import DAG, ContainerTask, TaskGroup

with DAG("grouped", default_args={"image": "img"}) as dag:
    start = ContainerTask("start")
    with TaskGroup("extract") as extract:
        ContainerTask("users"), ContainerTask("orders")
        with TaskGroup("more"):
            ContainerTask("items")
    report = ContainerTask("report", image="other")
    start >> extract >> report
"""


# --- the pure helpers -------------------------------------------------------------------


def test_nested_groups_collapse_into_the_outermost() -> None:
    top = outermost_groups(["load", "load.tables", "a.b", None])
    assert top == {"load": "load", "load.tables": "load", "a.b": "a.b"}


def test_summary_lists_states_in_a_fixed_order() -> None:
    assert summarize(["running", "success", "success"]) == "2 success, 1 running"
    assert summarize(["none", "failed", "removed"]) == "1 failed, 1 removed, 1 none"


def test_collapse_keeps_ungrouped_rows_and_places_the_group_at_its_first_task() -> None:
    rows = [
        {"task_id": "start", "state": "success", "up": ""},
        {"task_id": "g.a", "state": "success", "up": "start"},
        {"task_id": "mid", "state": "success", "up": "g.a"},
        {"task_id": "g.b", "state": "running", "up": "g.a, mid"},
        {"task_id": "end", "state": "none", "up": "g.b, mid"},
    ]
    shown = collapse(rows, {"g.a": "g", "g.b": "g"}, state_key="state", upstream_key="up")
    assert [r["task_id"] for r in shown] == [
        "start",
        "g (2 tasks: 1 success, 1 running)",
        "mid",
        "end",
    ]
    assert shown[1]["up"] == "start, mid"  # edges inside the group are not shown
    assert shown[2]["up"] == "g" and shown[3]["up"] == "g, mid"


# --- the commands -----------------------------------------------------------------------


@pytest.fixture
def runner(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("ORCH_HOME", str(settings.home))
    monkeypatch.setenv("ORCH_DAGS_FOLDER", str(settings.resolved_dags_folder))
    (settings.resolved_dags_folder / "grouped.py").write_text(GROUPED)
    return CliRunner()


def invoke(runner: CliRunner, *args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_dags_show_collapses_groups_unless_expanded(runner: CliRunner) -> None:
    collapsed = invoke(runner, "dags", "show", "grouped").splitlines()
    lines = [line.split() for line in collapsed[3:]]
    assert lines == [
        ["start", "img", "all_success", "0"],
        ["extract", "(3", "tasks)", "img", "start", "all_success", "0"],
        ["report", "other", "extract", "all_success", "0"],
    ]
    expanded = invoke(runner, "dags", "show", "grouped", "--expand")
    for task_id in ("extract.users", "extract.orders", "extract.more.items"):
        assert task_id in expanded
    assert "extract (" not in expanded


def test_dags_show_json_has_every_task_and_the_groups(runner: CliRunner) -> None:
    shown = json.loads(invoke(runner, "dags", "show", "grouped", "-o", "json"))
    assert [t["task_id"] for t in shown["tasks"]][1:4] == [
        "extract.users",
        "extract.orders",
        "extract.more.items",
    ]
    groups = {g["group_id"]: g for g in shown["groups"]}
    assert groups["extract"]["task_ids"] == [
        "extract.users",
        "extract.orders",
        "extract.more.items",
    ]
    assert groups["extract.more"] == {
        "group_id": "extract.more",
        "outermost": "extract",
        "task_ids": ["extract.more.items"],
    }


def test_runs_show_summarises_a_group_by_state(
    runner: CliRunner, settings: Settings, clock: FixedClock
) -> None:
    invoke(runner, "dags", "list")  # creates the store and records the DAG
    engine = make_engine(settings.resolved_database_url)
    sessions = make_session_factory(engine)
    with sessions.begin() as session:
        spec = dag_store.get_dag_spec(session, "grouped")
        run = trigger_run(session, spec, now=clock.now(), run_id="r1")
        tis = {ti.task_id: ti for ti in run_store.task_instances(session, run.id)}
        for task_id in ("extract.users", "extract.orders"):
            for state in (TaskState.SCHEDULED, TaskState.QUEUED):
                ti_store.set_ti_state(session, tis[task_id], state, clock.now())
        ti_store.set_ti_state(session, tis["extract.users"], TaskState.RUNNING, clock.now())
        ti_store.set_ti_state(session, tis["extract.users"], TaskState.SUCCESS, clock.now())
        ti_store.set_ti_state(session, tis["extract.orders"], TaskState.RUNNING, clock.now())
    engine.dispose()

    table = invoke(runner, "runs", "show", "grouped", "r1")
    assert "extract (3 tasks: 1 success, 1 running, 1 none)" in table
    assert "extract.users" not in table
    assert "extract.users" in invoke(runner, "runs", "show", "grouped", "r1", "--expand")

    shown = json.loads(invoke(runner, "runs", "show", "grouped", "r1", "-o", "json"))
    assert len(shown["task_instances"]) == 5
    extract = next(g for g in shown["groups"] if g["group_id"] == "extract")
    assert extract["states"] == {"none": 1, "running": 1, "success": 1}
