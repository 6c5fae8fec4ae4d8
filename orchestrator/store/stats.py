"""Aggregate queries for monitoring (`/metrics`, `/health`): counts and recent timings."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

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


def runs_by_type(session: Session) -> dict[str, int]:
    """How many runs were ever created, by run type (runs are never deleted)."""
    rows = session.execute(
        select(DagRunRow.run_type, func.count(DagRunRow.id)).group_by(DagRunRow.run_type)
    )
    return {run_type: count for run_type, count in rows}


class AttemptTimes(NamedTuple):
    """When a finished attempt was queued, launched, had its image, started and ended, and
    how it ended."""

    queued_at: datetime
    launch_started_at: datetime | None
    image_ready_at: datetime | None
    start_date: datetime | None
    end_date: datetime | None
    state: str
    exit_code: int | None
    oom_killed: bool
    timed_out: bool


def recent_attempt_times(session: Session, limit: int) -> list[AttemptTimes]:
    """The `limit` most recently created attempts that finished: a bounded read, whatever
    the size of the history."""
    rows = session.execute(
        select(
            TaskAttemptRow.queued_at,
            TaskAttemptRow.launch_started_at,
            TaskAttemptRow.image_ready_at,
            TaskAttemptRow.start_date,
            TaskAttemptRow.end_date,
            TaskAttemptRow.state,
            TaskAttemptRow.exit_code,
            TaskAttemptRow.oom_killed,
            TaskAttemptRow.timed_out,
        )
        .where(TaskAttemptRow.end_date.is_not(None))
        .order_by(TaskAttemptRow.id.desc())
        .limit(limit)
    )
    return [AttemptTimes(*row) for row in rows]
