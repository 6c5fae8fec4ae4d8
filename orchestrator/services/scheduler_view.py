"""What the scheduler knows of the store, kept current from one pass to the next.

The scheduler uses one long-lived session. Objects stay usable after each pass's commit, so
the task instances of running runs are loaded once and then kept (`run_tis`). Before each
pass `begin_pass` makes them current:

- Every pass compares each cached run's `ti_writes` (every flush that writes a run's task
  instances counts it up, see `store.tables`) with the value this session's own writes left,
  read from the run rows the pass reads anyway; for the runs that differ it compares the
  versions of their instances and reloads the changed ones. Runs no longer running leave the
  cache.
- A sweep also reads everything else again (runs, attempts, DAG rows: other processes may
  have marked, paused or triggered), and every `FORGET_INTERVAL` it forgets the kept task
  instances too.

Every write bumps a task instance's version, and a write over a stale one is refused
(StaleDataError, see `store.tables`: the scheduler does the pass again after `forget`), so
nothing is overwritten. Which runs a pass decides about: all of them in a sweep, else those
whose task instances changed (`watched`); within a run, the tasks whose inputs changed
(`candidates`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.attributes import set_committed_value

from orchestrator.models.specs import DagSpec, TaskSpec
from orchestrator.models.states import ACTIVE_TASK_STATES, RunState, TaskState
from orchestrator.services import integrity
from orchestrator.services.mapping import instances_by_task
from orchestrator.settings import Settings
from orchestrator.store import dags as dag_store
from orchestrator.store import runs as run_store
from orchestrator.store import task_instances as ti_store
from orchestrator.store.tables import (
    RUN_TI_WRITES,
    DagRow,
    DagRunRow,
    TaskAttemptRow,
    TaskInstanceRow,
)

#: How often a sweep forgets even the task instances it keeps. Other sweeps read everything
#: else again and check the kept instances by version, as every pass does (whatever changes
#: them elsewhere bumps their versions); this is the safety net.
FORGET_INTERVAL = timedelta(minutes=5)

#: States of task instances the scheduler acts on by itself: waiting for a slot, and (tasks
#: without a container) waiting to check again.
READY_STATES = (TaskState.SCHEDULED, TaskState.UP_FOR_RESCHEDULE)
#: States of task instances that hold a slot.
ACTIVE_STATES = tuple(sorted(ACTIVE_TASK_STATES, key=lambda state: state.value))

#: A run's task instances by task id, and its mapped instances by task id and map index.
RunIndex = tuple[dict[str, TaskInstanceRow], dict[str, dict[int, TaskInstanceRow]]]


class _Seen:
    """Task instances last seen in some states, by id. A sweep reads them from the store
    (once per pass); other passes take those seen then and those the scheduler moved into
    the states since (`note`). Those that left the states are dropped as they are found.

    What other processes move into the states shows at the next sweep: for the ready
    states they never do (they clear to `none`); for the active ones only other schedulers
    do, which count slots from the store (see `Scheduler`)."""

    def __init__(self, states: tuple[TaskState, ...]) -> None:
        self.states = states
        self.values = frozenset(state.value for state in states)
        self.by_id: dict[int, TaskInstanceRow] = {}
        self.read = False  # read from the store this pass

    def note(self, ti: TaskInstanceRow) -> None:
        if ti.state in self.values:
            self.by_id[ti.id] = ti

    def current(
        self, session: Session, sweeping: bool, states: Iterable[TaskState]
    ) -> list[TaskInstanceRow]:
        """Those in `states` (some of this set's), by id."""
        if sweeping and not self.read:
            found = ti_store.tis_in_states(session, self.states)
            self.by_id = {ti.id: ti for ti in found}
            self.read = True
        wanted = {state.value for state in states}
        tis = []
        for ti_id in sorted(self.by_id):
            ti = self.by_id[ti_id]
            if ti.state in wanted:
                tis.append(ti)
            elif ti.state not in self.values:
                del self.by_id[ti_id]
        return tis


class StoreView:
    """The scheduler's session and what it keeps: specs, running runs' task instances, and
    which runs and tasks changed since they were last decided about."""

    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        run_filter: Callable[[DagRunRow], bool],
        check_runs: bool = True,
    ) -> None:
        self._settings = settings
        self._sessions = sessions
        self._run_filter = run_filter
        self._session: Session | None = None
        self._specs: dict[str, tuple[str, DagSpec]] = {}  # by dag id: (spec hash, spec)
        # the task instances of running runs, kept across passes; and the same by id, and
        # by the container ids messages told (see `prefetch`)
        self._run_cache: dict[int, list[TaskInstanceRow]] = {}
        self._kept: dict[int, TaskInstanceRow] = {}
        self._kept_containers: dict[str, TaskInstanceRow] = {}
        # per cached run: its list and length when indexed, and the index
        self._run_index: dict[int, tuple[list[TaskInstanceRow], int, RunIndex]] = {}
        # per cached run: its `ti_writes` as the kept instances know them
        self._writes: dict[int, int] = {}
        # per run: tasks whose instances changed since the run's last readiness decision
        self._changed_tasks: dict[int, set[str]] = {}
        self._touched: set[int] = set()  # runs whose task instances changed this pass
        self._changed: set[int] = set()  # ... and in the pass before
        self.sweeping = True
        self._last_sweep: datetime | None = None
        self._forgetting = True  # this sweep forgets even the kept task instances
        self._last_forget: datetime | None = None
        # for one pass
        self._pass_specs: dict[str, DagSpec | None] = {}
        self._targets: dict[str, str] | None = None  # DAGs' spec hashes (see `_target`)
        self._targets_read = False  # read this pass
        self._pass_running: list[DagRunRow] | None = None
        # the running runs as last read (by id): outside sweeps, checked by state instead of
        # read again, unless other schedulers share the store (`check_runs` False: they
        # claim runs without changing their state)
        self._running_read: dict[int, DagRunRow] = {}
        self._check_runs = check_runs
        self._pass_containers: dict[str | None, TaskInstanceRow] = {}
        # task instances last seen in READY_STATES and ACTIVE_STATES (see `ready`, `active`)
        self._ready = _Seen(READY_STATES)
        self._active = _Seen(ACTIVE_STATES)

    # ----------------------------------------------------------------- passes
    def session(self) -> Session:
        """The session every pass uses, kept between passes with what it loaded."""
        if self._session is None:
            self._session = self._sessions()
            ti_store.PendingInserts().attach(self._session)  # one insert per pass, not per change
        return self._session

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def plan_pass(
        self, now: datetime, *, first: bool, messages: bool, deadline: datetime | None
    ) -> None:
        """Decide whether the next pass sweeps (looks at every running run).

        Passes driven by the scheduler's own events (container exits, launches) only need
        the runs those events touched. Every other pass sweeps: the first pass of a tick
        that no event started (a poll, a wake-up: other processes may have cleared or marked
        tasks), a pass at or after a retry, reschedule or timeout `deadline`, and at least
        one pass per `trigger_poll_interval`.
        """
        self.sweeping = (
            self._last_sweep is None
            or (first and not messages)
            or (deadline is not None and now >= deadline)
            or (now - self._last_sweep).total_seconds() >= self._settings.trigger_poll_interval
        )
        if self.sweeping:
            self._last_sweep = now
            self._forgetting = (
                self._last_forget is None or now - self._last_forget >= FORGET_INTERVAL
            )
            if self._forgetting:
                self._last_forget = now

    def begin_pass(self, session: Session) -> None:
        """Reset the pass's caches and make the kept task instances current."""
        self._pass_specs, self._pass_running = {}, None
        self._targets_read = False
        if self.sweeping:  # DAG files change seldom: read their hashes again in sweeps
            self._targets = None
        self._pass_containers = {}
        self._ready.read = self._active.read = False
        self._changed, self._touched = self._touched, set()
        self._take_own_writes(session)
        if self.sweeping:
            if self._forgetting:
                self.forget(session)
                return
            self._expire_all_but_kept(session)
        if not self._run_cache:
            return
        running = {run.id: run for run in self.runs(session, RunState.RUNNING)}
        for run_pk in [pk for pk in self._run_cache if pk not in running]:
            self._drop_run(session, run_pk)
        changed_runs = [
            pk for pk in self._run_cache if running[pk].ti_writes != self._writes.get(pk)
        ]
        versions = run_store.ti_versions(session, changed_runs) if changed_runs else {}
        stale: list[int] = []
        for run_pk in changed_runs:
            tis = self._run_cache[run_pk]
            stored = versions.get(run_pk, {})
            if len(stored) != len(tis):  # instances added or deleted elsewhere: load again
                self._drop_run(session, run_pk)
                continue
            self._writes[run_pk] = running[run_pk].ti_writes
            stale += [ti.id for ti in tis if stored.get(ti.id) != ti.version]
        for ti in ti_store.tis_by_ids(session, stale, fresh=True) if stale else ():
            self._changed_tasks.setdefault(ti.dag_run_id, set()).add(ti.task_id)

    def _take_own_writes(self, session: Session) -> None:
        """Take the `ti_writes` this session's flushes left on kept runs (its own writes),
        unless a count read since is newer."""
        for run_pk, count in session.info.pop(RUN_TI_WRITES, {}).items():
            if run_pk in self._writes:
                self._writes[run_pk] = max(count, self._writes[run_pk])

    def _keep(self, run_pk: int, tis: list[TaskInstanceRow]) -> list[TaskInstanceRow]:
        self._run_cache[run_pk] = tis
        for ti in tis:
            self._kept[ti.id] = ti
        return tis

    def _unkeep(self, run_pk: int) -> list[TaskInstanceRow]:
        tis = self._run_cache.pop(run_pk, [])
        for ti in tis:
            self._kept.pop(ti.id, None)
            container_id = ti.__dict__.get("container_id")  # without loading an expired one
            if container_id is not None and self._kept_containers.get(container_id) is ti:
                del self._kept_containers[container_id]
        return tis

    def _drop_run(self, session: Session, run_pk: int) -> None:
        self._writes.pop(run_pk, None)
        for ti in self._unkeep(run_pk):
            self._ready.by_id.pop(ti.id, None)  # before the expiry: reading it then would
            self._active.by_id.pop(ti.id, None)  # load it
            session.expire(ti)
        self._run_index.pop(run_pk, None)
        self._changed_tasks.pop(run_pk, None)

    def _expire_all_but_kept(self, session: Session) -> None:
        """Read everything again but the kept task instances (checked by version instead):
        runs, attempts, DAG rows and instances of runs not kept."""
        kept = {id(ti) for tis in self._run_cache.values() for ti in tis}
        for obj in list(session.identity_map.values()):
            if id(obj) not in kept:
                session.expire(obj)

    def forget(self, session: Session) -> None:
        """Forget everything kept (a sweep decides about every task of every run)."""
        session.expire_all()
        self._running_read.clear()
        self._ready.by_id.clear()
        self._active.by_id.clear()
        self._writes.clear()
        self._run_cache.clear()
        self._kept.clear()
        self._kept_containers.clear()
        self._run_index.clear()
        self._changed_tasks.clear()

    def after_rollback(self) -> None:
        """Part of a pass was rolled back: what it loaded or learnt is no longer sure."""
        self._run_cache, self._run_index, self._writes = {}, {}, {}
        self._ready.by_id, self._active.by_id = {}, {}
        self._kept, self._kept_containers = {}, {}
        self._targets = None
        self._pass_running, self._pass_containers, self._running_read = None, {}, {}
        self._last_sweep = self._last_forget = None  # the next pass sweeps and forgets

    def prefetch(
        self,
        session: Session,
        ti_ids: Iterable[int],
        containers: list[str],
        launched: Iterable[tuple[int, int, str | None]] = (),
    ) -> None:
        """Make the task instances and runs that messages name current and present in the
        session, in a few queries, so handling each message finds them there (attempt rows
        are changed without being loaded: `task_instances.update_attempt`).

        Kept task instances are current already (`begin_pass`) but for their container ids,
        which launch workers store without a version: the `launched` messages' (task
        instance, try, container id) give those. Other instances, and containers no message
        told of, are read from the store."""
        with session.no_autoflush:
            for ti_id, try_number, container_id in launched:
                kept = self._kept.get(ti_id)
                if kept is not None and container_id and kept.try_number == try_number:
                    set_committed_value(kept, "container_id", container_id)
                    self._kept_containers[container_id] = kept
            wanted = set(ti_ids)
            tis = [self._kept[ti_id] for ti_id in wanted if ti_id in self._kept]
            wanted.difference_update(self._kept)
            tis += ti_store.tis_by_ids(session, wanted, fresh=True) if wanted else []
            self._pass_containers = {}
            unknown = []
            for container_id in containers:
                kept = self._kept_containers.get(container_id)
                if kept is not None and kept.container_id == container_id:
                    self._pass_containers[container_id] = kept
                else:
                    unknown.append(container_id)
            by_container = ti_store.tis_by_containers(session, unknown, fresh=True)
            self._pass_containers.update((ti.container_id, ti) for ti in by_container)
            tis += self._pass_containers.values()
            read = {run.id for run in self._pass_running or ()}  # read this pass
            runs = {ti.dag_run_id for ti in tis} - read
            if runs:
                run_store.runs_by_ids(session, runs)

    # ----------------------------------------------------------------- changes
    def note_change(self, ti: TaskInstanceRow) -> None:
        """The scheduler changed this task instance's state."""
        self._touched.add(ti.dag_run_id)
        self._changed_tasks.setdefault(ti.dag_run_id, set()).add(ti.task_id)
        self._ready.note(ti)
        self._active.note(ti)

    def reload_run(self, run_pk: int) -> None:
        """Instances were added to the run: load its list again and decide about it."""
        self._unkeep(run_pk)
        self._writes.pop(run_pk, None)
        self._touched.add(run_pk)

    def runs_started(self) -> None:
        """Runs started this pass: read the running runs again and sweep."""
        self._pass_running = None
        self.sweeping = True

    def watched(self, runs: list[DagRunRow]) -> list[DagRunRow]:
        """The running runs this pass decides about."""
        if self.sweeping:
            return runs
        return [run for run in runs if run.id in self._changed or run.id in self._touched]

    def take_changed(self, run_pk: int) -> set[str]:
        """The run's tasks whose instances changed since this was last asked."""
        return self._changed_tasks.pop(run_pk, set())

    @staticmethod
    def candidates(spec: DagSpec, changed: set[str], waiting: Iterable[str]) -> set[str]:
        """The tasks whose readiness may have changed since the run's last decision: those
        whose instances changed and their children, those waiting out a retry or reschedule
        (`waiting`), and those that depend on the past (the previous run changes outside
        this run)."""
        only = set(changed)
        for task_id in changed:
            only.update(spec.downstream_map.get(task_id, ()))
        only.update(waiting)
        only.update(spec.depends_on_past_ids)
        return only

    # ----------------------------------------------------------------- reads
    def spec(self, session: Session, dag_id: str) -> DagSpec | None:
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

    def spec_version(self, dag_id: str) -> str:
        """The hash of the DAG's spec read this pass (keys caches derived from the spec)."""
        cached = self._specs.get(dag_id)
        return cached[0] if cached is not None else ""

    def _target(self, session: Session, dag_id: str) -> str | None:
        """The DAG's spec hash (`inactive` when its file is gone; None when unknown), read for
        every DAG at once: in a sweep, and in any pass that asks for a DAG not known yet."""
        if self._targets is None or (dag_id not in self._targets and not self._targets_read):
            self._targets = dag_store.integrity_targets(session)
            self._targets_read = True
        return self._targets.get(dag_id)

    def integrity_target(self, session: Session, dag_id: str) -> str:
        """What a run of the DAG must be checked against (see `integrity.target_hash`)."""
        target = self._target(session, dag_id)
        return integrity.NO_SPEC if target in (None, dag_store.INACTIVE) else target

    def task(self, session: Session, dag_id: str, task_id: str) -> TaskSpec | None:
        """A task of the DAG's latest spec, or None if the DAG or the task is gone."""
        spec = self.spec(session, dag_id)
        return spec.task_index.get(task_id) if spec is not None else None

    def run_tis(self, session: Session, run_pk: int) -> list[TaskInstanceRow]:
        """A run's task instances, loaded once and kept current."""
        tis = self._run_cache.get(run_pk)
        if tis is None:
            self._writes.update(run_store.ti_writes(session, [run_pk]))  # before the load
            tis = self._keep(run_pk, run_store.task_instances(session, run_pk))
        return tis

    def load_tis(self, session: Session, runs: Iterable[DagRunRow]) -> None:
        """Load the task instances of these runs that are not kept, together."""
        missing = {run.id for run in runs} - self._run_cache.keys()
        if len(missing) > 1:
            self._writes.update(run_store.ti_writes(session, missing))  # before the load
            for run_pk, tis in run_store.task_instances_of_runs(session, missing).items():
                self._keep(run_pk, tis)

    def index(self, session: Session, run_pk: int) -> tuple[RunIndex, bool]:
        """A run's instances by task (and mapped ones by task and index), kept while its
        list is unchanged; True when built anew."""
        tis = self.run_tis(session, run_pk)
        entry = self._run_index.get(run_pk)
        if entry is not None and entry[0] is tis and entry[1] == len(tis):
            return entry[2], False
        by_task = {ti.task_id: ti for ti in tis if ti.map_index == -1}
        instances = instances_by_task(tis)
        self._run_index[run_pk] = (tis, len(tis), (by_task, instances))
        return (by_task, instances), True

    def ready(self, session: Session, states: Iterable[TaskState]) -> list[TaskInstanceRow]:
        """Task instances in `states` (some of READY_STATES), by id (see `_Seen`)."""
        return self._ready.current(session, self.sweeping, states)

    def active(
        self, session: Session, states: Iterable[TaskState] = ACTIVE_STATES
    ) -> list[TaskInstanceRow]:
        """Task instances in `states` (some of ACTIVE_STATES), by id (see `_Seen`)."""
        return self._active.current(session, self.sweeping, states)

    def runs(self, session: Session, state: RunState) -> list[DagRunRow]:
        """Runs in `state` that this scheduler executes (running ones: read once per pass;
        outside sweeps, only those whose state changed since they were read are read)."""
        if state != RunState.RUNNING:
            return [r for r in run_store.runs_in_states(session, [state]) if self._run_filter(r)]
        if self._pass_running is not None:
            return [r for r in self._pass_running if r.state == RunState.RUNNING.value]
        if self.sweeping or not self._check_runs:
            found = run_store.runs_in_states(session, [state])
        else:
            found = self._running_by_state(session)
        self._running_read = {run.id: run for run in found}
        self._pass_running = [run for run in found if self._run_filter(run)]
        return self._pass_running

    def _running_by_state(self, session: Session) -> list[DagRunRow]:
        """The running runs: those read before and still running as they are (but for
        `ti_writes`, taken from the store), the others read again (and so are those that
        others moved out of `running`, for the pass to see them ended).

        Other processes change a running run's row only by changing its state (marking it)
        or its task instances (`ti_writes`): what else they may change waits for a sweep."""
        rows = run_store.running_run_writes(session)
        known = self._running_read
        running = RunState.RUNNING.value
        stale = [
            run_id for run_id, _ in rows if run_id not in known or known[run_id].state != running
        ]
        still = {run_id for run_id, _ in rows}
        stale += [  # no longer running, and not by this session's doing
            run_id for run_id, run in known.items() if run_id not in still and run.state == running
        ]
        if stale:
            known.update((run.id, run) for run in run_store.runs_by_ids(session, stale, fresh=True))
        found = []
        for run_id, count in rows:
            run = known.get(run_id)
            if run is not None:
                set_committed_value(run, "ti_writes", count)
                found.append(run)
        return found

    def ti(self, session: Session, ti_id: int) -> TaskInstanceRow | None:
        """A task instance by id: a kept one as kept (current: see `begin_pass`), else the
        session's."""
        kept = self._kept.get(ti_id)
        return kept if kept is not None else session.get(TaskInstanceRow, ti_id)

    def run_of(self, session: Session, ti: TaskInstanceRow) -> DagRunRow:
        """A task instance's run: a running one as read for the pass, else the session's."""
        run = self._running_read.get(ti.dag_run_id)
        return run if run is not None else ti_store.get_run_of(session, ti)

    def by_container(self, session: Session, container_id: str) -> TaskInstanceRow | None:
        """The task instance whose current attempt runs in this container (as prefetched
        for this pass's messages, else read)."""
        ti = self._pass_containers.get(container_id)
        if ti is not None:
            return ti
        with session.no_autoflush:  # container ids are stored by workers, never pending here
            return ti_store.ti_by_container(session, container_id)

    def attempt(self, session: Session, ti_id: int, try_number: int) -> TaskAttemptRow | None:
        """The attempt row of a try, read again (changes kept back by `update_attempt` are
        written first). It was stored when the try was queued, in an earlier pass, so the
        query need not flush this pass's changes first (flushing per message would cost more
        than the whole message)."""
        with session.no_autoflush:
            return ti_store.get_attempt(session, ti_id, try_number, fresh=True)
