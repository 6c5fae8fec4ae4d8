"""`kill -9` of `orchestrator scheduler` mid-run on real Docker: the restarted scheduler adopts
the running containers, and every task ends successful having run exactly once. A SIGTERM
stops it within seconds and leaves running containers to the next start."""

from __future__ import annotations

import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import docker
import pytest

from tests.e2e.conftest import Cli

pytestmark = pytest.mark.docker

SLEEPY = """
from orchestrator import DAG, ContainerTask

def step(task_id):
    return ContainerTask(
        task_id=task_id,
        image="orchestrator/busybox:latest",
        pull_policy="never",
        command=["sh", "-c", f"echo start {task_id}; sleep 2; echo done {task_id}"],
    )

with DAG("sleepy") as dag:
    first = step("first")
    first >> [step("b"), step("c"), step("d")]
"""

#: One task that runs long enough to be seen running however slow the machine is.
LONG = """
from orchestrator import DAG, ContainerTask

with DAG("sleepy") as dag:
    ContainerTask(
        task_id="first",
        image="orchestrator/busybox:latest",
        pull_policy="never",
        command=["sh", "-c", "echo start; sleep 15; echo done"],
    )
"""


def show(cli: Cli, run_id: str) -> dict[str, Any]:
    return dict(cli.json("runs", "show", "sleepy", run_id))


def wait_until(cli: Cli, run_id: str, ready: Any, timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = show(cli, run_id)
        if ready(run):
            return run
        time.sleep(0.3)
    raise AssertionError(f"run {run_id} never got there: {show(cli, run_id)}")


def states(run: dict[str, Any]) -> dict[str, str]:
    return {t["task_id"]: t["state"] for t in run["task_instances"]}


def test_kill_9_mid_run_then_restart_runs_every_task_exactly_once(
    cli: Cli, docker_client: docker.DockerClient
) -> None:
    since = datetime.now(UTC) - timedelta(seconds=1)
    cli.add_dag("sleepy.py", SLEEPY)
    scheduler = cli.popen("scheduler")
    try:
        run_id = cli.json("dags", "trigger", "sleepy")["run_id"]
        wait_until(
            cli,
            run_id,
            lambda r: "running" in states(r).values() and states(r)["first"] == "success",
        )
    finally:
        scheduler.send_signal(signal.SIGKILL)
        scheduler.communicate(timeout=30)

    restarted = cli.popen("scheduler")
    try:
        run = wait_until(cli, run_id, lambda r: r["state"] in ("success", "failed"))
        assert run["state"] == "success", run
        for ti in run["task_instances"]:
            assert (ti["state"], ti["try_number"]) == ("success", 1), ti
            log = cli("tasks", "logs", "sleepy", run_id, ti["task_id"]).stdout
            task = ti["task_id"]
            assert log.count(f"start {task}\n") == 1 and log.count(f"done {task}\n") == 1, log
    finally:
        started = time.monotonic()
        restarted.send_signal(signal.SIGTERM)
        out, _ = restarted.communicate(timeout=30)
    assert restarted.returncode == 0, out
    assert time.monotonic() - started < 10, "SIGTERM took too long"
    events = docker_client.api.events(
        since=since,
        until=datetime.now(UTC),
        decode=True,
        filters={
            "type": "container",
            "event": "create",
            "label": f"orch.instance={cli.env['ORCH_INSTANCE_NAME']}",
        },
    )
    assert sum(1 for _ in events) == 4  # one container per task: none ran twice


def test_sigterm_leaves_a_running_container_to_the_next_start(
    cli: Cli, docker_client: docker.DockerClient
) -> None:
    cli.add_dag("sleepy.py", LONG)
    scheduler = cli.popen("scheduler")
    run_id = cli.json("dags", "trigger", "sleepy")["run_id"]
    wait_until(cli, run_id, lambda r: states(r)["first"] == "running")
    started = time.monotonic()
    scheduler.send_signal(signal.SIGTERM)
    out, _ = scheduler.communicate(timeout=30)
    assert scheduler.returncode == 0, out
    assert time.monotonic() - started < 5, "SIGTERM took too long"
    label = f"orch.instance={cli.env['ORCH_INSTANCE_NAME']}"
    assert docker_client.api.containers(all=True, filters={"label": label}), "container gone"

    restarted: subprocess.Popen[str] = cli.popen("scheduler")
    try:
        run = wait_until(cli, run_id, lambda r: r["state"] in ("success", "failed"))
        assert run["state"] == "success"
        assert all(ti["try_number"] == 1 for ti in run["task_instances"])
    finally:
        restarted.send_signal(signal.SIGTERM)
        restarted.communicate(timeout=30)


#: Ignores SIGTERM (says so), so stopping it waits out the whole grace period.
STUBBORN = """
from datetime import timedelta
from orchestrator import DAG, ContainerTask

with DAG("stubborn") as dag:
    ContainerTask(
        task_id="t",
        image="orchestrator/busybox:latest",
        pull_policy="never",
        command=["sh", "-c", "trap 'echo got TERM' TERM; echo up; while true; do sleep 1; done"],
        execution_timeout=timedelta(seconds=2),
    )
"""


def test_sigterm_does_not_wait_for_a_container_stop_in_progress(
    cli: Cli, docker_client: docker.DockerClient
) -> None:
    """The timed-out task's stop waits out a 60 s grace period in a worker; a SIGTERM of the
    scheduler meanwhile still ends it within seconds, and the next start finishes the task."""
    cli.add_dag("stubborn.py", STUBBORN)
    cli.env["ORCH_STOP_GRACE_PERIOD"] = "60"
    scheduler = cli.popen("scheduler")
    try:
        run_id = cli.json("dags", "trigger", "stubborn")["run_id"]
        deadline = time.monotonic() + 90
        while "got TERM" not in cli("tasks", "logs", "stubborn", run_id, "t", check=False).stdout:
            assert time.monotonic() < deadline, "the timed-out task was never stopped"
            time.sleep(0.3)
    finally:
        started = time.monotonic()
        scheduler.send_signal(signal.SIGTERM)
        out, _ = scheduler.communicate(timeout=90)
    assert scheduler.returncode == 0, out
    assert time.monotonic() - started < 10, f"SIGTERM took too long\n{out}"
    assert "leaving 1 engine call(s) in progress" in out

    cli.env["ORCH_STOP_GRACE_PERIOD"] = "1"
    restarted = cli.popen("scheduler")
    try:
        deadline = time.monotonic() + 120
        while (run := dict(cli.json("runs", "show", "stubborn", run_id)))["state"] != "failed":
            assert time.monotonic() < deadline, run
            time.sleep(0.5)
    finally:
        restarted.send_signal(signal.SIGTERM)
        restarted.communicate(timeout=30)
    (ti,) = run["task_instances"]
    assert (ti["state"], ti["try_number"]) == ("failed", 1)
    assert "timed out" in ti["state_detail"]
