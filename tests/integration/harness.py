"""A scheduler on the real Docker engine, for integration tests: run tasks, read results."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import docker
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.models.specs import DagSpec, TaskSpec
from orchestrator.models.states import RunState
from orchestrator.runtime.docker import DockerRuntime
from orchestrator.services.runs import trigger_run
from orchestrator.services.scheduler import Scheduler
from orchestrator.settings import Settings
from orchestrator.store import dags as dag_store
from orchestrator.store import runs as run_store
from orchestrator.store import task_instances as ti_store

BUSYBOX = "orchestrator/busybox:latest"
PYTHON = "orchestrator/python-base:bookworm"


class Env:
    def __init__(
        self, settings: Settings, sessions: sessionmaker[Session], client: docker.DockerClient
    ) -> None:
        self.settings, self.sessions, self.client = settings, sessions, client
        self.runtime = DockerRuntime(client)
        self.scheduler = Scheduler(settings=settings, sessions=sessions, runtime=self.runtime)

    def run(self, *tasks: TaskSpec, timeout: float = 120) -> dict[str, Any]:
        dag = DagSpec(
            dag_id="it", fileloc=str(self.settings.resolved_dags_folder / "it.py"), tasks=tasks
        )
        with self.sessions.begin() as session:
            dag_store.upsert_dag(session, dag, self.scheduler_now())
            run = trigger_run(session, dag, now=self.scheduler_now())
            run_pk, self.run_id = run.id, run.run_id

        def finished() -> bool:
            with self.sessions() as session:
                return RunState(run_store.get_run(session, "it", self.run_id).state).is_finished

        assert self.scheduler.run_until_idle(finished, timeout=timeout), "run did not finish"
        with self.sessions() as session:
            self.run_state = run_store.get_run(session, "it", self.run_id).state
            return {ti.task_id: ti for ti in run_store.task_instances(session, run_pk)}

    @staticmethod
    def scheduler_now() -> Any:
        from orchestrator.services.clock import SystemClock

        return SystemClock().now()

    def log(self, ti: Any, try_number: int = 1) -> str:
        with self.sessions() as session:
            attempt = ti_store.get_attempt(session, ti.id, try_number)
            assert attempt is not None
            return Path(attempt.log_path).read_text()

    def leftover_containers(self) -> list[str]:
        filters = {"label": [f"orch.instance={self.settings.instance_name}"]}
        # the low-level list: the high-level one inspects each container, racing removal
        return [c["Names"][0] for c in self.client.api.containers(all=True, filters=filters)]


def sh(task_id: str, script: str, *upstream: str, **kw: Any) -> TaskSpec:
    kw.setdefault("image", BUSYBOX)
    kw.setdefault("pull_policy", "never")
    return TaskSpec(task_id=task_id, command=("sh", "-c", script), upstream_task_ids=upstream, **kw)


def wait_removed(env: Env, timeout: float = 10) -> list[str]:
    deadline = time.monotonic() + timeout
    while (left := env.leftover_containers()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left
