"""A changed or deleted DAG under a running run, on the fake runtime with a fixed clock."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.models.launch import LaunchRequest
from orchestrator.models.specs import DagSpec
from orchestrator.models.states import RunState
from orchestrator.runtime.fake import FakeBehavior
from orchestrator.settings import Settings
from orchestrator.store import dags as dag_store
from orchestrator.store import task_instances as ti_store
from tests.support import FixedClock
from tests.unit.services.test_scheduler import Harness, spec, t


def hang_first(request: LaunchRequest) -> FakeBehavior:
    """Task `a` runs until the test finishes it; every other task exits 0 at once."""
    return FakeBehavior(hang=request.name.split("-")[2] == "a")


@pytest.fixture
def h(settings: Settings, sessions: sessionmaker[Session], clock: FixedClock) -> Harness:
    return Harness(settings, sessions, clock, hang_first)


def publish(h: Harness, dag: DagSpec) -> None:
    """What parsing a changed file does: store the DAG's new spec."""
    with h.sessions.begin() as session:
        dag_store.upsert_dag(session, dag, h.clock.now())


def delete_file(h: Harness) -> None:
    """What parsing does when the DAG's file is gone."""
    with h.sessions.begin() as session:
        dag_store.deactivate_missing_files(session, set())


def states(h: Harness, run_id: str) -> dict[str, str]:
    return {k: v.state for k, v in h.tis(run_id).items()}


def finish_a(h: Harness, exit_code: int = 0) -> None:
    h.runtime.finish(h.runtime.started[0], exit_code=exit_code)
    h.tick(3)


def test_task_added_to_a_running_dag_runs_in_that_run(h: Harness) -> None:
    run_id = h.trigger(spec(t("a"), t("b", "a")))
    h.tick()
    publish(h, spec(t("a"), t("b", "a"), t("c", "b", retries=2)))
    h.tick()
    assert states(h, run_id) == {"a": "running", "b": "none", "c": "none"}
    assert h.tis(run_id)["c"].max_tries == 2
    finish_a(h)
    assert states(h, run_id) == {"a": "success", "b": "success", "c": "success"}
    assert h.run_state(run_id) == RunState.SUCCESS


def test_task_dropped_from_a_running_dag_is_removed_and_the_run_completes(h: Harness) -> None:
    run_id = h.trigger(spec(t("a"), t("b", "a"), t("c", "b")))
    h.tick()
    publish(h, spec(t("a"), t("c", "a")))
    h.tick()
    b = h.tis(run_id)["b"]
    assert (b.state, b.state_detail) == ("removed", "the task was removed from the DAG")
    finish_a(h)
    assert states(h, run_id) == {"a": "success", "b": "removed", "c": "success"}
    assert h.run_state(run_id) == RunState.SUCCESS


def test_running_container_of_a_dropped_task_finishes_then_is_removed(h: Harness) -> None:
    run_id = h.trigger(spec(t("a"), t("b")))
    h.tick()  # a hangs, b succeeds
    publish(h, spec(t("b")))
    h.tick()
    assert states(h, run_id)["a"] == "running"  # not killed by an edit
    assert h.runtime.stopped == []
    assert h.run_state(run_id) == RunState.RUNNING
    finish_a(h, exit_code=3)
    a = h.tis(run_id)["a"]
    assert a.state == "removed" and a.exit_code == 3
    assert "removed from the DAG while its container ran" in (a.state_detail or "")
    with h.sessions() as session:
        attempt = ti_store.get_attempt(session, a.id, 1)
        assert attempt is not None
        assert (attempt.state, attempt.exit_code) == ("failed", 3)  # history keeps the truth
    assert h.run_state(run_id) == RunState.SUCCESS  # a removed task never fails a run
    assert sorted(h.runtime.removed) == sorted(h.runtime.started)  # its container was cleaned up


def test_deleted_dag_removes_unfinished_tasks_and_keeps_history(h: Harness) -> None:
    run_id = h.trigger(spec(t("a"), t("b", "a"), t("c")))
    h.tick()  # a hangs, c succeeds
    delete_file(h)
    h.tick()
    assert states(h, run_id) == {"a": "running", "b": "removed", "c": "success"}
    assert "the DAG was removed" in (h.tis(run_id)["b"].state_detail or "")
    finish_a(h)
    assert states(h, run_id) == {"a": "removed", "b": "removed", "c": "success"}
    assert h.run_state(run_id) == RunState.SUCCESS
    assert len(h.runtime.created) == 2  # b never ran
    with h.sessions() as session:
        assert [r.dag_id for r in dag_store.list_dag_rows(session)] == []
        hidden = dag_store.list_dag_rows(session, include_inactive=True)
        assert [(r.dag_id, r.is_active) for r in hidden] == [("d", False)]


def test_dag_file_that_comes_back_restores_removed_tasks(h: Harness) -> None:
    dag = spec(t("a"), t("b", "a"))
    run_id = h.trigger(dag)
    h.tick()
    delete_file(h)
    h.tick()
    assert states(h, run_id)["b"] == "removed"
    publish(h, dag)  # the same file, back again
    h.tick()
    assert states(h, run_id) == {"a": "running", "b": "none"}
    finish_a(h)
    assert states(h, run_id) == {"a": "success", "b": "success"}
    assert h.run_state(run_id) == RunState.SUCCESS


def test_unchanged_dag_leaves_the_run_alone(h: Harness) -> None:
    dag = spec(t("a"), t("b", "a"))
    run_id = h.trigger(dag)
    h.tick()
    publish(h, dag)  # re-parsed, same spec
    h.tick()
    assert states(h, run_id) == {"a": "running", "b": "none"}
    with h.sessions() as session:
        changes = ti_store.state_changes(session, h.tis(run_id)["b"].id)
        assert changes == []
