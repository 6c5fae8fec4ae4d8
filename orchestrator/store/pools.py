"""Queries on pools and on the slots task instances hold (one grouped query per pass)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from orchestrator.models.specs import DEFAULT_POOL
from orchestrator.models.states import ACTIVE_TASK_STATES
from orchestrator.store.tables import PoolRow, TaskInstanceRow

#: Slots of `default_pool` when it is created (by the first migration, or again if missing).
DEFAULT_POOL_SLOTS = 128
#: The PostgreSQL advisory lock that serializes choosing launches among schedulers.
SLOTS_LOCK = 0x6F7263682D736C74  # "orch-slt"


@dataclass(frozen=True)
class ActiveGroup:
    """Task instances in one state holding slots, grouped by DAG, task and pool."""

    dag_id: str
    task_id: str
    pool: str
    state: str
    count: int
    slots: int


def lock_slots(session: Session) -> bool:
    """On PostgreSQL, wait for the lock on choosing launches, held until the transaction ends
    (a transaction-scoped advisory lock): slot counts read after it are exact, however many
    schedulers share the store. True if taken; False on SQLite, whose transactions are
    exclusive anyway."""
    if session.get_bind().dialect.name != "postgresql":
        return False
    session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SLOTS_LOCK})
    return True


def ensure_default_pool(session: Session) -> PoolRow:
    """The default pool, created with its default size if it is missing."""
    row = session.get(PoolRow, DEFAULT_POOL)
    if row is None:
        row = PoolRow(name=DEFAULT_POOL, slots=DEFAULT_POOL_SLOTS, description="Default pool")
        session.add(row)
        session.flush()
    return row


def get_pool(session: Session, name: str) -> PoolRow | None:
    return session.get(PoolRow, name)


def list_pools(session: Session) -> list[PoolRow]:
    return list(session.scalars(select(PoolRow).order_by(PoolRow.name)))


def pool_sizes(session: Session) -> dict[str, int]:
    """Every pool's number of slots, by name (read on the session's connection: nothing the
    session keeps back need be written first)."""
    return {name: slots for name, slots in session.connection().execute(_POOL_SIZES)}


_POOL_SIZES = select(PoolRow.name, PoolRow.slots)  # built once: the scheduler asks every pass


def upsert_pool(session: Session, name: str, slots: int, description: str | None) -> PoolRow:
    """Create a pool or change its size (and its description, when one is given)."""
    row = session.get(PoolRow, name)
    if row is None:
        row = PoolRow(name=name, slots=slots, description=description)
        session.add(row)
    else:
        row.slots = slots
        if description is not None:
            row.description = description
    session.flush()
    return row


def delete_pool(session: Session, row: PoolRow) -> None:
    session.delete(row)
    session.flush()


def active_groups(session: Session) -> list[ActiveGroup]:
    """Queued and running task instances, counted and their pool slots summed per DAG, task,
    pool and state. An instance queued before pools existed counts in the default pool."""
    pool = TaskInstanceRow.pool
    query = (
        select(
            TaskInstanceRow.dag_id,
            TaskInstanceRow.task_id,
            pool,
            TaskInstanceRow.state,
            func.count(),
            func.sum(TaskInstanceRow.pool_slots),
        )
        .where(TaskInstanceRow.state.in_([s.value for s in ACTIVE_TASK_STATES]))
        .group_by(TaskInstanceRow.dag_id, TaskInstanceRow.task_id, pool, TaskInstanceRow.state)
    )
    return [
        ActiveGroup(dag_id, task_id, pool_name or DEFAULT_POOL, state, int(count), int(slots or 0))
        for dag_id, task_id, pool_name, state, count, slots in session.execute(query)
    ]
