"""`runs clear` and `tasks mark` from the command line, on a real run with a running scheduler."""

from __future__ import annotations

import signal
import subprocess
import time
from typing import Any

import pytest

from tests.e2e.conftest import Cli

pytestmark = pytest.mark.docker

FLAKY = """
from orchestrator import DAG, ContainerTask

def step(task_id, script):
    return ContainerTask(
        task_id=task_id,
        image="orchestrator/busybox:latest",
        pull_policy="never",
        command=["sh", "-c", f"echo \\"{task_id} try $ORCH_TRY_NUMBER\\"; {script}"],
    )

with DAG("flaky", schedule=None) as dag:
    extract = step("extract", "true")
    # fails on its first try only
    transform = step("transform", '[ "$ORCH_TRY_NUMBER" -ge 2 ]')
    load = step("load", "true")
    side = step("side", "true")
    extract >> transform >> load
    extract >> side
"""


def wait_for_run(cli: Cli, run_id: str, states: tuple[str, ...], timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        state = cli.json("runs", "show", "flaky", run_id)["state"]
        if state in states:
            return state
        time.sleep(0.5)
    raise AssertionError(f"run {run_id} still {state!r} after {timeout}s")


def task_instances(cli: Cli, run_id: str) -> dict[str, Any]:
    return {t["task_id"]: t for t in cli.json("runs", "show", "flaky", run_id)["task_instances"]}


def stop(scheduler: subprocess.Popen[str]) -> None:
    scheduler.send_signal(signal.SIGTERM)
    out, _ = scheduler.communicate(timeout=60)
    assert scheduler.returncode == 0, out


def test_clear_with_downstream_reruns_the_containers(cli: Cli) -> None:
    cli.add_dag("flaky.py", FLAKY)
    scheduler = cli.popen("scheduler")
    try:
        run_id = cli.json("dags", "trigger", "flaky")["run_id"]
        assert wait_for_run(cli, run_id, ("success", "failed")) == "failed"
        before = task_instances(cli, run_id)
        assert before["transform"]["state"] == "failed"
        assert before["load"]["state"] == "upstream_failed"

        # not a terminal: no confirmation prompt; it prints what it clears
        cleared = cli(
            "runs", "clear", "flaky", "--run", run_id, "--task", "transform", "--downstream"
        )
        assert "will clear 2 task instance(s)" in cleared.stdout
        assert "transform  (failed, try 1)" in cleared.stdout
        assert "load  (upstream_failed, try 0)" in cleared.stdout
        assert f"run {run_id}: failed -> queued" in cleared.stdout

        assert wait_for_run(cli, run_id, ("success", "failed")) == "success"
        after = task_instances(cli, run_id)
        assert {k: (v["state"], v["try_number"]) for k, v in after.items()} == {
            "extract": ("success", 1),
            "transform": ("success", 2),
            "load": ("success", 1),
            "side": ("success", 1),
        }
        assert after["extract"]["end_date"] == before["extract"]["end_date"]  # left alone
        second = cli("tasks", "logs", "flaky", run_id, "transform").stdout
        assert "transform try 2" in second
        first = cli("tasks", "logs", "flaky", run_id, "transform", "--try", "1").stdout
        assert "transform try 1" in first  # the failed attempt's log is kept
        assert "extract try 1" in cli("tasks", "logs", "flaky", run_id, "extract").stdout

        nothing = cli("runs", "clear", "flaky", "--run", run_id, "--failed-only")
        assert "nothing to clear" in nothing.stdout

        marked = cli("tasks", "mark", "flaky", "side", "--run", run_id, "--state", "failed")
        assert "marked failed side: success -> failed" in marked.stdout
        assert wait_for_run(cli, run_id, ("failed",)) == "failed"  # side is a leaf
    finally:
        stop(scheduler)


def test_clear_reports_an_unknown_task(cli: Cli) -> None:
    cli.add_dag("flaky.py", FLAKY)
    cli("dags", "list")
    result = cli("runs", "clear", "flaky", "--run", "nope", "--yes", check=False)
    assert result.returncode == 1 and "has no run 'nope'" in result.stderr
