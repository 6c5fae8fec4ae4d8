"""The scheduler on the real Docker engine: success with outputs, and every failure path."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
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
from tests.integration.conftest import BUSYBOX, PYTHON

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("test_images")]


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


@pytest.fixture
def env(
    settings: Settings, sessions: sessionmaker[Session], docker_client: docker.DockerClient
) -> Iterator[Env]:
    e = Env(settings, sessions, docker_client)
    yield e
    e.scheduler.close()


def sh(task_id: str, script: str, *upstream: str, **kw: Any) -> TaskSpec:
    kw.setdefault("image", BUSYBOX)
    kw.setdefault("pull_policy", "never")
    return TaskSpec(task_id=task_id, command=("sh", "-c", script), upstream_task_ids=upstream, **kw)


def wait_removed(env: Env, timeout: float = 10) -> list[str]:
    deadline = time.monotonic() + timeout
    while (left := env.leftover_containers()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def test_outputs_flow_and_logs_outlive_the_containers(env: Env) -> None:
    tis = env.run(
        sh("make", 'echo "making"; echo \'{"n": 3, "city": "Oslo"}\' > "$ORCH_OUTPUT_PATH"'),
        sh(
            "use",
            'echo "got $N in $CITY for $ORCH_DAG_ID/$ORCH_TASK_ID try $ORCH_TRY_NUMBER"',
            "make",
            environment={"N": "{{ outputs.make.n }}", "CITY": "{{ outputs.make.city }}"},
        ),
    )
    assert env.run_state == "success"
    assert json.loads(tis["make"].output_json) == {"n": 3, "city": "Oslo"}
    assert "got 3 in Oslo for it/use try 1" in env.log(tis["use"])
    assert "making" in env.log(tis["make"])
    assert wait_removed(env) == []


def test_non_zero_exit_fails_and_blocks_downstream(env: Env) -> None:
    tis = env.run(sh("bad", "echo oops >&2; exit 7"), sh("after", "true", "bad"))
    assert (tis["bad"].state, tis["bad"].exit_code) == ("failed", 7)
    assert tis["after"].state == "upstream_failed"
    assert env.run_state == "failed"
    assert "oops" in env.log(tis["bad"])


def test_retry_runs_a_second_container(env: Env) -> None:
    tis = env.run(sh("flaky", '[ "$ORCH_TRY_NUMBER" -ge 2 ] || exit 1', retries=1, retry_delay=0))
    assert (tis["flaky"].state, tis["flaky"].try_number) == ("success", 2)


def test_oom_kill_is_reported(env: Env) -> None:
    tis = env.run(
        TaskSpec(
            task_id="hog",
            image=PYTHON,
            pull_policy="never",
            memory="48m",
            command=("python3", "-c", "x = bytearray(400 * 1024 * 1024); print(len(x))"),
        )
    )
    ti = tis["hog"]
    assert ti.state == "failed" and ti.exit_code == 137
    assert "out of memory" in ti.state_detail
    assert "out of memory" in env.log(ti)


def test_execution_timeout_stops_then_kills(env: Env) -> None:
    started = time.monotonic()
    tis = env.run(sh("slow", "trap '' TERM; echo sleeping; sleep 60", execution_timeout=1))
    elapsed = time.monotonic() - started
    ti = tis["slow"]
    assert ti.state == "failed" and "timed out after 1s" in ti.state_detail
    assert elapsed < 30
    log = env.log(ti)
    assert "sleeping" in log and "execution_timeout of 1s reached" in log


def test_missing_image_with_pull_never(env: Env) -> None:
    tis = env.run(sh("ghost", "true", image="orchestrator/does-not-exist:1"))
    ti = tis["ghost"]
    assert ti.state == "failed"
    assert "orchestrator/does-not-exist:1" in ti.state_detail
    assert "orchestrator/does-not-exist:1" in env.log(ti)


def test_bad_template_fails_with_field_and_message(env: Env) -> None:
    tis = env.run(sh("tpl", "echo {{ params.missing }}"))
    ti = tis["tpl"]
    assert ti.state == "failed"
    assert "command[2]" in ti.state_detail and "missing" in ti.state_detail
    assert env.leftover_containers() == []


def test_bad_output_json_fails(env: Env) -> None:
    tis = env.run(sh("junk", 'echo "{nope" > "$ORCH_OUTPUT_PATH"'))
    ti = tis["junk"]
    assert ti.state == "failed" and "not a single JSON value" in ti.state_detail


def test_skip_exit_code(env: Env) -> None:
    tis = env.run(sh("maybe", "exit 42", skip_exit_codes=(42,)), sh("then", "true", "maybe"))
    assert (tis["maybe"].state, tis["then"].state) == ("skipped", "skipped")
    assert env.run_state == "success"


def test_mounts_volume_bind_and_tmpfs(env: Env, tmp_path: Path) -> None:
    host = tmp_path / "in"
    host.mkdir()
    (host / "hello.txt").write_text("hi from host\n")
    vol = f"{env.settings.instance_name}-vol"
    tis = env.run(
        sh(
            "write",
            "echo data > /vol/f && cat /in/hello.txt && ! touch /in/x && echo t > /scratch/t",
            mounts=(f"{vol}:/vol", f"{host}:/in:ro", "tmpfs:/scratch"),
        ),
        sh(
            "read",
            'printf "\\"%s\\"" "$(cat /vol/f)" > "$ORCH_OUTPUT_PATH"',
            "write",
            mounts=(f"{vol}:/vol",),
        ),
    )
    assert tis["write"].state == "success", env.log(tis["write"])
    assert json.loads(tis["read"].output_json) == "data"
    volume = env.client.volumes.get(vol)
    assert volume.attrs["Labels"].get("orch.test")  # created labelled, so cleanup finds it
