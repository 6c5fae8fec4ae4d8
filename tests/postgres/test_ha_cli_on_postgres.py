"""High availability end to end, on this tier's PostgreSQL server: two `orchestrator
scheduler` processes (subprocesses, as in `tests/e2e`) on one PostgreSQL database and one
Docker engine share 8 runs of 25 container tasks (200 tasks); one is killed with SIGKILL
while its containers run. The survivor takes its runs over and adopts its containers: every
task runs exactly once (container creates and starts counted from the engine's events), every
run succeeds with every exit code and log line recorded, and no container is left behind."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import docker
import pytest
from sqlalchemy import Engine, create_engine, select, text
from sqlalchemy.orm import sessionmaker

from orchestrator.store.engine import make_engine
from orchestrator.store.tables import DagRunRow, SchedulerRow, TaskAttemptRow, TaskInstanceRow
from tests.e2e.conftest import Cli

pytestmark = [pytest.mark.docker, pytest.mark.postgres]

RUNS, TASKS = 8, 25


def dag_file(days: int) -> str:
    """A daily DAG whose catch-up makes one run per day of the last `days` (created by the
    schedulers: exactly once, however many plan at the same moment)."""
    start = (datetime.now(UTC) - timedelta(days=days)).date()
    return f"""
from datetime import datetime, timezone

from orchestrator import DAG, ContainerTask

with DAG(
    "ha",
    schedule="@daily",
    start_date=datetime({start.year}, {start.month}, {start.day}, tzinfo=timezone.utc),
    catchup=True,
    max_active_tasks=64,
    max_active_runs={days},
) as dag:
    for i in range({TASKS}):
        task = f"t{{i:02d}}"
        seconds = 6 if i % 5 == 0 else 1  # some still run when a scheduler is killed
        script = f"echo start $ORCH_RUN_ID/{{task}}; sleep {{seconds}}; echo end {{task}}"
        ContainerTask(
            task_id=task,
            image="orchestrator/busybox:latest",
            pull_policy="never",
            command=["sh", "-c", script],
        )
"""


@pytest.fixture
def cli(tmp_path: Path, test_images: None) -> Cli:
    return Cli(tmp_path / "home")


@pytest.fixture
def database(postgres_url: str) -> Iterator[str]:
    """A database of its own on the tier's PostgreSQL server, dropped afterwards."""
    name = f"ha_{uuid.uuid4().hex[:10]}"
    admin = create_engine(
        postgres_url.replace("postgresql://", "postgresql+psycopg://"),
        isolation_level="AUTOCOMMIT",
    )
    with admin.connect() as connection:
        connection.execute(text(f"CREATE DATABASE {name}"))
    yield postgres_url.rsplit("/", 1)[0] + f"/{name}"
    with admin.connect() as connection:
        connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    admin.dispose()


class Store:
    """The test's own reading of the shared database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sessions = sessionmaker(engine)

    def schedulers(self) -> dict[int, str]:
        """Registered schedulers: pid -> id."""
        with self.sessions() as session:
            return {row.pid: row.id for row in session.scalars(select(SchedulerRow))}

    def runs(self) -> dict[str, tuple[str, str | None, datetime | None]]:
        """run id -> (state, claimed by, end date)."""
        with self.sessions() as session:
            rows = session.execute(
                select(DagRunRow.run_id, DagRunRow.state, DagRunRow.claimed_by, DagRunRow.end_date)
            )
            return {run_id: (state, owner, end) for run_id, state, owner, end in rows}

    def running_containers_of(self, scheduler_id: str) -> set[str]:
        """Names of the running containers of the runs a scheduler has claimed."""
        with self.sessions() as session:
            query = (
                select(TaskInstanceRow.container_name)
                .join(DagRunRow, DagRunRow.id == TaskInstanceRow.dag_run_id)
                .where(
                    DagRunRow.claimed_by == scheduler_id,
                    TaskInstanceRow.state == "running",
                    TaskInstanceRow.container_id.is_not(None),
                )
            )
            return {name for name in session.scalars(query) if name}

    def instances(self) -> list[tuple[TaskInstanceRow, TaskAttemptRow | None]]:
        with self.sessions() as session:
            rows = session.execute(
                select(TaskInstanceRow, TaskAttemptRow).outerjoin(
                    TaskAttemptRow,
                    (TaskAttemptRow.ti_id == TaskInstanceRow.id)
                    & (TaskAttemptRow.try_number == TaskInstanceRow.try_number),
                )
            )
            return [(ti, attempt) for ti, attempt in rows]


class ContainerEvents:
    """The engine's create and start events for the test's containers, streamed from the
    start (the engine keeps only its latest events for later queries, and the engine is
    shared)."""

    def __init__(self, client: docker.DockerClient, label: str) -> None:
        self._stream = client.api.events(decode=True, filters={"type": "container", "label": label})
        self.counted: Counter[tuple[str, str, str]] = Counter()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        with contextlib.suppress(Exception):  # ends when the stream is closed
            for event in self._stream:
                if event.get("Action") in ("create", "start"):
                    attributes = event["Actor"]["Attributes"]
                    key = (event["Action"], attributes["orch.run_id"], attributes["orch.task_id"])
                    self.counted[key] += 1

    def close(self) -> None:
        time.sleep(1.0)  # let the last events arrive
        self._stream.close()
        self._reader.join(timeout=10)


def wait_for(what: str, ready: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = ready()
        if found:
            return found
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def store(database: str) -> Iterator[Store]:
    found = Store(make_engine(database))
    yield found
    found.engine.dispose()


def test_two_schedulers_share_200_tasks_and_one_killed_leaves_nothing_undone(
    cli: Cli, database: str, store: Store, tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    cli.env["ORCH_DATABASE_URL"] = database
    cli("db", "upgrade")
    label = f"orch.instance={cli.env['ORCH_INSTANCE_NAME']}"
    events = ContainerEvents(docker_client, label)
    logs = {name: tmp_path / f"scheduler-{name}.log" for name in ("victim", "survivor")}
    processes: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name, path in logs.items():
            with path.open("wb") as out:
                processes[name] = subprocess.Popen(
                    [sys.executable, "-m", "orchestrator", "scheduler"],
                    env=cli.env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=cli.home,
                )
        pids = {name: process.pid for name, process in processes.items()}
        ids = wait_for(
            "both schedulers to register",
            lambda: (s := store.schedulers()) and all(p in s for p in pids.values()) and s,
            timeout=60,
        )
        victim, survivor = ids[pids["victim"]], ids[pids["survivor"]]
        cli.add_dag("ha.py", dag_file(RUNS))  # both parse it; one plans its runs
        owners = wait_for(
            "the runs to be created and claimed",
            lambda: len(r := store.runs()) == RUNS and all(run[1] for run in r.values()) and r,
            timeout=60,
        )
        runs = sorted(owners)
        assert {owner for _, owner, _ in owners.values()} == {victim, survivor}

        # the victim has containers running: kill it then
        doomed = wait_for(
            "the victim's containers to run",
            lambda: store.running_containers_of(victim),
            timeout=120,
        )
        victims_runs = {r for r, (_, owner, _) in store.runs().items() if owner == victim}
        processes["victim"].send_signal(signal.SIGKILL)
        processes["victim"].wait(timeout=30)
        killed_at = datetime.now(UTC)

        wait_for(
            "every run to finish",
            lambda: (
                all(run[0] in ("success", "failed") for run in store.runs().values())
                and len(store.runs()) == RUNS
            ),
            timeout=240,
        )
        wait_for(  # containers are removed once their logs and outputs are safe
            "the task containers to be removed",
            lambda: not docker_client.api.containers(all=True, filters={"label": label}),
            timeout=60,
        )
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes.values():
            process.wait(timeout=30)
        events.close()
    survivor_log = logs["survivor"].read_text()
    assert processes["survivor"].returncode == 0, survivor_log[-3000:]

    # both schedulers worked; the survivor finished the victim's runs
    assert victims_runs and len(victims_runs) < RUNS
    final = store.runs()
    assert {state for state, _, _ in final.values()} == {"success"}, final
    for _, owner, end in final.values():  # the victim finished only what it could
        assert owner == survivor or (owner == victim and end is not None and end <= killed_at)
    assert any(final[run_id][1] == survivor for run_id in victims_runs)
    adopted = [name for name in doomed if f"adopting container {name}" in survivor_log]
    assert adopted, f"none of {sorted(doomed)} was adopted:\n{survivor_log[-3000:]}"

    # every task ran exactly once: one container created and started per task
    tasks = [f"t{i:02d}" for i in range(TASKS)]
    expected = {(action, r, t): 1 for action in ("create", "start") for r in runs for t in tasks}
    assert dict(events.counted) == expected

    # every exit code and every log line recorded, once
    instances = store.instances()
    assert len(instances) == RUNS * TASKS
    for ti, attempt in instances:
        assert (ti.state, ti.try_number, ti.exit_code) == ("success", 1, 0), ti.state_detail
        assert attempt is not None and attempt.exit_code == 0
        log = Path(attempt.log_path).read_text()
        mine = [line for line in log.splitlines() if not line.startswith("[orchestrator]")]
        assert mine == [f"start {ti.run_id}/{ti.task_id}", f"end {ti.task_id}"], log
