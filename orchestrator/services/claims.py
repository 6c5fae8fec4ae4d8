"""High availability: several schedulers sharing one PostgreSQL store, each executing the runs
it has claimed (`dag_runs.claimed_by`).

A scheduler process registers in the `schedulers` table and, at the start of its passes, in
the pass's own transaction (`RunClaims.begin_pass`):

- at most once per `claim interval` (a second at most): stamps its heartbeat, declares dead
  the schedulers without a heartbeat for `scheduler_health_timeout` seconds, or on this
  machine whose process is gone (their rows are deleted, their runs become unclaimed),
  claims unclaimed queued and running runs up to its fair share, oldest first, with
  `SELECT ... FOR UPDATE SKIP LOCKED`, and gives back queued runs above it (see
  `scheduling.claims`);
- in every other pass: locks its own row, so nobody declares it dead in the middle of a pass.

A scheduler finding its row gone (others declared it dead after a stall, and took its runs
over) raises `SchedulerReplaced` and stops: it never writes over its successor's work.

What a scheduler executes is the runs it has claimed (`owns`, the scheduler's run filter):
only the owner decides readiness, launches, harvests (every scheduler hears every container
exit; the others ignore it), enforces timeouts and finishes the run. A claimed run that was
already running (its scheduler died) is reconciled at once after the claim commits
(`services.reconcile`: running containers adopted with their logs followed on, exited ones
harvested, created ones started, never-created ones launched, vanished ones failed as lost),
so nothing runs twice and nothing is lost.

Limits that span schedulers are read under locks: a DAG's queued runs start under its `dags`
row lock with every scheduler's running runs counted (`max_active_runs`); choosing launches
is serialized by an advisory lock (`store.pools.lock_slots`), so pools, `max_active_tasks` and
`max_active_tis_per_dag` hold across schedulers; `parallelism` counts this scheduler's task
instances only, as in Airflow. Scheduled runs are planned under the DAG's row lock
(`store.dags.dags_to_plan`).

SQLite serves one scheduler: `single_scheduler_lock` refuses a second process with a message.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import socket
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import make_url
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.errors import SchedulerConflict, SchedulerReplaced
from orchestrator.models.states import RunState
from orchestrator.scheduling.claims import Peer, is_dead, runs_to_claim, runs_to_release
from orchestrator.scheduling.limits import Occupancy
from orchestrator.services.slots import occupancy as all_occupancy
from orchestrator.settings import Settings
from orchestrator.store import schedulers as store
from orchestrator.store.tables import DagRunRow

log = logging.getLogger("orchestrator.claims")

#: Where the kernel's boot id is (Linux): with the host name it names this machine's process
#: table, so a pid recorded by another scheduler can be checked here.
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


@dataclass(frozen=True)
class Identity:
    """Who a scheduler process is, as the `schedulers` table records it."""

    id: str
    host: str
    pid: int
    machine: str  # host name and boot id: the process table `pid` belongs to

    @classmethod
    def of_this_process(cls) -> Identity:
        host = socket.gethostname()
        try:
            boot = BOOT_ID.read_text().strip()
        except OSError:
            boot = ""
        return cls(uuid.uuid4().hex[:12], host, os.getpid(), f"{host}/{boot}")


def process_gone(pid: int) -> bool:
    """Whether no process `pid` runs on this machine (a zombie counts as gone). This process's
    own pid is gone too: a scheduler row with it is a previous process that had the same pid
    (a restarted container's scheduler is often pid 1 again)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # it exists, under another user
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[:1] == ["Z"]


@dataclass(frozen=True)
class ClaimStep:
    """What a pass's claim step changed."""

    claimed: int = 0  # runs claimed (to start or go on with)
    taken_over: int = 0  # of those, runs that were running: reconcile them once committed


class RunClaims:
    """One scheduler's registration and the runs it executes (see the module docstring)."""

    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        *,
        identity: Identity | None = None,
        gone: Callable[[int], bool] = process_gone,
    ) -> None:
        self._sessions = sessions
        self.identity = identity or Identity.of_this_process()
        self._gone = gone
        self._timeout = timedelta(seconds=settings.scheduler_health_timeout)
        self._interval = timedelta(seconds=min(1.0, settings.scheduler_health_timeout / 4))
        self._owned: frozenset[int] = frozenset()
        self._last_step: datetime | None = None

    @property
    def id(self) -> str:
        return self.identity.id

    def register(self, now: datetime) -> None:
        """Record this scheduler in the store (call once, before its first pass)."""
        me = self.identity
        with self._sessions.begin() as session:
            store.register(session, me.id, host=me.host, pid=me.pid, machine=me.machine, now=now)
        log.info("scheduler %s registered (host %s, pid %d)", me.id, me.host, me.pid)

    def owns(self, run: DagRunRow) -> bool:
        """Whether this scheduler executes `run` (it claimed it, and that claim committed)."""
        return run.id in self._owned and run.run_type != store.TEST_RUN_TYPE

    @property
    def owned(self) -> frozenset[int]:
        return self._owned

    @property
    def interval(self) -> float:
        """Seconds between heartbeats (and claim steps)."""
        return self._interval.total_seconds()

    # ----------------------------------------------------------------- the pass
    def begin_pass(
        self, session: Session, now: datetime, after_commit: list[Callable[[], object]]
    ) -> ClaimStep:
        """The claim step, first thing in a pass's transaction (see the module docstring).
        Runs given back leave `owns` at once; runs claimed join it once the pass committed
        (`after_commit`). Raises SchedulerReplaced if other schedulers declared this one dead."""
        due = self._last_step is None or now - self._last_step >= self._interval
        if not due:
            if not store.hold(session, self.id):
                raise self._replaced()
            return ClaimStep()
        if not store.heartbeat(session, self.id, now):
            raise self._replaced()
        self._bury_the_dead(session, now)
        live = store.live_count(session, now - self._timeout)
        active, mine, mine_queued, unclaimed = store.shared_run_counts(session, self.id)
        wanted = runs_to_claim(active=active, live=live, mine=mine, unclaimed=unclaimed)
        claimed = store.claim(session, self.id, wanted)
        surplus = runs_to_release(active=active, live=live, mine=mine, mine_queued=mine_queued)
        released = store.release(session, self.id, surplus)
        if released:
            self._owned = self._owned.difference(released)
            log.info("gave back %d queued runs: above this scheduler's share", len(released))
        owned = frozenset(store.claimed_runs(session, self.id))

        def committed() -> None:
            self._owned, self._last_step = owned, now

        after_commit.append(committed)
        taken_over = sum(1 for _, state in claimed if state == RunState.RUNNING.value)
        if claimed:
            log.info("claimed %d runs (%d of them running)", len(claimed), taken_over)
        return ClaimStep(len(claimed), taken_over)

    def _bury_the_dead(self, session: Session, now: datetime) -> None:
        """Delete the rows of dead schedulers (their runs become unclaimed). A row another
        transaction holds is left: its scheduler is in a pass. The check is made again on the
        locked rows: a heartbeat may have come in between."""
        machine = self.identity.machine
        found = [Peer(*row) for row in store.peers(session, self.id)]
        local_gone = {p.pid for p in found if p.machine == machine and self._gone(p.pid)}

        def dead(peer: Peer) -> bool:
            return is_dead(
                peer, now=now, timeout=self._timeout, machine=machine, gone_pids=local_gone
            )

        suspects = [p.id for p in found if dead(p)]
        locked = [Peer(*row) for row in store.lock_peers(session, suspects)]
        buried = [p for p in locked if dead(p)]
        store.remove(session, [p.id for p in buried])
        for peer in buried:
            why = (
                "its process is gone"
                if peer.machine == machine and peer.pid in local_gone
                else f"no heartbeat since {peer.heartbeat_at.isoformat()}"
            )
            log.warning(
                "scheduler %s (pid %d) is dead: %s; its runs are free", peer.id, peer.pid, why
            )

    def _replaced(self) -> SchedulerReplaced:
        me = self.identity
        return SchedulerReplaced(
            f"scheduler {me.id} (host {me.host}, pid {me.pid}) was declared dead by another"
            f" scheduler (no heartbeat in the database for more than"
            f" {self._timeout.total_seconds():g}s: ORCH_SCHEDULER_HEALTH_TIMEOUT) and its runs"
            " were taken over; it stops so that nothing runs twice. Start it again (a"
            " supervisor should), and look for what stalled it: a paused process, an"
            " overloaded machine or an unreachable database"
        )

    # ----------------------------------------------------------------- limits
    def startable(
        self, session: Session, queued: Sequence[DagRunRow]
    ) -> tuple[list[DagRunRow], list[DagRunRow]]:
        """This scheduler's queued runs whose DAG rows it could lock (the others wait for
        a later pass), with the running runs of those DAGs of every scheduler: starting
        them within `max_active_runs` is then exact."""
        locked = store.lock_dags(session, {run.dag_id for run in queued})
        return [r for r in queued if r.dag_id in locked], store.running_runs_of(session, locked)

    def occupancy(self, session: Session) -> Occupancy:
        """Slots held, as the limits count them: pools and per-DAG and per-task limits over
        every scheduler; `parallelism` over this scheduler's task instances only."""
        held = all_occupancy(session)
        held.total = store.active_instances_of(session, self.id)
        return held


@dataclass(frozen=True)
class SchedulerInfo:
    """A registered scheduler as `orchestrator schedulers` shows it."""

    id: str
    host: str
    pid: int
    started_at: datetime
    heartbeat_at: datetime
    heartbeat_age: float  # seconds
    alive: bool  # a heartbeat within `scheduler_health_timeout`
    runs: int  # queued and running runs it has claimed


def registered_schedulers(
    session: Session, settings: Settings, now: datetime
) -> list[SchedulerInfo]:
    """The schedulers sharing the store, with their heartbeats and claimed runs. A dead one
    stays listed until a live one declares it dead (at its next claim step)."""
    counts = store.claimed_counts(session)
    found = []
    for row in store.list_schedulers(session):
        age = max((now - row.heartbeat_at).total_seconds(), 0.0)
        found.append(
            SchedulerInfo(
                id=row.id,
                host=row.host,
                pid=row.pid,
                started_at=row.started_at,
                heartbeat_at=row.heartbeat_at,
                heartbeat_age=age,
                alive=age <= settings.scheduler_health_timeout,
                runs=counts.get(row.id, 0),
            )
        )
    return found


@contextlib.contextmanager
def single_scheduler_lock(settings: Settings) -> Iterator[None]:
    """Hold, while the scheduler runs, a lock on a file next to the SQLite database: a
    second scheduler process on the same database is refused with a message (SQLite serves
    one; several need PostgreSQL). The kernel drops the lock when the process dies, so a
    restart after a crash is never refused."""
    url = make_url(settings.resolved_database_url)
    database = url.database or ""
    if url.get_backend_name() != "sqlite" or database in ("", ":memory:"):
        yield
        return
    path = Path(f"{database}.scheduler-lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as handle:
        try:
            fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise SchedulerConflict(
                f"another scheduler (pid {holder}) already runs on the SQLite database"
                f" {database}: SQLite serves one scheduler. Stop that one first, or move the"
                " store to PostgreSQL (ORCH_DATABASE_URL) to run several schedulers"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        try:
            yield
        finally:
            fcntl.lockf(handle, fcntl.LOCK_UN)
