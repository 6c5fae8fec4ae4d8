"""Delivering notifications: a real local HTTP server, real processes, the fake runtime; and
the scheduler sending them after its transaction, once, without ever failing a task."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.models.launch import LaunchRequest
from orchestrator.models.notifiers import (
    Command,
    ContainerHook,
    NotificationPayload,
    Notifier,
    NotifyEvent,
    Webhook,
)
from orchestrator.models.specs import DagSpec, TaskSpec
from orchestrator.runtime.fake import FakeBehavior, FakeRuntime
from orchestrator.services.executors import InlineExecutor
from orchestrator.services.notifications import Notice, NotificationService
from orchestrator.services.runs import trigger_run
from orchestrator.services.scheduler import Scheduler
from orchestrator.settings import Settings
from orchestrator.store import dags as dag_store
from orchestrator.store import notifications as notification_store
from orchestrator.store import runs as run_store
from tests.support import FixedClock
from tests.webhook_receiver import Receiver, closed_port


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def payload(clock: FixedClock, **kw: Any) -> NotificationPayload:
    now = clock.now()
    fields: dict[str, Any] = {
        "event": NotifyEvent.ON_FAILURE,
        "dag_id": "d",
        "run_id": "manual__x",
        "run_type": "manual",
        "task_id": "load",
        "map_index": -1,
        "try_number": 1,
        "state": "failed",
        "exit_code": 3,
        "logical_date": now,
        "data_interval_start": now,
        "data_interval_end": now,
        "at": now,
    }
    return NotificationPayload(**{**fields, **kw})


class Delivery:
    def __init__(
        self, settings: Settings, sessions: sessionmaker[Session], clock: FixedClock
    ) -> None:
        self.sessions = sessions
        self.runtime = FakeRuntime()
        self.service = NotificationService(
            settings=settings,
            sessions=sessions,
            runtime=self.runtime,
            clock=clock,
            executor=InlineExecutor(),
            retry_delays=(0.0, 0.0),
        )
        self.clock = clock
        self.log = settings.home / "attempt.log"

    def send(self, notifier: Notifier, **kw: Any) -> bool:
        return self.service.deliver(Notice(notifier, payload(self.clock, **kw), self.log))

    def records(self) -> list[Any]:
        with self.sessions() as session:
            return notification_store.deliveries(session, "d")


@pytest.fixture
def delivery(settings: Settings, sessions: sessionmaker[Session], clock: FixedClock) -> Delivery:
    return Delivery(settings, sessions, clock)


def test_webhook_posts_the_payload_as_json(delivery: Delivery, receiver: Receiver) -> None:
    assert delivery.send(Webhook(receiver.url(), headers={"X-Token": "t0k"}))
    [body] = receiver.received
    assert body["event"] == "on_failure" and body["exit_code"] == 3
    assert (body["dag_id"], body["task_id"], body["try_number"]) == ("d", "load", 1)
    assert body["logical_date"].startswith("2026-03-14T12:00:00")
    assert receiver.headers[0]["X-Token"] == "t0k"
    assert receiver.headers[0]["Content-Type"] == "application/json"
    [record] = delivery.records()
    assert (record.status, record.attempts, record.target) == ("delivered", 1, receiver.url())


def test_http_500_is_retried_twice_then_logged_not_raised(
    delivery: Delivery, receiver: Receiver
) -> None:
    receiver.status = 500
    assert not delivery.send(Webhook(receiver.url()))
    assert len(receiver.received) == 3
    line = f"[orchestrator] notification on_failure to {receiver.url()} failed: HTTP 500"
    assert line in delivery.log.read_text()
    [record] = delivery.records()
    assert (record.status, record.attempts) == ("failed", 3)


def test_closing_without_waiting_leaves_a_delivery_in_flight_to_its_worker(
    settings: Settings, sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    """A SIGTERM closes the service without waiting: a webhook that has not answered yet does
    not hold the stopping scheduler up (its process gives the workers a moment, then leaves)."""
    gate = threading.Event()
    slow = Receiver(gate=gate)
    service = NotificationService(
        settings=settings, sessions=sessions, runtime=FakeRuntime(), clock=clock
    )
    opener = threading.Timer(10, gate.set)  # a close that waits would return only then
    opener.start()
    try:
        service.submit([Notice(Webhook(slow.url()), payload(clock), settings.home / "a.log")])
        assert len(slow.wait_for(1)) == 1  # the delivery is under way
        service.close(wait=False)
        with sessions() as session:
            assert notification_store.deliveries(session, "d") == []  # still waiting
        gate.set()
        deadline = time.monotonic() + 30
        while True:  # the worker finishes it
            with sessions() as session:
                records = notification_store.deliveries(session, "d")
            if records:
                break
            assert time.monotonic() < deadline, "the delivery was never recorded"
            time.sleep(0.05)
        assert records[0].status == "delivered"
    finally:
        opener.cancel()
        gate.set()
        slow.close()


def test_http_400_is_not_retried(delivery: Delivery, receiver: Receiver) -> None:
    receiver.status = 400
    assert not delivery.send(Webhook(receiver.url()))
    assert len(receiver.received) == 1


def test_connection_refused_is_logged(delivery: Delivery) -> None:
    url = f"http://127.0.0.1:{closed_port()}/hook"
    assert not delivery.send(Webhook(url))
    text = delivery.log.read_text()
    assert f"notification on_failure to {url} failed: cannot connect" in text
    assert "(after 3 attempts)" in text


def test_a_hanging_server_is_given_up_on_after_the_timeout(delivery: Delivery) -> None:
    slow = Receiver(delay=3)
    try:
        delivery.service._retry_delays = ()  # one attempt keeps the test short
        assert not delivery.send(Webhook(slow.url(), timeout=0.3))
    finally:
        slow.close()
    assert "failed: no answer within 0.3s" in delivery.log.read_text()


def test_credentials_and_query_are_kept_out_of_logs(delivery: Delivery) -> None:
    url = f"http://user:secret@127.0.0.1:{closed_port()}/hook?token=abc"
    delivery.service._retry_delays = ()
    delivery.send(Webhook(url))
    text = delivery.log.read_text()
    assert "secret" not in text and "abc" not in text


def test_command_gets_the_payload_on_stdin_and_in_the_environment(
    delivery: Delivery, tmp_path: Path
) -> None:
    out = tmp_path / "got.json"
    script = (
        "import json, os, sys; d = json.load(sys.stdin);"
        f" e = json.loads(os.environ['ORCH_NOTIFICATION']); open({str(out)!r}, 'w').write("
        "json.dumps([d['event'], e['exit_code']]))"
    )
    assert delivery.send(Command([sys.executable, "-c", script]))
    assert json.loads(out.read_text()) == ["on_failure", 3]


def test_a_failing_command_is_logged_with_its_output(delivery: Delivery) -> None:
    script = "import sys; print('no route to pager', file=sys.stderr); sys.exit(4)"
    assert not delivery.send(Command([sys.executable, "-c", script]))
    assert "failed: exited with status 4: no route to pager" in delivery.log.read_text()
    assert not delivery.send(Command(["/nonexistent/notifier"]))
    assert not delivery.send(
        Command([sys.executable, "-c", "import time; time.sleep(5)"], timeout=0.3)
    )
    assert "did not finish within 0.3s" in delivery.log.read_text()


def test_command_notifiers_can_be_forbidden(
    settings: Settings, sessions: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> None:
    locked = settings.model_copy(update={"allow_command_notifiers": False})
    d = Delivery(locked, sessions, clock)
    out = tmp_path / "ran"
    assert not d.send(Command(["touch", str(out)]))
    assert not out.exists()
    assert "refused: command notifiers are disabled" in d.log.read_text()
    assert d.records()[0].status == "refused"


def test_container_hook_runs_labelled_with_the_payload_and_is_removed(
    delivery: Delivery, settings: Settings
) -> None:
    assert delivery.send(ContainerHook("alpine", command=["notify"], environment={"A": "1"}))
    [request] = delivery.runtime.created
    body = json.loads(request.environment["ORCH_NOTIFICATION"])
    assert body["event"] == "on_failure" and request.environment["A"] == "1"
    assert request.labels["orch.instance"] == settings.instance_name
    assert request.labels["orch.notification"] == "on_failure"
    assert request.labels["orch.task_id"] == "load"
    assert delivery.runtime.removed and not delivery.runtime.containers


def test_a_failing_container_hook_is_logged_and_removed(
    settings: Settings, sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    d = Delivery(settings, sessions, clock)
    d.runtime.script = lambda _r: FakeBehavior(exit_code=2, logs=b"webhook down\n")
    assert not d.send(ContainerHook("alpine"))
    assert "failed: container exited with code 2: webhook down" in d.log.read_text()
    assert not d.runtime.containers


# --------------------------------------------------------------------------- in the scheduler
class Harness:
    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        clock: FixedClock,
        script: Callable[[LaunchRequest], FakeBehavior] | None = None,
    ) -> None:
        self.sessions, self.clock = sessions, clock
        self.runtime = FakeRuntime(script)
        self.scheduler = Scheduler(
            settings=settings,
            sessions=sessions,
            runtime=self.runtime,
            clock=clock,
            executor=InlineExecutor(),
        )
        self.scheduler.start()

    def trigger(self, dag: DagSpec, run_type: str = "manual") -> str:
        with self.sessions.begin() as session:
            dag_store.upsert_dag(session, dag, self.clock.now())
            return trigger_run(session, dag, now=self.clock.now(), run_type=run_type).run_id

    def tick(self, times: int = 1) -> None:
        for _ in range(times):
            self.scheduler.tick(self.clock.now())

    def run_state(self, run_id: str) -> str:
        with self.sessions() as session:
            return run_store.get_run(session, "d", run_id).state


def failing(code: int) -> Callable[[LaunchRequest], FakeBehavior]:
    return lambda request: FakeBehavior(exit_code=code if "-bad-" in request.name else 0)


def test_a_failing_task_notifies_on_failure_once_with_its_exit_code(
    settings: Settings, sessions: sessionmaker[Session], clock: FixedClock, receiver: Receiver
) -> None:
    hook = Webhook(receiver.url())
    dag = DagSpec(
        dag_id="d",
        tasks=(
            TaskSpec(task_id="bad", image="i", on_failure=hook, on_success=hook),
            TaskSpec(task_id="after", image="i", upstream_task_ids=("bad",), on_failure=hook),
        ),
        on_failure=hook,
    )
    h = Harness(settings, sessions, clock, failing(3))
    run_id = h.trigger(dag)
    h.tick(3)
    assert h.run_state(run_id) == "failed"
    # the task's on_failure, then the run's; none for the upstream_failed child
    assert [(b["event"], b["task_id"], b["exit_code"]) for b in receiver.received] == [
        ("on_failure", "bad", 3),
        ("on_failure", None, None),
    ]
    assert receiver.received[1]["state"] == "failed"
    assert receiver.received[0]["log_path"].endswith("attempt=1.log")


def test_retries_notify_on_retry_then_on_success(
    settings: Settings, sessions: sessionmaker[Session], clock: FixedClock, receiver: Receiver
) -> None:
    hook = Webhook(receiver.url())
    attempts: list[str] = []

    def flaky(request: LaunchRequest) -> FakeBehavior:
        attempts.append(request.name)
        return FakeBehavior(exit_code=1 if len(attempts) == 1 else 0)

    task = TaskSpec(
        task_id="t",
        image="i",
        retries=1,
        retry_delay=timedelta(seconds=10),
        on_retry=hook,
        on_failure=hook,
        on_success=hook,
    )
    h = Harness(settings, sessions, clock, flaky)
    run_id = h.trigger(DagSpec(dag_id="d", tasks=(task,), on_success=hook))
    h.tick()
    assert receiver.events() == ["on_retry"]
    clock.advance(seconds=11)
    h.tick(2)
    assert h.run_state(run_id) == "success"
    assert receiver.events() == ["on_retry", "on_success", "on_success"]
    assert [b["try_number"] for b in receiver.received[:2]] == [1, 2]


def test_a_broken_notifier_never_fails_the_task_or_the_run(
    settings: Settings, sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    dead = Webhook(f"http://127.0.0.1:{closed_port()}/hook", timeout=0.5)
    h = Harness(settings, sessions, clock)
    h.scheduler._notifications._retry_delays = ()
    run_id = h.trigger(
        DagSpec(
            dag_id="d", tasks=(TaskSpec(task_id="t", image="i", on_success=dead),), on_success=dead
        )
    )
    h.tick(2)
    assert h.run_state(run_id) == "success"
    with sessions() as session:
        records = notification_store.deliveries(session, "d", run_id)
    assert [(r.event, r.task_id, r.status) for r in records] == [
        ("on_success", "t", "failed"),
        ("on_success", None, "failed"),
    ]
    log_file = next(settings.logs_folder.rglob("attempt=1.log"))
    assert "[orchestrator] notification on_success to http://127.0.0.1:" in log_file.read_text()


def test_sla_miss_is_recorded_and_notified_once_and_the_scheduler_wakes_for_it(
    settings: Settings, sessions: sessionmaker[Session], clock: FixedClock, receiver: Receiver
) -> None:
    hook = Webhook(receiver.url())
    task = TaskSpec(task_id="slow", image="i", sla=timedelta(minutes=10))
    h = Harness(settings, sessions, clock, lambda _r: FakeBehavior(hang=True))
    queued = clock.now()
    run_id = h.trigger(DagSpec(dag_id="d", tasks=(task,), on_sla_miss=hook))
    h.tick()
    # nothing else due: the loop sleeps until the deadline (capped by the poll interval)
    assert h.scheduler._next_deadline == queued + timedelta(minutes=10)
    clock.advance(minutes=9)
    h.tick()
    assert receiver.received == []
    clock.advance(minutes=1)
    h.tick(3)
    [body] = receiver.received
    assert (body["event"], body["task_id"], body["state"]) == ("on_sla_miss", "slow", "running")
    assert body["sla_deadline"].startswith("2026-03-14T12:10:00")
    with sessions() as session:
        [miss] = notification_store.sla_misses(session, "d")
    assert (miss.run_id, miss.task_id, miss.notified) == (run_id, "slow", True)
    assert miss.deadline == queued + timedelta(minutes=10)
