"""`dags backfill` from the command line with a running scheduler, on real Docker: create,
skip existing intervals, --rerun, and --wait's exit code; on a DAG paused at creation."""

from __future__ import annotations

import signal
from typing import Any

import pytest

from tests.e2e.conftest import Cli

pytestmark = pytest.mark.docker

DAILY = """
from datetime import datetime
from orchestrator import DAG, ContainerTask

with DAG("daily", schedule="@daily", start_date=datetime(2025, 1, 1), max_active_runs=2):
    ContainerTask(
        task_id="day",
        image="orchestrator/busybox:latest",
        pull_policy="never",
        command=["sh", "-c", 'echo "day $ORCH_LOGICAL_DATE try $ORCH_TRY_NUMBER";'
                 ' case "$ORCH_LOGICAL_DATE" in 2026-01-05*) exit 3;; esac'],
    )
"""


def backfill(cli: Cli, start: str, end: str, *extra: str, check: bool = True) -> Any:
    return cli(
        "dags",
        "backfill",
        "daily",
        "--start",
        start,
        "--end",
        end,
        "--wait",
        "--timeout",
        "90",
        *extra,
        check=check,
    )


def test_backfill_creates_skips_and_reruns_runs(cli: Cli) -> None:
    cli.add_dag("daily.py", DAILY)
    cli.env["ORCH_DAGS_ARE_PAUSED_AT_CREATION"] = "true"
    scheduler = cli.popen("scheduler")
    try:
        first = backfill(cli, "2026-01-01", "2026-01-03")
        assert "backfill of daily: 3 created, 0 skipped, 0 rerun" in first.stdout
        for day in ("01", "02", "03"):
            assert f"run backfill__2026-01-{day}T00:00:00+00:00: success" in first.stdout

        second = backfill(cli, "2026-01-03", "2026-01-04")
        assert (
            "skipped (a run exists; --rerun to run it again): backfill__2026-01-03T00:00:00+00:00"
            in second.stdout
        )
        assert "backfill of daily: 1 created, 1 skipped, 0 rerun" in second.stdout

        again = backfill(cli, "2026-01-01", "2026-01-01", "--rerun")
        assert "rerun (cleared): backfill__2026-01-01T00:00:00+00:00" in again.stdout
        assert "run backfill__2026-01-01T00:00:00+00:00: success" in again.stdout
        log = cli("tasks", "logs", "daily", "backfill__2026-01-01T00:00:00+00:00", "day").stdout
        assert "try 2" in log

        failing = backfill(cli, "2026-01-05", "2026-01-05", check=False)
        assert failing.returncode == 1
        assert "1 of 1 backfill run(s) failed" in failing.stderr

        # paused at creation: the scheduler made no scheduled runs, only the backfill ran
        runs = cli.json("runs", "list", "daily")
        assert {r["run_type"] for r in runs} == {"backfill"} and len(runs) == 5
        assert cli.json("dags", "list")["dags"][0]["paused"] is True
    finally:
        scheduler.send_signal(signal.SIGTERM)
        out, _ = scheduler.communicate(timeout=60)
    assert scheduler.returncode == 0, out
