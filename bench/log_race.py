"""Do fast-exiting containers lose log lines? Counts them, following logs as the scheduler does.

Each container prints `--lines` numbered lines as fast as it can (busybox `sh`), the last one
after a random pause of up to `--jitter` ms, and exits. For every container, as
`AttemptWorker` does it: `create`, `start`, then `DockerRuntime.follow_logs(started=True)` in
its own thread; the exit arrives from `watch_exits` (the Docker events stream) and is
harvested with `exit_status` and `finish_logs` (waiting for the follower when `finish_logs`
says so). `--concurrency` containers run at once; `--load N` keeps N busy-looping processes
on the machine meanwhile (the loss depends on load). It prints how many containers and lines
were missing, repeated or out of order, and exits non-zero if any were.

    .venv/bin/python bench/log_race.py --containers 600 --concurrency 16 --load 3 --jitter 30

Every container carries `orch.bench.lograce=<run>` and is removed once checked (and at the
end, also on Ctrl-C). What it found is in bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import random
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from orchestrator.models.launch import LaunchRequest
from orchestrator.runtime.docker import DockerRuntime

IMAGE = "orchestrator/busybox:latest"
LABEL = "orch.bench.lograce"


def burn() -> None:
    """A load process: spins until terminated."""
    while True:
        pass


@dataclass
class Tally:
    containers: int = 0
    containers_short: int = 0
    lines_missing: int = 0
    lines_repeated: int = 0
    samples: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class Harness:
    """The scheduler's way of running one container and getting its log, minus the store."""

    def __init__(self, runtime: DockerRuntime, run: str, lines: int, jitter_ms: int) -> None:
        self.runtime = runtime
        self.run = run
        self.lines = lines
        self.jitter_ms = jitter_ms
        self.exits: dict[str, threading.Event] = {}
        self.exits_lock = threading.Lock()
        self.subscription = runtime.watch_exits({LABEL: run}, self._on_exit)

    def _exit_event(self, container_id: str) -> threading.Event:
        with self.exits_lock:
            return self.exits.setdefault(container_id, threading.Event())

    def _on_exit(self, container_id: str) -> None:
        self._exit_event(container_id).set()

    def one(self, index: int, tally: Tally) -> None:
        script = (
            f"i=0; while [ $i -lt {self.lines - 1} ]; do echo line$i c{index}; i=$((i+1)); done"
        )
        if self.jitter_ms:  # the last line comes a random moment after the others
            script += f"; usleep {random.randrange(self.jitter_ms * 1000)}"
        script += f"; echo line{self.lines - 1} c{index}"
        request = LaunchRequest(
            name=f"lograce-{self.run}-{index}",
            image=IMAGE,
            command=("sh", "-c", script),
            labels={LABEL: self.run},
        )
        container_id = self.runtime.create(request)
        exited = self._exit_event(container_id)
        chunks: list[bytes] = []
        self.runtime.start(container_id)
        follower = threading.Thread(
            target=self.runtime.follow_logs,
            args=(container_id, chunks.append),
            kwargs={"started": True},
            daemon=True,
        )
        follower.start()
        if not exited.wait(60):
            raise RuntimeError(f"no exit event for container {index}")
        self.runtime.exit_status(container_id)
        if not self.runtime.finish_logs(container_id):
            follower.join(30)
        got = b"".join(chunks).decode().splitlines()
        expected = [f"line{n} c{index}" for n in range(self.lines)]
        missing = len([line for line in expected if line not in got])
        repeated = len(got) - len(set(got))
        with tally.lock:
            tally.containers += 1
            tally.lines_missing += missing
            tally.lines_repeated += repeated
            if missing or repeated or got != expected:
                tally.containers_short += 1
                if len(tally.samples) < 5:
                    tally.samples.append(f"container {index}: got {got}")
        follower.join(30)
        self.runtime.remove(container_id)

    def close(self) -> None:
        self.subscription.close()
        api = self.runtime._api
        for row in api.containers(all=True, filters={"label": [f"{LABEL}={self.run}"]}):
            with contextlib.suppress(Exception):
                api.remove_container(row["Id"], force=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--containers", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--lines", type=int, default=3)
    parser.add_argument("--load", type=int, default=0, help="busy-looping processes meanwhile")
    parser.add_argument(
        "--jitter",
        type=int,
        default=0,
        help="ms: a random pause of up to this before the last line",
    )
    args = parser.parse_args()

    runtime = DockerRuntime.from_url(None)
    run = uuid.uuid4().hex[:8]
    harness = Harness(runtime, run, args.lines, args.jitter)
    burners = [multiprocessing.Process(target=burn, daemon=True) for _ in range(args.load)]
    for process in burners:
        process.start()
    tally = Tally()
    started = time.monotonic()
    try:
        with ThreadPoolExecutor(args.concurrency) as pool:
            for future in [pool.submit(harness.one, i, tally) for i in range(args.containers)]:
                future.result()
    finally:
        for process in burners:
            process.terminate()
            process.join()
        harness.close()
        runtime.close()
    elapsed = time.monotonic() - started
    print(
        f"containers {tally.containers} ({args.lines} lines each, {args.concurrency} at once,"
        f" load {args.load}) in {elapsed:.1f}s"
    )
    print(f"containers with a missing, repeated or misordered line: {tally.containers_short}")
    print(f"lines missing: {tally.lines_missing}   lines repeated: {tally.lines_repeated}")
    for sample in tally.samples:
        print(f"  {sample}")
    return 1 if tally.containers_short else 0


if __name__ == "__main__":
    sys.exit(main())
