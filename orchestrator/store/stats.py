"""Aggregate queries for monitoring (`/metrics`, `/health`): counts and recent timings."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from orchestrator.store.tables import DagRunRow, ImportErrorRow, TaskAttemptRow, TaskInstanceRow


def ping(session: Session) -> None:
    """Raise if the database cannot answer a trivial query."""
    session.execute(text("SELECT 1"))


def task_instances_by_state(session: Session) -> dict[str, int]:
    rows = session.execute(
        select(TaskInstanceRow.state, func.count(TaskInstanceRow.id)).group_by(
            TaskInstanceRow.state
        )
    )
    return {state: count for state, count in rows}


def runs_by_state(session: Session) -> dict[str, int]:
    rows = session.execute(
        select(DagRunRow.state, func.count(DagRunRow.id)).group_by(DagRunRow.state)
    )
    return {state: count for state, count in rows}


def import_error_count(session: Session) -> int:
    return session.scalar(select(func.count(ImportErrorRow.id))) or 0


def recent_attempt_times(
    session: Session, limit: int
) -> list[tuple[datetime, datetime | None, datetime | None]]:
    """`(queued_at, start_date, end_date)` of the `limit` most recently created attempts that
    finished: a bounded read, whatever the size of the history."""
    rows = session.execute(
        select(TaskAttemptRow.queued_at, TaskAttemptRow.start_date, TaskAttemptRow.end_date)
        .where(TaskAttemptRow.end_date.is_not(None))
        .order_by(TaskAttemptRow.id.desc())
        .limit(limit)
    )
    return [(queued, start, end) for queued, start, end in rows]
