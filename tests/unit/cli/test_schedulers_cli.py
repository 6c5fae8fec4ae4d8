"""`orchestrator schedulers`: the schedulers sharing the store, alive or not, and their runs."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from orchestrator.cli.main import app
from orchestrator.models.specs import DagSpec, TaskSpec
from orchestrator.services.claims import Identity, RunClaims
from orchestrator.services.clock import SystemClock
from orchestrator.services.runs import trigger_run
from orchestrator.settings import Settings
from orchestrator.store import dags as dag_store


@pytest.fixture
def runner(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("ORCH_HOME", str(settings.home))
    return CliRunner()


def test_schedulers_lists_each_with_its_heartbeat_and_claimed_runs(
    runner: CliRunner, settings: Settings, sessions: sessionmaker[Session]
) -> None:
    assert "(none)" in runner.invoke(app, ["schedulers"]).output
    now = SystemClock().now()
    spec = DagSpec(dag_id="d", fileloc="/dags/d.py", tasks=[TaskSpec(task_id="a", image="i")])
    with sessions.begin() as session:
        dag_store.upsert_dag(session, spec, now)
        for run_id in ("r1", "r2", "r3"):
            trigger_run(session, spec, now=now, run_id=run_id)
    stale = RunClaims(settings, sessions, identity=Identity("old", "h1", 41, "h1/b"))
    stale.register(now - timedelta(minutes=5))
    fresh = RunClaims(settings, sessions, identity=Identity("new", "h2", 42, "h2/b"))
    fresh.register(now)
    done: list[Callable[[], object]] = []
    with sessions.begin() as session:
        fresh.begin_pass(session, now, done)

    silent = RunClaims(settings, sessions, identity=Identity("silent", "h3", 43, "h3/b"))
    silent.register(now - timedelta(minutes=2))  # no heartbeat since: dead, not yet declared

    result = runner.invoke(app, ["schedulers", "--output", "json"])
    assert result.exit_code == 0, result.output
    rows = {row["id"]: row for row in json.loads(result.output)}
    assert rows.keys() == {"new", "silent"}  # `old` was declared dead by `new`'s claim step
    assert (rows["new"]["host"], rows["new"]["pid"], rows["new"]["alive"]) == ("h2", 42, True)
    assert rows["new"]["runs"] == 3
    assert (rows["silent"]["alive"], rows["silent"]["runs"]) == (False, 0)
    assert rows["silent"]["heartbeat_age"] >= 120
    table = runner.invoke(app, ["schedulers"]).output
    assert "new" in table and "h2" in table
