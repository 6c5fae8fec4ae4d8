"""Queries on sensor pokes: one row per container a sensor's try started."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from orchestrator.models.states import TaskState
from orchestrator.store.tables import SensorPokeRow, TaskInstanceRow, TaskStateChangeRow


def continues_try(session: Session, ti: TaskInstanceRow) -> bool:
    """True if the task instance was scheduled again because its sensor said "not yet"
    (`up_for_reschedule` -> `scheduled`): its next poke belongs to the same try.

    Read from the state history, so a task instance cleared or retried in between starts a
    new try whatever its earlier pokes said.
    """
    last_from = session.scalar(
        select(TaskStateChangeRow.from_state)
        .where(
            TaskStateChangeRow.ti_id == ti.id,
            TaskStateChangeRow.to_state == TaskState.SCHEDULED.value,
        )
        .order_by(TaskStateChangeRow.id.desc())
        .limit(1)
    )
    return last_from == TaskState.UP_FOR_RESCHEDULE.value


def pokes(session: Session, ti_id: int, try_number: int | None = None) -> list[SensorPokeRow]:
    """A task instance's pokes (of one try, if given), in order."""
    query = select(SensorPokeRow).where(SensorPokeRow.ti_id == ti_id)
    if try_number is not None:
        query = query.where(SensorPokeRow.try_number == try_number)
    return list(
        session.scalars(query.order_by(SensorPokeRow.try_number, SensorPokeRow.poke_number))
    )


def next_poke_number(session: Session, ti_id: int, try_number: int) -> int:
    """The number the next poke of this try gets (1 for the first)."""
    done = pokes(session, ti_id, try_number)
    return done[-1].poke_number + 1 if done else 1


def first_poke_at(session: Session, ti_id: int, try_number: int) -> datetime | None:
    """When the first poke of this try was queued: the sensor's timeout counts from there."""
    done = pokes(session, ti_id, try_number)
    return done[0].queued_at if done else None


def begin_poke(
    session: Session,
    ti_id: int,
    try_number: int,
    poke_number: int,
    container_name: str,
    now: datetime,
) -> SensorPokeRow:
    row = SensorPokeRow(
        ti_id=ti_id,
        try_number=try_number,
        poke_number=poke_number,
        container_name=container_name,
        queued_at=now,
    )
    session.add(row)
    return row


def last_poke(session: Session, ti_id: int, try_number: int) -> SensorPokeRow | None:
    done = pokes(session, ti_id, try_number)
    return done[-1] if done else None


def sleeping_pokers(session: Session) -> list[TaskInstanceRow]:
    """Poke-mode sensors between pokes: running, holding a slot, with no container."""
    return list(
        session.scalars(
            select(TaskInstanceRow)
            .where(
                TaskInstanceRow.state == TaskState.RUNNING.value,
                TaskInstanceRow.container_id.is_(None),
                TaskInstanceRow.next_try_at.is_not(None),
            )
            .order_by(TaskInstanceRow.next_try_at, TaskInstanceRow.id)
        )
    )
