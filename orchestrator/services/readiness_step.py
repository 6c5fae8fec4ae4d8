"""Readiness for the scheduler: which tasks of its running runs are scheduled, can never run
(upstream failed) or are skipped, decided by `scheduling.readiness` and applied here; mapped
tasks expand when they become ready."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
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
        # by run: the tasks found waiting (`_waiting_tasks`) when it was last decided about
        self._waiting: dict[int, set[str]] = {}

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
            changed = self._view.take_changed(run.id)
            # every task only when the run's instances were (re)loaded: kept ones are checked
            # by version every pass, and the tasks of those changed elsewhere are in `changed`
            full = rebuilt
            waiting = self._waiting_tasks(run.id, by_task, instances, None if full else changed)
            waiting_ids = (ti.task_id for ti in waiting)
            only = None if full else self._view.candidates(spec, changed, waiting_ids)
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
        if self._view.sweeping:  # every running run was looked at: forget the others
            kept = {run.id for run in running}
            self._waiting = {pk: ids for pk, ids in self._waiting.items() if pk in kept}
        return earliest

    def _waiting_tasks(
        self,
        run_pk: int,
        by_task: Mapping[str, TaskInstanceRow],
        instances: Mapping[str, object],
        changed: set[str] | None,
    ) -> list[TaskInstanceRow]:
        """The run's task instances waiting out a retry delay or a reschedule (mapped tasks'
        instances are stepped apart). Looked for among all of them when `changed` is None,
        else among those waiting before and the `changed` tasks (every state change since
        reaches `changed`: the scheduler's own and those `StoreView` found)."""
        known = self._waiting.get(run_pk)
        if changed is None or known is None:
            look_at: Iterable[str] = by_task
        else:
            look_at = known | changed
        waiting = [
            ti
            for tid in look_at
            if (ti := by_task.get(tid)) is not None
            and ti.state in _WAITING_STATES
            and tid not in instances
        ]
        self._waiting[run_pk] = {ti.task_id for ti in waiting}
        return waiting

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
        waiting = (views.get(task_id) for task_id in spec.depends_on_past_ids)
        if not any(v is not None and v.state == TaskState.NONE for v in waiting):
            return None
        previous = run_store.previous_run(session, run)
        return run_store.task_states(session, previous.id) if previous is not None else None
