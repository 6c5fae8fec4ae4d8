"""The scheduler's callbacks that the services it composes are given."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Protocol

from sqlalchemy.orm import Session

from orchestrator.models.states import TaskState
from orchestrator.store.tables import TaskInstanceRow


class SetState(Protocol):
    """Moves a task instance to a state (recorded, notified, noted as changed)."""

    def __call__(
        self,
        session: Session,
        ti: TaskInstanceRow,
        state: TaskState,
        now: datetime,
        detail: str | None = None,
        /,
    ) -> None: ...


class SkipTasks(Protocol):
    """Skips these tasks of a run (by its id) unless they already started."""

    def __call__(
        self, session: Session, run_pk: int, task_ids: Iterable[str], detail: str, now: datetime, /
    ) -> None: ...
