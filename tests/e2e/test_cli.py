"""The CLI as users and CI pipelines use it."""

from __future__ import annotations

import json
import signal
import sqlite3
import time

import pytest

from tests.e2e.conftest import Cli

pytestmark = pytest.mark.docker

CHAIN = """
from orchestrator import DAG, ContainerTask

with DAG("chain", schedule=None, params={"word": "hello"}) as dag:
    first = ContainerTask(
        task_id="first",
        image="orchestrator/busybox:latest",
        pull_policy="never",
        command=["sh", "-c", "echo 'first says {{ params.word }}'; "
                 "echo '{\\"word\\": \\"{{ params.word }}\\"}' > $ORCH_OUTPUT_PATH"],
    )
    second = ContainerTask(
        task_id="second",
        image="orchestrator/busybox:latest",
        pull_policy="never",
        command=["sh", "-c", "echo \\"second got $WORD\\"; sleep {{ dag_run.conf.get('nap', 0) }}"],
        environment={"WORD": "{{ outputs.first.word }}"},
    )
    first >> second
"""

FAILING = """
from orchestrator import DAG, ContainerTask

with DAG("failing") as dag:
    ContainerTask(task_id="boom", image="orchestrator/busybox:latest", pull_policy="never",
                  command=["sh", "-c", "echo going down; exit 3"])
"""


def test_example_dag_end_to_end_then_inspect_runs(cli: Cli) -> None:
    cli.add_example()
    result = cli("dags", "test", "example_sales", "--date", "2026-03-14")
    assert "Sales report 2026-03-14" in result.stdout  # the last task's log, shown live
    assert "run test__2026-03-14T00:00:00+00:00 of example_sales: success" in result.stdout

    runs = cli.json("runs", "list", "example_sales")
    assert len(runs) == 1
    run = runs[0]
    assert run["state"] == "success"
    assert run["logical_date"].startswith("2026-03-14T00:00:00")
    assert run["data_interval_start"].startswith("2026-03-13T00:00:00")
    assert run["data_interval_end"].startswith("2026-03-14T00:00:00")
    assert run["conf"] == {}

    shown = cli.json("runs", "show", "example_sales", run["run_id"])
    tis = {ti["task_id"]: ti for ti in shown["task_instances"]}
    assert list(tis) == ["generate", "clean", "aggregate", "report"]
    assert all(ti["state"] == "success" and ti["exit_code"] == 0 for ti in tis.values())
    assert all(ti["try_number"] == 1 and ti["map_index"] == -1 for ti in tis.values())
    summary = tis["aggregate"]["output"]
    assert summary["date"] == "2026-03-14" and summary["orders"] > 0
    assert tis["report"]["output"]["orders"] == summary["orders"]

    logs = cli("tasks", "logs", "example_sales", run["run_id"], "report").stdout
    assert "Sales report 2026-03-14" in logs


def test_failing_dag_test_exits_non_zero_with_the_reason(cli: Cli) -> None:
    cli.add_dag("failing.py", FAILING)
    result = cli("dags", "test", "failing", check=False)
    assert result.returncode == 1
    assert "going down" in result.stdout
    assert "exited with code 3" in result.stdout


def test_broken_files_are_listed_and_do_not_hide_good_ones(cli: Cli) -> None:
    cli.add_dag("chain.py", CHAIN)
    cli.add_dag("syntax_dag.py", "from orchestrator import DAG\nwith DAG('x') as d\n  pass\n")
    cli.add_dag("raises_dag.py", "from orchestrator import DAG\nraise RuntimeError('no db')\n")
    cli.add_dag("loops_dag.py", "from orchestrator import DAG\nwhile True:\n    pass\n")
    cli.env["ORCH_DAG_FILE_TIMEOUT"] = "3"
    listing = cli.json("dags", "list")
    assert [d["dag_id"] for d in listing["dags"]] == ["chain"]
    assert listing["dags"][0]["paused"] is False
    assert listing["dags"][0]["fileloc"] == str(cli.dags / "chain.py")
    errors = {e["fileloc"].rsplit("/", 1)[-1]: e["error"] for e in listing["import_errors"]}
    assert set(errors) == {"syntax_dag.py", "raises_dag.py", "loops_dag.py"}
    assert "SyntaxError" in errors["syntax_dag.py"]
    assert "RuntimeError: no db" in errors["raises_dag.py"]
    assert "raises_dag.py" in errors["raises_dag.py"]  # the traceback names the file
    assert "Timed out after 3" in errors["loops_dag.py"]


def test_trigger_is_executed_by_a_running_scheduler(cli: Cli) -> None:
    cli.add_dag("chain.py", CHAIN)
    cli.add_dag("broken_dag.py", "from orchestrator import DAG\nimport not_a_module\n")
    scheduler = cli.popen("scheduler")
    try:
        queued = cli.json("dags", "trigger", "chain", "--conf", '{"word": "bonjour", "nap": 2}')
        run_id = queued["run_id"]
        assert queued["conf"] == {"word": "bonjour", "nap": 2}
        # follow the second task's log while it runs
        deadline = time.monotonic() + 60
        state = "queued"
        while time.monotonic() < deadline:
            state = cli.json("runs", "show", "chain", run_id)["state"]
            if state in ("success", "failed"):
                break
            time.sleep(0.5)
        assert state == "success"
        followed = cli("tasks", "logs", "chain", run_id, "second", "--follow").stdout
        assert "second got bonjour" in followed
        assert scheduler.poll() is None  # the broken DAG file did not stop it
    finally:
        scheduler.send_signal(signal.SIGTERM)
        out, _ = scheduler.communicate(timeout=30)
    assert scheduler.returncode == 0, out
    assert "scheduler stopped" in out


def test_bad_conf_is_rejected_with_a_message(cli: Cli) -> None:
    cli.add_dag("chain.py", CHAIN)
    result = cli("dags", "trigger", "chain", "--conf", "[1, 2]", check=False)
    assert result.returncode == 1
    assert "--conf must be a JSON object" in result.stderr
    result = cli("dags", "trigger", "chain", "--conf", "{oops", check=False)
    assert result.returncode == 1 and "not valid JSON" in result.stderr


def test_render_prints_fields_and_writes_nothing(cli: Cli) -> None:
    cli.add_dag("chain.py", CHAIN)
    cli("db", "upgrade")
    db = cli.home / "orchestrator.db"

    def counts() -> tuple[int, ...]:
        with sqlite3.connect(db) as conn:
            tables = ("dags", "dag_runs", "task_instances", "task_attempts")
            return tuple(conn.execute(f"select count(*) from {t}").fetchone()[0] for t in tables)

    before = counts()
    rendered = cli.json(
        "tasks", "render", "chain", "first", "2026-01-31", "--conf", '{"word": "hej"}'
    )
    assert "first says hej" in rendered["command"][2]
    assert rendered["image"] == "orchestrator/busybox:latest"
    assert counts() == before


def test_tasks_test_runs_one_task_without_recording_it(cli: Cli) -> None:
    cli.add_dag("chain.py", CHAIN)
    result = cli("tasks", "test", "chain", "first", "2026-01-31")
    assert "first says hello" in result.stdout
    assert 'output: {"word":"hello"}' in result.stdout
    assert cli.json("runs", "list", "chain") == []


def test_dags_show_and_unknown_dag(cli: Cli) -> None:
    cli.add_dag("chain.py", CHAIN)
    spec = json.loads(cli("dags", "show", "chain", "--output", "json").stdout)
    assert [t["task_id"] for t in spec["tasks"]] == ["first", "second"]
    result = cli("dags", "show", "nope", check=False)
    assert result.returncode == 1 and "no DAG 'nope'" in result.stderr
