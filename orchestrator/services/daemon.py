"""The long-running scheduler process: a DAG-folder parsing thread plus the scheduler loop.

The parsing thread scans the folder every `dag_watch_interval` and parses only new or changed
files (a full parse every `dag_reparse_interval`); when a DAG changed it wakes the loop, which
then brings running runs in step with the new specs (see `scheduling.integrity`).

After every pass the loop stamps `heartbeat_at` in `$ORCH_HOME/scheduler-status.json`, with
how long its passes take (the web server's `/health` and `/metrics` report both, `orchestrator
scheduler status` shows it); a stop stamps `stopped_at`.

On SIGTERM the loop stops launching and returns; running containers keep running, and the
next start reconciles with the engine (`services.reconcile`): it adopts them, harvests those
that ended meanwhile and launches what was recorded but never created. A scheduler started
while the engine cannot be reached waits for it (`connect_runtime`).

On PostgreSQL several scheduler processes may share the store: each registers, heartbeats and
executes the runs it claims (`services.claims`); a dead one's runs are taken over and
reconciled by the others. They must share the DAG folder, `ORCH_HOME` (logs and output
folders, at the same path) and the container engine. On SQLite a second scheduler process is
refused with a message (`claims.single_scheduler_lock`).
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import make_url
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.errors import RuntimeUnavailable
from orchestrator.runtime.base import ContainerRuntime
from orchestrator.services.claims import RunClaims, single_scheduler_lock
from orchestrator.services.clock import Clock
from orchestrator.services.dag_watch import DagFolderSync, SyncReport
from orchestrator.services.health import LoopTimes
from orchestrator.services.policy import OperatorPolicy
from orchestrator.services.reconcile import (
    ENGINE_BACKOFF,
    write_engine_status,
    write_heartbeat,
    write_stopped,
)
from orchestrator.services.scheduler import Scheduler
from orchestrator.settings import Settings

log = logging.getLogger("orchestrator.scheduler")


#: Allocations between the cyclic garbage collector's young-generation passes in the
#: scheduler process (Python's default: 700). The scheduler keeps a large, long-lived heap (the
#: task instances of running runs, specs) and allocates briskly, so at the default the
#: collector's full passes over that heap come often and take a large share of a busy loop.
GC_THRESHOLD = 50_000


def collect_garbage_less_often() -> None:
    """Raise the collector's first threshold to `GC_THRESHOLD` for this process (it keeps
    its older generations' ratios): a little more memory between collections for a loop
    that is not paused by them as often."""
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_THRESHOLD, older, oldest)


def connect_runtime(
    settings: Settings,
    clock: Clock,
    stop: threading.Event,
    connect: Callable[[], ContainerRuntime],
    *,
    backoff: tuple[float, float] = ENGINE_BACKOFF,
) -> ContainerRuntime | None:
    """The container engine, waited for: while `connect` raises RuntimeUnavailable (the
    engine is down, restarting, or its socket not there yet) the scheduler process stays up,
    logs it once, records it in the status file (engine down since, error, next check, and a
    heartbeat: the process is alive) and tries again with a doubling backoff. None if `stop`
    was set first (the stop is recorded). `backoff`: the first and the largest pause."""
    pause = backoff[0]
    down_since: datetime | None = None
    while True:
        try:
            runtime = connect()
        except RuntimeUnavailable as exc:
            now = clock.now()
            if down_since is None:
                down_since = now
                log.error("container engine unreachable: %s; waiting for it", exc)
            write_engine_status(
                settings.home,
                now,
                error=str(exc),
                down_since=down_since,
                next_check_at=now + timedelta(seconds=pause),
            )
            write_heartbeat(settings.home, now)
            if stop.wait(pause):
                write_stopped(settings.home, clock.now())
                log.info("scheduler stopped (it never reached the container engine)")
                return None
            pause = min(pause * 2, backoff[1])
            continue
        if down_since is not None:
            log.warning("container engine reachable: starting")
        return runtime


def run_scheduler(
    settings: Settings,
    sessions: sessionmaker[Session],
    runtime: ContainerRuntime,
    clock: Clock,
    stop: threading.Event,
) -> None:
    """Run until `stop` is set. A bad DAG file or a failing pass is logged, never fatal.
    Raises SchedulerConflict (a second scheduler on SQLite) and SchedulerReplaced (others took
    this one's runs over after it stalled)."""
    collect_garbage_less_often()
    with single_scheduler_lock(settings):
        claims = None
        if make_url(settings.resolved_database_url).get_backend_name() == "postgresql":
            claims = RunClaims(settings, sessions)
            claims.register(clock.now())
        _run(settings, sessions, runtime, clock, stop, claims)


def _run(
    settings: Settings,
    sessions: sessionmaker[Session],
    runtime: ContainerRuntime,
    clock: Clock,
    stop: threading.Event,
    claims: RunClaims | None,
) -> None:
    scheduler = Scheduler(
        settings=settings, sessions=sessions, runtime=runtime, clock=clock, claims=claims
    )
    folder = settings.resolved_dags_folder

    dag_sync = DagFolderSync(
        sessions,
        folder,
        timeout=settings.dag_file_timeout,
        paused_at_creation=settings.dags_are_paused_at_creation,
        policy=OperatorPolicy.from_settings(settings),
    )

    def parse_loop() -> None:
        next_full = 0.0
        while not stop.is_set():
            try:
                if time.monotonic() >= next_full:
                    next_full = time.monotonic() + settings.dag_reparse_interval
                    report = dag_sync.full(clock.now())
                else:
                    report = dag_sync.poll(clock.now())
                _log_sync(report)
                if report:
                    scheduler.wake()
            except Exception:
                log.exception("parsing the DAG folder %s failed", folder)
            stop.wait(settings.dag_watch_interval)

    parser = threading.Thread(target=parse_loop, name="dag-parser", daemon=True)
    parser.start()
    log.info(
        "scheduler started: DAGs from %s, parallelism %d%s",
        folder,
        settings.parallelism,
        f", sharing the store as scheduler {claims.id}" if claims is not None else "",
    )
    loop_times = LoopTimes()

    def after_pass(seconds: float) -> None:
        loop_times.add(seconds)
        write_heartbeat(settings.home, clock.now(), loop_times.fields())

    try:
        scheduler.run_forever(stop, on_tick=after_pass)
    finally:
        # running containers are left alone: the next start adopts them (see `reconcile`)
        scheduler.close(wait=False)
        parser.join(timeout=5)
        write_stopped(settings.home, clock.now())
        log.info("scheduler stopped")


def _log_sync(report: SyncReport) -> None:
    for result in report.changed:
        if result.error:
            log.warning("import error in %s", result.fileloc)
        else:
            dag_ids = ", ".join(spec.dag_id for spec in result.dags) or "no DAGs"
            log.info("parsed %s: %s", result.fileloc, dag_ids)
    for fileloc in report.removed:
        log.info("DAG file gone: %s; its DAGs are inactive", fileloc)
