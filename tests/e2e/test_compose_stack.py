"""End-to-end: the docker-compose stack as a user starts it with `scripts/compose.sh`.

The stack (PostgreSQL, the start-up step, the scheduler and the web server, from the image
built off ./Dockerfile) comes up under a project name of its own, with its own ORCH_HOME, port
and scheduler instance name, so it touches nothing else on the engine. The example DAG is
triggered through the REST API as the admin the stack made from ORCH_ADMIN_PASSWORD, its tasks
run as containers the scheduler starts through the host's engine, and the run's success, the
task output and the log are read back through the API. `down -v` removes the stack's
containers, network and database volume afterwards, whatever happened.

The orchestrator image is tagged `orchestrator/orchestrator:latest` and rebuilt each time from
Docker's layer cache: only the layers after a changed file are rebuilt (the dependency layer
only when pyproject.toml changes).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors
import httpx
import pytest

from tests.integration.conftest import docker_client  # noqa: F401 - fixture
from tests.support import TEST_SESSION_LABEL

pytestmark = [pytest.mark.docker, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
IMAGE = "orchestrator/orchestrator:latest"
ADMIN_PASSWORD = "stack-test-password"


def compose_command() -> list[str]:
    """`docker compose` (v2) when the docker CLI has it, else `docker-compose` (v1)."""
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    if probe.returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if os.environ.get("CI"):
        pytest.fail("CI needs docker-compose (or `docker compose`) and neither is installed")
    pytest.skip("neither `docker compose` nor `docker-compose` is installed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Stack:
    project: str
    compose: list[str]
    env: dict[str, str]
    url: str
    home: Path

    def run(self, *args: str, timeout: float = 120, check: bool = True) -> str:
        result = subprocess.run(
            [*self.compose, "-p", self.project, *args],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"compose {' '.join(args)} exited {result.returncode}\n{result.stdout}\n"
                f"{result.stderr}"
            )
        return result.stdout + result.stderr

    def logs(self) -> str:
        return self.run("logs", "--no-color", "--tail", "60", check=False, timeout=60)


@pytest.fixture(scope="module")
def stack(docker_client: docker.DockerClient) -> Iterator[Stack]:  # noqa: F811
    compose = compose_command()
    project = f"orchstack{uuid.uuid4().hex[:8]}"
    # Not under pytest's tmp_path (mode 700): the stack's user (uid 10001) reads the DAG folder.
    base = Path(tempfile.mkdtemp(prefix="orch-stack-"))
    base.chmod(0o755)
    dags = base / "dags"
    dags.mkdir(mode=0o755)
    shutil.copy(REPO / "dags" / "example_sales.py", dags / "example_sales.py")
    (dags / "example_sales.py").chmod(0o644)
    home = base / "home"
    port = free_port()
    instance = f"s{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "COMPOSE_PROJECT_NAME": project,
        "ORCH_IMAGE": IMAGE,
        "ORCH_STACK_HOME": str(home),
        "ORCH_STACK_DAGS": str(dags),
        "ORCH_STACK_WEB_PORT": str(port),
        "ORCH_STACK_INSTANCE": instance,
        "ORCH_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "ORCH_EXTRA_LABELS": json.dumps({"orch.test": TEST_SESSION_LABEL}),
    }
    started = Stack(project, compose, env, f"http://127.0.0.1:{port}", home)
    try:
        up = subprocess.run(
            ["bash", "scripts/compose.sh"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=720,
            check=False,
        )
        if up.returncode != 0:
            raise AssertionError(
                f"scripts/compose.sh exited {up.returncode}\n{up.stdout[-4000:]}\n"
                f"{up.stderr[-4000:]}\n{started.logs()}"
            )
        yield started
    finally:
        started.run("down", "-v", "--remove-orphans", "--timeout", "5", check=False)
        _remove_leftovers(docker_client, project, instance)
        _remove_home(docker_client, base)


def _remove_leftovers(client: docker.DockerClient, project: str, instance: str) -> None:
    """Whatever `down` left: the project's objects and the scheduler's task containers."""
    for label in (f"com.docker.compose.project={project}", f"orch.instance={instance}"):
        for container in client.api.containers(all=True, filters={"label": label}):
            with contextlib.suppress(docker.errors.NotFound):
                client.api.remove_container(container["Id"], force=True)
    label = f"com.docker.compose.project={project}"
    for volume in client.volumes.list(filters={"label": label}):
        with contextlib.suppress(docker.errors.NotFound):
            volume.remove(force=True)
    for network in client.networks.list(filters={"label": label}):
        with contextlib.suppress(docker.errors.NotFound):
            network.remove()


def _remove_home(client: docker.DockerClient, base: Path) -> None:
    """The stack's files belong to its uid 10001: removed as root in a container."""
    with contextlib.suppress(docker.errors.APIError):
        client.containers.run(
            IMAGE,
            ["-c", "rm -rf /cleanup/home"],
            entrypoint="sh",
            user="0",
            volumes={str(base): {"bind": "/cleanup", "mode": "rw"}},
            remove=True,
        )
    shutil.rmtree(base, ignore_errors=True)


def wait_for(what: str, probe: Any, stack: Stack, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):
            last = probe()
            if last:
                return last
        time.sleep(1)
    raise AssertionError(f"{what} within {timeout}s; last seen: {last}\n{stack.logs()}")


def service_container(client: docker.DockerClient, stack: Stack, service: str) -> Any:
    labels = [
        f"com.docker.compose.project={stack.project}",
        f"com.docker.compose.service={service}",
    ]
    (container,) = client.containers.list(filters={"label": labels})
    return container


def test_only_the_scheduler_has_the_docker_socket_and_nothing_runs_as_root(
    stack: Stack,
    docker_client: docker.DockerClient,  # noqa: F811
) -> None:
    for service, has_socket in (("scheduler", True), ("web", False), ("postgres", False)):
        container = service_container(docker_client, stack, service)
        targets = {mount["Destination"] for mount in container.attrs["Mounts"]}
        assert ("/var/run/docker.sock" in targets) is has_socket, (service, targets)
        if service != "postgres":
            # where ORCH_HOME is the same path inside and on the host
            assert str(stack.home) in targets, (service, targets)
            status = container.exec_run(["cat", "/proc/1/status"]).output.decode()
            uids = next(line for line in status.splitlines() if line.startswith("Uid:"))
            assert uids.split()[1:] == ["10001"] * 4, (service, uids)


def test_stack_runs_the_example_dag_triggered_through_the_api(stack: Stack) -> None:
    client = httpx.Client(base_url=stack.url, timeout=10)
    admin = ("admin", ADMIN_PASSWORD)

    def healthy() -> dict[str, Any] | None:
        response = client.get("/health")
        body: dict[str, Any] = response.json()
        ok = response.status_code == 200 and body["scheduler"]["status"] == "healthy"
        return body if ok else None

    health = wait_for("the web server healthy with a live scheduler", healthy, stack, 120)
    assert health["scheduler"]["engine"] == "up", health

    assert client.get("/api/v1/dags").status_code == 401, "the stack's web server needs auth"

    def dag_listed() -> bool:
        response = client.get("/api/v1/dags", auth=admin)
        response.raise_for_status()
        return "example_sales" in {d["dag_id"] for d in response.json()["dags"]}

    wait_for("example_sales parsed by the scheduler", dag_listed, stack, 60)

    response = client.post(
        "/api/v1/dags/example_sales/runs", json={"conf": {"rows": 40}}, auth=admin
    )
    assert response.status_code == 201, response.text
    run_id = response.json()["run_id"]

    def finished() -> dict[str, Any] | None:
        run: dict[str, Any] = client.get(
            f"/api/v1/dags/example_sales/runs/{run_id}", auth=admin
        ).json()
        return run if run["state"] in ("success", "failed") else None

    run = wait_for("the triggered run finished", finished, stack, 180)
    tasks = client.get(f"/api/v1/dags/example_sales/runs/{run_id}/tasks", auth=admin).json()
    assert run["state"] == "success", f"{run}\n{tasks}\n{stack.logs()}"

    # The output reached the store through the output folder the task container had mounted
    # by its host path, and the log through the shared ORCH_HOME.
    aggregate = client.get(
        f"/api/v1/dags/example_sales/runs/{run_id}/tasks/aggregate", auth=admin
    ).json()
    summary = aggregate["output"]
    assert summary["date"] == run["logical_date"][:10], aggregate
    assert 0 < summary["orders"] <= 40, aggregate
    log = client.get(f"/api/v1/dags/example_sales/runs/{run_id}/tasks/report/logs", auth=admin).text
    assert "Sales report" in log, log
