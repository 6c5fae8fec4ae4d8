"""Queries on notification deliveries and SLA misses."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from orchestrator.store.tables import NotificationRow, SlaMissRow


def record_delivery(session: Session, row: NotificationRow) -> None:
    """Store how one delivery went."""
    session.add(row)


def deliveries(session: Session, dag_id: str, run_id: str | None = None) -> list[NotificationRow]:
    """A DAG's (or one run's) deliveries, oldest first."""
    query = select(NotificationRow).where(NotificationRow.dag_id == dag_id)
    if run_id is not None:
        query = query.where(NotificationRow.run_id == run_id)
    return list(session.scalars(query.order_by(NotificationRow.id)))


def recorded_sla_misses(session: Session, dag_id: str, run_id: str) -> set[tuple[str, int]]:
    """(task id, map index) of the run's misses already recorded."""
    rows = session.execute(
        select(SlaMissRow.task_id, SlaMissRow.map_index).where(
            SlaMissRow.dag_id == dag_id, SlaMissRow.run_id == run_id
        )
    )
    return {(task_id, map_index) for task_id, map_index in rows}


def add_sla_miss(
    session: Session,
    *,
    dag_id: str,
    run_id: str,
    task_id: str,
    map_index: int,
    deadline: datetime,
    detected_at: datetime,
    state: str,
) -> SlaMissRow:
    """Record a miss (flushed, so its id is known)."""
    row = SlaMissRow(
        dag_id=dag_id,
        run_id=run_id,
        task_id=task_id,
        map_index=map_index,
        deadline=deadline,
        detected_at=detected_at,
        state=state,
        notified=False,
    )
    session.add(row)
    session.flush()
    return row


def mark_sla_notified(session: Session, miss_id: int) -> None:
    session.execute(update(SlaMissRow).where(SlaMissRow.id == miss_id).values(notified=True))


def sla_misses(session: Session, dag_id: str | None = None) -> list[SlaMissRow]:
    """Recorded misses (of one DAG, or all), newest first."""
    query = select(SlaMissRow)
    if dag_id is not None:
        query = query.where(SlaMissRow.dag_id == dag_id)
    return list(session.scalars(query.order_by(SlaMissRow.detected_at.desc(), SlaMissRow.id)))
