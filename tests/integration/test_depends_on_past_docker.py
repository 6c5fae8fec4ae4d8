"""depends_on_past on real containers: a run's task waits while the previous run's failed."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from orchestrator.models.specs import DagSpec
from orchestrator.models.states import RunState, TaskState
from orchestrator.services.clearing import mark_task
from orchestrator.services.runs import trigger_run
from orchestrator.store import dags as dag_store
from orchestrator.store import runs as run_store
from tests.integration.harness import Env, sh

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("test_images")]


def test_a_task_waits_while_its_previous_run_failed(env: Env) -> None:
    dag = DagSpec(
        dag_id="past",
        fileloc=str(env.settings.resolved_dags_folder / "past.py"),
        tasks=(
            sh(
                "load",
                "echo 'load for {{ run_id }}'; exit {{ 1 if dag_run.conf.get('fail') else 0 }}",
                depends_on_past=True,
            ),
            sh("report", "echo report", "load"),
            sh("free", "echo free"),
        ),
    )
    start = env.scheduler_now()
    with env.sessions.begin() as session:
        dag_store.upsert_dag(session, dag, start)
        first = trigger_run(session, dag, now=start, conf={"fail": True}, logical_date=start)
        second = trigger_run(session, dag, now=start, logical_date=start + timedelta(hours=1))
        first_id, second_id = first.run_id, second.run_id

    def tis(run_id: str) -> dict[str, Any]:
        with env.sessions() as session:
            run = run_store.get_run(session, "past", run_id)
            return {ti.task_id: ti for ti in run_store.task_instances(session, run.id)}

    def settled() -> bool:
        first_done = RunState(run_state(first_id)).is_finished
        return first_done and tis(second_id)["free"].state == TaskState.SUCCESS

    def run_state(run_id: str) -> str:
        with env.sessions() as session:
            return run_store.get_run(session, "past", run_id).state

    assert env.scheduler.run_until_idle(settled, timeout=120)
    env.scheduler.tick(env.scheduler_now())  # one more pass: nothing may start load
    assert run_state(first_id) == "failed"
    assert tis(first_id)["load"].state == "failed"
    waiting = tis(second_id)
    assert (waiting["load"].state, waiting["load"].try_number) == ("none", 0)
    assert waiting["report"].state == "none"
    assert run_state(second_id) == "running"

    marked_at = env.scheduler_now()
    with env.sessions.begin() as session:
        mark_task(session, "past", first_id, "load", TaskState.SUCCESS, now=marked_at, by="a test")

    def second_done() -> bool:
        return RunState(run_state(second_id)).is_finished

    assert env.scheduler.run_until_idle(second_done, timeout=120)
    done = tis(second_id)
    assert {k: (v.state, v.try_number) for k, v in done.items()} == {
        "load": ("success", 1),
        "report": ("success", 1),
        "free": ("success", 1),
    }
    assert done["load"].start_date >= marked_at
    assert f"load for {second_id}" in env.log(done["load"])
    assert run_state(second_id) == "success"
