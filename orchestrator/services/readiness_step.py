"""Readiness for the scheduler: which tasks of its running runs are scheduled, can never run
(upstream failed) or are skipped, decided by `scheduling.readiness` and applied here; mapped
tasks expand when they become ready."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy.orm import Session

from orchestrator.models.specs import DagSpec, TaskSpec
from orchestrator.models.states import RunState, TaskState
from orchestrator.scheduling.readiness import TaskView, decide
from orchestrator.services.mapping import ReadinessViews, expand_task, step_instances
from orchestrator.services.run_context import outputs_of
from orchestrator.services.scheduler_view import StoreView
from orchestrator.services.set_state import SetState
from orchestrator.settings import Settings
from orchestrator.store import runs as run_store
from orchestrator.store.tables import DagRunRow, TaskInstanceRow

#: Task states that wait for a time (a retry delay, a sensor's next poke).
_WAITING_STATES = frozenset({TaskState.UP_FOR_RETRY.value, TaskState.UP_FOR_RESCHEDULE.value})


class ReadinessStep:
    """Decides and applies readiness for the scheduler's passes."""

    def __init__(self, settings: Settings, view: StoreView, set_state: SetState) -> None:
        self._settings = settings
        self._view = view
        self._set_state = set_state

    def decide(self, session: Session, now: datetime) -> datetime | None:
        """Apply readiness decisions to the running runs this pass watches; return the
        earliest pending retry (or reschedule) time."""
        earliest: datetime | None = None
        running = self._view.watched(self._view.runs(session, RunState.RUNNING))
        self._view.load_tis(session, running)
        for run in running:
            spec = self._view.spec(session, run.dag_id)
            if spec is None:
                continue
            (by_task, instances), rebuilt = self._view.index(session, run.id)
            views = ReadinessViews(by_task, instances)
            waiting = [
                ti
                for tid, ti in by_task.items()
                if ti.state in _WAITING_STATES and tid not in instances
            ]
            changed = self._view.take_changed(run.id)
            waiting_ids = (ti.task_id for ti in waiting)
            only = (
                None
                if self._view.sweeping or rebuilt
                else self._view.candidates(spec, changed, waiting_ids)
            )
            previous = self._previous_states(session, spec, run, views)
            decisions = decide(spec, views, now, previous, only)
            pending = [ti.next_try_at for ti in waiting if ti.next_try_at and ti.next_try_at > now]
            if instances:
                instance_retry = step_instances(session, by_task, instances, now, self._set_state)
                pending += [instance_retry] if instance_retry else []
            earliest = min([*pending, earliest] if earliest else pending, default=None)
            for task_id in decisions.schedule:
                task = self._view.task(session, run.dag_id, task_id)
                if task is not None and task.expand and by_task[task_id].map_index == -1:
                    self._expand(session, spec, task, run, by_task[task_id], now)
                    continue
                self._set_state(session, by_task[task_id], TaskState.SCHEDULED, now)
            for task_id in decisions.upstream_failed:
                ti = by_task[task_id]
                ti.end_date = now
                self._set_state(
                    session, ti, TaskState.UPSTREAM_FAILED, now, "an upstream task failed"
                )
            for task_id in decisions.skip:
                ti = by_task[task_id]
                ti.end_date = now
                self._set_state(session, ti, TaskState.SKIPPED, now, "an upstream task skipped")
        return earliest

    def _expand(
        self,
        session: Session,
        spec: DagSpec,
        task: TaskSpec,
        run: DagRunRow,
        summary: TaskInstanceRow,
        now: datetime,
    ) -> None:
        """Expand a ready mapped task into scheduled instances (see `services.mapping`)."""
        tis = self._view.run_tis(session, run.id)
        outputs = outputs_of(tis)
        max_length = self._settings.max_map_length
        expand_task(session, task, run, summary, tis, outputs, max_length, now, self._set_state)

    def _previous_states(
        self, session: Session, spec: DagSpec, run: DagRunRow, views: Mapping[str, TaskView]
    ) -> dict[str, TaskState] | None:
        """Task states of the previous run, read only while a `depends_on_past` task waits."""
        waiting = (views.get(t.task_id) for t in spec.tasks if t.depends_on_past)
        if not any(v is not None and v.state == TaskState.NONE for v in waiting):
            return None
        previous = run_store.previous_run(session, run)
        return run_store.task_states(session, previous.id) if previous is not None else None
