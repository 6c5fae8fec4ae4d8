"""Scheduled runs on real Docker: catch-up creates one run per missed day and they all run."""

from __future__ import annotations

from datetime import timedelta

import pytest

from orchestrator.models.specs import CronSchedule, DagSpec
from orchestrator.models.states import RunState
from orchestrator.store import dags as dag_store
from orchestrator.store import runs as run_store
from orchestrator.store import task_instances as ti_store
from orchestrator.store.tables import DagRunRow
from tests.integration.harness import Env, sh, wait_removed

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("test_images")]


def scheduled_runs(env: Env, catchup: bool) -> list[DagRunRow]:
    """Add a @daily DAG that started three days ago; run the scheduler until its runs end."""
    now = env.scheduler_now()
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    dag = DagSpec(
        dag_id="daily",
        fileloc=str(env.settings.resolved_dags_folder / "daily.py"),
        schedule=CronSchedule(expression="@daily"),
        start_date=midnight - timedelta(days=3),
        catchup=catchup,
        tasks=(sh("day", 'echo "from $ORCH_DATA_INTERVAL_START to $ORCH_DATA_INTERVAL_END"'),),
    )
    with env.sessions.begin() as session:
        dag_store.upsert_dag(session, dag, now)

    def finished() -> bool:
        with env.sessions() as session:
            runs = run_store.list_runs(session, "daily")
            return bool(runs) and all(RunState(r.state).is_finished for r in runs)

    assert env.scheduler.run_until_idle(finished, timeout=90), "scheduled runs did not finish"
    env.scheduler.tick(env.scheduler_now())  # one more pass: nothing new is due
    with env.sessions() as session:
        return list(reversed(run_store.list_runs(session, "daily")))


def test_catchup_runs_every_missed_day_in_containers(env: Env) -> None:
    runs = scheduled_runs(env, catchup=True)
    midnight = env.scheduler_now().replace(hour=0, minute=0, second=0, microsecond=0)
    days = [midnight - timedelta(days=n) for n in (3, 2, 1)]
    assert [r.run_id for r in runs] == [f"scheduled__{d.isoformat()}" for d in days]
    assert {(r.run_type, r.state) for r in runs} == {("scheduled", "success")}
    with env.sessions() as session:
        ti = ti_store.get_ti(session, "daily", runs[0].run_id, "day")
    start, end = days[0].isoformat(), days[1].isoformat()
    assert f"from {start} to {end}" in env.log(ti)
    assert wait_removed(env) == []


def test_without_catchup_only_the_latest_day_runs(env: Env) -> None:
    runs = scheduled_runs(env, catchup=False)
    yesterday = env.scheduler_now().replace(hour=0, minute=0, second=0, microsecond=0)
    yesterday -= timedelta(days=1)
    assert [(r.run_id, r.state) for r in runs] == [
        (f"scheduled__{yesterday.isoformat()}", "success")
    ]
