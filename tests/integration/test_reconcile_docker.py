"""Crash safety on real Docker: a scheduler dies while its container runs (its log follower and
exit subscription go silent, as in a killed process), a new one starts over the same store and
engine, and the task still runs exactly once with its whole log, or a lost one is retried."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import docker
import pytest
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.models.specs import DagSpec, TaskSpec
from orchestrator.models.states import RunState
from orchestrator.runtime.base import ExitCallback, LogSink, Subscription
from orchestrator.runtime.docker import DockerRuntime
from orchestrator.scheduling.reconcile import Action
from orchestrator.services.runs import trigger_run
from orchestrator.services.scheduler import Scheduler
from orchestrator.settings import Settings
from orchestrator.store import dags as dag_store
from orchestrator.store import runs as run_store
from orchestrator.store import task_instances as ti_store
from tests.integration.harness import sh

pytestmark = pytest.mark.usefixtures("test_images")


class DoomedDocker(DockerRuntime):
    """The engine as a scheduler that is about to die sees it: once `dead`, nothing it set
    going (log streams, exit events) reaches the store or the log files again."""

    dead = False

    def follow_logs(self, container_id: str, sink: LogSink, *, started: bool = False) -> None:
        def guarded(chunk: bytes) -> None:
            if not self.dead:
                sink(chunk)

        super().follow_logs(container_id, guarded, started=started)

    def watch_exits(self, labels: dict[str, str], on_exit: ExitCallback) -> Subscription:
        def guarded(container_id: str) -> None:
            if not self.dead:
                on_exit(container_id)

        return super().watch_exits(labels, guarded)


class Crashing:
    def __init__(
        self, settings: Settings, sessions: sessionmaker[Session], client: docker.DockerClient
    ) -> None:
        self.settings, self.sessions, self.client = settings, sessions, client
        self.since = datetime.now(UTC) - timedelta(seconds=1)

    def trigger(self, *tasks: TaskSpec) -> str:
        dag = DagSpec(dag_id="it", fileloc="/dags/it.py", tasks=tasks)
        with self.sessions.begin() as session:
            dag_store.upsert_dag(session, dag, datetime.now(UTC))
            return trigger_run(session, dag, now=datetime.now(UTC)).run_id

    def ti(self, run_id: str, task_id: str) -> Any:
        with self.sessions() as session:
            run = run_store.get_run(session, "it", run_id)
            return next(
                t for t in run_store.task_instances(session, run.id) if t.task_id == task_id
            )

    def log(self, ti: Any, try_number: int = 1) -> str:
        with self.sessions() as session:
            attempt = ti_store.get_attempt(session, ti.id, try_number)
            assert attempt is not None
            with open(attempt.log_path) as handle:
                return handle.read()

    def run_doomed_until(self, run_id: str, ready: Any, timeout: float = 60) -> DoomedDocker:
        runtime = DoomedDocker(self.client)
        scheduler = Scheduler(settings=self.settings, sessions=self.sessions, runtime=runtime)
        scheduler.start()
        deadline = time.monotonic() + timeout
        while not ready():
            assert time.monotonic() < deadline, "the first scheduler never got there"
            scheduler.tick(datetime.now(UTC))
            time.sleep(0.1)
        runtime.dead = True  # killed: it never ticks again
        scheduler.close(wait=False)
        return runtime

    def restart(self) -> Scheduler:
        scheduler = Scheduler(
            settings=self.settings, sessions=self.sessions, runtime=DockerRuntime(self.client)
        )
        scheduler.start()
        return scheduler

    def finish(self, scheduler: Scheduler, run_id: str, timeout: float = 60) -> RunState:
        def done() -> bool:
            with self.sessions() as session:
                return RunState(run_store.get_run(session, "it", run_id).state).is_finished

        assert scheduler.run_until_idle(done, timeout=timeout), "run did not finish"
        scheduler.close()
        with self.sessions() as session:
            return RunState(run_store.get_run(session, "it", run_id).state)

    def containers_created(self) -> int:
        events = self.client.api.events(
            since=self.since,
            until=datetime.now(UTC),
            decode=True,
            filters={
                "type": "container",
                "event": "create",
                "label": f"orch.instance={self.settings.instance_name}",
            },
        )
        return sum(1 for _ in events)


@pytest.fixture
def crashing(
    settings: Settings, sessions: sessionmaker[Session], docker_client: docker.DockerClient
) -> Crashing:
    return Crashing(settings, sessions, docker_client)


def test_a_running_container_is_adopted_after_a_restart(crashing: Crashing) -> None:
    script = (
        "for i in 1 2 3 4 5 6 7 8; do echo line $i; sleep 0.3; done; echo '[1]' > $ORCH_OUTPUT_PATH"
    )
    run_id = crashing.trigger(sh("a", script))

    def printing() -> bool:
        ti = crashing.ti(run_id, "a")
        return ti.state == "running" and "line 2" in crashing.log(ti)

    crashing.run_doomed_until(run_id, printing)
    second = crashing.restart()
    assert second.reconcile(datetime.now(UTC)).actions == {Action.ADOPT: 1}
    assert crashing.finish(second, run_id) == RunState.SUCCESS

    ti = crashing.ti(run_id, "a")
    assert (ti.state, ti.try_number, ti.exit_code, ti.output_json) == ("success", 1, 0, "[1]")
    assert crashing.log(ti) == "".join(f"line {i}\n" for i in range(1, 9))
    assert crashing.containers_created() == 1


def test_an_attempt_whose_container_was_removed_is_lost_and_retried(
    crashing: Crashing, docker_client: docker.DockerClient
) -> None:
    script = 'if [ "$ORCH_TRY_NUMBER" = 1 ]; then sleep 60; fi; echo try $ORCH_TRY_NUMBER'
    run_id = crashing.trigger(sh("a", script, retries=1, retry_delay=timedelta(seconds=0)))
    crashing.run_doomed_until(run_id, lambda: crashing.ti(run_id, "a").state == "running")
    docker_client.api.remove_container(crashing.ti(run_id, "a").container_id, force=True)

    second = crashing.restart()
    assert second.reconcile(datetime.now(UTC)).actions == {Action.LOST: 1}
    assert crashing.finish(second, run_id) == RunState.SUCCESS
    ti = crashing.ti(run_id, "a")
    assert (ti.state, ti.try_number) == ("success", 2)
    assert crashing.log(ti, 2) == "try 2\n"
    with crashing.sessions() as session:
        first = ti_store.get_attempt(session, ti.id, 1)
        assert first is not None and (first.detail or "").startswith("lost: the container is gone")
