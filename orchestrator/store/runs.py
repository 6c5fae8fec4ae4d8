"""Queries on DAG runs and their task instances' states."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from orchestrator.errors import RunAlreadyExists, RunNotFound
from orchestrator.models.specs import DagSpec
from orchestrator.models.states import RunState, TaskState, check_run_transition
from orchestrator.store.chunks import in_chunks
from orchestrator.store.dags import spec_hash
from orchestrator.store.tables import DagRunRow, TaskInstanceRow


def create_run(
    session: Session,
    spec: DagSpec,
    *,
    run_id: str,
    run_type: str,
    logical_date: datetime,
    data_interval: tuple[datetime, datetime],
    conf: dict[str, Any],
    now: datetime,
) -> DagRunRow:
    """Queue a run and create its task instances (state `none`)."""
    existing = session.scalar(
        select(DagRunRow).where(DagRunRow.dag_id == spec.dag_id, DagRunRow.run_id == run_id)
    )
    if existing is not None:
        raise RunAlreadyExists(
            f"DAG {spec.dag_id!r} already has a run {run_id!r} ({existing.state}); pick another"
            " run id or clear that run"
        )
    run = DagRunRow(
        dag_id=spec.dag_id,
        run_id=run_id,
        run_type=run_type,
        state=RunState.QUEUED.value,
        logical_date=logical_date,
        data_interval_start=data_interval[0],
        data_interval_end=data_interval[1],
        conf=conf,
        spec_hash=spec_hash(spec.model_dump_json()),
        queued_at=now,
    )
    session.add(run)
    session.flush()
    for task in spec.tasks:
        session.add(
            TaskInstanceRow(
                dag_run_id=run.id,
                dag_id=spec.dag_id,
                run_id=run_id,
                task_id=task.task_id,
                map_index=-1,
                state=TaskState.NONE.value,
                try_number=0,
                max_tries=task.retries,
                updated_at=now,
            )
        )
    session.flush()
    return run


def get_run(session: Session, dag_id: str, run_id: str) -> DagRunRow:
    run = session.scalar(
        select(DagRunRow).where(DagRunRow.dag_id == dag_id, DagRunRow.run_id == run_id)
    )
    if run is None:
        raise RunNotFound(
            f"DAG {dag_id!r} has no run {run_id!r}; see `orchestrator runs list {dag_id}`"
        )
    return run


def list_runs(
    session: Session, dag_id: str, limit: int | None = None, offset: int = 0
) -> list[DagRunRow]:
    """A DAG's runs, newest logical date first; a page of them with `limit` and `offset`."""
    query = (
        select(DagRunRow)
        .where(DagRunRow.dag_id == dag_id)
        .order_by(DagRunRow.logical_date.desc(), DagRunRow.id.desc())
    )
    if limit:
        query = query.limit(limit)
    if offset:
        query = query.offset(offset)
    return list(session.scalars(query))


def count_runs(session: Session, dag_id: str) -> int:
    return session.scalar(select(func.count(DagRunRow.id)).where(DagRunRow.dag_id == dag_id)) or 0


def runs_in_states(session: Session, states: Sequence[RunState]) -> list[DagRunRow]:
    """Runs in these states, oldest first, read from the store even when the session holds
    them already (a long-lived session must see other processes' changes)."""
    values = tuple(state.value for state in states)
    query = _RUNS_IN_STATES.get(values)
    if query is None:  # built once per set of states: the scheduler asks every pass
        query = _RUNS_IN_STATES[values] = (
            select(DagRunRow)
            .where(DagRunRow.state.in_(values))
            .order_by(DagRunRow.queued_at, DagRunRow.id)
            .execution_options(populate_existing=True)
        )
    return list(session.scalars(query))


_RUNS_IN_STATES: dict[tuple[str, ...], Select[DagRunRow]] = {}

_RUNNING_WRITES = (
    select(DagRunRow.id, DagRunRow.ti_writes)
    .where(DagRunRow.state == RunState.RUNNING.value)
    .order_by(DagRunRow.queued_at, DagRunRow.id)
)


def running_run_writes(session: Session) -> list[tuple[int, int]]:
    """(id, `ti_writes`) of the running runs, in `runs_in_states`' order: what a long-lived
    reader checks its kept run rows against without loading them."""
    return [(run_id, int(count)) for run_id, count in session.execute(_RUNNING_WRITES)]


def set_run_state(session: Session, run: DagRunRow, state: RunState, now: datetime) -> None:
    """Move a run to `state`, stamping its start or end."""
    old = RunState(run.state)
    if old == state:
        return
    check_run_transition(old, state)
    run.state = state.value
    if state == RunState.RUNNING and run.start_date is None:
        run.start_date = now
    if state.is_finished:
        run.end_date = now


def previous_run(session: Session, run: DagRunRow) -> DagRunRow | None:
    """The DAG's run with the latest logical date before `run`'s (of any run type)."""
    return session.scalar(
        select(DagRunRow)
        .where(DagRunRow.dag_id == run.dag_id, DagRunRow.logical_date < run.logical_date)
        .order_by(DagRunRow.logical_date.desc(), DagRunRow.id.desc())
        .limit(1)
    )


def task_states(session: Session, dag_run_id: int) -> dict[str, TaskState]:
    """The states of a run's (unmapped) task instances, by task id."""
    rows = session.execute(
        select(TaskInstanceRow.task_id, TaskInstanceRow.state).where(
            TaskInstanceRow.dag_run_id == dag_run_id, TaskInstanceRow.map_index == -1
        )
    )
    return {task_id: TaskState(state) for task_id, state in rows}


def runs_by_ids(session: Session, ids: Collection[int], fresh: bool = False) -> list[DagRunRow]:
    """Runs by primary key (unknown ids are left out), in few queries; `fresh`: read from
    the store even when the session holds them already."""
    query = select(DagRunRow).execution_options(populate_existing=fresh)
    return [
        run
        for chunk in in_chunks(ids)
        for run in session.scalars(query.where(DagRunRow.id.in_(chunk)))
    ]


def ti_writes(session: Session, dag_run_ids: Collection[int]) -> dict[int, int]:
    """Per run: its `ti_writes` (see `DagRunRow.ti_writes`), read from the store."""
    found: dict[int, int] = {}
    for chunk in in_chunks(dag_run_ids):
        rows = session.execute(
            select(DagRunRow.id, DagRunRow.ti_writes).where(DagRunRow.id.in_(chunk))
        )
        found.update((run_id, int(count)) for run_id, count in rows)
    return found


def ti_versions(session: Session, dag_run_ids: Collection[int]) -> dict[int, dict[int, int]]:
    """The version of every task instance of these runs: {run: {task instance: version}}."""
    found: dict[int, dict[int, int]] = {run_id: {} for run_id in dag_run_ids}
    for chunk in in_chunks(dag_run_ids):
        rows = session.execute(
            select(TaskInstanceRow.dag_run_id, TaskInstanceRow.id, TaskInstanceRow.version).where(
                TaskInstanceRow.dag_run_id.in_(chunk)
            )
        )
        for run_id, ti_id, version in rows:
            found[run_id][ti_id] = version
    return found


def task_instances_of_runs(
    session: Session, dag_run_ids: Collection[int]
) -> dict[int, list[TaskInstanceRow]]:
    """The task instances of several runs in few queries, by run (every id gets a list)."""
    found: dict[int, list[TaskInstanceRow]] = {run_id: [] for run_id in dag_run_ids}
    for chunk in in_chunks(dag_run_ids):
        query = (
            select(TaskInstanceRow)
            .where(TaskInstanceRow.dag_run_id.in_(chunk))
            .order_by(TaskInstanceRow.id)
        )
        for ti in session.scalars(query):
            found[ti.dag_run_id].append(ti)
    return found


def task_instances(session: Session, dag_run_id: int) -> list[TaskInstanceRow]:
    return list(
        session.scalars(
            select(TaskInstanceRow)
            .where(TaskInstanceRow.dag_run_id == dag_run_id)
            .order_by(TaskInstanceRow.id)
        )
    )


def runs_at(session: Session, dag_id: str, logical_date: datetime) -> list[DagRunRow]:
    """A DAG's runs at exactly this logical date (there may be several: manual and scheduled)."""
    return list(
        session.scalars(
            select(DagRunRow)
            .where(DagRunRow.dag_id == dag_id, DagRunRow.logical_date == logical_date)
            .order_by(DagRunRow.id)
        )
    )


def find_run(session: Session, dag_id: str, run_id: str) -> DagRunRow | None:
    """The run with this id, or None."""
    return session.scalar(
        select(DagRunRow).where(DagRunRow.dag_id == dag_id, DagRunRow.run_id == run_id)
    )


def latest_run_of_type(session: Session, dag_id: str, run_type: str) -> DagRunRow | None:
    """The DAG's run of this type with the latest logical date."""
    return session.scalar(
        select(DagRunRow)
        .where(DagRunRow.dag_id == dag_id, DagRunRow.run_type == run_type)
        .order_by(DagRunRow.logical_date.desc(), DagRunRow.id.desc())
        .limit(1)
    )


def logical_dates(
    session: Session, dag_id: str, *, after: datetime | None = None, until: datetime | None = None
) -> set[datetime]:
    """Logical dates of the DAG's runs (any type), in `(after, until]` when given."""
    query = select(DagRunRow.logical_date).where(DagRunRow.dag_id == dag_id)
    if after is not None:
        query = query.where(DagRunRow.logical_date > after)
    if until is not None:
        query = query.where(DagRunRow.logical_date <= until)
    return set(session.scalars(query))


def runs_between(session: Session, dag_id: str, start: datetime, end: datetime) -> list[DagRunRow]:
    """The DAG's runs with a logical date in `[start, end]`, oldest first."""
    return list(
        session.scalars(
            select(DagRunRow)
            .where(
                DagRunRow.dag_id == dag_id,
                DagRunRow.logical_date >= start,
                DagRunRow.logical_date <= end,
            )
            .order_by(DagRunRow.logical_date, DagRunRow.id)
        )
    )


def runs_by_pk(session: Session, pks: Sequence[int]) -> list[DagRunRow]:
    """These runs (fresh from the database), in no particular order."""
    if not pks:
        return []
    return list(session.scalars(select(DagRunRow).where(DagRunRow.id.in_(list(pks)))))
