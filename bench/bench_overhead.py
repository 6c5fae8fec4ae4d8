"""How much the orchestrator adds to running containers, against the docker SDK run directly.

Two workloads of trivial containers (`orchestrator/busybox`, `true`):

- chain:   20 tasks, each starting when the previous one exits.
           baseline: a plain loop of create, start, wait, remove.
- fan-out: 50 independent tasks, at most CONCURRENCY running at once.
           baseline: the same create/start/wait/remove in CONCURRENCY threads.

The orchestrator side is a real run: SQLite store, rendering, log files, output directories,
exit detection through the Docker events stream, as `orchestrator dags test` does it. Each
workload alternates baseline and orchestrator ROUNDS times; the table gives medians and the
ratio orchestrator / baseline.

    python bench/bench_overhead.py [--rounds 5] [--chain 20] [--fanout 50] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docker

from orchestrator.models.specs import DagSpec, TaskSpec
from orchestrator.models.states import RunState
from orchestrator.runtime.docker import DockerRuntime
from orchestrator.services.clock import SystemClock
from orchestrator.services.runs import trigger_run
from orchestrator.services.scheduler import Scheduler
from orchestrator.settings import Settings
from orchestrator.store import dags as dag_store
from orchestrator.store import runs as run_store
from orchestrator.store.engine import make_engine, make_session_factory, upgrade

IMAGE = "orchestrator/busybox:latest"
COMMAND = ["true"]
LABEL = {"orch.bench": "1"}


def one_container(client: docker.DockerClient) -> None:
    container = client.containers.create(IMAGE, COMMAND, labels=LABEL)
    container.start()
    container.wait()
    container.remove(force=True)


def baseline_chain(client: docker.DockerClient, n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        one_container(client)
    return time.perf_counter() - started


def baseline_fanout(client: docker.DockerClient, n: int, concurrency: int) -> float:
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        for future in [pool.submit(one_container, client) for _ in range(n)]:
            future.result()
    return time.perf_counter() - started


class Orchestrated:
    """A store, a runtime and a scheduler in a scratch home, reused across rounds."""

    def __init__(self, home: Path, concurrency: int) -> None:
        self.settings = Settings(
            home=home,
            dags_folder=home / "dags",
            instance_name=f"bench{uuid.uuid4().hex[:6]}",
            parallelism=concurrency,
            docker_workers=concurrency,
            extra_labels=LABEL,
        )
        engine = make_engine(self.settings.resolved_database_url)
        upgrade(engine)
        self.sessions = make_session_factory(engine)
        self.runtime = DockerRuntime.from_url(None)
        self.clock = SystemClock()
        self.scheduler = Scheduler(
            settings=self.settings, sessions=self.sessions, runtime=self.runtime, clock=self.clock
        )
        self.scheduler.start()

    def run(self, spec: DagSpec) -> float:
        with self.sessions.begin() as session:
            dag_store.upsert_dag(session, spec, self.clock.now())
        started = time.perf_counter()
        with self.sessions.begin() as session:
            run = trigger_run(session, spec, now=self.clock.now(), run_id=uuid.uuid4().hex)
            run_pk = run.id

        def finished() -> bool:
            with self.sessions() as session:
                state = RunState(session.get(run_store.DagRunRow, run_pk).state)  # type: ignore[union-attr]
                return state.is_finished

        self.scheduler.run_until_idle(finished, timeout=600)
        elapsed = time.perf_counter() - started
        with self.sessions() as session:
            state = session.get(run_store.DagRunRow, run_pk).state  # type: ignore[union-attr]
        if state != RunState.SUCCESS:
            raise SystemExit(f"benchmark run {spec.dag_id} ended {state}")
        self.wait_for_cleanup()
        return elapsed

    def wait_for_cleanup(self) -> None:
        """Untimed: let container removal (done after the run, off its critical path) end
        before the next measurement starts, so it does not slow that one down."""
        api = self.runtime._api
        filters = {"label": [f"orch.instance={self.settings.instance_name}"]}
        deadline = time.monotonic() + 120
        while api.containers(all=True, filters=filters) and time.monotonic() < deadline:
            time.sleep(0.05)

    def close(self) -> None:
        self.scheduler.close()


def task(task_id: str, *upstream: str) -> TaskSpec:
    return TaskSpec(
        task_id=task_id,
        image=IMAGE,
        command=tuple(COMMAND),
        pull_policy="never",
        upstream_task_ids=upstream,
    )


def chain_spec(n: int) -> DagSpec:
    tasks = [task("t0")] + [task(f"t{i}", f"t{i - 1}") for i in range(1, n)]
    return DagSpec(dag_id="bench_chain", tasks=tuple(tasks))


def fanout_spec(n: int) -> DagSpec:
    return DagSpec(dag_id="bench_fanout", tasks=tuple(task(f"t{i}") for i in range(n)))


def cleanup(client: docker.DockerClient) -> None:
    for container in client.containers.list(all=True, filters={"label": "orch.bench=1"}):
        container.remove(force=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--chain", type=int, default=20)
    parser.add_argument("--fanout", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()

    client = docker.from_env(version="auto", max_pool_size=args.concurrency * 4)
    if not client.images.list(name=IMAGE):
        raise SystemExit(f"{IMAGE} is missing: run `orchestrator images bootstrap` first")
    results: dict[str, dict[str, list[float]]] = {
        "chain": {"baseline": [], "orchestrator": []},
        "fan-out": {"baseline": [], "orchestrator": []},
    }
    with tempfile.TemporaryDirectory(prefix="orch-bench-") as tmp:
        orch = Orchestrated(Path(tmp), args.concurrency)
        try:
            one_container(client)  # warm the engine's image and layer caches
            orch.run(chain_spec(2))
            for round_no in range(1, args.rounds + 1):
                results["chain"]["baseline"].append(baseline_chain(client, args.chain))
                results["chain"]["orchestrator"].append(orch.run(chain_spec(args.chain)))
                results["fan-out"]["baseline"].append(
                    baseline_fanout(client, args.fanout, args.concurrency)
                )
                results["fan-out"]["orchestrator"].append(orch.run(fanout_spec(args.fanout)))
                print(
                    f"round {round_no}: "
                    + ", ".join(
                        f"{w} {r['baseline'][-1]:.2f}s vs {r['orchestrator'][-1]:.2f}s"
                        for w, r in results.items()
                    ),
                    flush=True,
                )
        finally:
            orch.close()
            cleanup(client)

    print()
    print(f"{'workload':<26}{'docker SDK (s)':>16}{'orchestrator (s)':>18}{'ratio':>8}")
    names = {
        "chain": f"chain of {args.chain}",
        "fan-out": f"fan-out of {args.fanout} (x{args.concurrency})",
    }
    for workload, r in results.items():
        base, orch_t = statistics.median(r["baseline"]), statistics.median(r["orchestrator"])
        print(f"{names[workload]:<26}{base:>16.2f}{orch_t:>18.2f}{orch_t / base:>8.2f}")
    print(f"\nmedians of {args.rounds} rounds; ratio = orchestrator / docker SDK")


if __name__ == "__main__":
    main()
