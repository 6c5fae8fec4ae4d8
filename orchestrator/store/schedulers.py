"""Queries on registered schedulers and on which runs each executes (see `services.claims`).

Rows another scheduler may be working on are taken with `FOR UPDATE SKIP LOCKED` on
PostgreSQL: a row locked by a concurrent pass is passed over, never waited for. SQLite
ignores row locks; its transactions are exclusive (`BEGIN IMMEDIATE`, see `engine`), which
serializes the same steps.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import delete, exists, func, or_, select, update
from sqlalchemy.orm import Session

from orchestrator.models.states import ACTIVE_TASK_STATES, RunState
from orchestrator.store.chunks import in_chunks
from orchestrator.store.tables import DagRow, DagRunRow, SchedulerRow, TaskInstanceRow

#: A registered scheduler as `peers` reads it: id, machine, pid, latest heartbeat.
PeerRow = tuple[str, str, int, datetime]
#: Run states in which a run is executed by a scheduler.
ACTIVE_RUN_STATES = (RunState.QUEUED.value, RunState.RUNNING.value)
#: Runs of this type belong to the process that made them (`dags test`), never to a scheduler.
TEST_RUN_TYPE = "test"

_UNCLAIMED = or_(
    DagRunRow.claimed_by.is_(None),
    ~exists(select(SchedulerRow.id).where(SchedulerRow.id == DagRunRow.claimed_by)),
)
_SHARED = (DagRunRow.state.in_(ACTIVE_RUN_STATES), DagRunRow.run_type != TEST_RUN_TYPE)


def register(
    session: Session,
    scheduler_id: str,
    *,
    host: str,
    pid: int,
    machine: str,
    now: datetime,
) -> None:
    session.add(
        SchedulerRow(
            id=scheduler_id, host=host, pid=pid, machine=machine, started_at=now, heartbeat_at=now
        )
    )
    session.flush()


def heartbeat(session: Session, scheduler_id: str, now: datetime) -> bool:
    """Stamp the scheduler's heartbeat (its row stays locked until the transaction ends);
    False if its row is gone: others declared it dead."""
    result = session.execute(
        update(SchedulerRow)
        .where(SchedulerRow.id == scheduler_id)
        .values(heartbeat_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


def hold(session: Session, scheduler_id: str) -> bool:
    """Lock the scheduler's row until the transaction ends, so no other scheduler declares it
    dead meanwhile; False if its row is gone: others already did."""
    found = session.scalar(
        select(SchedulerRow.id).where(SchedulerRow.id == scheduler_id).with_for_update()
    )
    return found is not None


def peers(session: Session, scheduler_id: str) -> list[PeerRow]:
    """Every other registered scheduler."""
    rows = session.execute(
        select(
            SchedulerRow.id, SchedulerRow.machine, SchedulerRow.pid, SchedulerRow.heartbeat_at
        ).where(SchedulerRow.id != scheduler_id)
    )
    return [(id_, machine, pid, heartbeat_at) for id_, machine, pid, heartbeat_at in rows]


def lock_peers(session: Session, ids: Collection[str]) -> list[PeerRow]:
    """These schedulers' rows, current and locked, except those a concurrent transaction holds
    (their scheduler is in the middle of a pass: alive)."""
    if not ids:
        return []
    rows = session.execute(
        select(SchedulerRow.id, SchedulerRow.machine, SchedulerRow.pid, SchedulerRow.heartbeat_at)
        .where(SchedulerRow.id.in_(list(ids)))
        .order_by(SchedulerRow.id)
        .with_for_update(skip_locked=True)
    )
    return [(id_, machine, pid, heartbeat_at) for id_, machine, pid, heartbeat_at in rows]


def remove(session: Session, ids: Collection[str]) -> None:
    """Forget these schedulers: their runs become unclaimed."""
    if ids:
        session.execute(
            delete(SchedulerRow)
            .where(SchedulerRow.id.in_(list(ids)))
            .execution_options(synchronize_session=False)
        )


def live_count(session: Session, since: datetime) -> int:
    """Schedulers whose latest heartbeat is at `since` or later."""
    query = select(func.count()).select_from(SchedulerRow).where(SchedulerRow.heartbeat_at >= since)
    return int(session.scalar(query) or 0)


def shared_run_counts(session: Session, scheduler_id: str) -> tuple[int, int, int, int]:
    """Queued and running runs that schedulers share (every type but `test`): how many in
    all, how many this scheduler has, how many of those are queued, and how many nobody
    (living) has."""
    rows = session.execute(
        select(DagRunRow.claimed_by, DagRunRow.state, _UNCLAIMED, func.count())
        .where(*_SHARED)
        .group_by(DagRunRow.claimed_by, DagRunRow.state, _UNCLAIMED)
    )
    active = mine = mine_queued = unclaimed = 0
    for claimed_by, state, nobody, count in rows:
        active += count
        if nobody:
            unclaimed += count
        elif claimed_by == scheduler_id:
            mine += count
            if state == RunState.QUEUED.value:
                mine_queued += count
    return active, mine, mine_queued, unclaimed


def claim(session: Session, scheduler_id: str, limit: int) -> list[tuple[int, str]]:
    """Claim at most `limit` unclaimed runs for this scheduler, oldest first, passing over
    runs another transaction holds; return their ids and states."""
    if limit <= 0:
        return []
    rows = session.execute(
        select(DagRunRow.id, DagRunRow.state)
        .where(*_SHARED, _UNCLAIMED)
        .order_by(DagRunRow.queued_at, DagRunRow.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    _set_claim(session, [run_id for run_id, _ in rows], scheduler_id)
    return [(run_id, state) for run_id, state in rows]


def release(session: Session, scheduler_id: str, limit: int) -> list[int]:
    """Give back at most `limit` of this scheduler's queued runs, newest first."""
    if limit <= 0:
        return []
    ids = list(
        session.scalars(
            select(DagRunRow.id)
            .where(
                DagRunRow.claimed_by == scheduler_id,
                DagRunRow.state == RunState.QUEUED.value,
            )
            .order_by(DagRunRow.queued_at.desc(), DagRunRow.id.desc())
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    _set_claim(session, ids, None)
    return ids


def _set_claim(session: Session, run_ids: list[int], scheduler_id: str | None) -> None:
    for chunk in in_chunks(run_ids):
        session.execute(
            update(DagRunRow)
            .where(DagRunRow.id.in_(chunk))
            .values(claimed_by=scheduler_id)
            .execution_options(synchronize_session=False)
        )


def claimed_runs(session: Session, scheduler_id: str) -> set[int]:
    """The ids of the queued and running runs this scheduler has claimed."""
    return set(
        session.scalars(
            select(DagRunRow.id).where(
                DagRunRow.claimed_by == scheduler_id, DagRunRow.state.in_(ACTIVE_RUN_STATES)
            )
        )
    )


def lock_dags(session: Session, dag_ids: Collection[str]) -> set[str]:
    """Lock these DAGs' rows until the transaction ends, passing over those another
    transaction holds; return the DAG ids locked."""
    if not dag_ids:
        return set()
    return set(
        session.scalars(
            select(DagRow.dag_id)
            .where(DagRow.dag_id.in_(sorted(dag_ids)))
            .order_by(DagRow.dag_id)
            .with_for_update(skip_locked=True)
        )
    )


def running_runs_of(session: Session, dag_ids: Collection[str]) -> list[DagRunRow]:
    """The running runs of these DAGs, whoever executes them (every type but `test`)."""
    if not dag_ids:
        return []
    return list(
        session.scalars(
            select(DagRunRow)
            .where(
                DagRunRow.dag_id.in_(sorted(dag_ids)),
                DagRunRow.state == RunState.RUNNING.value,
                DagRunRow.run_type != TEST_RUN_TYPE,
            )
            .execution_options(populate_existing=True)
        )
    )


def active_instances_of(session: Session, scheduler_id: str) -> int:
    """Queued and running task instances of the runs this scheduler has claimed."""
    query = (
        select(func.count())
        .select_from(TaskInstanceRow)
        .join(DagRunRow, DagRunRow.id == TaskInstanceRow.dag_run_id)
        .where(
            DagRunRow.claimed_by == scheduler_id,
            TaskInstanceRow.state.in_([s.value for s in ACTIVE_TASK_STATES]),
        )
    )
    return int(session.scalar(query) or 0)


def list_schedulers(session: Session) -> list[SchedulerRow]:
    """Every registered scheduler, the longest running first."""
    return list(
        session.scalars(select(SchedulerRow).order_by(SchedulerRow.started_at, SchedulerRow.id))
    )


def claimed_counts(session: Session) -> dict[str, int]:
    """Per scheduler id: the queued and running runs it has claimed."""
    rows = session.execute(
        select(DagRunRow.claimed_by, func.count())
        .where(*_SHARED, DagRunRow.claimed_by.is_not(None))
        .group_by(DagRunRow.claimed_by)
    )
    return {owner: int(count) for owner, count in rows if owner is not None}
