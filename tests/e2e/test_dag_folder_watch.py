"""A running `orchestrator scheduler` follows its DAG folder: new, changed and deleted files
take effect without a restart, and a run in progress keeps up with them."""

from __future__ import annotations

import signal
import sqlite3
import time
from collections.abc import Callable, Iterator
from subprocess import Popen
from typing import Any, TypeVar

import pytest

from tests.e2e.conftest import Cli

pytestmark = pytest.mark.docker

T = TypeVar("T")

TASKS_V1 = """
from orchestrator import DAG, ContainerTask

with DAG("watched", schedule=None) as dag:
    first = ContainerTask(
        task_id="first", image="orchestrator/busybox:latest", pull_policy="never",
        command=["sh", "-c", "echo first ran"],
    )
    hold = ContainerTask(
        task_id="hold", image="orchestrator/busybox:latest", pull_policy="never",
        mounts=["./gate:/gate"],
        command=["sh", "-c", "while [ ! -f /gate/open ]; do sleep 0.2; done; echo released"],
    )
    first >> hold
"""

TASKS_V2 = (
    TASKS_V1
    + """
    added = ContainerTask(
        task_id="added", image="orchestrator/busybox:latest", pull_policy="never",
        command=["sh", "-c", "echo added task ran"],
    )
    hold >> added
"""
)


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 120) -> T:
    """Poll `probe` until it returns something other than None or False."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value is not None and value is not False:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")


class Watched:
    """The scheduler under test, and what the test reads without parsing the folder itself
    (every `dags ...` command parses the folder; `runs show` and the store do not)."""

    def __init__(self, cli: Cli) -> None:
        self.cli = cli
        self.gate = cli.dags / "gate"
        self.gate.mkdir()
        self.path = cli.dags / "watched.py"

    def active_in_store(self) -> bool | None:
        with sqlite3.connect(self.cli.home / "orchestrator.db") as conn:
            row = conn.execute("select is_active from dags where dag_id = 'watched'").fetchone()
        return None if row is None else bool(row[0])

    def tis(self, run_id: str) -> dict[str, dict[str, Any]]:
        shown = self.cli.json("runs", "show", "watched", run_id)
        return {ti["task_id"]: ti for ti in shown["task_instances"]}

    def run_state(self, run_id: str) -> str:
        return str(self.cli.json("runs", "show", "watched", run_id)["state"])

    def state_of(self, run_id: str, task_id: str) -> str | None:
        ti = self.tis(run_id).get(task_id)
        return None if ti is None else str(ti["state"])


@pytest.fixture
def watched(cli: Cli) -> Iterator[tuple[Watched, Popen[str]]]:
    cli.env["ORCH_DAG_REPARSE_INTERVAL"] = "3600"  # only the watcher may notice changes
    cli("db", "upgrade")
    scheduler = cli.popen("scheduler")
    try:
        yield Watched(cli), scheduler
    finally:
        scheduler.send_signal(signal.SIGTERM)
        scheduler.communicate(timeout=60)


def test_new_changed_and_deleted_dag_files_without_a_restart(
    watched: tuple[Watched, Popen[str]],
) -> None:
    w, scheduler = watched
    cli = w.cli
    time.sleep(2)  # the scheduler has made its first full parse of the (empty) folder

    # a new file: registered by the scheduler's watcher, then listed
    written = time.monotonic()
    w.path.write_text(TASKS_V1)
    wait_for("the new DAG in the store", w.active_in_store, timeout=60)
    visible_after = time.monotonic() - written
    assert [d["dag_id"] for d in cli.json("dags", "list")["dags"]] == ["watched"]

    # it runs when triggered
    run1 = cli.json("dags", "trigger", "watched", "--run-id", "run1")["run_id"]
    wait_for("hold running", lambda: w.state_of(run1, "hold") == "running")

    # a task added to the file joins the run in progress and runs in it
    written = time.monotonic()
    w.path.write_text(TASKS_V2)
    wait_for("the added task in run1", lambda: w.state_of(run1, "added"), timeout=60)
    added_after = time.monotonic() - written
    (w.gate / "open").touch()
    wait_for("run1 to finish", lambda: w.run_state(run1) in ("success", "failed"))
    tis = w.tis(run1)
    assert {k: v["state"] for k, v in tis.items()} == {
        "first": "success",
        "hold": "success",
        "added": "success",
    }
    assert "added task ran" in cli("tasks", "logs", "watched", run1, "added").stdout
    assert w.run_state(run1) == "success"

    # the file is deleted while a run is in progress
    (w.gate / "open").unlink()
    run2 = cli.json("dags", "trigger", "watched", "--run-id", "run2")["run_id"]
    wait_for("hold running in run2", lambda: w.state_of(run2, "hold") == "running")
    w.path.unlink()
    wait_for("added removed", lambda: w.state_of(run2, "added") == "removed", timeout=60)
    assert w.active_in_store() is False
    assert w.state_of(run2, "hold") == "running"  # a running container is not killed
    assert w.run_state(run2) == "running"
    (w.gate / "open").touch()
    wait_for("run2 to finish", lambda: w.run_state(run2) in ("success", "failed"))
    tis = w.tis(run2)
    assert {k: v["state"] for k, v in tis.items()} == {
        "first": "success",
        "hold": "removed",
        "added": "removed",
    }
    assert tis["hold"]["exit_code"] == 0
    assert "DAG was removed" in tis["hold"]["state_detail"]
    assert w.run_state(run2) == "success"  # removed tasks neither block nor fail a run

    # hidden from the listing, shown with --all; its history stays readable
    assert cli.json("dags", "list")["dags"] == []
    everything = cli.json("dags", "list", "--all")["dags"]
    assert [(d["dag_id"], d["active"]) for d in everything] == [("watched", False)]
    assert [r["run_id"] for r in cli.json("runs", "list", "watched")] == ["run2", "run1"]
    assert "released" in cli("tasks", "logs", "watched", run2, "hold").stdout
    shown = cli("runs", "show", "watched", run1).stdout
    assert "added" in shown and "success" in shown
    assert scheduler.poll() is None

    print(
        f"\nwatcher latency: new DAG in the store {visible_after:.2f}s after the write; "
        f"new task in the running run {added_after:.2f}s after the write"
    )
    assert visible_after < 10 and added_after < 10
