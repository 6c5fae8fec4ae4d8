"""Executors for the scheduler's blocking work."""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

log = logging.getLogger(__name__)


class InlineExecutor(Executor):
    """Runs submitted work at once in the caller's thread (deterministic unit tests)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)
        return future


class ElasticThreads:
    """Daemon threads for long blocking jobs (following a container's log while it runs):
    a job goes to an idle thread if there is one, else to a new thread, so no job ever waits
    for another to end; a thread idle for `idle_timeout` seconds exits. Starting a thread
    costs far more than handing a job to a waiting one, and most jobs are short when
    containers are. A job's exception is logged; the thread goes on serving."""

    def __init__(self, name: str, idle_timeout: float = 10.0) -> None:
        self._name = name
        self._idle_timeout = idle_timeout
        self._cond = threading.Condition(threading.Lock())
        self._jobs: deque[Callable[[], object]] = deque()
        self._idle = 0  # threads waiting for a job
        self._threads = 0
        self._started = 0  # for thread names

    @property
    def threads(self) -> int:
        """How many threads are alive (busy or idle)."""
        with self._cond:
            return self._threads

    @property
    def idle(self) -> int:
        """How many threads are waiting for a job."""
        with self._cond:
            return self._idle

    def submit(self, job: Callable[[], object]) -> None:
        """Run `job` in a thread of the pool, starting one if none is idle."""
        with self._cond:
            if self._idle > len(self._jobs):  # a waiting thread takes it
                self._jobs.append(job)
                self._cond.notify()
                return
            self._threads += 1
            self._started += 1
            number = self._started
        try:
            threading.Thread(
                target=self._serve, args=(job,), name=f"{self._name}-{number}", daemon=True
            ).start()
        except BaseException:
            with self._cond:
                self._threads -= 1
            raise

    def _serve(self, job: Callable[[], object]) -> None:
        while True:
            try:
                job()
            except Exception:
                log.exception("a job of the %s threads failed", self._name)
            next_job = self._next_job()
            if next_job is None:
                return
            job = next_job

    def _next_job(self) -> Callable[[], object] | None:
        """The next job, or None once idle for `idle_timeout` (the thread then exits)."""
        with self._cond:
            self._idle += 1
            try:
                if not self._jobs:
                    self._cond.wait_for(lambda: self._jobs, self._idle_timeout)
                if self._jobs:
                    return self._jobs.popleft()
                self._threads -= 1
                return None
            finally:
                self._idle -= 1
