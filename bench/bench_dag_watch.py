"""How soon a running scheduler sees DAG file changes, and what watching the folder costs.

Runs the long-running scheduler (`run_scheduler`, on the in-memory fake runtime, SQLite store,
DAG files imported in subprocesses as always) in a thread, then for each round:

- writes a new DAG file and times until its DAG is in the store (what `dags list`, the web
  and the scheduler read);
- triggers a run whose first task hangs, appends a task to the file and times until that
  task has an instance in the running run and is `scheduled` once the first task finished
  (runnable);

and finally times one stat scan of a folder of N unchanged files. Prints each round and the
medians.

    .venv/bin/python bench/bench_dag_watch.py --rounds 5 --files 500
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from orchestrator.models.launch import LABEL_DAG, LABEL_TASK, LaunchRequest
from orchestrator.runtime.fake import FakeBehavior, FakeRuntime
from orchestrator.services.clock import SystemClock
from orchestrator.services.daemon import run_scheduler
from orchestrator.services.dag_watch import FolderWatcher
from orchestrator.services.runs import trigger_run
from orchestrator.settings import Settings
from orchestrator.store import dags as dag_store
from orchestrator.store import runs as run_store
from orchestrator.store.engine import make_engine, make_session_factory, upgrade

HEAD = """from orchestrator import DAG, ContainerTask

with DAG({dag_id!r}, default_args={{"image": "img"}}) as dag:
    hold = ContainerTask("hold")
"""
ADDED = """    hold >> ContainerTask("added")
"""


def wait(probe: Callable[[], bool], timeout: float = 60) -> float:
    started = time.monotonic()
    while not probe():
        if time.monotonic() - started > timeout:
            raise TimeoutError("no change seen")
        time.sleep(0.005)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--files", type=int, default=500, help="files for the scan timing")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="bench-watch-"))
    (home / "dags").mkdir()
    settings = Settings(home=home, dags_folder=home / "dags", dag_reparse_interval=3600)
    engine = make_engine(settings.resolved_database_url)
    upgrade(engine)
    sessions = make_session_factory(engine)
    runtime = FakeRuntime(lambda request: FakeBehavior(hang=_task(request) == "hold"))
    stop = threading.Event()
    clock = SystemClock()
    thread = threading.Thread(
        target=run_scheduler, args=(settings, sessions, runtime, clock, stop), daemon=True
    )
    thread.start()
    time.sleep(1.5)  # first full parse of the empty folder

    visible, added, runnable = [], [], []
    print(f"{'round':>5}  {'dag in store (s)':>16}  {'task in run (s)':>15}  {'runnable (s)':>12}")
    for n in range(args.rounds):
        seen, joined, ready = one_round(sessions, runtime, home / "dags", f"bench_{n}")
        visible.append(seen)
        added.append(joined)
        runnable.append(ready)
        print(f"{n:>5}  {seen:>16.3f}  {joined:>15.3f}  {ready:>12.3f}")

    stop.set()
    thread.join(timeout=10)
    print(
        f"{'median':>5}  {statistics.median(visible):>16.3f}  {statistics.median(added):>15.3f}"
        f"  {statistics.median(runnable):>12.3f}"
    )
    print(f"(watch interval {settings.dag_watch_interval:g}s; import of one file in a subprocess)")

    scan_dir = Path(tempfile.mkdtemp(prefix="bench-scan-"))
    for i in range(args.files):
        (scan_dir / f"dag_{i}.py").write_text(HEAD.format(dag_id=f"d{i}"))
    watcher = FolderWatcher(scan_dir)
    watcher.scan()
    times = []
    for _ in range(20):
        started = time.perf_counter()
        assert not watcher.scan()
        times.append(time.perf_counter() - started)
    print(f"scan of {args.files} unchanged files: median {statistics.median(times) * 1000:.2f} ms")
    engine.dispose()
    shutil.rmtree(home, ignore_errors=True)
    shutil.rmtree(scan_dir, ignore_errors=True)


def one_round(
    sessions: sessionmaker[Session], runtime: FakeRuntime, folder: Path, dag_id: str
) -> tuple[float, float, float]:
    """Seconds from writing a new file to its DAG in the store; from adding a task to a running
    run's file to its instance in the run, and to that instance being runnable."""
    path = folder / f"{dag_id}.py"
    path.write_text(HEAD.format(dag_id=dag_id))
    visible = wait(lambda: _known(sessions, dag_id))
    with sessions.begin() as session:
        spec = dag_store.get_dag_spec(session, dag_id)
        run_pk = trigger_run(session, spec, now=SystemClock().now()).id
    wait(lambda: _state(sessions, run_pk, "hold") == "running")

    written = time.monotonic()
    path.write_text(HEAD.format(dag_id=dag_id) + ADDED)
    wait(lambda: _state(sessions, run_pk, "added") is not None)
    added = time.monotonic() - written
    hold = next(
        cid
        for cid, request in _containers(runtime)
        if _task(request) == "hold" and request.labels[LABEL_DAG] == dag_id
    )
    runtime.finish(hold, exit_code=0)
    wait(lambda: _state(sessions, run_pk, "added") in ("scheduled", "queued", "running", "success"))
    return visible, added, time.monotonic() - written


def _task(request: LaunchRequest) -> str:
    return request.labels[LABEL_TASK]


def _containers(runtime: FakeRuntime) -> list[tuple[str, LaunchRequest]]:
    return [(cid, c.request) for cid, c in list(runtime.containers.items())]


def _known(sessions: sessionmaker[Session], dag_id: str) -> bool:
    with sessions() as session:
        return any(r.dag_id == dag_id for r in dag_store.list_dag_rows(session))


def _state(sessions: sessionmaker[Session], run_pk: int, task_id: str) -> str | None:
    with sessions() as session:
        for ti in run_store.task_instances(session, run_pk):
            if ti.task_id == task_id:
                return ti.state
    return None


if __name__ == "__main__":
    main()
