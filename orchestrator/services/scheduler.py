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
import shutil
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from orchestrator.errors import PolicyViolation, TemplateError
from orchestrator.models.specs import DagSpec, TaskKind, TaskSpec
from orchestrator.models.states import (
    ACTIVE_TASK_STATES,
    FINISHED_TASK_STATES,
    RunState,
    TaskState,
)
from orchestrator.runtime.base import ContainerRuntime, Subscription
from orchestrator.scheduling.attempts import AttemptEnd, Outcome, outcome
from orchestrator.scheduling.readiness import TaskView, decide, run_outcome
from orchestrator.scheduling.sensors import poke_outcome
from orchestrator.services import integrity, run_limits
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
from orchestrator.services.clearing import STOP_REQUESTS, requested_end
from orchestrator.services.clock import Clock, SystemClock
from orchestrator.services.containers import (
    AttemptKey,
    build_launch_request,
    container_name,
    instance_labels,
    log_path,
    output_dir,
    prepare_output_dir,
)
from orchestrator.services.control_tasks import ControlTasks, branch_outcome
from orchestrator.services.logs import LogFile
from orchestrator.services.mapping import (
    ReadinessViews,
    expand_task,
    instances_by_task,
    render_attempt,
    step_instances,
)
from orchestrator.services.notifications import (
    Notice,
    NotificationService,
    run_notices,
    task_notices,
)
from orchestrator.services.reconcile import Reconciler, ReconcileReport
from orchestrator.services.run_context import outputs_of, run_info
from orchestrator.services.run_planner import RunPlanner
from orchestrator.services.secrets import secret_source
from orchestrator.services.sla import SlaMonitor
from orchestrator.services.slots import SlotPlanner, Waiting
from orchestrator.services.slots import occupancy as slot_occupancy
from orchestrator.settings import Settings
from orchestrator.store import dags as dag_store
from orchestrator.store import runs as run_store
from orchestrator.store import sensor_pokes
from orchestrator.store import task_instances as ti_store
from orchestrator.store.tables import DagRow, DagRunRow, TaskAttemptRow, TaskInstanceRow

log = logging.getLogger(__name__)

#: Passes one tick makes at most while workers keep answering at once.
_MAX_PASSES_PER_TICK = 50
#: Task states in which an instance is done.
_FINISHED_STATES = frozenset(state.value for state in FINISHED_TASK_STATES)
#: Task states that wait for a time (a retry delay, a sensor's next poke).
_WAITING_STATES = frozenset({TaskState.UP_FOR_RETRY.value, TaskState.UP_FOR_RESCHEDULE.value})


class InlineExecutor(Executor):
    """Runs submitted work at once in the caller's thread (deterministic unit tests)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)
        return future


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
    """The scheduler's in-memory pass state before a message was handled (see `_handle_all`)."""

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
    ) -> None:
        self._settings = settings
        # scheduled runs are created by the general scheduler only (not `dags test`'s)
        if plan_runs is None:
            plan_runs = run_filter is None
        self._planner = RunPlanner(settings.max_runs_created_per_pass) if plan_runs else None
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
        self._run_filter = run_filter or (lambda run: run.run_type != "test")
        self._owns_notifications = notifications is None
        self._notifications = notifications or NotificationService(
            settings=settings,
            sessions=sessions,
            runtime=runtime,
            clock=self._clock,
            executor=executor,
        )
        self._pass_notices: list[Notice] = []  # sent once the pass's transaction committed
        self._sla = SlaMonitor(settings)
        self._inbox: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._subscription: Subscription | None = None
        self._harvesting: set[str] = set()
        self._stopping: set[str] = set()  # containers stopped on request (clear, mark)
        self._next_deadline: datetime | None = None
        # caches for one pass (one session): specs by dag id, task instances by run
        self._pass_specs: dict[str, DagSpec | None] = {}
        # the task instances of running runs, kept across passes (see `_refresh_cache`)
        self._run_cache: dict[int, list[TaskInstanceRow]] = {}
        # per cached run: its list, its length, instances by task, mapped instances by task
        self._run_index: dict[
            int,
            tuple[
                list[TaskInstanceRow],
                int,
                dict[str, TaskInstanceRow],
                dict[str, dict[int, TaskInstanceRow]],
            ],
        ] = {}
        # per run: tasks whose instances changed since the run's last readiness decision
        self._changed_tasks: dict[int, set[str]] = {}
        self._session: Session | None = None
        self._pass_finished = False
        self._pass_running: list[DagRunRow] | None = None
        self._pass_attempts: dict[tuple[int, int], TaskAttemptRow] = {}
        self._pass_outputs: dict[int, dict[str, Any]] = {}  # by run, for this pass's launches
        self._pass_targets: dict[str, str] | None = None  # DAGs' spec hashes, read once a pass
        self._task_index: dict[int, dict[str, TaskSpec]] = {}
        self._specs: dict[str, tuple[str, DagSpec]] = {}
        self._control = ControlTasks(settings, self._set_state, self._skip_tasks)
        self._control_wake: datetime | None = None  # the next check of a waiting control task
        self._slots = SlotPlanner(settings.parallelism)
        # Which runs a pass looks at: all of them in a sweep, else those whose task instances
        # changed (see `_sweep_due`).
        self._sweeping = True
        self._last_sweep: datetime | None = None
        self._touched: set[int] = set()  # runs whose task instances changed this pass
        self._changed: set[int] = set()  # ... and in the pass before
        self._runs_held = False  # queued runs wait for max_active_runs or a pause
        self._reconciler = Reconciler(
            settings=settings,
            sessions=sessions,
            runtime=runtime,
            worker=self._worker,
            launch=self._submit_launch,
            post=self._post,
            owns=self._run_filter,
            busy_containers=lambda: self._harvesting | self._stopping,
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
            self._notifications.close()
        if self._session is not None:
            self._session.close()
            self._session = None

    def wake(self) -> None:
        """Make a waiting `run_forever` tick at once."""
        self._wake.set()

    def run_forever(self, stop: threading.Event, on_tick: Callable[[], None] | None = None) -> None:
        """Tick until `stop` is set, sleeping only until the next thing can happen.
        Reconciles with the engine first, and then every `reconcile_interval`."""
        self.start()
        while not stop.is_set():
            self._wake.clear()
            now = self._clock.now()
            try:
                self._reconciler.run_if_due(now)
                self.tick(now)
                if on_tick is not None:
                    on_tick()
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

        A pass is one transaction: the inbox's messages (each in a savepoint, so a bad one is
        logged and skipped), run starts, timeouts, readiness, new attempts and finished runs.
        Work that must wait for the commit (launching, removing containers) follows it. Passes
        repeat while workers have already answered (always so with an inline executor).
        """
        report = TickReport()
        for number in range(_MAX_PASSES_PER_TICK):
            messages = self._take_inbox()
            after_commit: list[Callable[[], object]] = []
            self._sweeping = self._sweep_due(now, first=number == 0, messages=bool(messages))
            before = self._pass_memory(report, after_commit)
            session = self._long_session()
            try:
                launches, deadlines = self._pass(session, messages, now, report, after_commit)
            except StaleDataError as exc:  # another process wrote a row this pass wrote over
                log.warning("a task instance changed under the pass; doing it again: %s", exc)
                self._restore_pass_memory(before, report, after_commit)
                self._forget_everything(session)
                self._last_sweep = None  # the next pass sweeps
                for message in messages:
                    self._inbox.put(message)
                continue
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
    ) -> tuple[list[LaunchJob], list[datetime | None]]:
        """One pass, one transaction; returns the launches to submit once it committed and
        the times something becomes due."""
        with session.begin():
            self._pass_specs, self._pass_finished, self._pass_targets = {}, False, None
            self._pass_running = None
            self._pass_notices = []
            self._pass_attempts, self._pass_outputs = {}, {}
            self._changed, self._touched = self._touched, set()
            self._refresh_cache(session)
            self._handle_all(session, messages, now, report, after_commit)
            plan_at = self._plan_runs(session, now, report)
            started = self._start_queued_runs(session, now)
            report.runs_started += started
            self._sweeping = self._sweeping or bool(started)
            run_timeout_at = self._fail_timed_out_runs(session, now, report)
            self._verify_integrity(session, now)
            deadline = self._enforce_timeouts(session, now, after_commit)
            retry_at = self._decide_readiness(session, now)
            failed_early = report.finished
            launches = self._queue_launches(session, now, report)
            pokes, poke_at = self._repoke_sensors(session, now, report)
            launches += pokes
            if report.finished != failed_early:  # template errors: propagate them now
                self._decide_readiness(session, now)
            sla_at = self._check_slas(session, now)
            if self._pass_finished or started:
                self._finish_runs(session, now, report)
                if self._runs_held and report.runs_finished:
                    self._wake.set()  # a run ended: a held-back queued run may start now
        deadlines = [deadline, retry_at, poke_at, sla_at, self._control_wake, plan_at]
        return launches, [*deadlines, run_timeout_at]

    # ----------------------------------------------------------------- the long-lived session
    def _long_session(self) -> Session:
        """The session every pass uses, kept between passes with what it loaded (objects stay
        usable after commit), so a pass reads only what changed: see `_refresh_cache`."""
        if self._session is None:
            self._session = self._sessions()
        return self._session

    def _refresh_cache(self, session: Session) -> None:
        """Make what the session kept from earlier passes current.

        A sweep forgets everything (other processes may have cleared, marked or triggered).
        Other passes compare each cached run's count and sum of task instance versions with
        the store (one row per run), then the versions of the runs that differ, and reload
        the changed instances; runs no longer running leave the cache. Every write bumps a
        task instance's version, and the ORM refuses a write over a stale one
        (StaleDataError: the pass is done again), so nothing is overwritten.
        """
        if self._sweeping:
            self._forget_everything(session)
            return
        if not self._run_cache:
            return
        running = {run.id for run in self._runs(session, RunState.RUNNING)}
        for run_pk in [pk for pk in self._run_cache if pk not in running]:
            for ti in self._run_cache.pop(run_pk):
                session.expire(ti)
            self._run_index.pop(run_pk, None)
            self._changed_tasks.pop(run_pk, None)
        sums = run_store.ti_version_sums(session, list(self._run_cache))
        changed_runs = [
            pk
            for pk, tis in self._run_cache.items()
            if sums.get(pk) != (len(tis), sum(ti.version for ti in tis))
        ]
        versions = run_store.ti_versions(session, changed_runs) if changed_runs else {}
        stale: list[int] = []
        for run_pk in changed_runs:
            tis = self._run_cache[run_pk]
            stored = versions.get(run_pk, {})
            if len(stored) != len(tis):  # instances added or deleted elsewhere: load again
                del self._run_cache[run_pk]
                for ti in tis:
                    session.expire(ti)
                continue
            stale += [ti.id for ti in tis if stored.get(ti.id) != ti.version]
        for ti in ti_store.tis_by_ids(session, stale, fresh=True) if stale else ():
            self._changed_tasks.setdefault(ti.dag_run_id, set()).add(ti.task_id)

    def _forget_everything(self, session: Session) -> None:
        session.expire_all()
        self._run_cache.clear()
        self._run_index.clear()
        self._changed_tasks.clear()  # a sweep decides about every task of every run

    def _sweep_due(self, now: datetime, *, first: bool, messages: bool) -> bool:
        """Whether this pass looks at every running run rather than only the changed ones.

        Passes driven by the scheduler's own events (container exits, launches) only need
        the runs those events touched. Every other pass sweeps: the first pass of a tick
        that no event started (a poll, a wake-up: other processes may have cleared or marked
        tasks), a pass at or after a retry, reschedule or timeout deadline, and at least one
        pass per `trigger_poll_interval`.
        """
        due = (
            self._last_sweep is None
            or (first and not messages)
            or (self._next_deadline is not None and now >= self._next_deadline)
            or (now - self._last_sweep).total_seconds() >= self._settings.trigger_poll_interval
        )
        if due:
            self._last_sweep = now
        return due

    def _watched(self, runs: list[DagRunRow]) -> list[DagRunRow]:
        """The running runs this pass decides about (see `_sweep_due`)."""
        if self._sweeping:
            return runs
        return [run for run in runs if run.id in self._changed or run.id in self._touched]

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
    ) -> None:
        """Handle the inbox's messages in one savepoint; if one fails, roll back and handle
        them again one savepoint each, so only the bad one is logged and skipped.

        Messages are handled without autoflush (their changes are flushed once, when the
        savepoint ends): they look rows up by key, and what one message changes never decides
        what a query for the next one finds."""
        self._prefetch(session, messages)  # also makes the rows they name current
        if len(messages) > 1:
            saved = self._pass_memory(report, after_commit)
            try:
                with session.begin_nested(), session.no_autoflush:
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
                with session.begin_nested(), session.no_autoflush:
                    self._handle(session, message, now, report, after_commit)
            except StaleDataError:
                raise
            except Exception:
                self._restore_pass_memory(saved, report, after_commit)
                log.exception("could not handle %r", message)

    def _prefetch(self, session: Session, messages: list[object]) -> None:
        """Load the task instances, runs and attempts the messages name in a few queries, so
        handling each message finds them in the session instead of querying one by one."""
        kinds = Launched | LaunchFailed | Harvested | Lost
        ti_ids = {m.ti_id for m in messages if isinstance(m, kinds)}
        containers = [m.container_id for m in messages if isinstance(m, Exited)]
        with session.no_autoflush:
            tis = ti_store.tis_by_ids(session, ti_ids, fresh=True)
            tis += ti_store.tis_by_containers(session, containers, fresh=True)
            run_store.runs_by_ids(session, {ti.dag_run_id for ti in tis})
            keys = [(ti.id, ti.try_number) for ti in tis]
            self._pass_attempts.update(ti_store.attempts_by_keys(session, keys))

    def _pass_memory(
        self, report: TickReport, after_commit: list[Callable[[], object]]
    ) -> _PassMemory:
        """What handling a message changes outside the database, to undo on rollback."""
        return _PassMemory(
            notices=len(self._pass_notices),
            actions=len(after_commit),
            report=dataclasses.replace(report, runs_finished=list(report.runs_finished)),
            harvesting=set(self._harvesting),
            stopping=set(self._stopping),
            finished=self._pass_finished,
        )

    def _restore_pass_memory(
        self, saved: _PassMemory, report: TickReport, after_commit: list[Callable[[], object]]
    ) -> None:
        del self._pass_notices[saved.notices :]  # rolled back: nothing to tell
        del after_commit[saved.actions :]
        report.__dict__.update(saved.report.__dict__)
        self._harvesting, self._stopping = saved.harvesting, saved.stopping
        self._pass_finished = saved.finished
        # may hold rows the rollback discarded
        self._run_cache, self._pass_running, self._pass_attempts = {}, None, {}
        self._run_index = {}
        self._last_sweep = None  # what changed is no longer known for sure: sweep next

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
            ti = session.get(TaskInstanceRow, message.ti_id)
            if ti is None or ti.try_number != message.try_number:
                return
            if ti.state == TaskState.QUEUED.value:
                ti.start_date = message.started_at
                self._set_state(session, ti, TaskState.RUNNING, message.started_at)
                attempt = self._attempt(session, ti.id, ti.try_number)
                if attempt is not None:
                    attempt.start_date = message.started_at
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
    def _spec(self, session: Session, dag_id: str) -> DagSpec | None:
        """The DAG's latest spec, checked once per pass (parsed again only when it changed)."""
        if dag_id in self._pass_specs:
            return self._pass_specs[dag_id]
        spec: DagSpec | None = None
        known = self._target(session, dag_id)
        if known is not None:
            cached = self._specs.get(dag_id)
            if cached is not None and known in (cached[0], dag_store.INACTIVE):
                spec = cached[1]
            else:  # new or changed on disk
                row = session.get(DagRow, dag_id, populate_existing=True)
                if row is not None:
                    spec = DagSpec.model_validate_json(row.spec_json)
                    self._specs[dag_id] = (row.spec_hash, spec)
        self._pass_specs[dag_id] = spec
        return spec

    def _target(self, session: Session, dag_id: str) -> str | None:
        """The DAG's spec hash (`inactive` when its file is gone; None when unknown), read for
        every DAG at once, once per pass."""
        if self._pass_targets is None:
            self._pass_targets = dag_store.integrity_targets(session)
        return self._pass_targets.get(dag_id)

    def _integrity_target(self, session: Session, dag_id: str) -> str:
        """What a run of the DAG must be checked against (see `integrity.target_hash`)."""
        target = self._target(session, dag_id)
        return integrity.NO_SPEC if target in (None, dag_store.INACTIVE) else target

    def _task(self, session: Session, dag_id: str, task_id: str) -> TaskSpec | None:
        """A task of the DAG's latest spec, or None if the DAG or the task is gone."""
        spec = self._spec(session, dag_id)
        if spec is None:
            return None
        index = self._task_index.get(id(spec))
        if index is None:
            index = {t.task_id: t for t in spec.tasks}
            self._task_index = {id(spec): index}  # one DAG's index is enough to keep warm
        return index.get(task_id)

    def _run_tis(self, session: Session, run_pk: int) -> list[TaskInstanceRow]:
        """A run's task instances, loaded once and kept current (see `_refresh_cache`)."""
        tis = self._run_cache.get(run_pk)
        if tis is None:
            tis = self._run_cache[run_pk] = run_store.task_instances(session, run_pk)
        return tis

    def _load_tis(self, session: Session, runs: Iterable[DagRunRow]) -> None:
        """Load the task instances of these runs that are not cached, together."""
        missing = {run.id for run in runs} - self._run_cache.keys()
        if len(missing) > 1:
            self._run_cache.update(run_store.task_instances_of_runs(session, missing))

    def _runs(self, session: Session, state: RunState) -> list[DagRunRow]:
        """Runs in `state` that this scheduler executes (running ones: read once per pass)."""
        if state == RunState.RUNNING and self._pass_running is not None:
            return [r for r in self._pass_running if r.state == RunState.RUNNING.value]
        runs = [r for r in run_store.runs_in_states(session, [state]) if self._run_filter(r)]
        if state == RunState.RUNNING:
            self._pass_running = runs
        return runs

    def _attempt(self, session: Session, ti_id: int, try_number: int) -> TaskAttemptRow | None:
        """The attempt row of a try. It was stored when the try was queued, in an earlier
        pass, so the query need not flush this pass's changes first (flushing per message
        would cost more than the whole message)."""
        attempt = self._pass_attempts.get((ti_id, try_number))
        if attempt is not None:
            return attempt
        with session.no_autoflush:
            return ti_store.get_attempt(session, ti_id, try_number)

    def _owns(self, session: Session, ti: TaskInstanceRow) -> bool:
        return self._run_filter(ti_store.get_run_of(session, ti))

    def _start_queued_runs(self, session: Session, now: datetime) -> int:
        """Start queued runs, oldest logical date first, within `max_active_runs` and
        skipping paused DAGs (see `run_limits`)."""
        started = 0
        queued = self._runs(session, RunState.QUEUED)
        running = self._runs(session, RunState.RUNNING) if queued else []
        spec_of = partial(self._spec, session)
        startable = run_limits.startable_runs(session, queued, running, spec_of)
        self._runs_held = len(startable) < len(queued)
        for run in startable:
            run_store.set_run_state(session, run, RunState.RUNNING, now)
            started += 1
            if self._listener is not None:
                self._listener.on_run(run.dag_id, run.run_id, RunState.RUNNING)
        if started:
            self._pass_running = None
        return started

    # ----------------------------------------------------------------- run planning and limits
    def _plan_runs(self, session: Session, now: datetime, report: TickReport) -> datetime | None:
        """Create the scheduled runs due now (see `run_planner`); return when next to plan."""
        if self._planner is None:
            return None
        planned = self._planner.plan(session, now, partial(self._spec, session))
        report.runs_created += len(planned.created)
        return planned.next_at

    def _fail_timed_out_runs(
        self, session: Session, now: datetime, report: TickReport
    ) -> datetime | None:
        """Fail running runs past their dagrun_timeout; return the next such timeout."""
        running = self._runs(session, RunState.RUNNING)
        spec_of = partial(self._spec, session)
        failed, next_at = run_limits.fail_timed_out_runs(session, running, spec_of, now)
        for item in failed:
            run = item.run
            spec = self._spec(session, run.dag_id)
            self._pass_notices.extend(
                run_notices(spec, run, RunState.RUNNING, RunState.FAILED, now)
            )
            report.runs_finished.append((run.dag_id, run.run_id, RunState.FAILED))
            if self._listener is not None:
                self._listener.on_run(run.dag_id, run.run_id, RunState.FAILED)
        return next_at

    def _verify_integrity(self, session: Session, now: datetime) -> None:
        """Match running runs' task instances to their DAG's latest spec when it changed or
        the DAG is gone (see `scheduling.integrity`)."""
        for run in self._runs(session, RunState.RUNNING):
            target = self._integrity_target(session, run.dag_id)
            if run.spec_hash == target:
                continue
            spec = self._spec(session, run.dag_id) if target != integrity.NO_SPEC else None
            tis = self._run_tis(session, run.id)
            if integrity.sync_run(session, run, spec, tis, now, self._set_state).add:
                self._run_cache.pop(run.id, None)
                self._touched.add(run.id)
            run.spec_hash = target

    def _decide_readiness(self, session: Session, now: datetime) -> datetime | None:
        """Apply readiness decisions; return the earliest pending retry (or reschedule) time."""
        earliest: datetime | None = None
        running = self._watched(self._runs(session, RunState.RUNNING))
        self._load_tis(session, running)
        for run in running:
            spec = self._spec(session, run.dag_id)
            if spec is None:
                continue
            by_task, instances, rebuilt = self._index(run.id, self._run_tis(session, run.id))
            views = ReadinessViews(by_task, instances)
            waiting = [
                ti
                for tid, ti in by_task.items()
                if ti.state in _WAITING_STATES and tid not in instances
            ]
            changed = self._changed_tasks.pop(run.id, set())
            only = None if self._sweeping or rebuilt else self._candidates(spec, changed, waiting)
            previous = self._previous_states(session, spec, run, views)
            decisions = decide(spec, views, now, previous, only)
            pending = [ti.next_try_at for ti in waiting if ti.next_try_at and ti.next_try_at > now]
            if instances:
                instance_retry = step_instances(session, by_task, instances, now, self._set_state)
                pending += [instance_retry] if instance_retry else []
            earliest = min([*pending, earliest] if earliest else pending, default=None)
            for task_id in decisions.schedule:
                task = self._task(session, run.dag_id, task_id)
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

    def _index(
        self, run_pk: int, tis: list[TaskInstanceRow]
    ) -> tuple[dict[str, TaskInstanceRow], dict[str, dict[int, TaskInstanceRow]], bool]:
        """A run's task instances by task (and mapped instances by task and index), kept
        while its cached list is unchanged; True when built anew."""
        entry = self._run_index.get(run_pk)
        if entry is not None and entry[0] is tis and entry[1] == len(tis):
            return entry[2], entry[3], False
        by_task = {ti.task_id: ti for ti in tis if ti.map_index == -1}
        instances = instances_by_task(tis)
        self._run_index[run_pk] = (tis, len(tis), by_task, instances)
        return by_task, instances, True

    @staticmethod
    def _candidates(spec: DagSpec, changed: set[str], waiting: list[TaskInstanceRow]) -> set[str]:
        """The tasks whose readiness may have changed since the run's last decision: those
        whose instances changed and their children, those waiting out a retry or reschedule,
        and those that depend on the past (the previous run changes outside this run)."""
        only = set(changed)
        for task_id in changed:
            only.update(spec.downstream_map.get(task_id, ()))
        only.update(ti.task_id for ti in waiting)
        only.update(task.task_id for task in spec.tasks if task.depends_on_past)
        return only

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
        tis = self._run_tis(session, run.id)
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

    def _finish_runs(self, session: Session, now: datetime, report: TickReport) -> None:
        for run in self._watched(self._runs(session, RunState.RUNNING)):
            tis = self._run_tis(session, run.id)
            # later instances are downstream ones: an unfinished run shows it at once there
            if any(ti.state not in _FINISHED_STATES for ti in reversed(tis)):
                continue
            views = {ti.task_id: TaskView(TaskState(ti.state)) for ti in tis if ti.map_index == -1}
            state = run_outcome(self._spec(session, run.dag_id), views)
            if state is None:
                continue
            old = RunState(run.state)
            run_store.set_run_state(session, run, state, now)
            spec = self._spec(session, run.dag_id)
            self._pass_notices.extend(run_notices(spec, run, old, state, now))
            report.runs_finished.append((run.dag_id, run.run_id, state))
            if self._listener is not None:
                self._listener.on_run(run.dag_id, run.run_id, state)

    def _check_slas(self, session: Session, now: datetime) -> datetime | None:
        """Record and notify SLA misses of running runs; return the next SLA deadline."""
        runs = (
            (spec, run)
            for run in self._runs(session, RunState.RUNNING)
            if (spec := self._spec(session, run.dag_id)) is not None
        )
        tis_of = partial(self._run_tis, session)
        notices, next_deadline = self._sla.check(session, runs, tis_of, now)
        self._pass_notices.extend(notices)
        return next_deadline

    # ----------------------------------------------------------------- launching
    def _queue_launches(
        self, session: Session, now: datetime, report: TickReport
    ) -> list[LaunchJob]:
        self._run_control_tasks(session, now, report)  # no container, no slot: before the count
        held = slot_occupancy(session)
        if held.total >= self._settings.parallelism:
            return []
        runs: dict[int, DagRunRow] = {}
        waiting = []
        for ti in ti_store.tis_in_states(session, [TaskState.SCHEDULED]):
            if ti.dag_run_id not in runs:
                runs[ti.dag_run_id] = ti_store.get_run_of(session, ti)
            run = runs[ti.dag_run_id]
            task = self._task(session, ti.dag_id, ti.task_id)
            spec = self._spec(session, ti.dag_id)
            if task is None or task.kind != TaskKind.CONTAINER:
                continue  # tasks without a container were run before the slot count
            if self._run_filter(run) and spec is not None:
                waiting.append(Waiting(ti, run, spec, task))
        chosen = self._slots.choose(session, waiting, self._spec_version, held)
        self._load_tis(session, [item.run for item in chosen])  # rendering reads outputs
        jobs: list[LaunchJob] = []
        for item in chosen:
            job = self._prepare_attempt(
                session, item.spec, item.task, item.run, item.ti, now, report
            )
            if job is not None:
                jobs.append(job)
        return jobs

    def _spec_version(self, dag_id: str) -> str:
        """The hash of the DAG's spec read this pass (keys caches derived from the spec)."""
        cached = self._specs.get(dag_id)
        return cached[0] if cached is not None else ""

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
        """Render and persist a new attempt (name, rendered fields, log path) before launch.

        A sensor's next poke after "not yet" continues its try: same try number, same attempt
        row and log file, a new container (`-p<poke>` in its name) and a new poke row. In poke
        mode the task instance stays `running` (its slot held) while the poke is launched.
        """
        holding_slot = ti.state == TaskState.RUNNING.value
        continuing = task.sensor is not None and (
            holding_slot or sensor_pokes.continues_try(session, ti)
        )
        if not continuing:
            ti.try_number += 1
        poke = sensor_pokes.next_poke_number(session, ti.id, ti.try_number) if task.sensor else 0
        key = AttemptKey(ti.dag_id, ti.run_id, ti.task_id, ti.map_index, ti.try_number, poke)
        path = log_path(self._settings, key)
        info = run_info(spec, run)
        outputs = self._pass_outputs.get(run.id)
        if outputs is None:  # the same for every launch of the run in this pass
            outputs = self._pass_outputs[run.id] = outputs_of(self._run_tis(session, run.id))
        name = container_name(self._settings.instance_name, key)
        if poke:
            sensor_pokes.begin_poke(session, ti.id, ti.try_number, poke, name, now)
            LogFile(path).write_line(f"[orchestrator] poke {poke} of try {ti.try_number}: {name}")
        host_output = output_dir(self._settings, key)
        try:
            secrets = secret_source(self._settings, session)
            rendered = render_attempt(spec, task, info, ti, outputs, secrets)
            request = build_launch_request(self._settings, task, rendered, key, info, host_output)
        except (TemplateError, PolicyViolation) as exc:
            message = str(exc)
            what = "template error" if isinstance(exc, TemplateError) else "refused by policy"
            self._record_attempt(
                session,
                ti,
                continuing,
                state=TaskState.FAILED.value,
                rendered={},
                container_name=name,
                detail=message,
                log_path=str(path),
                queued_at=now,
                end_date=now,
            )
            LogFile(path).write_line(f"[orchestrator] {what}: {message}")
            ti.queued_at, ti.end_date, ti.container_name, ti.container_id = now, now, name, None
            ti.exit_code, ti.output_json, ti.next_try_at = None, None, None
            if not holding_slot:
                self._set_state(session, ti, TaskState.QUEUED, now)
            self._set_state(session, ti, TaskState.FAILED, now, f"{what}: {message}")
            report.finished += 1
            return None
        prepare_output_dir(host_output)
        self._record_attempt(
            session,
            ti,
            continuing,
            state=TaskState.RUNNING.value if holding_slot else TaskState.QUEUED.value,
            rendered=rendered.model_dump(mode="json"),
            container_name=request.name,
            container_id=None,
            exit_code=None,
            detail=None,
            output_json=None,
            end_date=None,
            log_path=str(path),
            queued_at=now,
        )
        # a poke-mode sensor's next poke counts its execution_timeout from now
        ti.queued_at, ti.start_date, ti.end_date = now, now if holding_slot else None, None
        ti.container_name, ti.container_id, ti.stop_reason = request.name, None, None
        ti.exit_code, ti.output_json, ti.next_try_at = None, None, None
        if not holding_slot:
            self._set_state(session, ti, TaskState.QUEUED, now)
        return LaunchJob(ti.id, key, request, path)

    def _record_attempt(
        self, session: Session, ti: TaskInstanceRow, continuing: bool, **values: Any
    ) -> None:
        """Add the attempt row of a new try, or update it for the next poke of the same try
        (keeping when the try was first queued)."""
        attempt = self._attempt(session, ti.id, ti.try_number) if continuing else None
        if attempt is None:
            session.add(TaskAttemptRow(ti_id=ti.id, try_number=ti.try_number, **values))
            return
        values.pop("queued_at", None)
        for column, value in values.items():
            setattr(attempt, column, value)

    def _repoke_sensors(
        self, session: Session, now: datetime, report: TickReport
    ) -> tuple[list[LaunchJob], datetime | None]:
        """Launch the next poke of poke-mode sensors whose interval passed (they hold their
        slot, so they need no free one); return the launches and the next poke due."""
        jobs: list[LaunchJob] = []
        earliest: datetime | None = None
        for ti in sensor_pokes.sleeping_pokers(session):
            due = ti.next_try_at
            if due is None or not self._owns(session, ti):
                continue
            if due > now:
                earliest = due if earliest is None else min(earliest, due)
                continue
            spec = self._spec(session, ti.dag_id)
            task = self._task(session, ti.dag_id, ti.task_id)
            if spec is None or task is None:
                continue
            run = ti_store.get_run_of(session, ti)
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
        with session.no_autoflush:  # container ids are stored by workers, never pending here
            ti = ti_store.ti_by_container(session, container_id)
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
        ti = session.get(TaskInstanceRow, message.ti_id)
        if ti is None or ti.container_id != message.container_id:
            return
        if message.container_id is not None and message.container_id in self._harvesting:
            return
        end = AttemptEnd(exit_code=None, launch_error=message.detail)
        self._finish_attempt(
            session, message.ti_id, message.try_number, end, None, now, report, after_commit
        )

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
        ti = session.get(TaskInstanceRow, ti_id)
        if ti is None or ti.try_number != try_number:
            return
        if TaskState(ti.state) not in ACTIVE_TASK_STATES:
            return
        spec = self._spec(session, ti.dag_id)
        dag_active = self._integrity_target(session, ti.dag_id) != integrity.NO_SPEC
        if spec is None or ti.task_id not in spec.task_ids or not dag_active:
            attempt = self._attempt(session, ti.id, try_number)
            integrity.finish_removed_attempt(
                session,
                ti,
                attempt,
                end,
                output_json,
                dag_active=dag_active,
                now=now,
                set_state=self._set_state,
            )
            report.finished += 1
            key = AttemptKey(ti.dag_id, ti.run_id, ti.task_id, ti.map_index, ti.try_number)
            folder = output_dir(self._settings, key)
            after_commit.append(lambda: shutil.rmtree(folder, ignore_errors=True))
            return
        task = spec.task(ti.task_id)
        if ti.stop_reason == "timeout":
            end = AttemptEnd(
                exit_code=end.exit_code,
                timed_out=True,
                timeout=task.execution_timeout,
            )
        result = (
            self._poke_outcome(session, ti, task, end, now)
            if task.sensor is not None
            else outcome(task, end, try_number, now, ti.max_tries)
        )
        result, not_chosen = branch_outcome(spec, task, result, output_json)
        attempt_result = result  # how the attempt itself ended
        requested = requested_end(ti)
        if requested is not None:  # cleared or marked while running: the request wins
            result, not_chosen = Outcome(requested[0], requested[1]), ()
            self._stopping.discard(ti.container_id or "")
            ti.stop_reason = None
        waiting = result.state in (TaskState.RUNNING, TaskState.UP_FOR_RESCHEDULE)
        key = AttemptKey(ti.dag_id, ti.run_id, ti.task_id, ti.map_index, ti.try_number)
        path = log_path(self._settings, key)
        if waiting:
            LogFile(path).write_line(f"[orchestrator] {result.detail}")
        elif result.state != TaskState.SUCCESS:
            LogFile(path).write_line(f"[orchestrator] {result.state.value}: {result.detail}")
        if ti.state == TaskState.QUEUED.value and end.launch_error is None:
            ti.start_date = ti.start_date or now
            self._set_state(session, ti, TaskState.RUNNING, now)
        ti.exit_code = end.exit_code
        ti.output_json = output_json if result.state == TaskState.SUCCESS else None
        ti.end_date = None if result.state in (TaskState.RUNNING, TaskState.NONE) else now
        ti.next_try_at = result.next_try_at
        if result.state == TaskState.RUNNING:  # a poke-mode sensor between pokes
            ti.container_id, ti.state_detail = None, result.detail
        attempt = self._attempt(session, ti.id, try_number)
        if attempt is not None:
            attempt.state = attempt_result.state.value
            attempt.exit_code = end.exit_code
            attempt.oom_killed = end.oom_killed
            attempt.timed_out = end.timed_out
            attempt.detail = attempt_result.detail
            if requested is not None:
                attempt.detail += f"; {result.detail}"
            attempt.output_json = output_json
            attempt.end_date = now
        self._set_state(session, ti, result.state, now, result.detail)
        self._skip_tasks(session, ti.dag_run_id, not_chosen, f"skipped by branch {ti.task_id}", now)
        report.finished += 1
        folder = output_dir(self._settings, key)
        after_commit.append(lambda: shutil.rmtree(folder, ignore_errors=True))

    def _run_control_tasks(self, session: Session, now: datetime, report: TickReport) -> None:
        """Run the due tasks that need no container (empty, latest_only, trigger_run,
        wait_for_run) in this pass, and what they make ready, until none is left."""
        self._control_wake = None
        handled: set[int] = set()
        while True:
            finished = 0
            for ti in ti_store.tis_in_states(
                session, [TaskState.SCHEDULED, TaskState.UP_FOR_RESCHEDULE]
            ):
                task = self._task(session, ti.dag_id, ti.task_id)
                if task is None or task.kind == TaskKind.CONTAINER or ti.id in handled:
                    continue
                waiting = ti.state == TaskState.UP_FOR_RESCHEDULE.value
                if waiting and ti.next_try_at is not None and ti.next_try_at > now:
                    self._control_wake = min(ti.next_try_at, self._control_wake or ti.next_try_at)
                    continue
                run = ti_store.get_run_of(session, ti)
                spec = self._spec(session, ti.dag_id)
                if spec is None or not self._run_filter(run):
                    continue
                handled.add(ti.id)
                step = self._control.run(
                    session, spec, task, run, ti, self._run_tis(session, run.id), now
                )
                if step.next_check_at is not None:
                    wake = step.next_check_at
                    self._control_wake = min(wake, self._control_wake or wake)
                if step.state.is_finished:
                    finished += 1
                if task.kind == TaskKind.TRIGGER_RUN:
                    self._wake.set()  # start the new run without waiting for the poll
            if not finished:
                return
            report.finished += finished
            self._decide_readiness(session, now)

    def _skip_tasks(
        self, session: Session, run_pk: int, task_ids: Iterable[str], detail: str, now: datetime
    ) -> None:
        """Skip these tasks of a run unless they already started (a branch or latest_only
        decided they do not run)."""
        wanted = set(task_ids)
        if not wanted:
            return
        for ti in self._run_tis(session, run_pk):
            if ti.task_id in wanted and ti.state in (TaskState.NONE, TaskState.SCHEDULED):
                ti.end_date = now
                self._set_state(session, ti, TaskState.SKIPPED, now, detail)

    def _poke_outcome(
        self, session: Session, ti: TaskInstanceRow, task: TaskSpec, end: AttemptEnd, now: datetime
    ) -> Outcome:
        """Decide what follows a sensor's poke, and record the poke's end."""
        done = sensor_pokes.pokes(session, ti.id, ti.try_number)
        first_poke_at = done[0].queued_at if done else now
        poke_number = done[-1].poke_number if done else 1
        result = poke_outcome(task, end, ti.try_number, poke_number, first_poke_at, now)
        if done:
            last = done[-1]
            last.state, last.exit_code = result.state.value, end.exit_code
            last.detail, last.end_date = result.detail, now
        return result

    # ----------------------------------------------------------------- timeouts
    def _enforce_timeouts(
        self, session: Session, now: datetime, after_commit: list[Callable[[], object]]
    ) -> datetime | None:
        """Stop containers past their execution_timeout; return the next timeout due."""
        earliest: datetime | None = None
        for ti in ti_store.tis_in_states(session, [TaskState.RUNNING]):
            if ti.stop_reason in STOP_REQUESTS:
                self._stop_on_request(session, ti, after_commit)
                continue
            if ti.stop_reason or ti.container_id is None or ti.start_date is None:
                continue
            task = self._task(session, ti.dag_id, ti.task_id)
            limit = task.execution_timeout if task is not None else None
            if limit is None or not self._owns(session, ti):
                continue
            due = ti.start_date + limit
            if now < due:
                earliest = due if earliest is None else min(earliest, due)
                continue
            ti.stop_reason = "timeout"
            key = AttemptKey(ti.dag_id, ti.run_id, ti.task_id, ti.map_index, ti.try_number)
            LogFile(log_path(self._settings, key)).write_line(
                f"[orchestrator] execution_timeout of {limit.total_seconds():g}s reached:"
                f" stopping the container (SIGTERM, then SIGKILL after"
                f" {self._settings.stop_grace_period:g}s)"
            )
            cid = ti.container_id
            after_commit.append(partial(self._harvest_pool.submit, self._worker.stop, cid))
        return earliest

    def _stop_on_request(
        self, session: Session, ti: TaskInstanceRow, after_commit: list[Callable[[], object]]
    ) -> None:
        """Stop a container whose task instance was cleared or marked (see `clearing`); its
        harvest then applies the requested state. Asked once per container and process."""
        cid = ti.container_id
        if cid is None or cid in self._stopping or not self._owns(session, ti):
            return
        self._stopping.add(cid)
        key = AttemptKey(ti.dag_id, ti.run_id, ti.task_id, ti.map_index, ti.try_number)
        LogFile(log_path(self._settings, key)).write_line(
            f"[orchestrator] {ti.state_detail or ti.stop_reason}: stopping the container"
            f" (SIGTERM, then SIGKILL after {self._settings.stop_grace_period:g}s)"
        )
        after_commit.append(partial(self._harvest_pool.submit, self._worker.stop, cid))

    def _seconds_until_next_event(self, now: datetime) -> float:
        """Sleep until the earliest retry or timeout the last pass saw, or the poll interval
        for runs queued by other processes; container exits wake the loop earlier."""
        wait = self._settings.trigger_poll_interval
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
        self._touched.add(ti.dag_run_id)
        self._changed_tasks.setdefault(ti.dag_run_id, set()).add(ti.task_id)
        self._pass_notices.extend(
            task_notices(
                self._settings,
                lambda: self._task(session, ti.dag_id, ti.task_id),
                ti,
                old,
                state,
                now,
                lambda: ti_store.get_run_of(session, ti),
            )
        )
        if state.is_finished:
            self._pass_finished = True
        if self._listener is not None:
            key = AttemptKey(ti.dag_id, ti.run_id, ti.task_id, ti.map_index, ti.try_number)
            self._listener.on_state(key, state, detail)
