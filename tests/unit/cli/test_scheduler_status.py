"""`orchestrator scheduler status`: is a scheduler running, can it reach the container engine;
and a scheduler started while the engine is down waits for it, saying so.

The status file is written by the scheduler's own code (its reconciliation over a fake engine
that can be made unreachable, its heartbeat, its stop), stamped with the real time: the command
judges the heartbeat's age by the wall clock.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from orchestrator.cli.main import app
from orchestrator.errors import RuntimeUnavailable
from orchestrator.models.launch import ContainerInfo
from orchestrator.runtime.base import ContainerRuntime
from orchestrator.runtime.fake import FakeRuntime
from orchestrator.services.daemon import connect_runtime
from orchestrator.services.executors import InlineExecutor
from orchestrator.services.reconcile import write_heartbeat, write_stopped
from orchestrator.services.scheduler import Scheduler
from orchestrator.settings import Settings
from tests.support import FixedClock

REFUSED = "the Docker engine could not be reached while trying to list containers: refused"


class Engine(FakeRuntime):
    """A fake engine that can be made unreachable."""

    down = False

    def list_containers(self, labels: dict[str, str]) -> list[ContainerInfo]:
        if self.down:
            raise RuntimeUnavailable(REFUSED)
        return super().list_containers(labels)


@pytest.fixture
def runner(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("ORCH_HOME", str(settings.home))
    return CliRunner()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime.now(UTC) - timedelta(seconds=30))


def status(runner: CliRunner, *args: str, code: int) -> str:
    result = runner.invoke(app, ["scheduler", "status", *args])
    assert result.exit_code == code, result.output
    return result.output


def status_json(runner: CliRunner, *args: str, code: int) -> dict[str, Any]:
    return json.loads(status(runner, "--output", "json", *args, code=code))  # type: ignore[no-any-return]


def scheduler(settings: Settings, sessions: sessionmaker[Session], clock: FixedClock) -> Any:
    engine = Engine()
    built = Scheduler(
        settings=settings,
        sessions=sessions,
        runtime=engine,
        clock=clock,
        executor=InlineExecutor(),
    )
    built.start()
    return built, engine


def test_before_any_scheduler_ran_it_says_so_and_fails(runner: CliRunner) -> None:
    assert "never started" in status(runner, code=1)
    found = status_json(runner, code=1)
    assert found["ok"] is False
    assert (found["scheduler"]["status"], found["engine"]["status"]) == ("never started", "unknown")


def test_a_running_scheduler_that_reaches_the_engine_passes(
    runner: CliRunner, settings: Settings, sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    sched, _ = scheduler(settings, sessions, clock)
    sched.reconcile(clock.now())
    write_heartbeat(settings.home, clock.now())
    shown = status(runner, code=0)
    assert "running: last heartbeat 30s ago" in shown and "reachable" in shown
    found = status_json(runner, code=0)
    assert found["ok"] is True and found["scheduler"]["running"] is True
    assert 29 <= found["scheduler"]["heartbeat_age_seconds"] < 60
    assert found["engine"] == {
        "status": "up",
        "reachable": True,
        "checked_at": clock.now().isoformat(),
        "error": None,
        "down_since": None,
        "next_check_at": None,
        "last_outage": None,
    }
    sched.close()


def test_an_unreachable_engine_shows_its_error_since_when_and_the_next_check(
    runner: CliRunner, settings: Settings, sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    sched, engine = scheduler(settings, sessions, clock)
    engine.down = True
    first_failure = clock.now()
    sched.reconcile(first_failure)
    clock.advance(seconds=1)
    sched.reconcile(clock.now())  # still down: the outage began at the first failed check
    write_heartbeat(settings.home, clock.now())

    shown = status(runner, code=1)
    assert "running" in shown
    assert f"unreachable since {first_failure.isoformat(timespec='seconds')}" in shown
    assert REFUSED in shown and "next check" in shown
    found = status_json(runner, code=1)
    assert found["ok"] is False and found["scheduler"]["running"] is True
    down = found["engine"]
    assert (down["status"], down["error"]) == ("down", REFUSED)
    assert down["down_since"] == first_failure.isoformat()
    # backoff: the second failure waits twice as long as the first
    assert down["next_check_at"] == (clock.now() + timedelta(seconds=2)).isoformat()

    engine.down = False
    clock.advance(seconds=2)
    sched.reconcile(clock.now())
    shown = status(runner, code=0)
    assert "reachable" in shown
    assert f"last outage {first_failure.isoformat(timespec='seconds')}" in shown
    outage = status_json(runner, code=0)["engine"]["last_outage"]
    assert outage == {
        "error": REFUSED,
        "since": first_failure.isoformat(),
        "until": clock.now().isoformat(),
    }
    sched.close()


def test_a_stopped_or_silent_scheduler_fails(
    runner: CliRunner, settings: Settings, sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    sched, _ = scheduler(settings, sessions, clock)
    sched.reconcile(clock.now())
    sched.close()
    long_ago = clock.now() - timedelta(seconds=settings.scheduler_stale_after + 60)
    write_heartbeat(settings.home, long_ago)
    assert "not responding" in status(runner, code=1)
    assert status_json(runner, code=1)["scheduler"]["status"] == "not responding"
    assert status_json(runner, "--stale-after", "100000", code=0)["scheduler"]["running"]

    write_heartbeat(settings.home, clock.now())
    write_stopped(settings.home, clock.now() + timedelta(seconds=1))
    assert "stopped at" in status(runner, code=1)
    found = status_json(runner, code=1)["scheduler"]
    assert (found["status"], found["running"]) == ("stopped", False)
    write_heartbeat(settings.home, clock.now() + timedelta(seconds=2))  # started again
    assert status_json(runner, code=0)["scheduler"]["status"] == "running"


def test_a_scheduler_started_while_the_engine_is_down_waits_for_it_and_says_so(
    runner: CliRunner, settings: Settings, clock: FixedClock
) -> None:
    attempts: list[int] = []
    reachable = threading.Event()
    engine = FakeRuntime()

    def connect() -> ContainerRuntime:
        attempts.append(1)
        if len(attempts) == 2:  # the status was written after the first failure: look at it
            reported.append(status_json(runner, code=1))
        if not reachable.is_set():
            if len(attempts) == 2:
                reachable.set()
            raise RuntimeUnavailable("cannot reach the Docker engine at unix:///nowhere")
        return engine

    reported: list[dict[str, Any]] = []
    stop = threading.Event()
    assert connect_runtime(settings, clock, stop, connect, backoff=(0.01, 0.02)) is engine
    assert len(attempts) == 3
    engine_seen = reported[0]["engine"]
    assert reported[0]["scheduler"]["running"] is True  # alive, waiting
    assert (engine_seen["status"], engine_seen["down_since"]) == ("down", clock.now().isoformat())
    assert "unix:///nowhere" in engine_seen["error"]

    stop.set()  # stopped while waiting: returns at once and records the stop

    def never(*_: Any) -> ContainerRuntime:
        raise RuntimeUnavailable("still down")

    assert connect_runtime(settings, clock, stop, never, backoff=(0.01, 0.02)) is None
    assert status_json(runner, code=1)["scheduler"]["status"] == "stopped"
