"""`dags list/show` schedule columns, `dags pause/unpause` and `dags backfill` (no scheduler:
the runs are only queued), through the CLI."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from orchestrator.cli.main import app
from orchestrator.settings import Settings

NIGHTLY = """
from datetime import datetime
from orchestrator import DAG, ContainerTask

with DAG("nightly", schedule="0 2 * * *", start_date=datetime(2026, 1, 1),
         timezone="Europe/Amsterdam", catchup=False, max_active_runs=2):
    ContainerTask("a", image="img")

with DAG("manual"):
    ContainerTask("a", image="img")
"""


@pytest.fixture
def runner(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("ORCH_HOME", str(settings.home))
    monkeypatch.setenv("ORCH_DAGS_FOLDER", str(settings.resolved_dags_folder))
    (settings.resolved_dags_folder / "nightly.py").write_text(NIGHTLY)
    return CliRunner()


def invoke(runner: CliRunner, *args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.output


def test_list_shows_the_next_run_and_pause_toggles(runner: CliRunner) -> None:
    listing = {
        d["dag_id"]: d for d in json.loads(invoke(runner, "dags", "list", "-o", "json"))["dags"]
    }
    assert listing["manual"]["next_run"] is None
    nightly = listing["nightly"]
    assert nightly["paused"] is False
    assert nightly["next_run"].endswith(("T01:00:00+00:00", "T00:00:00+00:00"))  # 02:00 local
    assert "next_run" in invoke(runner, "dags", "list").splitlines()[0]

    assert invoke(runner, "dags", "pause", "nightly").strip() == "DAG nightly paused"
    shown = invoke(runner, "dags", "show", "nightly")
    assert "schedule: 0 2 * * * (Europe/Amsterdam)" in shown
    assert "catchup off, max_active_runs 2" in shown
    assert "paused: yes" in shown and "next run: " in shown
    assert json.loads(invoke(runner, "dags", "show", "nightly", "-o", "json"))["paused"] is True
    assert invoke(runner, "dags", "unpause", "nightly").strip() == "DAG nightly unpaused"
    assert "unknown" not in invoke(runner, "dags", "pause", "nope", code=1)


def test_backfill_creates_then_skips_then_reruns(runner: CliRunner) -> None:
    out = invoke(
        runner, "dags", "backfill", "nightly", "--start", "2026-02-01", "--end", "2026-02-02"
    )
    assert out.splitlines() == [
        "created: backfill__2026-02-01T01:00:00+00:00",  # 02:00 in Amsterdam (CET)
        "created: backfill__2026-02-02T01:00:00+00:00",
        "backfill of nightly: 2 created, 0 skipped, 0 rerun",
    ]
    again = json.loads(
        invoke(
            runner,
            "dags",
            "backfill",
            "nightly",
            "-s",
            "2026-02-02",
            "-e",
            "2026-02-03",
            "-o",
            "json",
        )
    )
    assert again == {
        "created": ["backfill__2026-02-03T01:00:00+00:00"],
        "skipped": ["backfill__2026-02-02T01:00:00+00:00"],
        "rerun": [],
    }
    rerun = invoke(
        runner, "dags", "backfill", "nightly", "-s", "2026-02-01", "-e", "2026-02-01", "--rerun"
    )
    assert "rerun (cleared): backfill__2026-02-01T01:00:00+00:00" in rerun
    runs = json.loads(invoke(runner, "runs", "list", "nightly", "-o", "json"))
    assert {r["run_type"] for r in runs} == {"backfill"} and len(runs) == 3


def test_backfill_of_an_unscheduled_dag_is_refused(runner: CliRunner) -> None:
    result = runner.invoke(
        app, ["dags", "backfill", "manual", "-s", "2026-02-01", "-e", "2026-02-02"]
    )
    assert result.exit_code != 0
    assert "has no schedule" in str(result.exception) + result.output
