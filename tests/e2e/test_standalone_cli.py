"""`orchestrator standalone` on real Docker: it prints a new admin's password, serves the API
and runs what is triggered through it, and stops on SIGTERM; a second start prints the same
password and makes no other user."""

from __future__ import annotations

import queue
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Cli

pytestmark = pytest.mark.docker

HELLO = """
from orchestrator import DAG, ContainerTask

with DAG("hello") as dag:
    ContainerTask(
        task_id="greet",
        image="orchestrator/busybox:latest",
        pull_policy="never",
        command=["sh", "-c", "echo hello from standalone"],
    )
"""
PASSWORD_LINE = re.compile(r"(created user|user) 'admin' with password (\S+)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Output:
    """The lines a process prints, read in a thread so that waiting for one can time out."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        assert process.stdout is not None
        stream = process.stdout
        threading.Thread(target=lambda: [self.lines.put(x) for x in stream], daemon=True).start()

    def wait_for(self, pattern: re.Pattern[str], timeout: float = 60) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                continue
            self.seen.append(line)
            found = pattern.search(line)
            if found:
                return found
        raise AssertionError(f"no line like {pattern.pattern!r}:\n{''.join(self.seen)}")


def wait_until(what: str, probe: Callable[[], Any], timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except httpx.TransportError as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(0.5)
    raise AssertionError(f"{what} within {timeout} s; last seen: {last}")


def stop(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)


def test_standalone_prints_the_admin_password_and_runs_what_the_api_triggers(cli: Cli) -> None:
    cli.add_dag("hello.py", HELLO)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = cli.popen("standalone", "--port", str(port))
    try:
        output = Output(process)
        created, password = output.wait_for(PASSWORD_LINE).groups()
        assert created == "created user"
        admin = ("admin", password)
        client = httpx.Client(base_url=url, timeout=10)

        def healthy() -> bool:
            response = client.get("/health")
            return response.status_code == 200 and response.json()["scheduler"]["status"] == (
                "healthy"
            )

        wait_until("the server healthy with a live scheduler", healthy)
        assert client.get("/api/v1/dags").status_code == 401
        wait_until(
            "the DAG parsed",
            lambda: client.get("/api/v1/dags/hello", auth=admin).status_code == 200,
        )
        triggered = client.post("/api/v1/dags/hello/runs", json={"run_id": "api"}, auth=admin)
        assert triggered.status_code == 201, triggered.text

        def finished() -> dict[str, Any] | None:
            run: dict[str, Any] = client.get("/api/v1/dags/hello/runs/api", auth=admin).json()
            return run if run["state"] in ("success", "failed") else None

        run = wait_until("the run finished", finished)
        assert run["state"] == "success", run
        log = client.get("/api/v1/dags/hello/runs/api/tasks/greet/logs", auth=admin).text
        assert "hello from standalone" in log
    finally:
        stop(process)
    assert process.returncode == 0

    again = cli.popen("standalone", "--port", str(free_port()))
    try:
        kind, same = Output(again).wait_for(PASSWORD_LINE).groups()
    finally:
        stop(again)
    assert (kind, same) == ("user", password)
    assert [u["username"] for u in cli.json("users", "list")] == ["admin"]
