"""Notifiers and SLAs through the CLI: a DAG file with a command notifier and an SLA, run
with `dags test`, then inspected with `runs notifications` and `runs sla-misses`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import Cli

pytestmark = pytest.mark.docker

LATE_AND_FAILING = """
from datetime import timedelta
from orchestrator import DAG, Command, ContainerTask

script = "import sys; open({out!r}, 'a').write(sys.stdin.read() + chr(10))"
save = Command([{python!r}, "-c", script])

with DAG("late", on_sla_miss=save, on_failure=save) as dag:
    ContainerTask(
        task_id="slow",
        image="orchestrator/busybox:latest",
        pull_policy="never",
        command=["sh", "-c", "sleep 3; exit 3"],
        sla=timedelta(seconds=1),
        on_failure=save,
    )
"""


def test_failure_and_sla_miss_are_notified_and_listed(cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "notifications.jsonl"
    cli.add_dag("late.py", LATE_AND_FAILING.format(python=sys.executable, out=str(out)))
    result = cli("dags", "test", "late", check=False)
    assert result.returncode == 1, result.stdout + result.stderr

    events = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted((e["event"], e["task_id"] or "") for e in events) == [
        ("on_failure", ""),  # the run's
        ("on_failure", "slow"),
        ("on_sla_miss", "slow"),
    ]
    task_failure = next(e for e in events if e["event"] == "on_failure" and e["task_id"])
    assert task_failure["exit_code"] == 3

    [miss] = cli.json("runs", "sla-misses", "late")
    assert (miss["task_id"], miss["state"], miss["notified"]) == ("slow", "running", True)
    deliveries = cli.json("runs", "notifications", "late")
    assert {d["status"] for d in deliveries} == {"delivered"}
    assert len(deliveries) == 3
    table = cli("runs", "sla-misses").stdout
    assert "late" in table and "slow" in table
