"""Stopping task containers: those past their `execution_timeout`, and those whose task
instance was cleared or marked while running (their harvest then applies the request)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import partial

from sqlalchemy.orm import Session

from orchestrator.models.states import TaskState
from orchestrator.services.clearing import STOP_REQUESTS
from orchestrator.services.containers import AttemptKey, log_path
from orchestrator.services.logs import LogFile
from orchestrator.services.scheduler_view import StoreView
from orchestrator.settings import Settings
from orchestrator.store.tables import TaskInstanceRow

#: `stop_reason` of a container stopped for exceeding its task's `execution_timeout`.
TIMEOUT = "timeout"


class ContainerStops:
    """Asks for the stops (on the loop thread, after the pass committed) and remembers the
    containers stopped on request, so each is asked once per process."""

    def __init__(
        self,
        settings: Settings,
        view: StoreView,
        owns: Callable[[Session, TaskInstanceRow], bool],
        stop: Callable[[str], object],
    ) -> None:
        self._settings = settings
        self._view = view
        self._owns = owns
        self._stop = stop
        self.stopping: set[str] = set()  # containers this process asked to stop

    def enforce(
        self, session: Session, now: datetime, after_commit: list[Callable[[], object]]
    ) -> datetime | None:
        """Stop containers past their execution_timeout; return the next timeout due."""
        earliest: datetime | None = None
        for ti in self._view.active(session, [TaskState.RUNNING]):
            if ti.stop_reason in STOP_REQUESTS:
                self._on_request(session, ti, after_commit)
                continue
            if ti.stop_reason == TIMEOUT:
                self._timed_out_before(session, ti, after_commit)
                continue
            if ti.stop_reason or ti.container_id is None or ti.start_date is None:
                continue
            task = self._view.task(session, ti.dag_id, ti.task_id)
            limit = task.execution_timeout if task is not None else None
            if limit is None or not self._owns(session, ti):
                continue
            due = ti.start_date + limit
            if now < due:
                earliest = due if earliest is None else min(earliest, due)
                continue
            ti.stop_reason = TIMEOUT
            key = AttemptKey(ti.dag_id, ti.run_id, ti.task_id, ti.map_index, ti.try_number)
            LogFile(log_path(self._settings, key)).write_line(
                f"[orchestrator] execution_timeout of {limit.total_seconds():g}s reached:"
                f" stopping the container (SIGTERM, then SIGKILL after"
                f" {self._settings.stop_grace_period:g}s)"
            )
            cid = ti.container_id
            self.stopping.add(cid)
            after_commit.append(partial(self._stop, cid))
        return earliest

    def _timed_out_before(
        self, session: Session, ti: TaskInstanceRow, after_commit: list[Callable[[], object]]
    ) -> None:
        """A timeout recorded by an earlier scheduler process: its stop may never have
        reached the engine (killed between the two), so this process asks once more."""
        cid = ti.container_id
        if cid is None or cid in self.stopping or not self._owns(session, ti):
            return
        self.stopping.add(cid)
        key = AttemptKey(ti.dag_id, ti.run_id, ti.task_id, ti.map_index, ti.try_number)
        LogFile(log_path(self._settings, key)).write_line(
            "[orchestrator] execution_timeout reached before the scheduler restarted:"
            f" stopping the container (SIGTERM, then SIGKILL after"
            f" {self._settings.stop_grace_period:g}s)"
        )
        after_commit.append(partial(self._stop, cid))

    def _on_request(
        self, session: Session, ti: TaskInstanceRow, after_commit: list[Callable[[], object]]
    ) -> None:
        """Stop a container whose task instance was cleared or marked (see `clearing`); its
        harvest then applies the requested state. Asked once per container and process."""
        cid = ti.container_id
        if cid is None or cid in self.stopping or not self._owns(session, ti):
            return
        self.stopping.add(cid)
        key = AttemptKey(ti.dag_id, ti.run_id, ti.task_id, ti.map_index, ti.try_number)
        LogFile(log_path(self._settings, key)).write_line(
            f"[orchestrator] {ti.state_detail or ti.stop_reason}: stopping the container"
            f" (SIGTERM, then SIGKILL after {self._settings.stop_grace_period:g}s)"
        )
        after_commit.append(partial(self._stop, cid))
