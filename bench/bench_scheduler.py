"""Scheduler cost: how much the scheduler itself spends per task instance.

Runs DAGs through the real scheduler, store (SQLite file), templating, log files and output
directories, on the in-memory fake runtime whose containers exit 0 at once, so what is timed is
the orchestrator's own work. Two shapes:

- `one-dag`: one DAG of 10,000 tasks (100 layers of 100, each task after two of the layer
  before it), one run;
- `many-dags`: 100 DAGs of 100 tasks (10 layers of 10), one run each, all queued together.

Each shape runs in a fresh subprocess (so its peak RSS is its own) `--rounds` times; the script
prints each round, then the medians: milliseconds per task instance, task state decisions per
second, peak memory, and the ratio to the targets (1 ms per task instance, 300 MB).

    .venv/bin/python bench/bench_scheduler.py --rounds 3
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from orchestrator.services.executors import InlineExecutor

TARGET_MS_PER_TI = 1.0
TARGET_PEAK_MB = 300.0

SHAPES = {
    # name: (dags, layers, width)
    "one-dag": (1, 100, 100),
    "many-dags": (100, 10, 10),
}


def layered_dag(dag_id: str, layers: int, width: int) -> object:
    """A DAG of `layers` x `width` tasks; each task depends on two tasks of the layer before."""
    from orchestrator.models.specs import DagSpec, TaskSpec

    tasks = []
    for layer in range(layers):
        for i in range(width):
            upstream: tuple[str, ...] = ()
            if layer:
                upstream = tuple(sorted({f"t{layer - 1}_{i}", f"t{layer - 1}_{(i + 1) % width}"}))
            tasks.append(
                TaskSpec(
                    task_id=f"t{layer}_{i}",
                    image="bench/noop",
                    command=("run", "{{ ds }}"),
                    upstream_task_ids=upstream,
                )
            )
    return DagSpec(dag_id=dag_id, fileloc=f"/dags/{dag_id}.py", tasks=tuple(tasks))


class TimedInlineExecutor(InlineExecutor):
    """Runs the workers' jobs (launching, harvesting, removing containers) inline, as the
    thread pools would, and counts the seconds they take."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._depth = 0

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        self._depth += 1
        began = time.perf_counter()
        try:
            return super().submit(fn, *args, **kwargs)
        finally:
            self._depth -= 1
            if not self._depth:  # a job submitting another is timed once
                self.seconds += time.perf_counter() - began


def measure(shape: str, parallelism: int, threads: bool = False) -> dict[str, float]:
    """One round in this process: seed the store, run everything, return the figures.

    `threads`: the scheduler's own worker pools and the system clock, as `orchestrator
    scheduler` runs (the loop waits for the workers' messages; passes are many and small);
    the loop's and the workers' shares are not told apart then."""
    from sqlalchemy import func, select

    from orchestrator.models.states import RunState
    from orchestrator.runtime.fake import FakeRuntime
    from orchestrator.services.daemon import collect_garbage_less_often
    from orchestrator.services.runs import trigger_run
    from orchestrator.services.scheduler import Scheduler
    from orchestrator.settings import Settings
    from orchestrator.store import dags as dag_store
    from orchestrator.store.engine import make_engine, make_session_factory, upgrade
    from orchestrator.store.tables import DagRunRow, TaskInstanceRow, TaskStateChangeRow

    collect_garbage_less_often()  # as `orchestrator scheduler` does
    dags, layers, width = SHAPES[shape]
    with tempfile.TemporaryDirectory(prefix="orch-bench-") as home:
        settings = Settings(home=Path(home), parallelism=parallelism)
        engine = make_engine(settings.resolved_database_url)
        upgrade(engine)
        sessions = make_session_factory(engine)
        now = datetime(2026, 1, 1, tzinfo=UTC)
        specs = [layered_dag(f"bench_{n}", layers, width) for n in range(dags)]
        with sessions.begin() as session:
            for spec in specs:
                dag_store.upsert_dag(session, spec, now)  # type: ignore[arg-type]
                trigger_run(session, spec, now=now)  # type: ignore[arg-type]
        runtime = FakeRuntime()
        executor = TimedInlineExecutor()
        scheduler = Scheduler(
            settings=settings,
            sessions=sessions,
            runtime=runtime,
            executor=None if threads else executor,
        )
        scheduler.start()

        def finished() -> bool:
            with sessions() as session:
                return not session.scalar(
                    select(func.count())
                    .select_from(DagRunRow)
                    .where(DagRunRow.state.in_(["queued", "running"]))
                )

        started = time.perf_counter()
        ticks = 0
        if threads:
            scheduler.run_until_idle(finished)
        while not threads:
            now += timedelta(seconds=1)
            scheduler.tick(now)
            ticks += 1
            if finished():
                break
        elapsed = time.perf_counter() - started
        with sessions() as session:
            tis = session.scalar(select(func.count()).select_from(TaskInstanceRow)) or 0
            changes = session.scalar(select(func.count()).select_from(TaskStateChangeRow)) or 0
            failed = session.scalar(
                select(func.count())
                .select_from(DagRunRow)
                .where(DagRunRow.state != RunState.SUCCESS.value)
            )
        scheduler.close()
        engine.dispose()
    if failed:
        raise SystemExit(f"{failed} run(s) did not succeed: the benchmark is broken")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "task_instances": tis,
        "seconds": elapsed,
        "ticks": ticks,
        "ms_per_ti": elapsed * 1000 / tis,
        "loop_ms_per_ti": math.nan if threads else (elapsed - executor.seconds) * 1000 / tis,
        "worker_ms_per_ti": math.nan if threads else executor.seconds * 1000 / tis,
        "decisions_per_s": changes / elapsed,
        "peak_mb": peak_mb,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--parallelism", type=int, default=32, help="the scheduler's slots")
    parser.add_argument("--shape", choices=sorted(SHAPES), action="append")
    parser.add_argument(
        "--threads",
        action="store_true",
        help="run the workers in the scheduler's thread pools, on the system clock",
    )
    parser.add_argument("--one", choices=sorted(SHAPES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.parallelism, args.threads)))
        return
    shapes = args.shape or list(SHAPES)
    mode = "workers in thread pools" if args.threads else "workers inline"
    print(f"scheduler cost on the fake runtime, parallelism {args.parallelism}, {mode}")
    header = f"{'shape':<10} {'round':>5} {'TIs':>6} {'seconds':>8} {'ms/TI':>7} "
    print(header + f"{'loop':>7} {'workers':>7} {'decisions/s':>12} {'peak MB':>8}")
    medians: dict[str, dict[str, float]] = {}
    for shape in shapes:
        rounds = []
        for n in range(args.rounds):
            out = subprocess.run(
                [sys.executable, __file__, "--one", shape, "--parallelism", str(args.parallelism)]
                + (["--threads"] if args.threads else []),
                check=True,
                capture_output=True,
                text=True,
            )
            r = json.loads(out.stdout.strip().splitlines()[-1])
            rounds.append(r)
            print(
                f"{shape:<10} {n + 1:>5} {r['task_instances']:>6.0f} {r['seconds']:>8.2f}"
                f" {r['ms_per_ti']:>7.3f} {r['loop_ms_per_ti']:>7.3f}"
                f" {r['worker_ms_per_ti']:>7.3f} {r['decisions_per_s']:>12.0f}"
                f" {r['peak_mb']:>8.0f}"
            )
        medians[shape] = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
    print()
    print(
        f"{'shape':<10} {'ms/TI':>7} {'loop':>7} {'/target':>8} {'workers':>7}"
        f" {'decisions/s':>12} {'peak MB':>8} {'/target':>8}"
    )
    for shape, m in medians.items():
        print(
            f"{shape:<10} {m['ms_per_ti']:>7.3f} {m['loop_ms_per_ti']:>7.3f}"
            f" {m['loop_ms_per_ti'] / TARGET_MS_PER_TI:>8.2f} {m['worker_ms_per_ti']:>7.3f}"
            f" {m['decisions_per_s']:>12.0f} {m['peak_mb']:>8.0f}"
            f" {m['peak_mb'] / TARGET_PEAK_MB:>8.2f}"
        )
    print(
        "ms/TI: everything, per task instance; loop: the scheduler's loop (deciding,"
        " rendering, recording); workers: launching, harvesting and removing containers"
        " (thread pools outside the benchmark)"
    )
    print(f"targets: {TARGET_MS_PER_TI:g} ms per task instance, {TARGET_PEAK_MB:g} MB peak")


if __name__ == "__main__":
    main()
