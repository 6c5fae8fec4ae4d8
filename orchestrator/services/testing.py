"""Running a DAG or a single task now, in this process: `dags test` and `tasks test`.

`dags test` records its run (type `test`, id `test__<date>`) in the store; only the process
that made it executes it, never a running scheduler. `tasks test` runs one task, without its
dependencies, in a scratch store that is thrown away, so nothing is recorded.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from orchestrator.models.specs import DEFAULT_POOL, DagSpec
from orchestrator.models.states import RunState
from orchestrator.runtime.base import ContainerRuntime
from orchestrator.services.attempt_worker import SchedulerListener
from orchestrator.services.clock import Clock
from orchestrator.services.pools import check_dag_pools
from orchestrator.services.runs import trigger_run
from orchestrator.services.scheduler import Scheduler
from orchestrator.settings import Settings
from orchestrator.store import runs as run_store
from orchestrator.store.dags import upsert_dag
from orchestrator.store.engine import make_engine, make_session_factory, upgrade
from orchestrator.store.tables import DagRunRow, TaskInstanceRow


@dataclass(frozen=True)
class RunOutcome:
    """How a test run ended, and its task instances (detached rows)."""

    run_id: str
    state: RunState
    task_instances: list[TaskInstanceRow]


def execute_run(
    settings: Settings,
    sessions: sessionmaker[Session],
    runtime: ContainerRuntime,
    clock: Clock,
    run_pk: int,
    listener: SchedulerListener | None = None,
) -> RunOutcome:
    """Run the scheduler on this one run until it finishes."""
    scheduler = Scheduler(
        settings=settings,
        sessions=sessions,
        runtime=runtime,
        clock=clock,
        listener=listener,
        run_filter=lambda r: r.id == run_pk,
    )

    def finished() -> bool:
        with sessions() as session:
            run = session.get(DagRunRow, run_pk)
            return run is None or RunState(run.state).is_finished

    try:
        scheduler.run_until_idle(finished)
    finally:
        scheduler.close()
    with sessions() as session:
        run = session.get(DagRunRow, run_pk)
        assert run is not None
        return RunOutcome(
            run.run_id, RunState(run.state), run_store.task_instances(session, run_pk)
        )


def run_dag_test(
    settings: Settings,
    sessions: sessionmaker[Session],
    runtime: ContainerRuntime,
    clock: Clock,
    spec: DagSpec,
    *,
    when: datetime,
    conf: dict[str, Any],
    listener: SchedulerListener | None = None,
    on_created: Callable[[str], object] | None = None,
) -> RunOutcome:
    """Record a `test` run of `spec` at `when` and execute it here. Pools and limits apply as
    in the scheduler; a task whose pool is missing or too small is an error up front."""
    with sessions.begin() as session:
        check_dag_pools(session, spec)
        run = _queue_test_run(session, spec, clock, when, conf)
        run_pk, run_id = run.id, run.run_id
    if on_created is not None:
        on_created(run_id)
    return execute_run(settings, sessions, runtime, clock, run_pk, listener)


def run_task_test(
    settings: Settings,
    runtime: ContainerRuntime,
    clock: Clock,
    spec: DagSpec,
    task_id: str,
    *,
    when: datetime,
    conf: dict[str, Any],
    listener: SchedulerListener | None = None,
) -> RunOutcome:
    """Run one task of `spec`, ignoring its dependencies and its pool, in a scratch store."""
    task = spec.task(task_id).model_copy(
        update={"upstream_task_ids": (), "pool": DEFAULT_POOL, "pool_slots": 1}
    )
    single = spec.model_copy(update={"tasks": (task,)})
    with tempfile.TemporaryDirectory(prefix="orch-task-test-") as tmp:
        scratch = settings.model_copy(update={"home": Path(tmp), "database_url": None})
        engine = make_engine(scratch.resolved_database_url)
        try:
            upgrade(engine)
            sessions = make_session_factory(engine)
            with sessions.begin() as session:
                upsert_dag(session, single, clock.now())
                run = _queue_test_run(session, single, clock, when, conf)
                run_pk = run.id
            return execute_run(scratch, sessions, runtime, clock, run_pk, listener)
        finally:
            engine.dispose()


def _queue_test_run(
    session: Session, spec: DagSpec, clock: Clock, when: datetime, conf: dict[str, Any]
) -> DagRunRow:
    """A `test` run at `when`, its id `test__<date>` (suffixed if that id is taken)."""
    taken = {r.run_id for r in run_store.list_runs(session, spec.dag_id)}
    return trigger_run(
        session,
        spec,
        now=clock.now(),
        conf=conf,
        logical_date=when,
        run_id=_free(f"test__{when.isoformat()}", taken),
        run_type="test",
    )


def _free(wanted: str, taken: set[str]) -> str:
    candidate, n = wanted, 1
    while candidate in taken:
        n += 1
        candidate = f"{wanted}__{n}"
    return candidate
