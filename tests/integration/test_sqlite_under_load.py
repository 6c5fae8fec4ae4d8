"""The SQLite store under load: no "database is locked", and every run ends as it should.

The long-running scheduler (`run_scheduler`: its loop, its DAG-parsing thread and its
workers, on the in-memory engine, whose containers exit at once) runs a few hundred task
instances from a real SQLite file in WAL mode, while users work on the same file the way they
do: `orchestrator` CLI processes (`dags trigger`, `runs clear`, `dags pause` / `unpause`,
`tasks logs`, `runs list`) and the web app's REST API (reads, triggers, clears, pauses) in
threads, each through its own engine.
"""

from __future__ import annotations

import logging
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.models.launch import LaunchRequest
from orchestrator.models.states import RunState, TaskState
from orchestrator.runtime.fake import FakeBehavior, FakeRuntime
from orchestrator.services.clock import SystemClock
from orchestrator.services.daemon import run_scheduler
from orchestrator.settings import Settings
from orchestrator.store import runs as run_store
from orchestrator.store.engine import make_session_factory, open_engine
from orchestrator.web import create_app

DAG_ID = "load"
LAYERS, WIDTH = 4, 5  # 20 tasks a run
CLI_TRIGGERS, API_TRIGGERS = 6, 6  # with the first run: 13 runs, 260 task instances
LOCKED = "database is locked"

DAG_FILE = f"""
from datetime import datetime
from orchestrator import DAG, ContainerTask

with DAG("{DAG_ID}", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
    previous = []
    for layer in range({LAYERS}):
        tasks = [
            ContainerTask(f"l{{layer}}t{{i}}", image="img", command=["true"])
            for i in range({WIDTH})
        ]
        for task in tasks:
            for upstream in previous:
                upstream >> task
        previous = tasks
"""


class Problems:
    """Everything that went wrong anywhere, collected from every thread."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self._lock = threading.Lock()

    def add(self, text: str) -> None:
        with self._lock:
            self.items.append(text)

    def guard(self, name: str, work: Callable[[], None]) -> threading.Thread:
        def run() -> None:
            try:
                work()
            except Exception as exc:
                self.add(f"{name}: {type(exc).__name__}: {exc}")

        thread = threading.Thread(target=run, name=name, daemon=True)
        thread.start()
        return thread


class LogProblems(logging.Handler):
    """Warnings and errors the scheduler logs (a failing pass is logged, not raised)."""

    def __init__(self, problems: Problems) -> None:
        super().__init__(logging.WARNING)
        self.problems = problems

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            text += f" ({record.exc_info[1]})"
        self.problems.add(f"log {record.name} {record.levelname}: {text}")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    (home / "dags").mkdir(parents=True)
    (home / "dags" / "load.py").write_text(DAG_FILE)
    return home


@pytest.fixture
def settings(home: Path) -> Settings:
    return Settings(
        home=home,
        dags_folder=home / "dags",
        instance_name="sqliteload",
        web_auth=False,
        dag_watch_interval=0.5,
    )


@pytest.fixture
def sessions(settings: Settings) -> Iterator[sessionmaker[Session]]:
    engine = open_engine(settings.resolved_database_url)  # a new file, migrated
    yield make_session_factory(engine)
    engine.dispose()


class Cli:
    def __init__(self, settings: Settings, problems: Problems) -> None:
        self.problems = problems
        self.env = {
            **os.environ,
            "ORCH_HOME": str(settings.home),
            "ORCH_DAGS_FOLDER": str(settings.resolved_dags_folder),
            "ORCH_INSTANCE_NAME": settings.instance_name,
        }

    def __call__(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "orchestrator", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=240,
            stdin=subprocess.DEVNULL,
        )
        if result.returncode != 0 or LOCKED in result.stdout + result.stderr:
            self.problems.add(
                f"orchestrator {' '.join(args)} exited {result.returncode}: "
                f"{result.stdout[-2000:]}{result.stderr[-2000:]}"
            )
        return result.stdout


def finished_runs(sessions: sessionmaker[Session]) -> list[str]:
    with sessions() as session:
        return [
            run.run_id
            for run in run_store.list_runs(session, DAG_ID, 500)
            if RunState(run.state).is_finished
        ]


def test_users_working_on_the_store_while_the_scheduler_runs_never_see_it_locked(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    problems = Problems()
    handler = LogProblems(problems)
    logging.getLogger("orchestrator").addHandler(handler)
    stop = threading.Event()

    def script(request: LaunchRequest) -> FakeBehavior:
        task = request.labels["orch.task_id"]
        return FakeBehavior(logs=f"{task} says hello\n".encode())

    engine = FakeRuntime(script, exit_delivery="thread")
    scheduler = threading.Thread(
        target=run_scheduler,
        args=(settings, sessions, engine, SystemClock(), stop),
        name="scheduler",
        daemon=True,
    )
    scheduler.start()
    cli = Cli(settings, problems)
    rng = random.Random(4)
    try:
        cli("dags", "trigger", DAG_ID)  # parses the folder: the DAG is in the store after it
        app = create_app(settings)  # its own engine on the same file, as `orchestrator web`

        def cli_triggers() -> None:
            for _ in range(CLI_TRIGGERS):
                cli("dags", "trigger", DAG_ID)

        def cli_clears() -> None:
            for _ in range(3):
                done = finished_runs(sessions)
                if done:
                    cli("runs", "clear", DAG_ID, "--run", rng.choice(done), "--yes")
                cli("runs", "list", DAG_ID)
                time.sleep(0.5)

        def cli_pauses() -> None:
            for _ in range(2):
                cli("dags", "pause", DAG_ID)
                cli("dags", "unpause", DAG_ID)

        def cli_logs() -> None:
            for _ in range(4):
                done = finished_runs(sessions)
                if done:
                    task = f"l{rng.randrange(LAYERS)}t{rng.randrange(WIDTH)}"
                    printed = cli("tasks", "logs", DAG_ID, rng.choice(done), task)
                    if f"{task} says hello" not in printed:
                        problems.add(f"tasks logs {task}: {printed!r}")
                time.sleep(0.5)

        def api_calls(client: TestClient, writes: bool) -> None:
            def call(method: str, path: str, expected: int, **kw: Any) -> Any:
                response = client.request(method, f"/api/v1{path}", **kw)
                if response.status_code != expected or LOCKED in response.text:
                    problems.add(f"{method} {path}: {response.status_code} {response.text[:500]}")
                return response.json() if "json" in response.headers["content-type"] else None

            for round_no in range(API_TRIGGERS):
                runs = call("GET", f"/dags/{DAG_ID}/runs?limit=100", 200)["runs"]
                call("GET", "/dags", 200)
                call("GET", f"/dags/{DAG_ID}", 200)
                run_id = rng.choice(runs)["run_id"]
                tis = call("GET", f"/dags/{DAG_ID}/runs/{run_id}/tasks", 200)
                started = [ti for ti in tis if ti["try_number"] > 0]
                if started:
                    task = rng.choice(started)["task_id"]
                    call("GET", f"/dags/{DAG_ID}/runs/{run_id}/tasks/{task}/logs", 200)
                if not writes:
                    continue
                call("POST", f"/dags/{DAG_ID}/runs", 201, json={})
                if round_no % 2:
                    call("PATCH", f"/dags/{DAG_ID}", 200, json={"paused": True})
                    call("PATCH", f"/dags/{DAG_ID}", 200, json={"paused": False})
                finished = [r["run_id"] for r in runs if r["state"] in ("success", "failed")]
                if finished and round_no % 3 == 0:
                    body = {"task_ids": [f"l{LAYERS - 1}t0"]}
                    call("POST", f"/dags/{DAG_ID}/runs/{finished[0]}/clear", 200, json=body)

        with TestClient(app) as reader, TestClient(app) as writer:
            workers = [
                problems.guard("cli-triggers", cli_triggers),
                problems.guard("cli-clears", cli_clears),
                problems.guard("cli-pauses", cli_pauses),
                problems.guard("cli-logs", cli_logs),
                problems.guard("api-reads", lambda: api_calls(reader, writes=False)),
                problems.guard("api-writes", lambda: api_calls(writer, writes=True)),
            ]
            for worker in workers:
                worker.join(timeout=240)
                assert not worker.is_alive(), f"{worker.name} did not finish"
            # two users pausing and unpausing at once may leave it paused: the last word
            assert writer.patch(f"/api/v1/dags/{DAG_ID}", json={"paused": False}).is_success

        runs_expected = 1 + CLI_TRIGGERS + API_TRIGGERS
        deadline = time.monotonic() + 180
        while True:
            with sessions() as session:
                runs = run_store.list_runs(session, DAG_ID, 500)
                states = [RunState(r.state) for r in runs]
                tis = [ti for r in runs for ti in run_store.task_instances(session, r.id)]
            if len(runs) == runs_expected and all(s.is_finished for s in states):
                break
            assert time.monotonic() < deadline, f"runs not finished: {states}"
            time.sleep(0.2)
    finally:
        stop.set()
        scheduler.join(timeout=30)
        logging.getLogger("orchestrator").removeHandler(handler)

    assert not problems.items, "\n".join(problems.items)
    assert states == [RunState.SUCCESS] * runs_expected
    assert len(tis) == runs_expected * LAYERS * WIDTH
    assert {TaskState(ti.state) for ti in tis} == {TaskState.SUCCESS}
    assert max(ti.try_number for ti in tis) >= 2  # clears ran tasks again
    assert len(engine.created) > len(tis)  # ... in new containers
