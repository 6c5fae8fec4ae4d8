"""Branching and the tasks without a container, on real containers: a branch with a join, a
run triggered in another DAG, and a wait for another DAG's task."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from orchestrator import DAG, ContainerTask, TriggerRun, WaitForRun
from orchestrator.models.specs import DagSpec, TriggerRule
from orchestrator.models.states import RunState
from orchestrator.services.runs import trigger_run
from orchestrator.store import dags as dag_store
from orchestrator.store import runs as run_store
from orchestrator.store import task_instances as ti_store
from tests.integration.harness import BUSYBOX, Env, wait_removed

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("test_images")]

ARGS = {"image": BUSYBOX, "pull_policy": "never"}
LOGICAL_DATE = datetime(2026, 3, 13, tzinfo=UTC)


def sh(task_id: str, script: str, **kw: Any) -> ContainerTask:
    return ContainerTask(task_id, command=["sh", "-c", script], **kw)


def store(env: Env, *dags: DAG) -> list[DagSpec]:
    specs = [
        d.to_spec(fileloc=str(env.settings.resolved_dags_folder / f"{d.dag_id}.py")) for d in dags
    ]
    with env.sessions.begin() as session:
        for spec in specs:
            dag_store.upsert_dag(session, spec, env.scheduler_now())
    return specs


def start(env: Env, spec: DagSpec) -> str:
    with env.sessions.begin() as session:
        now = env.scheduler_now()
        return trigger_run(session, spec, now=now, logical_date=LOGICAL_DATE).run_id


def run_until_finished(env: Env, *runs: tuple[str, str], timeout: float = 180) -> None:
    def finished() -> bool:
        with env.sessions() as session:
            return all(
                RunState(run_store.get_run(session, dag_id, run_id).state).is_finished
                for dag_id, run_id in runs
            )

    assert env.scheduler.run_until_idle(finished, timeout=timeout), "runs did not finish"


def tis(env: Env, dag_id: str, run_id: str) -> dict[str, Any]:
    with env.sessions() as session:
        run = run_store.get_run(session, dag_id, run_id)
        return {ti.task_id: ti for ti in run_store.task_instances(session, run.id)}


def run_state(env: Env, dag_id: str, run_id: str) -> str:
    with env.sessions() as session:
        return run_store.get_run(session, dag_id, run_id).state


def test_a_branch_chooses_one_path_and_the_join_runs(env: Env) -> None:
    with DAG("branching", default_args=ARGS) as dag:
        choose = sh("choose", 'echo \'"b"\' > "$ORCH_OUTPUT_PATH"', branch=True)
        path_a = sh("a", "echo path a")
        path_b = sh("b", "echo path b")
        join = sh("join", "echo joined")
        choose >> [path_a, path_b] >> join
    (spec,) = store(env, dag)
    assert spec.task("join").trigger_rule == TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS
    run_id = start(env, spec)
    run_until_finished(env, ("branching", run_id))
    got = tis(env, "branching", run_id)
    assert {k: v.state for k, v in got.items()} == {
        "choose": "success",
        "a": "skipped",
        "b": "success",
        "join": "success",
    }
    assert got["a"].state_detail == "skipped by branch choose"
    assert got["a"].container_name is None  # never started
    assert "joined" in env.log(got["join"])
    assert run_state(env, "branching", run_id) == "success"
    assert wait_removed(env) == []


def test_trigger_run_starts_another_dag_and_waits_for_it(env: Env) -> None:
    with DAG("child", default_args=ARGS) as child:
        sh("greet", "echo {{ dag_run.conf.greeting }}")
    with DAG("parent", default_args=ARGS) as parent:
        trigger = TriggerRun(
            "start_child",
            dag_id="child",
            conf={"greeting": "hello-for-{{ ds }}"},
            wait=True,
            poke_interval=1,
        )
        trigger >> sh("after", "echo child done")
    _, parent_spec = store(env, child, parent)
    run_id = start(env, parent_spec)
    run_until_finished(env, ("parent", run_id))
    got = tis(env, "parent", run_id)
    assert {k: v.state for k, v in got.items()} == {"start_child": "success", "after": "success"}
    with env.sessions() as session:
        (child_run,) = run_store.list_runs(session, "child")
    assert child_run.state == "success"
    assert child_run.run_id.startswith("manual__")
    assert child_run.conf == {"greeting": "hello-for-2026-03-13"}
    greet = tis(env, "child", child_run.run_id)["greet"]
    assert greet.exit_code == 0
    assert "hello-for-2026-03-13" in env.log(greet)
    assert (
        got["start_child"].state_detail
        == f"triggered run '{child_run.run_id}' of DAG 'child' succeeded"
    )
    assert got["after"].start_date >= child_run.end_date
    assert run_state(env, "parent", run_id) == "success"


def test_wait_for_run_waits_for_another_dags_task(env: Env) -> None:
    with DAG("upstream", default_args=ARGS) as upstream:
        sh("load", "sleep 3; echo loaded")
    with DAG("downstream", default_args=ARGS) as downstream:
        waiter = WaitForRun(
            "wait_load", dag_id="upstream", external_task_id="load", poke_interval=1
        )
        waiter >> sh("use", "echo using the load")
    up_spec, down_spec = store(env, upstream, downstream)
    down_id = start(env, down_spec)  # the waiting DAG starts first
    up_id = start(env, up_spec)  # same logical date
    run_until_finished(env, ("downstream", down_id), ("upstream", up_id))
    down = tis(env, "downstream", down_id)
    load = tis(env, "upstream", up_id)["load"]
    assert (down["wait_load"].state, down["use"].state) == ("success", "success")
    assert down["wait_load"].state_detail == (
        "DAG 'upstream', task 'load' at 2026-03-13T00:00:00+00:00 is success"
    )
    assert down["wait_load"].container_name is None  # no container for the wait
    assert down["use"].start_date >= load.end_date
    with env.sessions() as session:
        changes = [c.to_state for c in ti_store.state_changes(session, down["wait_load"].id)]
    assert "up_for_reschedule" in changes
