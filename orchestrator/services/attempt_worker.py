"""The blocking half of an attempt, run in worker pools: launching a container (its id stored
before it starts), following its logs into the attempt's log file, harvesting its exit and
output, stopping and removing it. Workers change no task state: they report to the scheduler's
loop with messages, except for the container id, which must be stored before the start.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from sqlalchemy.orm import Session, sessionmaker

from orchestrator.errors import ImageUnavailable, RuntimeUnavailable
from orchestrator.models.launch import ContainerExit, LaunchRequest
from orchestrator.models.states import RunState, TaskState
from orchestrator.runtime.base import ContainerRuntime
from orchestrator.scheduling.reconcile import container_bytes_logged
from orchestrator.services.clock import Clock
from orchestrator.services.containers import (
    AttemptKey,
    log_path,
    prepare_output_dir,
    prune_legacy_outputs,
    read_attempt_output,
)
from orchestrator.services.executors import ElasticThreads
from orchestrator.services.logs import LogFile
from orchestrator.settings import Settings
from orchestrator.store import task_instances as ti_store
from orchestrator.store.engine import engine_of

log = logging.getLogger(__name__)

#: How long a harvest waits for a container's log stream to drain after it exited.
LOG_DRAIN_TIMEOUT = 30.0


class SchedulerListener(Protocol):
    """Hears what the scheduler does (used by `dags test` to show progress and logs)."""

    def on_state(self, key: AttemptKey, state: TaskState, detail: str | None) -> None: ...

    def on_log(self, key: AttemptKey, chunk: bytes) -> None: ...

    def on_run(self, dag_id: str, run_id: str, state: RunState) -> None: ...


# Messages from the workers (and the exit subscription) to the scheduler's loop.
@dataclass(frozen=True)
class Exited:
    container_id: str


@dataclass(frozen=True)
class Launched:
    ti_id: int
    try_number: int
    started_at: datetime
    # the container (its id is stored already; the scheduler's kept copy learns it here)
    container_id: str | None = None
    # a fresh launch: when its worker began (making the image ready) and when the image was
    # ready (the Gantt chart's pulling span); None for a container started or adopted later
    launch_started_at: datetime | None = None
    image_ready_at: datetime | None = None


@dataclass(frozen=True)
class LaunchFailed:
    ti_id: int
    try_number: int
    error: str
    container_id: str | None


@dataclass(frozen=True)
class EngineUnreachable:
    """A launch, a start after a restart, or a harvest could not reach the engine. It is not
    the task's failure: the attempt stays as recorded (queued, or running with its exited
    `container_id`), and the reconciliation that first reaches the engine again finishes it
    (launches it, starts its created container, adopts or harvests it)."""

    ti_id: int
    try_number: int
    error: str
    container_id: str | None = None  # a harvest that did not happen


@dataclass(frozen=True)
class Harvested:
    ti_id: int
    try_number: int
    container_id: str
    exit: ContainerExit
    output_json: str | None
    output_error: str | None


@dataclass(frozen=True)
class Lost:
    """Reconciliation found the attempt's container gone (see `scheduling.reconcile`)."""

    ti_id: int
    try_number: int
    container_id: str | None
    detail: str


@dataclass
class LaunchJob:
    ti_id: int
    key: AttemptKey
    request: LaunchRequest
    log_path: Path
    output_dir: Path  # made by the launch, mounted into the container


class AttemptWorker:
    """Blocking container work for the scheduler; safe to call from many threads."""

    def __init__(
        self,
        *,
        settings: Settings,
        sessions: sessionmaker[Session],
        runtime: ContainerRuntime,
        clock: Clock,
        listener: SchedulerListener | None,
        post: Callable[[object], None],
    ) -> None:
        self._settings = settings
        self._engine = engine_of(sessions)
        self._runtime = runtime
        self._clock = clock
        self._listener = listener
        self._post = post
        self._logs_done: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self._in_flight: set[tuple[int, int]] = set()  # (ti id, try) launches not yet done
        self._following: set[str] = set()  # containers whose log a thread of ours follows
        # one thread per followed container (each blocks while its container runs), reused
        self._followers = ElasticThreads("orch-logs")
        # attempts launched before the flat output layout may be harvested by this process
        self._legacy_outputs = prune_legacy_outputs(settings)

    def begin_launch(self, job: LaunchJob) -> None:
        """Mark the job's attempt as being launched (call before submitting `launch`), so
        reconciliation leaves it alone until `launch` is done."""
        with self._lock:
            self._in_flight.add((job.ti_id, job.key.try_number))

    def busy(self) -> tuple[set[tuple[int, int]], set[str]]:
        """The attempts being launched and the containers being followed, right now."""
        with self._lock:
            return set(self._in_flight), set(self._following)

    def launch(self, job: LaunchJob) -> None:
        """Worker: output folder, image, create, persist id, start, follow logs."""
        unreachable: RuntimeUnavailable | None = None
        try:
            self._launch(job)
        except RuntimeUnavailable as exc:
            unreachable = exc
        finally:
            with self._lock:
                self._in_flight.discard((job.ti_id, job.key.try_number))
        if unreachable is not None:  # posted once reconciliation may take the attempt over
            self._post(EngineUnreachable(job.ti_id, job.key.try_number, str(unreachable)))

    def _launch(self, job: LaunchJob) -> None:
        logfile = LogFile(job.log_path, job.request.sensitive)
        container_id: str | None = None
        began = self._clock.now()
        try:
            prepare_output_dir(job.output_dir)
            self._runtime.ensure_image(job.request.image, job.request.pull_policy, logfile.write)
            image_ready = self._clock.now()
            container_id = self._runtime.create(job.request)
            self._start(job.ti_id, job.key, container_id, logfile)
        except RuntimeUnavailable as exc:
            logfile.write_line(f"[orchestrator] {exc}; it is launched once the engine is back")
            raise
        except ImageUnavailable as exc:
            logfile.write_line(f"[orchestrator] {exc}")
            self._post(LaunchFailed(job.ti_id, job.key.try_number, str(exc), container_id))
            return
        except Exception as exc:
            message = f"could not start the container: {exc}"
            logfile.write_line(f"[orchestrator] {message}")
            self._post(LaunchFailed(job.ti_id, job.key.try_number, message, container_id))
            return
        now = self._clock.now()
        self._post(Launched(job.ti_id, job.key.try_number, now, container_id, began, image_ready))

    def _start(self, ti_id: int, key: AttemptKey, container_id: str, logfile: LogFile) -> None:
        """Persist the id (and where the container's output begins in the log), start the
        container and follow its log."""
        try:
            offset = os.stat(logfile.path).st_size
        except FileNotFoundError:
            offset = 0
        with self._engine.begin() as connection:
            ti_store.set_container_id(connection, ti_id, key.try_number, container_id, offset)
        logs_done = self._logs_done.setdefault(container_id, threading.Event())
        try:
            self._runtime.start(container_id)
        except RuntimeUnavailable:
            # started or not, reconciliation follows it (adopts or starts it) once it is back
            self._logs_done.pop(container_id, None)
            raise
        except BaseException:
            self._follow_logs(container_id, key, logfile, logs_done)
            raise
        self._follow_logs(container_id, key, logfile, logs_done)

    def start_created(
        self,
        ti_id: int,
        key: AttemptKey,
        container_id: str,
        sensitive: frozenset[str] = frozenset(),
    ) -> None:
        """Worker (reconciliation): start a container that was created but never started
        (the scheduler stopped between create and start), as `launch` would have; its log
        masks `sensitive` values."""
        logfile = LogFile(log_path(self._settings, key), sensitive)
        try:
            self._start(ti_id, key, container_id, logfile)
        except RuntimeUnavailable as exc:
            self._post(EngineUnreachable(ti_id, key.try_number, str(exc)))
            return
        except Exception as exc:
            message = f"could not start the container: {exc}"
            logfile.write_line(f"[orchestrator] {message}")
            self._post(LaunchFailed(ti_id, key.try_number, message, container_id))
            return
        self._post(Launched(ti_id, key.try_number, self._clock.now(), container_id))

    def adopt(
        self,
        ti_id: int,
        key: AttemptKey,
        container_id: str,
        *,
        id_stored: bool,
        log_offset: int,
        sensitive: frozenset[str] = frozenset(),
    ) -> None:
        """Worker (reconciliation): take over a container a previous scheduler process
        started. Its id is stored if it was not; its log is followed on from where the log
        file stopped (the bytes of its output already there are skipped, so no line is
        written twice or missed); once the container stopped it is harvested as usual. Its
        log masks `sensitive` values (if one was printed before the restart, the skip counts
        the masked bytes, and the log may repeat or miss a few bytes there)."""
        logfile = LogFile(log_path(self._settings, key), sensitive)
        if not id_stored:
            with self._engine.begin() as connection:
                ti_store.set_container_id(
                    connection, ti_id, key.try_number, container_id, log_offset
                )
        written = logfile.path.read_bytes()[log_offset:] if logfile.path.exists() else b""
        skip = container_bytes_logged(written)
        logs_done = self._logs_done.setdefault(container_id, threading.Event())
        self._post(Launched(ti_id, key.try_number, self._clock.now(), container_id))
        self._follow_logs(container_id, key, logfile, logs_done, skip=skip, then_exited=True)

    def _follow_logs(
        self,
        container_id: str,
        key: AttemptKey,
        logfile: LogFile,
        done: threading.Event,
        *,
        skip: int = 0,
        then_exited: bool = False,
    ) -> None:
        """Stream the container's output to its log file (and listener) in a thread of the
        followers' pool; `done` is set once everything it printed is written. Started after
        `start`: the engine replays the log from the beginning, so even a container that
        already exited loses nothing; the first `skip` bytes (already in the file) are left
        out. `then_exited`: post `Exited` once the stream ended (an adopted container may
        have exited unobserved)."""
        listener = self._listener
        with self._lock:
            self._following.add(container_id)

        def heard(chunk: bytes) -> None:
            if listener is not None:
                listener.on_log(key, chunk)

        def follow() -> None:
            remaining = skip
            try:
                with logfile.appending(heard) as write:

                    def sink(chunk: bytes) -> None:
                        nonlocal remaining
                        if remaining:
                            cut = min(remaining, len(chunk))
                            chunk, remaining = chunk[cut:], remaining - cut
                            if not chunk:
                                return
                        write(chunk)

                    self._runtime.follow_logs(container_id, sink, started=True)
            except Exception as exc:
                logfile.write_line(f"[orchestrator] log stream ended early: {exc}")
            finally:
                with self._lock:
                    self._following.discard(container_id)
                done.set()
                if then_exited:
                    self._post(Exited(container_id))

        self._followers.submit(follow)

    # ----------------------------------------------------------------- observing
    def harvest(self, ti_id: int, key: AttemptKey, container_id: str) -> None:
        """Worker: exit status, drained logs, the output file."""
        try:
            exit_status = self._runtime.exit_status(container_id)
            if exit_status is None:
                exit_status = ContainerExit(exit_code=-1, error="container vanished while running")
        except RuntimeUnavailable as exc:
            self._post(EngineUnreachable(ti_id, key.try_number, str(exc), container_id))
            return
        except Exception as exc:
            exit_status = ContainerExit(exit_code=-1, error=f"could not inspect: {exc}")
        logs_done = self._logs_done.pop(container_id, None)
        if self._runtime.finish_logs(container_id):
            logs_done = None  # the rest of the log was just delivered
        if logs_done is not None and not logs_done.wait(LOG_DRAIN_TIMEOUT):
            LogFile(log_path(self._settings, key)).write_line(
                f"[orchestrator] the log stream did not end {LOG_DRAIN_TIMEOUT:g}s after the"
                " container exited; the log may be incomplete"
            )
        output = read_attempt_output(self._settings, key, self._legacy_outputs)
        self._post(
            Harvested(
                ti_id, key.try_number, container_id, exit_status, output.json_text, output.error
            )
        )

    def remove(self, container_id: str) -> None:
        try:
            self._runtime.remove(container_id)
        except Exception:
            log.exception("could not remove container %s", container_id)

    def stop(self, container_id: str) -> None:
        try:
            self._runtime.stop(container_id, self._settings.stop_grace_period)
        except Exception:
            log.exception("could not stop container %s", container_id)
