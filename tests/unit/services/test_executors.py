"""The worker pools: the elastic threads that follow container logs."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import pytest

from orchestrator.services.executors import ElasticThreads

WAIT = 5.0


def eventually(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


def test_blocking_jobs_never_wait_for_each_other() -> None:
    pool = ElasticThreads("test")
    release = threading.Event()
    running = threading.Semaphore(0)

    def job() -> None:
        running.release()
        release.wait(WAIT)

    for _ in range(8):
        pool.submit(job)
    for _ in range(8):  # all eight run at once: none is queued behind a blocked one
        assert running.acquire(timeout=WAIT)
    assert pool.threads == 8
    release.set()
    eventually(lambda: pool.idle == 8)


def test_an_idle_thread_takes_the_next_job() -> None:
    pool = ElasticThreads("test")
    ran_in: list[int] = []
    done = threading.Event()
    pool.submit(lambda: ran_in.append(threading.get_ident()))
    eventually(lambda: pool.idle == 1)
    pool.submit(lambda: (ran_in.append(threading.get_ident()), done.set()))
    assert done.wait(WAIT)
    assert ran_in[0] == ran_in[1]
    assert pool.threads == 1


def test_idle_threads_exit_after_the_timeout_and_new_jobs_start_new_ones() -> None:
    pool = ElasticThreads("test", idle_timeout=0.05)
    pool.submit(lambda: None)
    eventually(lambda: pool.threads == 0)
    done = threading.Event()
    pool.submit(done.set)
    assert done.wait(WAIT)


def test_a_failing_job_is_logged_and_the_thread_serves_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pool = ElasticThreads("test")

    def broken() -> None:
        raise RuntimeError("boom")

    with caplog.at_level(logging.ERROR, logger="orchestrator.services.executors"):
        pool.submit(broken)
        eventually(lambda: pool.idle == 1)
    assert "boom" in caplog.text
    done = threading.Event()
    pool.submit(done.set)
    assert done.wait(WAIT)
    assert pool.threads == 1


def test_many_jobs_from_many_threads_all_run_once() -> None:
    pool = ElasticThreads("test", idle_timeout=0.01)  # threads come and go meanwhile
    counted: list[int] = []
    lock = threading.Lock()

    def job() -> None:
        with lock:
            counted.append(1)

    def submitter() -> None:
        for _ in range(200):
            pool.submit(job)
            time.sleep(0.0001)

    submitters = [threading.Thread(target=submitter) for _ in range(4)]
    for thread in submitters:
        thread.start()
    for thread in submitters:
        thread.join()
    eventually(lambda: len(counted) == 800)
    eventually(lambda: pool.threads == 0)
