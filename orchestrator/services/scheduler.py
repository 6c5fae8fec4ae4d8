"""The scheduler loop: runs' task instances through render, launch, observe and clean-up.

`tick(now)` does one full pass and returns a report; `run_forever` only waits, ticks and stops.
Blocking container calls run in a bounded worker pool and report back through an inbox; every
state change is made by the loop's thread, except persisting a new container's id, which the
launching worker does before it starts the container. A container's exit arrives from the
runtime's event subscription and wakes the loop at once.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from orchestrator.errors import SchedulerReplaced
from orchestrator.models.run_info import RunInfo
from orchestrator.models.specs import DagSpec, TaskKind, TaskSpec
from orchestrator.models.states import (
    ACTIVE_TASK_STATES,
    RunState,
    TaskState,
)
from orchestrator.runtime.base import ContainerRuntime, Subscription
from orchestrator.scheduling.attempts import AttemptEnd
from orchestrator.scheduling.limits import Occupancy
from orchestrator.services import run_limits
from orchestrator.services.attempt_records import AttemptRecords
from orchestrator.services.attempt_worker import (
    AttemptWorker,
    EngineUnreachable,
    Exited,
    Harvested,
    Launched,
    LaunchFailed,
    LaunchJob,
    Lost,
    SchedulerListener,
)
from orchestrator.services.claims import RunClaims
from orchestrator.services.clock import Clock, SystemClock
from orchestrator.services.container_stops import ContainerStops
from orchestrator.services.containers import (
    AttemptKey,
    instance_labels,
)
from orchestrator.services.control_tasks import ControlTasks
from orchestrator.services.notifications import (
    Notice,
    NotificationService,
    task_notices,
)
from orchestrator.services.readiness_step import ReadinessStep
from orchestrator.services.reconcile import Reconciler, ReconcileReport
from orchestrator.services.run_context import RunOutputs, run_info
from orchestrator.services.run_steps import RunSteps
from orchestrator.services.scheduler_view import READY_STATES, StoreView
from orchestrator.services.slots import SlotPlanner, occupancy_of
from orchestrator.services.slots import occupancy as slot_occupancy
from orchestrator.settings import Settings
from orchestrator.store import sensor_pokes
from orchestrator.store import task_instances as ti_store
from orchestrator.store.tables import DagRunRow, TaskInstanceRow

log = logging.getLogger(__name__)

#: Passes one tick makes at most while workers keep answering at once.
_MAX_PASSES_PER_TICK = 50


@dataclass
class TickReport:
    """What one pass did."""

    runs_started: int = 0
    runs_created: int = 0  # scheduled runs created
    launched: int = 0
    finished: int = 0
    runs_finished: list[tuple[str, str, RunState]] = field(default_factory=list)


@dataclass
class _PassMemory:
    """The scheduler's in-memory pass state before a message was handled (see `tick`)."""

    notices: int
    actions: int
    report: TickReport
    harvesting: set[str]
    stopping: set[str]
    finished: bool


class Scheduler:
    """Executes queued runs on a container runtime."""

    def __init__(
        self,
        *,
        settings: Settings,
        sessions: sessionmaker[Session],
        runtime: ContainerRuntime,
        clock: Clock | None = None,
        executor: Executor | None = None,
        listener: SchedulerListener | None = None,
        run_filter: Callable[[DagRunRow], bool] | None = None,
        notifications: NotificationService | None = None,
        plan_runs: bool | None = None,
        claims: RunClaims | None = None,
    ) -> None:
        """`claims`: this scheduler shares the store with others and executes only the runs
        it claims (see `services.claims`); without, it executes every run but `test` ones
        (or those `run_filter` accepts)."""
        self._settings = settings
        # scheduled runs are created by the general scheduler only (not `dags test`'s)
        if plan_runs is None:
            plan_runs = run_filter is None
        self._sessions = sessions
        self._runtime = runtime
        self._clock = clock or SystemClock()
        self._owns_executor = executor is None
        # Launches (create + start, slow) never delay harvests (which free slots) or clean-up.
        self._executor = executor or ThreadPoolExecutor(
            max_workers=settings.docker_workers, thread_name_prefix="orch-launch"
        )
        self._harvest_pool = executor or ThreadPoolExecutor(
            max_workers=max(2, settings.docker_workers // 4), thread_name_prefix="orch-harvest"
        )
        self._cleanup_pool = executor or ThreadPoolExecutor(
            max_workers=max(2, settings.docker_workers // 4), thread_name_prefix="orch-cleanup"
        )
        self._listener = listener
        self._worker = AttemptWorker(
            settings=settings,
            sessions=sessions,
            runtime=runtime,
            clock=self._clock,
            listener=listener,
            post=self._post,
        )
        self._claims = claims
        self._run_filter = run_filter or (
            claims.owns if claims is not None else lambda run: run.run_type != "test"
        )
        self._owns_notifications = notifications is None
        self._notifications = notifications or NotificationService(
            settings=settings,
            sessions=sessions,
            runtime=runtime,
            clock=self._clock,
            executor=executor,
        )
        self._pass_notices: list[Notice] = []  # sent once the pass's transaction committed
        self._inbox: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._subscription: Subscription | None = None
        self._harvesting: set[str] = set()
        self._next_deadline: datetime | None = None
        self._view = StoreView(settings, sessions, self._run_filter, check_runs=claims is None)
        self._readiness = ReadinessStep(settings, self._view, self._set_state)
        self._stops = ContainerStops(
            settings,
            self._view,
            self._owns,
            lambda container_id: self._harvest_pool.submit(self._worker.stop, container_id),
        )
        self._attempts = AttemptRecords(
            settings,
            self._view,
            self._set_state,
            self._skip_tasks,
            lambda container_id: self._stops.stopping.discard(container_id),
            lambda work: self._cleanup_pool.submit(work),
        )
        self._pass_finished = False
        # by run, for this pass's launches: what templates know of it, and its outputs
        self._pass_runs: dict[int, tuple[RunInfo, Mapping[str, Any]]] = {}
        self._control = ControlTasks(settings, self._set_state, self._skip_tasks)
        self._control_wake: datetime | None = None  # the next check of a waiting control task
        # Slots held: read from the store by a scheduler sharing it with others (they launch
        # too); else counted from what the view keeps (read from the store in sweeps)
        stored = claims.occupancy if claims is not None else slot_occupancy
        self._occupancy = stored if claims is not None else self._kept_occupancy
        self._slots = SlotPlanner(settings.parallelism, stored)
        self._runs = RunSteps(
            settings,
            self._view,
            self._set_state,
            plan_runs=plan_runs,
            claims=claims,
            listener=listener,
        )
        self._reconciler = Reconciler(
            settings=settings,
            sessions=sessions,
            runtime=runtime,
            worker=self._worker,
            launch=self._submit_launch,
            post=self._post,
            owns=self._run_filter,
            busy_containers=lambda: self._harvesting | self._stops.stopping,
            background=lambda work: self._cleanup_pool.submit(work),
        )

    # ----------------------------------------------------------------- lifecycle
    def start(self) -> None:
        """Subscribe to container exits; call before the first tick."""
        if self._subscription is None:
            self._subscription = self._runtime.watch_exits(
                instance_labels(self._settings), self._on_exit
            )

    def close(self, *, wait: bool = True) -> None:
        """Stop watching and release the worker pools. `wait=False` (a SIGTERM) drops work
        not yet begun and does not wait for the rest: running containers are left alone, and
        the next start reconciles (adopts them, launches what was recorded but not created)."""
        if self._subscription is not None:
            self._subscription.close()
            self._subscription = None
        if self._owns_executor:
            for pool in (self._executor, self._harvest_pool, self._cleanup_pool):
                pool.shutdown(wait=wait, cancel_futures=not wait)
        if self._owns_notifications:
            self._notifications.close(wait=wait)
        self._view.close()

    def wake(self) -> None:
        """Make a waiting `run_forever` tick at once."""
        self._wake.set()

    def run_forever(
        self, stop: threading.Event, on_tick: Callable[[float], None] | None = None
    ) -> None:
        """Tick until `stop` is set, sleeping only until the next thing can happen.
        Reconciles with the engine first, and then every `reconcile_interval`. `on_tick`
        hears how many seconds each pass took."""
        self.start()
        while not stop.is_set():
            self._wake.clear()
            now = self._clock.now()
            try:
                began = time.monotonic()
                self._reconciler.run_if_due(now)
                self.tick(now)
                if on_tick is not None:
                    on_tick(time.monotonic() - began)
            except SchedulerReplaced:
                raise  # others took this scheduler's runs over: it must not go on
            except Exception:  # a bug must not kill the loop; it is logged and retried
                log.exception("scheduler tick failed; retrying")
                stop.wait(1.0)
            wait = self._seconds_until_next_event(self._clock.now())
            reconcile_at = self._reconciler.next_at()
            if reconcile_at is not None:
                wait = min(wait, max((reconcile_at - self._clock.now()).total_seconds(), 0.0))
            self._wake.wait(wait)

    def reconcile(self, now: datetime) -> ReconcileReport:
        """Bring the store and the engine in line now (see `services.reconcile`); call after
        `start` (so no exit is missed) and before the first tick."""
        return self._reconciler.run(now)

    @property
    def engine_up(self) -> bool:
        """False while the container engine cannot be reached (nothing is launched then)."""
        return self._reconciler.engine_up

    def _submit_launch(self, job: LaunchJob) -> None:
        self._worker.begin_launch(job)
        self._executor.submit(self._worker.launch, job)

    def run_until_idle(self, done: Callable[[], bool], timeout: float | None = None) -> bool:
        """Tick (waiting for events between ticks) until `done()`; False on timeout."""
        self.start()
        deadline = None if timeout is None else self._clock.now() + timedelta(seconds=timeout)
        while True:
            self._wake.clear()
            now = self._clock.now()
            self.tick(now)
            if done():
                return True
            if deadline is not None and now >= deadline:
                return False
            self._wake.wait(self._seconds_until_next_event(self._clock.now()))

    # ----------------------------------------------------------------- the pass
    def tick(self, now: datetime) -> TickReport:
        """One full pass: observe what happened, decide, launch.

        A pass is one transaction: the inbox's messages, run starts, timeouts, readiness, new
        attempts and finished runs. Work that must wait for the commit (launching, removing
        containers) follows it. Passes repeat while workers have already answered (always so
        with an inline executor).

        Messages are handled as part of the pass, their changes written with the rest at the
        commit. Should the pass fail, it is done again with its messages in savepoints (see
        `_handle_all`), so a bad message is logged and skipped; if it fails even so, the
        failure is not the messages' and is raised.
        """
        report = TickReport()
        isolate = False  # handle the messages in savepoints (after a pass failed)
        for number in range(_MAX_PASSES_PER_TICK):
            messages = self._take_inbox()
            after_commit: list[Callable[[], object]] = []
            first, pending = number == 0, bool(messages)
            self._view.plan_pass(now, first=first, messages=pending, deadline=self._next_deadline)
            before = self._pass_memory(report, after_commit)
            session = self._view.session()
            try:
                launches, deadlines = self._pass(
                    session, messages, now, report, after_commit, isolate
                )
            except StaleDataError as exc:  # another process wrote a row this pass wrote over
                log.warning("a task instance changed under the pass; doing it again: %s", exc)
                self._restore_pass_memory(before, report, after_commit)
                self._view.forget(session)
                for message in messages:
                    self._inbox.put(message)
                continue
            except SchedulerReplaced:
                raise
            except Exception:
                if isolate or not messages:
                    raise
                log.warning("a pass failed; doing it again with each message on its own")
                self._restore_pass_memory(before, report, after_commit)
                for message in messages:
                    self._inbox.put(message)
                isolate = True
                continue
            isolate = False
            self._next_deadline = run_limits.earliest(deadlines)
            for action in after_commit:
                action()
            self._notifications.submit(self._pass_notices)
            if self._reconciler.engine_up:  # else reconciling launches them once it is back
                for job in launches:
                    self._submit_launch(job)
            report.launched += len(launches)
            if self._inbox.empty():
                break
        return report

    def _pass(
        self,
        session: Session,
        messages: list[object],
        now: datetime,
        report: TickReport,
        after_commit: list[Callable[[], object]],
        isolate: bool = False,
    ) -> tuple[list[LaunchJob], list[datetime | None]]:
        """One pass, one transaction; returns the launches to submit once it committed and
        the times something becomes due."""
        with session.begin():
            self._claim_runs(session, now, after_commit)
            self._pass_finished, self._pass_notices, self._pass_runs = False, [], {}
            self._view.begin_pass(session)
            self._handle_all(session, messages, now, report, after_commit, isolate)
            created, plan_at = self._runs.plan(session, now)
            report.runs_created += created
            started = self._runs.start_queued(session, now, planned=created > 0)
            report.runs_started += started
            ended, run_timeout_at = self._runs.fail_timed_out(session, now, self._pass_notices)
            report.runs_finished += ended
            self._runs.verify_integrity(session, now)
            deadline = self._stops.enforce(session, now, after_commit)
            retry_at = self._readiness.decide(session, now)
            failed_early = report.finished
            launches = self._queue_launches(session, now, report)
            pokes, poke_at = self._repoke_sensors(session, now, report)
            launches += pokes
            if report.finished != failed_early:  # template errors: propagate them now
                self._readiness.decide(session, now)
            sla_at = self._runs.check_slas(session, now, self._pass_notices)
            if self._pass_finished or started:
                report.runs_finished += self._runs.finish(session, now, self._pass_notices)
                if self._runs.held and report.runs_finished:
                    self._wake.set()  # a run ended: a held-back queued run may start now
        deadlines = [deadline, retry_at, poke_at, sla_at, self._control_wake, plan_at]
        return launches, [*deadlines, run_timeout_at]

    def _take_inbox(self) -> list[object]:
        messages = []
        while True:
            try:
                messages.append(self._inbox.get_nowait())
            except queue.Empty:
                return messages

    def _handle_all(
        self,
        session: Session,
        messages: list[object],
        now: datetime,
        report: TickReport,
        after_commit: list[Callable[[], object]],
        isolate: bool,
    ) -> None:
        """Handle the inbox's messages, their changes written with the pass's. `isolate`
        (the pass failed before): in one savepoint; if one fails, roll back and handle them
        again one savepoint each, so only the bad one is logged and skipped.

        Messages are handled without autoflush (their changes are flushed once, with the
        pass's other changes or when the savepoint ends): they look rows up by key, and what
        one message changes never decides what a query for the next one finds."""
        self._prefetch(session, messages)  # also makes the rows they name current
        if not isolate:
            with session.no_autoflush:
                for message in messages:
                    self._handle(session, message, now, report, after_commit)
            return
        if len(messages) > 1:
            saved = self._pass_memory(report, after_commit)
            try:
                with ti_store.begin_savepoint(session), session.no_autoflush:
                    for message in messages:
                        self._handle(session, message, now, report, after_commit)
                return
            except StaleDataError:
                raise  # the whole pass is done again (see `tick`)
            except Exception:
                self._restore_pass_memory(saved, report, after_commit)
        for message in messages:
            saved = self._pass_memory(report, after_commit)
            try:
                with ti_store.begin_savepoint(session), session.no_autoflush:
                    self._handle(session, message, now, report, after_commit)
            except StaleDataError:
                raise
            except Exception:
                self._restore_pass_memory(saved, report, after_commit)
                log.exception("could not handle %r", message)

    def _prefetch(self, session: Session, messages: list[object]) -> None:
        kinds = Launched | LaunchFailed | Harvested | Lost
        ti_ids = [m.ti_id for m in messages if isinstance(m, kinds)]
        containers = [m.container_id for m in messages if isinstance(m, Exited)]
        launched = [
            (m.ti_id, m.try_number, m.container_id) for m in messages if isinstance(m, Launched)
        ]
        self._view.prefetch(session, ti_ids, containers, launched)

    def _pass_memory(
        self, report: TickReport, after_commit: list[Callable[[], object]]
    ) -> _PassMemory:
        """What handling a message changes outside the database, to undo on rollback."""
        return _PassMemory(
            notices=len(self._pass_notices),
            actions=len(after_commit),
            report=dataclasses.replace(report, runs_finished=list(report.runs_finished)),
            harvesting=set(self._harvesting),
            stopping=set(self._stops.stopping),
            finished=self._pass_finished,
        )

    def _restore_pass_memory(
        self, saved: _PassMemory, report: TickReport, after_commit: list[Callable[[], object]]
    ) -> None:
        del self._pass_notices[saved.notices :]  # rolled back: nothing to tell
        del after_commit[saved.actions :]
        report.__dict__.update(saved.report.__dict__)
        self._harvesting, self._stops.stopping = saved.harvesting, saved.stopping
        self._pass_finished = saved.finished
        self._view.after_rollback()  # it may hold rows the rollback discarded

    def _handle(
        self,
        session: Session,
        message: object,
        now: datetime,
        report: TickReport,
        after_commit: list[Callable[[], object]],
    ) -> None:
        if isinstance(message, Exited):
            self._on_container_exited(session, message.container_id, after_commit)
        elif isinstance(message, Launched):
            ti = self._view.ti(session, message.ti_id)
            if ti is None or ti.try_number != message.try_number:
                return
            if ti.state == TaskState.QUEUED.value:
                ti.start_date = message.started_at
                self._set_state(session, ti, TaskState.RUNNING, message.started_at)
                started: dict[str, datetime | None] = {"start_date": message.started_at}
                if message.image_ready_at is not None:  # the Gantt chart's pulling span
                    started["launch_started_at"] = message.launch_started_at
                    started["image_ready_at"] = message.image_ready_at
                ti_store.update_attempt(session, ti.id, ti.try_number, **started)
        elif isinstance(message, Lost):
            self._on_lost(session, message, now, report, after_commit)
        elif isinstance(message, EngineUnreachable):
            self._reconciler.engine_unreachable(now, message.error)
            if message.container_id is not None:  # for reconciliation to harvest it
                self._harvesting.discard(message.container_id)
        elif isinstance(message, LaunchFailed):
            end = AttemptEnd(exit_code=None, launch_error=message.error)
            self._finish_attempt(
                session, message.ti_id, message.try_number, end, None, now, report, after_commit
            )
            if message.container_id:
                cid = message.container_id
                after_commit.append(lambda: self._cleanup_pool.submit(self._worker.remove, cid))
        elif isinstance(message, Harvested):
            end = AttemptEnd(
                exit_code=message.exit.exit_code,
                oom_killed=message.exit.oom_killed,
                engine_error=message.exit.error,
                output_error=message.output_error,
            )
            self._finish_attempt(
                session,
                message.ti_id,
                message.try_number,
                end,
                message.output_json,
                now,
                report,
                after_commit,
            )
            cid = message.container_id
            self._harvesting.discard(cid)
            # removed only once the logs and output are committed
            after_commit.append(lambda: self._cleanup_pool.submit(self._worker.remove, cid))

    # ----------------------------------------------------------------- runs and readiness
    def _claim_runs(
        self, session: Session, now: datetime, after_commit: list[Callable[[], object]]
    ) -> None:
        """Sharing the store with other schedulers: heartbeat and claim runs (see
        `services.claims`). Runs taken over from a dead scheduler are reconciled once the
        claim committed, before any exit of their containers is handled here."""
        if self._claims is None:
            return
        step = self._claims.begin_pass(session, now, after_commit)
        if step.taken_over:
            after_commit.append(partial(self._reconciler.run, now))
        if step.claimed:
            after_commit.append(self._wake.set)  # start what was claimed without waiting

    def _owns(self, session: Session, ti: TaskInstanceRow) -> bool:
        return self._run_filter(self._view.run_of(session, ti))

    # ----------------------------------------------------------------- launching
    def _queue_launches(
        self, session: Session, now: datetime, report: TickReport
    ) -> list[LaunchJob]:
        ran = self._run_control_tasks(session, now, report)  # no container, no slot: first
        if ran:
            session.flush()  # for the count (one that runs on holds a slot while it does)
        with session.no_autoflush:  # else only changes to `scheduled` are pending: they
            held = self._occupancy(session)  # join those to `queued` in one update
        if held.total >= self._settings.parallelism:
            return []
        chosen = self._slots.choose(
            session,
            self._view.ready(session, [TaskState.SCHEDULED]),
            lambda dag_id: (self._view.spec(session, dag_id), self._view.spec_version(dag_id)),
            lambda ti: self._view.run_of(session, ti),
            self._run_filter,
            held,
        )
        self._view.load_tis(session, [item.run for item in chosen])  # rendering reads outputs
        jobs: list[LaunchJob] = []
        for item in chosen:
            job = self._prepare_attempt(
                session, item.spec, item.task, item.run, item.ti, now, report
            )
            if job is not None:
                jobs.append(job)
        return jobs

    def _kept_occupancy(self, session: Session) -> Occupancy:
        return occupancy_of(self._view.active(session))

    def _prepare_attempt(
        self,
        session: Session,
        spec: DagSpec,
        task: TaskSpec,
        run: DagRunRow,
        ti: TaskInstanceRow,
        now: datetime,
        report: TickReport,
    ) -> LaunchJob | None:
        known = self._pass_runs.get(run.id)
        if known is None:  # the same for every launch of the run in this pass
            outputs = RunOutputs(self._view.run_tis(session, run.id))
            known = self._pass_runs[run.id] = (run_info(spec, run), outputs)
        job = self._attempts.prepare(session, spec, task, ti, *known, now)
        if job is None:
            report.finished += 1
        return job

    def _finish_attempt(
        self,
        session: Session,
        ti_id: int,
        try_number: int,
        end: AttemptEnd,
        output_json: str | None,
        now: datetime,
        report: TickReport,
        after_commit: list[Callable[[], object]],
    ) -> None:
        if self._attempts.finish(session, ti_id, try_number, end, output_json, now, after_commit):
            report.finished += 1

    def _repoke_sensors(
        self, session: Session, now: datetime, report: TickReport
    ) -> tuple[list[LaunchJob], datetime | None]:
        """Launch the next poke of poke-mode sensors whose interval passed (they hold their
        slot, so they need no free one); return the launches and the next poke due."""
        jobs: list[LaunchJob] = []
        earliest: datetime | None = None
        running = self._view.runs(session, RunState.RUNNING)
        specs = (self._view.spec(session, run.dag_id) for run in running)
        if not any(spec is not None and spec.has_poke_sensors for spec in specs):
            return jobs, earliest  # no running run has a sensor that sleeps between pokes
        for ti in sensor_pokes.sleeping_pokers(session):
            due = ti.next_try_at
            if due is None or not self._owns(session, ti):
                continue
            if due > now:
                earliest = due if earliest is None else min(earliest, due)
                continue
            spec = self._view.spec(session, ti.dag_id)
            task = self._view.task(session, ti.dag_id, ti.task_id)
            if spec is None or task is None:
                continue
            run = self._view.run_of(session, ti)
            job = self._prepare_attempt(session, spec, task, run, ti, now, report)
            if job is not None:
                jobs.append(job)
        return jobs, earliest

    def _on_exit(self, container_id: str) -> None:
        """Runtime callback (any thread): a container of ours stopped."""
        self._post(Exited(container_id))

    def _post(self, message: object) -> None:
        self._inbox.put(message)
        self._wake.set()

    def _on_container_exited(
        self, session: Session, container_id: str, after_commit: list[Callable[[], object]]
    ) -> None:
        if container_id in self._harvesting:
            return
        ti = self._view.by_container(session, container_id)
        if ti is None or ti.container_id != container_id:
            return
        if TaskState(ti.state) not in ACTIVE_TASK_STATES:
            return
        if not self._owns(session, ti):
            return
        key = AttemptKey(ti.dag_id, ti.run_id, ti.task_id, ti.map_index, ti.try_number)
        ti_id = ti.id
        self._harvesting.add(container_id)
        after_commit.append(
            lambda: self._harvest_pool.submit(self._worker.harvest, ti_id, key, container_id)
        )

    def _on_lost(
        self,
        session: Session,
        message: Lost,
        now: datetime,
        report: TickReport,
        after_commit: list[Callable[[], object]],
    ) -> None:
        """Reconciliation found the attempt's container gone: fail the attempt (retried if
        retries remain), unless it ended meanwhile or its harvest is under way."""
        ti = self._view.ti(session, message.ti_id)
        if ti is None or ti.container_id != message.container_id:
            return
        if message.container_id is not None and message.container_id in self._harvesting:
            return
        end = AttemptEnd(exit_code=None, launch_error=message.detail)
        self._finish_attempt(
            session, message.ti_id, message.try_number, end, None, now, report, after_commit
        )

    def _run_control_tasks(self, session: Session, now: datetime, report: TickReport) -> bool:
        """Run the due tasks that need no container (empty, latest_only, trigger_run,
        wait_for_run) in this pass, and what they make ready, until none is left; True if
        any ran."""
        self._control_wake = None
        handled: set[int] = set()
        with_control = {  # DAGs of running runs that have such tasks
            run.dag_id
            for run in self._view.runs(session, RunState.RUNNING)
            if (spec := self._view.spec(session, run.dag_id)) is not None and spec.control_task_ids
        }
        while with_control:
            finished = 0
            for ti in self._view.ready(session, READY_STATES):
                if ti.dag_id not in with_control:
                    continue
                spec = self._view.spec(session, ti.dag_id)
                if spec is None or ti.task_id not in spec.control_task_ids or ti.id in handled:
                    continue
                task = spec.task(ti.task_id)
                waiting = ti.state == TaskState.UP_FOR_RESCHEDULE.value
                if waiting and ti.next_try_at is not None and ti.next_try_at > now:
                    self._control_wake = min(ti.next_try_at, self._control_wake or ti.next_try_at)
                    continue
                run = self._view.run_of(session, ti)
                if not self._run_filter(run):
                    continue
                handled.add(ti.id)
                step = self._control.run(
                    session, spec, task, run, ti, self._view.run_tis(session, run.id), now
                )
                if step.next_check_at is not None:
                    wake = step.next_check_at
                    self._control_wake = min(wake, self._control_wake or wake)
                if step.state.is_finished:
                    finished += 1
                if task.kind == TaskKind.TRIGGER_RUN:
                    self._runs.queued_seen = True  # start the new run without waiting for the poll
                    self._wake.set()
            if not finished:
                break
            report.finished += finished
            self._readiness.decide(session, now)
        return bool(handled)

    def _skip_tasks(
        self, session: Session, run_pk: int, task_ids: Iterable[str], detail: str, now: datetime
    ) -> None:
        """Skip these tasks of a run unless they already started (a branch or latest_only
        decided they do not run)."""
        wanted = set(task_ids)
        if not wanted:
            return
        for ti in self._view.run_tis(session, run_pk):
            if ti.task_id in wanted and ti.state in (TaskState.NONE, TaskState.SCHEDULED):
                ti.end_date = now
                self._set_state(session, ti, TaskState.SKIPPED, now, detail)

    def _seconds_until_next_event(self, now: datetime) -> float:
        """Sleep until the earliest retry or timeout the last pass saw, or the poll interval
        for runs queued by other processes; container exits wake the loop earlier."""
        wait = self._settings.trigger_poll_interval
        if self._claims is not None:  # its heartbeat is due once per claim interval
            wait = min(wait, self._claims.interval)
        if self._next_deadline is not None:
            wait = min(wait, (self._next_deadline - now).total_seconds())
        return max(wait, 0.0)

    # ----------------------------------------------------------------- helpers
    def _set_state(
        self,
        session: Session,
        ti: TaskInstanceRow,
        state: TaskState,
        now: datetime,
        detail: str | None = None,
    ) -> None:
        old = TaskState(ti.state)
        ti_store.set_ti_state(session, ti, state, now, detail)
        self._view.note_change(ti)
        self._pass_notices.extend(
            task_notices(
                self._settings,
                lambda: self._view.task(session, ti.dag_id, ti.task_id),
                ti,
                old,
                state,
                now,
                lambda: self._view.run_of(session, ti),
            )
        )
        if state.is_finished:
            self._pass_finished = True
        if self._listener is not None:
            key = AttemptKey(ti.dag_id, ti.run_id, ti.task_id, ti.map_index, ti.try_number)
            self._listener.on_state(key, state, detail)
