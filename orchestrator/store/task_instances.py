"""Queries on task instances, their attempts and their state-change history."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from orchestrator.errors import TaskNotFound
from orchestrator.models.states import TaskState, check_task_transition
from orchestrator.store.tables import (
    DagRunRow,
    TaskAttemptRow,
    TaskInstanceRow,
    TaskStateChangeRow,
)


def set_ti_state(
    session: Session,
    ti: TaskInstanceRow,
    state: TaskState,
    now: datetime,
    detail: str | None = None,
) -> None:
    """Move a task instance to `state` (checked against the transition table) and record it."""
    old = TaskState(ti.state)
    if old == state:
        return
    check_task_transition(old, state)
    session.add(
        TaskStateChangeRow(
            ti_id=ti.id,
            try_number=ti.try_number,
            from_state=old.value,
            to_state=state.value,
            detail=detail,
            at=now,
        )
    )
    ti.state = state.value
    ti.updated_at = now
    if detail is not None:
        ti.state_detail = detail


def tis_in_states(session: Session, states: Sequence[TaskState]) -> list[TaskInstanceRow]:
    return list(
        session.scalars(
            select(TaskInstanceRow)
            .where(TaskInstanceRow.state.in_([s.value for s in states]))
            .order_by(TaskInstanceRow.id)
        )
    )


def count_in_states(session: Session, states: Sequence[TaskState]) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(TaskInstanceRow)
            .where(TaskInstanceRow.state.in_([s.value for s in states]))
        )
        or 0
    )


def ti_by_container(session: Session, container_id: str) -> TaskInstanceRow | None:
    return session.scalar(
        select(TaskInstanceRow).where(TaskInstanceRow.container_id == container_id)
    )


def get_ti(
    session: Session, dag_id: str, run_id: str, task_id: str, map_index: int = -1
) -> TaskInstanceRow:
    ti = session.scalar(
        select(TaskInstanceRow).where(
            TaskInstanceRow.dag_id == dag_id,
            TaskInstanceRow.run_id == run_id,
            TaskInstanceRow.task_id == task_id,
            TaskInstanceRow.map_index == map_index,
        )
    )
    if ti is None:
        raise TaskNotFound(f"run {run_id!r} of DAG {dag_id!r} has no task {task_id!r}")
    return ti


def get_run_of(session: Session, ti: TaskInstanceRow) -> DagRunRow:
    run = session.get(DagRunRow, ti.dag_run_id)
    assert run is not None
    return run


def set_container_id(session: Session, ti_id: int, try_number: int, container_id: str) -> None:
    """Persist the container id of an attempt (done before the container is started)."""
    session.execute(
        update(TaskInstanceRow)
        .where(TaskInstanceRow.id == ti_id, TaskInstanceRow.try_number == try_number)
        .values(container_id=container_id)
    )
    session.execute(
        update(TaskAttemptRow)
        .where(TaskAttemptRow.ti_id == ti_id, TaskAttemptRow.try_number == try_number)
        .values(container_id=container_id)
    )


def get_attempt(session: Session, ti_id: int, try_number: int) -> TaskAttemptRow | None:
    return session.scalar(
        select(TaskAttemptRow).where(
            TaskAttemptRow.ti_id == ti_id, TaskAttemptRow.try_number == try_number
        )
    )


def attempts(session: Session, ti_id: int) -> list[TaskAttemptRow]:
    return list(
        session.scalars(
            select(TaskAttemptRow)
            .where(TaskAttemptRow.ti_id == ti_id)
            .order_by(TaskAttemptRow.try_number)
        )
    )


def state_changes(session: Session, ti_id: int) -> list[TaskStateChangeRow]:
    return list(
        session.scalars(
            select(TaskStateChangeRow)
            .where(TaskStateChangeRow.ti_id == ti_id)
            .order_by(TaskStateChangeRow.id)
        )
    )
