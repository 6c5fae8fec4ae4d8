"""Web page cost: how long the busiest pages take over a long history.

Seeds a SQLite store (in a temporary folder) through the store layer with 1,000 finished runs
and 10,000 task instances: one DAG of 10 tasks with 900 runs, and 10 DAGs of 10 tasks with 10
runs each. Then signs in and asks the app in-process (the test client: routing, auth, the
session cookie, queries and templates, no network) for the DAG list, the big DAG's grid (25
runs and 100 runs), its graph and durations, a run's Gantt chart and a task instance page,
`--rounds` times each, and prints the medians against the 200 ms target. A further DAG with a
task mapped over 100 items in 25 runs (2,500 more instances, besides the 10,000) times the
grid of mapped instances (a summary cell per run and a row per map index).

    .venv/bin/python bench/bench_web.py --rounds 15
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

TARGET_MS = 200.0
TASKS = 10
BIG_RUNS = 900
SMALL_DAGS, SMALL_RUNS = 10, 10
MAPPED_RUNS, MAPPED_ITEMS = 25, 100


def spec(dag_id: str) -> object:
    from orchestrator.models.specs import CronSchedule, DagSpec, TaskSpec

    tasks = [
        TaskSpec(
            task_id=f"t{i}",
            image="bench/noop",
            upstream_task_ids=(f"t{i - 1}",) if i else (),
            group_id="load" if i >= 7 else None,
        )
        for i in range(TASKS)
    ]
    return DagSpec(
        dag_id=dag_id,
        fileloc=f"/dags/{dag_id}.py",
        schedule=CronSchedule(expression="@hourly"),
        start_date=datetime(2026, 1, 1, tzinfo=UTC),
        tasks=tuple(tasks),
    )


def seed(database_url: str) -> tuple[int, int]:
    """Runs and task instances written (all finished: success, a few failed)."""
    from sqlalchemy import update

    from orchestrator.models.specs import DagSpec
    from orchestrator.store import dags as dag_store
    from orchestrator.store import runs as run_store
    from orchestrator.store.engine import make_session_factory, open_engine
    from orchestrator.store.tables import DagRunRow, TaskInstanceRow

    sessions = make_session_factory(open_engine(database_url))
    start = datetime(2026, 1, 1, tzinfo=UTC)
    now = start + timedelta(days=60)
    plan = [("big", BIG_RUNS)] + [(f"small_{i}", SMALL_RUNS) for i in range(SMALL_DAGS)]
    with sessions.begin() as session:
        for dag_id, runs in plan:
            dag: DagSpec = spec(dag_id)  # type: ignore[assignment]
            dag_store.upsert_dag(session, dag, now)
            for n in range(runs):
                logical = start + timedelta(hours=n)
                run_store.create_run(
                    session,
                    dag,
                    run_id=f"scheduled__{logical.isoformat()}",
                    run_type="scheduled",
                    logical_date=logical,
                    data_interval=(logical, logical + timedelta(hours=1)),
                    conf={},
                    now=logical + timedelta(hours=1),
                )
        session.execute(
            update(DagRunRow).values(
                state="success",
                start_date=DagRunRow.queued_at,
                end_date=DagRunRow.queued_at,
            )
        )
        session.execute(
            update(TaskInstanceRow).values(
                state="success",
                try_number=1,
                queued_at=TaskInstanceRow.updated_at,
                start_date=TaskInstanceRow.updated_at,
                end_date=TaskInstanceRow.updated_at,
            )
        )
        session.execute(
            update(TaskInstanceRow).where(TaskInstanceRow.id % 97 == 0).values(state="failed")
        )
        runs = session.query(DagRunRow).count()
        tis = session.query(TaskInstanceRow).count()
    return runs, tis


def seed_mapped(database_url: str) -> int:
    """DAG `fan`: `split` >> `fetch` (mapped over 100 items) >> `join`, 25 finished runs.
    Returns the mapped instances written."""
    from orchestrator.models.mapping import LiteralItems
    from orchestrator.models.specs import DagSpec, TaskSpec
    from orchestrator.store import dags as dag_store
    from orchestrator.store import runs as run_store
    from orchestrator.store.engine import make_session_factory, open_engine
    from orchestrator.store.tables import TaskInstanceRow

    dag = DagSpec(
        dag_id="fan",
        fileloc="/dags/fan.py",
        tasks=(
            TaskSpec(task_id="split", image="bench/noop"),
            TaskSpec(
                task_id="fetch",
                image="bench/noop",
                upstream_task_ids=("split",),
                expand={"item": LiteralItems(items=tuple(range(MAPPED_ITEMS)))},
            ),
            TaskSpec(task_id="join", image="bench/noop", upstream_task_ids=("fetch",)),
        ),
    )
    sessions = make_session_factory(open_engine(database_url))
    start = datetime(2026, 1, 1, tzinfo=UTC)
    written = 0
    with sessions.begin() as session:
        dag_store.upsert_dag(session, dag, start)
        for n in range(MAPPED_RUNS):
            at = start + timedelta(hours=n)
            run = run_store.create_run(
                session,
                dag,
                run_id=f"manual__{at.isoformat()}",
                run_type="manual",
                logical_date=at,
                data_interval=(at, at),
                conf={},
                now=at,
            )
            run.state = "success"
            for ti in run_store.task_instances(session, run.id):
                ti.state, ti.try_number = "success", 1
            for index in range(MAPPED_ITEMS):
                session.add(
                    TaskInstanceRow(
                        dag_run_id=run.id,
                        dag_id="fan",
                        run_id=run.run_id,
                        task_id="fetch",
                        map_index=index,
                        state="failed" if (n + index) % 37 == 0 else "success",
                        try_number=1,
                        queued_at=at,
                        start_date=at,
                        end_date=at,
                        updated_at=at,
                    )
                )
                written += 1
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()

    from fastapi.testclient import TestClient

    from orchestrator.services.users import Role, create_user
    from orchestrator.settings import Settings
    from orchestrator.store.engine import make_session_factory, open_engine
    from orchestrator.web import create_app

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        settings = Settings(home=home, dags_folder=home / "dags")
        url = settings.resolved_database_url
        began = time.perf_counter()
        runs, tis = seed(url)
        print(f"seeded {runs} runs, {tis} task instances in {time.perf_counter() - began:.1f} s")
        mapped = seed_mapped(url)
        print(f"and DAG fan: {MAPPED_RUNS} runs with {mapped} mapped instances")
        sessions = make_session_factory(open_engine(url))
        with sessions.begin() as session:
            create_user(session, "bench", "bench", Role.OPERATOR, datetime.now(UTC))
        pages = {
            "DAG list": "/",
            "grid (25 runs)": "/dags/big",
            "grid (100 runs)": "/dags/big?runs=100",
            "graph": "/dags/big/graph",
            "durations (25 runs)": "/dags/big/durations",
            "run (Gantt)": "/dags/big/runs/scheduled__2026-01-01T05:00:00+00:00",
            "task instance": "/dags/big/runs/scheduled__2026-01-01T05:00:00+00:00/tasks/t3",
            "grid, mapped (25 x 100)": "/dags/fan",
        }
        with TestClient(create_app(settings, sessions)) as client:
            form = client.get("/login").text
            token = form.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
            client.post(
                "/login", data={"username": "bench", "password": "bench", "csrf_token": token}
            )
            timings: dict[str, list[float]] = {name: [] for name in pages}
            for _ in range(args.rounds):
                for name, path in pages.items():
                    began = time.perf_counter()
                    response = client.get(path.replace("+", "%2B"))
                    timings[name].append((time.perf_counter() - began) * 1000)
                    if response.status_code != 200:
                        raise SystemExit(f"{path}: {response.status_code} {response.text[:300]}")
    print(f"\n{'page':<22} {'median ms':>10} {'max ms':>8} {'target':>7} {'ratio':>6}")
    for name, values in timings.items():
        median = statistics.median(values)
        print(
            f"{name:<22} {median:>10.1f} {max(values):>8.1f} {TARGET_MS:>7.0f}"
            f" {median / TARGET_MS:>6.2f}"
        )


if __name__ == "__main__":
    main()
