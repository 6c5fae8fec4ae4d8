"""Clearing a running task on real Docker: its container is stopped before the next try."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.models.specs import DagSpec
from orchestrator.models.states import RunState
from orchestrator.services.clearing import clear
from orchestrator.services.runs import trigger_run
from orchestrator.store import dags as dag_store
from orchestrator.store import runs as run_store
from orchestrator.store import task_instances as ti_store
from tests.integration.harness import Env, sh, wait_removed

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("test_images")]


def test_clearing_a_running_container_stops_it_then_runs_the_next_try(env: Env) -> None:
    dag = DagSpec(
        dag_id="slow",
        fileloc=str(env.settings.resolved_dags_folder / "slow.py"),
        tasks=(
            sh("work", 'echo "try $ORCH_TRY_NUMBER"; [ "$ORCH_TRY_NUMBER" -ge 2 ] || sleep 300'),
        ),
    )
    now = env.scheduler_now()
    with env.sessions.begin() as session:
        dag_store.upsert_dag(session, dag, now)
        run_id = trigger_run(session, dag, now=now).run_id

    def work() -> Any:
        with env.sessions() as session:
            return ti_store.get_ti(session, "slow", run_id, "work")

    assert env.scheduler.run_until_idle(lambda: work().state == "running", timeout=60)
    with env.sessions.begin() as session:
        changes = clear(session, "slow", run_id, ["work"], now=env.scheduler_now(), by="a test")
    assert changes.tasks[0].stopping

    def finished() -> bool:
        with env.sessions() as session:
            return RunState(run_store.get_run(session, "slow", run_id).state).is_finished

    assert env.scheduler.run_until_idle(finished, timeout=90)
    ti = work()
    assert (ti.state, ti.try_number) == ("success", 2)
    with env.sessions() as session:
        first, second = ti_store.attempts(session, ti.id)
    assert first.exit_code not in (0, None)  # stopped, not finished
    assert "cleared from a test" in (first.detail or "")
    assert first.end_date is not None and second.start_date is not None
    assert first.end_date <= second.start_date  # never two containers of the task at once
    assert "cleared from a test: stopping the container" in env.log(ti, 1)
    assert "try 2" in env.log(ti, 2)
    assert wait_removed(env) == []
