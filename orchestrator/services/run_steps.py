"""The scheduler pass's steps on whole runs: planning scheduled runs, starting queued ones
within the limits, failing those past their `dagrun_timeout`, matching running runs to a
changed DAG, finishing runs whose tasks are all done, and SLA misses. Each step returns what
it did; notices go to the list the pass sends once it committed."""

from __future__ import annotations

from datetime import datetime
from functools import partial

from sqlalchemy.orm import Session

from orchestrator.models.states import FINISHED_TASK_STATES, RunState, TaskState
from orchestrator.scheduling.readiness import TaskView, run_outcome
from orchestrator.services import integrity, run_limits
from orchestrator.services.attempt_worker import SchedulerListener
from orchestrator.services.claims import RunClaims
from orchestrator.services.notifications import Notice, run_notices
from orchestrator.services.run_planner import RunPlanner
from orchestrator.services.scheduler_view import StoreView
from orchestrator.services.set_state import SetState
from orchestrator.services.sla import SlaMonitor
from orchestrator.settings import Settings
from orchestrator.store import runs as run_store

#: Task states in which an instance is done.
_FINISHED_STATES = frozenset(state.value for state in FINISHED_TASK_STATES)

#: A run that ended: its DAG, its run id and how it ended.
EndedRun = tuple[str, str, RunState]


class RunSteps:
    """What a pass does to whole runs (see the module's docstring)."""

    def __init__(
        self,
        settings: Settings,
        view: StoreView,
        set_state: SetState,
        *,
        plan_runs: bool,
        claims: RunClaims | None,
        listener: SchedulerListener | None,
    ) -> None:
        self._view = view
        self._set_state = set_state
        self._planner = RunPlanner(settings.max_runs_created_per_pass) if plan_runs else None
        self._claims = claims
        self._listener = listener
        self._sla = SlaMonitor(settings)
        self.held = False  # queued runs wait for max_active_runs or a pause
        self.queued_seen = True  # the last look found queued runs (or there was none yet)

    def plan(self, session: Session, now: datetime) -> tuple[int, datetime | None]:
        """Create the scheduled runs due now (see `run_planner`); return how many, and when
        next to plan. Passes driven by container events plan only when a DAG's planning is
        due: DAGs changed, unpaused or added since are planned by the next sweep."""
        if self._planner is None:
            return 0, None
        if not self._view.sweeping and not self._planner.due(now):
            return 0, self._planner.next_at
        planned = self._planner.plan(session, now, partial(self._view.spec, session))
        return len(planned.created), planned.next_at

    def start_queued(self, session: Session, now: datetime, planned: bool) -> int:
        """Start queued runs, oldest logical date first, within `max_active_runs` and
        skipping paused DAGs (see `run_limits`); return how many started."""
        started = 0
        if not (self.queued_seen or self._view.sweeping or planned):
            return 0  # none was queued, and only sweeps see runs others queued since
        queued = self._view.runs(session, RunState.QUEUED)
        self.queued_seen = bool(queued)
        if self._claims is not None:  # under DAG row locks, counting others' running runs
            queued, running = self._claims.startable(session, queued)
        else:
            running = self._view.runs(session, RunState.RUNNING) if queued else []
        spec_of = partial(self._view.spec, session)
        startable = run_limits.startable_runs(session, queued, running, spec_of)
        self.held = len(startable) < len(queued)
        for run in startable:
            run_store.set_run_state(session, run, RunState.RUNNING, now)
            started += 1
            if self._listener is not None:
                self._listener.on_run(run.dag_id, run.run_id, RunState.RUNNING)
        if started:
            self._view.runs_started()
        return started

    def fail_timed_out(
        self, session: Session, now: datetime, notices: list[Notice]
    ) -> tuple[list[EndedRun], datetime | None]:
        """Fail running runs past their dagrun_timeout; return them and the next such
        timeout."""
        running = self._view.runs(session, RunState.RUNNING)
        spec_of = partial(self._view.spec, session)
        failed, next_at = run_limits.fail_timed_out_runs(session, running, spec_of, now)
        ended: list[EndedRun] = []
        for item in failed:
            run = item.run
            spec = self._view.spec(session, run.dag_id)
            notices.extend(run_notices(spec, run, RunState.RUNNING, RunState.FAILED, now))
            ended.append((run.dag_id, run.run_id, RunState.FAILED))
            if self._listener is not None:
                self._listener.on_run(run.dag_id, run.run_id, RunState.FAILED)
        return ended, next_at

    def verify_integrity(self, session: Session, now: datetime) -> None:
        """Match running runs' task instances to their DAG's latest spec when it changed or
        the DAG is gone (see `scheduling.integrity`)."""
        for run in self._view.runs(session, RunState.RUNNING):
            target = self._view.integrity_target(session, run.dag_id)
            if run.spec_hash == target:
                continue
            spec = self._view.spec(session, run.dag_id) if target != integrity.NO_SPEC else None
            tis = self._view.run_tis(session, run.id)
            if integrity.sync_run(session, run, spec, tis, now, self._set_state).add:
                self._view.reload_run(run.id)
            run.spec_hash = target

    def finish(self, session: Session, now: datetime, notices: list[Notice]) -> list[EndedRun]:
        """End the watched running runs whose task instances all finished; return them."""
        ended: list[EndedRun] = []
        for run in self._view.watched(self._view.runs(session, RunState.RUNNING)):
            tis = self._view.run_tis(session, run.id)
            # later instances are downstream ones: an unfinished run shows it at once there
            if any(ti.state not in _FINISHED_STATES for ti in reversed(tis)):
                continue
            views = {ti.task_id: TaskView(TaskState(ti.state)) for ti in tis if ti.map_index == -1}
            state = run_outcome(self._view.spec(session, run.dag_id), views)
            if state is None:
                continue
            old = RunState(run.state)
            run_store.set_run_state(session, run, state, now)
            spec = self._view.spec(session, run.dag_id)
            notices.extend(run_notices(spec, run, old, state, now))
            ended.append((run.dag_id, run.run_id, state))
            if self._listener is not None:
                self._listener.on_run(run.dag_id, run.run_id, state)
        return ended

    def check_slas(self, session: Session, now: datetime, notices: list[Notice]) -> datetime | None:
        """Record and notify SLA misses of running runs; return the next SLA deadline."""
        runs = (
            (spec, run)
            for run in self._view.runs(session, RunState.RUNNING)
            if (spec := self._view.spec(session, run.dag_id)) is not None
        )
        tis_of = partial(self._view.run_tis, session)
        found, next_deadline = self._sla.check(session, runs, tis_of, now)
        notices.extend(found)
        return next_deadline
