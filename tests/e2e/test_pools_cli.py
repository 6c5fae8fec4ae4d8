"""`orchestrator pools ...` as an operator uses it, and a pool limiting `dags test`."""

from __future__ import annotations

from datetime import datetime
from itertools import pairwise

import pytest

from tests.e2e.conftest import Cli

pytestmark = pytest.mark.docker

SERIAL = """
from orchestrator import DAG, ContainerTask

with DAG("serial", default_args={"pool": "db"}) as dag:
    for i in range(3):
        ContainerTask(
            task_id=f"load_{i}",
            image="orchestrator/busybox:latest",
            pull_policy="never",
            command=["sleep", "1"],
        )
"""

LOST = """
from orchestrator import DAG, ContainerTask

with DAG("lost") as dag:
    ContainerTask(task_id="train", image="orchestrator/busybox:latest", pool="gpu")
"""


def test_pools_set_list_delete(cli: Cli) -> None:
    assert cli.json("pools", "list") == [
        {
            "pool": "default_pool",
            "slots": 128,
            "running": 0,
            "queued": 0,
            "open": 128,
            "description": "Default pool",
        }
    ]
    created = cli.json("pools", "set", "db", "2", "--description", "the warehouse")
    assert created == {
        "pool": "db",
        "slots": 2,
        "running": 0,
        "queued": 0,
        "open": 2,
        "description": "the warehouse",
    }
    cli("pools", "set", "db", "1")
    table = cli("pools", "list").stdout.splitlines()
    assert table[0].split() == ["pool", "slots", "running", "queued", "open", "description"]
    assert table[2].split() == ["db", "1", "0", "0", "1", "the", "warehouse"]

    refused = cli("pools", "delete", "default_pool", check=False)
    assert refused.returncode == 1
    assert "'default_pool' cannot be deleted" in refused.stderr
    unknown = cli("pools", "delete", "nope", check=False)
    assert unknown.returncode == 1 and "no pool 'nope' exists" in unknown.stderr
    bad = cli("pools", "set", "two words", "3", check=False)
    assert bad.returncode == 1 and "pool name 'two words' may contain only" in bad.stderr

    assert cli.json("pools", "delete", "db") == {"deleted": "db"}
    assert [p["pool"] for p in cli.json("pools", "list")] == ["default_pool"]


def test_a_pool_of_one_runs_the_dag_one_task_at_a_time(cli: Cli) -> None:
    cli.add_dag("serial.py", SERIAL)
    cli("pools", "set", "db", "1")
    cli("dags", "test", "serial", "--date", "2026-03-14")
    (run,) = cli.json("runs", "list", "serial")
    shown = cli.json("runs", "show", "serial", run["run_id"])
    spans = sorted(
        (datetime.fromisoformat(ti["start_date"]), datetime.fromisoformat(ti["end_date"]))
        for ti in shown["task_instances"]
    )
    assert [ti["state"] for ti in shown["task_instances"]] == ["success"] * 3
    for (_, end), (start, _) in pairwise(spans):
        assert start >= end  # each started only after the one before had finished


def test_dags_test_with_an_unknown_pool_fails_at_once(cli: Cli) -> None:
    cli.add_dag("lost.py", LOST)
    result = cli("dags", "test", "lost", check=False, timeout=120)
    assert result.returncode == 1
    assert "task 'train' uses pool 'gpu', which does not exist" in result.stderr
    assert "orchestrator pools set gpu SLOTS" in result.stderr
