"""Chaos run: trivial container tasks through the real scheduler while it is killed with
SIGKILL at random moments, the engine is cut off from it once, and a few task containers are
removed behind its back; then checks that nothing ran twice and nothing was lost.

One DAG of `--tasks` independent tasks (one run) on `orchestrator/busybox:latest`. Task `tNNNN`
prints three lines (`start tNNNN`, `work tNNNN`, `end tNNNN`), sleeps 0-3 s between them and
exits with a known code: every tenth task exits 3 (a failure, no retries), every tenth + 5
exits 42 (a skip code), the others 0 (one retry each, for the containers removed on purpose).
The `orchestrator scheduler` runs as a subprocess with its own `ORCH_HOME` (SQLite) in a
temporary folder and a unique `ORCH_INSTANCE_NAME`, so every container it makes is labelled
`orch.instance=<name>`; the Docker events for that label are collected for the whole run.

What is done to it, from a seeded RNG (`--seed`):

- the scheduler is killed with SIGKILL every 3-10 s (`--kill-every`) and started again after
  0-2 s; once, while it is down, a running task container is removed (`docker rm -f`), so
  the restarted scheduler finds an attempt whose container is gone;
- while it runs, `--remove` more running containers are removed from outside;
- once (`--outage`, seconds; 0 to skip) the engine becomes unreachable for the scheduler: it
  talks to the engine through a Unix-socket proxy owned by this script, which drops every
  connection and refuses new ones for that long. The real engine is not restarted: it is
  shared (other users' containers would die with it, live-restore being off) and on a host
  without a service manager there is no safe way to restart it; the script says whether
  `systemctl`/`service` could, and skips it.

The seed fixes when these things happen, not what the engine is doing at that moment, so two
runs with one seed differ in detail.

Definitions of the figures (targets in brackets):

- *tasks run*: tasks with at least one container `start` event (all of them).
- *run more than once* [0]: tasks whose containers started more often than one plus the number
  of their containers this script removed. "Run" means a container of the task was started by
  the engine: a killed scheduler must never make a task start twice (an attempt found
  created-but-not-started is started once; one found running is adopted). A removed container
  legitimately costs a retry; those are counted on their own line (a removal that came after
  the container had ended changes nothing and is counted as too late).
- *tasks lost* [0]: tasks not in a final state at the end, or with an attempt failed as
  `lost: ...` that this script did not cause.
- *wrong final state* [0]: final state or exit code other than the task's known outcome.
- *exit codes missing* [0]: tasks in a final state without an exit code.
- *log lines missing* / *repeated* [0]: lines of the three expected that the final attempt's
  log file lacks, or holds more than once (the orchestrator's own `[orchestrator] ` notes are
  ignored).
- *containers left behind* [0]: containers with the instance label still on the engine after
  the last scheduler was stopped with SIGTERM and exited.

Everything it makes (containers, the temporary folder, its processes) is removed at the end,
also on Ctrl-C; `--keep` keeps the folder (store, logs, `scheduler.log`) for investigation.

    .venv/bin/python bench/chaos.py --tasks 500 --seed 1
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

IMAGE = "orchestrator/busybox:latest"
DAG_ID = "chaos"
FAIL_CODE = 3
SKIP_CODE = 42
FINAL_STATES = ("success", "failed", "skipped", "upstream_failed", "removed")
ORCH_NOTE = "[orchestrator] "


# ----------------------------------------------------------------------------- the workload
def task_id(i: int) -> str:
    return f"t{i:04d}"


def outcome(i: int) -> tuple[str, int]:
    """The final state and exit code task `i` must end with."""
    if i % 10 == 0:
        return "failed", FAIL_CODE
    if i % 10 == 5:
        return "skipped", SKIP_CODE
    return "success", 0


def expected_lines(i: int) -> list[str]:
    return [f"{word} {task_id(i)}" for word in ("start", "work", "end")]


def dag_source(tasks: int) -> str:
    """One DAG (no schedule) of independent tasks with known output and exit codes."""
    lines = [
        "from datetime import datetime",
        "from orchestrator import DAG, ContainerTask",
        "",
        f'with DAG("{DAG_ID}", schedule=None, start_date=datetime(2026, 1, 1)) as dag:',
    ]
    for i in range(tasks):
        _, code = outcome(i)
        script = (
            "echo start $ORCH_TASK_ID; sleep $((RANDOM % 3)).$((RANDOM % 10));"
            f" echo work $ORCH_TASK_ID; echo end $ORCH_TASK_ID; exit {code}"
        )
        retries = 0 if code == FAIL_CODE else 1
        lines.append(
            f"    ContainerTask({task_id(i)!r}, image={IMAGE!r}, command=['sh', '-c', {script!r}],"
            f" retries={retries}, retry_delay=1, skip_exit_codes=[{SKIP_CODE}])"
        )
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- the engine
def docker(*args: str, check: bool = True) -> str:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def containers(instance: str, *, running: bool = False) -> list[tuple[str, str, int]]:
    """(id, task id, try number) of the instance's containers."""
    flags = ["--filter", f"label=orch.instance={instance}"]
    if running:
        flags += ["--filter", "status=running"]
    fmt = '{{.ID}} {{.Label "orch.task_id"}} {{.Label "orch.try_number"}}'
    found = []
    for line in docker("ps", "-a", *flags, "--format", fmt).splitlines():
        cid, task, tries = line.split()
        found.append((cid, task, int(tries)))
    return found


def engine_restart_check() -> str:
    """Whether the engine could be restarted here (it is never done: see the docstring)."""
    if os.geteuid() != 0:
        return "not root"
    systemd = subprocess.run(
        ["systemctl", "is-system-running"], capture_output=True, text=True, check=False
    ).stdout.strip()
    if systemd in ("running", "degraded"):
        return "possible with systemctl, not done: the engine is shared"
    service = subprocess.run(
        ["service", "docker", "status"], capture_output=True, text=True, check=False
    )
    if service.returncode == 0:
        return "possible with service, not done: the engine is shared"
    return "impossible here: no service manager runs the engine"


class EventLog:
    """`docker events` for the instance's containers, collected in a background thread."""

    def __init__(self, instance: str) -> None:
        self.events: list[dict[str, Any]] = []
        self._proc = subprocess.Popen(
            [
                "docker",
                "events",
                "--filter",
                "type=container",
                "--filter",
                f"label=orch.instance={instance}",
                "--format",
                "{{json .}}",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            with contextlib.suppress(ValueError):
                self.events.append(json.loads(line))

    def starts(self) -> Counter[str]:
        """Container starts per task id."""
        return Counter(
            e["Actor"]["Attributes"].get("orch.task_id", "?")
            for e in list(self.events)
            if e.get("Action") == "start"
        )

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()
            self._proc.wait(10)
        self._thread.join(5)


class EngineProxy:
    """A Unix socket forwarding to the engine's; `cut` drops and refuses connections."""

    def __init__(self, path: Path, target: str) -> None:
        self.path = path
        self._target = target
        self._down = threading.Event()
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(path))
        self._listener.listen(256)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._down.is_set():
                client.close()
                continue
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                upstream.connect(self._target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
            with self._lock:
                self._open -= {source, sink}

    def cut(self) -> None:
        self._down.set()
        with self._lock:
            open_now = list(self._open)
        for s in open_now:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
                s.close()

    def restore(self) -> None:
        self._down.clear()

    def close(self) -> None:
        self._closed.set()
        self.cut()
        self._listener.close()


# ----------------------------------------------------------------------------- the scheduler
@dataclass
class Scheduler:
    """The `orchestrator scheduler` subprocess, started again after every kill."""

    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    kills: int = 0

    def start(self) -> None:
        with self.log.open("ab") as out:
            out.write(f"===== start {self.starts + 1}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "orchestrator", "scheduler"],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.starts += 1

    def kill(self) -> None:
        """SIGKILL the scheduler and the DAG-parsing children of its session."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            self.kills += 1
        self.proc = None

    def stop(self, timeout: float) -> bool:
        """SIGTERM; True if it exited by itself within `timeout` seconds."""
        if self.proc is None:
            return False
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return False
        self.proc = None
        return True


# ----------------------------------------------------------------------------- the run
@dataclass
class Chaos:
    args: argparse.Namespace
    home: Path
    instance: str
    rng: random.Random
    removed: Counter[str] = field(default_factory=Counter)  # task id -> containers removed
    notes: list[str] = field(default_factory=list)

    def db(self) -> sqlite3.Connection:
        return sqlite3.connect(f"file:{self.home / 'orchestrator.db'}?mode=ro", uri=True)

    def finished(self) -> int:
        with contextlib.closing(self.db()) as db:
            marks = ",".join("?" * len(FINAL_STATES))
            row = db.execute(
                f"SELECT count(*) FROM task_instances WHERE state IN ({marks})", FINAL_STATES
            ).fetchone()
        return int(row[0])

    def remove_one(self, why: str) -> None:
        """`docker rm -f` a running container of a task that has a retry left."""
        candidates = [
            (cid, task, tries)
            for cid, task, tries in containers(self.instance, running=True)
            if outcome(int(task[1:]))[0] != "failed" and tries == 1 and task not in self.removed
        ]
        if not candidates:
            self.notes.append(f"no running container to remove ({why})")
            return
        cid, task, tries = self.rng.choice(candidates)
        docker("rm", "-f", cid, check=False)
        self.removed[task] += 1
        self.notes.append(f"removed the container of {task} try {tries} ({why})")


def run(
    args: argparse.Namespace, chaos: Chaos, scheduler: Scheduler, proxy: EngineProxy | None
) -> float:
    """Drive the scheduler through the chaos until every task is final; returns seconds."""
    rng, total = chaos.rng, args.tasks
    removal_marks = sorted(rng.uniform(0.1, 0.8) for _ in range(args.remove))
    down_removal_mark: float | None = rng.uniform(0.2, 0.6)
    outage_mark = rng.uniform(0.3, 0.6) if proxy is not None and args.outage > 0 else None
    started = time.monotonic()
    next_kill = started + rng.uniform(*args.kill_every)
    scheduler.start()
    while True:
        done = chaos.finished()
        if done >= total:
            return time.monotonic() - started
        if time.monotonic() - started > args.timeout:
            chaos.notes.append(f"timed out after {args.timeout:g} s with {done}/{total} final")
            return time.monotonic() - started
        progress = done / total
        if removal_marks and progress >= removal_marks[0]:
            removal_marks.pop(0)
            chaos.remove_one("scheduler running")
        if outage_mark is not None and progress >= outage_mark and proxy is not None:
            outage_mark = None
            proxy.cut()
            time.sleep(args.outage)
            proxy.restore()
            chaos.notes.append(f"engine cut off from the scheduler for {args.outage:g} s")
        if time.monotonic() >= next_kill:
            scheduler.kill()
            downtime = rng.uniform(0, 2)
            if down_removal_mark is not None and progress >= down_removal_mark:
                down_removal_mark = None
                chaos.remove_one("scheduler down")
            time.sleep(downtime)
            scheduler.start()
            next_kill = time.monotonic() + rng.uniform(*args.kill_every)
        time.sleep(0.2)


Row = tuple[str, object, object]


def report(chaos: Chaos, events: EventLog, left: int, clean_stop: bool) -> list[Row]:
    """(figure, value, target) rows; a target of None is information only."""
    total = chaos.args.tasks
    starts = events.starts()
    with contextlib.closing(chaos.db()) as db:
        tis = {
            row[0]: row[1:]
            for row in db.execute(
                "SELECT task_id, state, exit_code, try_number, id FROM task_instances"
            )
        }
        attempts: dict[int, list[tuple[int, str | None, str]]] = {}
        for ti_id, tries, detail, path in db.execute(
            "SELECT ti_id, try_number, detail, log_path FROM task_attempts ORDER BY try_number"
        ):
            attempts.setdefault(ti_id, []).append((tries, detail, path))
    twice, lost, wrong, no_exit, missing, repeated = [], [], [], [], [], []
    for i in range(total):
        tid = task_id(i)
        if starts[tid] > 1 + chaos.removed[tid]:
            twice.append(tid)
        state, exit_code, tries, ti_id = tis.get(tid, (None, None, 0, None))
        mine = attempts.get(ti_id, [])
        lost_attempts = sum(1 for _, d, _ in mine if d and d.startswith("lost"))
        if state not in FINAL_STATES or lost_attempts > chaos.removed[tid]:
            lost.append(tid)
            continue
        if exit_code is None:
            no_exit.append(tid)
        if (state, exit_code) != outcome(i):
            wrong.append(f"{tid} ({state}, exit {exit_code})")
        final = [p for t, _, p in mine if t == tries]
        text = Path(final[0]).read_text(errors="replace") if final and final[0] else ""
        seen = Counter(line for line in text.splitlines() if not line.startswith(ORCH_NOTE))
        for line in expected_lines(i):
            if seen[line] == 0:
                missing.append(f"{tid}: {line!r}")
            elif seen[line] > 1:
                repeated.append(f"{tid}: {line!r} x{seen[line]}")
    retried = sum(1 for tid, n in chaos.removed.items() if starts[tid] == 1 + n)
    too_late = sum(1 for tid in chaos.removed if starts[tid] == 1 and tis[tid][2] == 1)
    for name, items in (
        ("run more than once", twice),
        ("lost", lost),
        ("wrong final state", wrong),
        ("exit code missing", no_exit),
        ("log line missing", missing),
        ("log line repeated", repeated),
    ):
        if items:
            chaos.notes.append(
                f"{name}: {', '.join(items[:10])}{' ...' if len(items) > 10 else ''}"
            )
    return [
        ("tasks run", f"{sum(1 for i in range(total) if starts[task_id(i)])}/{total}", None),
        ("tasks run more than once", len(twice), 0),
        ("containers removed on purpose", sum(chaos.removed.values()), None),
        ("  the task retried and run again", retried, None),
        ("  too late: the task had ended", too_late, None),
        ("tasks lost", len(lost), 0),
        ("tasks with a wrong final state", len(wrong), 0),
        ("exit codes missing", len(no_exit), 0),
        ("log lines missing", len(missing), 0),
        ("log lines repeated", len(repeated), 0),
        ("containers left behind", left, 0),
        ("scheduler stopped cleanly (SIGTERM)", "yes" if clean_stop else "no", "yes"),
    ]


def reconciled(log: Path) -> str:
    """What the restarted schedulers' reconciliations did, summed from their log lines."""
    total: Counter[str] = Counter()
    marker = "reconciled with the container engine: "
    text = log.read_text(errors="replace") if log.exists() else ""
    for line in text.splitlines():
        if marker in line:
            for part in line.split(marker, 1)[1].split(", "):
                count, _, action = part.partition(" ")
                if count.isdigit():
                    total[action] += int(count)
    return ", ".join(f"{n} {action}" for action, n in total.most_common()) or "nothing"


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> int:
    # Ctrl-C and SIGTERM both clean up (also when started in the background, where SIGINT
    # would otherwise be ignored)
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--parallelism", type=int, default=32)
    parser.add_argument("--kill-every", type=float, nargs=2, default=(3.0, 10.0), metavar="S")
    parser.add_argument("--remove", type=int, default=3, help="containers removed while running")
    parser.add_argument("--outage", type=float, default=5.0, help="seconds the engine is cut off")
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()

    rng = random.Random(args.seed)
    home = Path(tempfile.mkdtemp(prefix="orch-chaos-"))
    instance = f"chaos-{os.getpid()}-{rng.randrange(16**4):04x}"
    chaos = Chaos(args, home, instance, rng)
    (home / "dags").mkdir()
    (home / "dags" / "chaos_dag.py").write_text(dag_source(args.tasks))
    env = {
        **os.environ,
        "ORCH_HOME": str(home),
        "ORCH_DAGS_FOLDER": str(home / "dags"),
        "ORCH_INSTANCE_NAME": instance,
        "ORCH_PARALLELISM": str(args.parallelism),
    }
    proxy: EngineProxy | None = None
    engine_sock = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if engine_sock.startswith("unix://"):
        proxy = EngineProxy(home / "engine.sock", engine_sock.removeprefix("unix://"))
        env["ORCH_DOCKER_URL"] = f"unix://{proxy.path}"
    else:
        chaos.notes.append("engine outage skipped: DOCKER_HOST is not a Unix socket")
    scheduler = Scheduler(env, home / "scheduler.log")
    events = EventLog(instance)
    print(f"chaos run: {args.tasks} tasks, seed {args.seed}, instance {instance}", flush=True)
    interrupted = False
    rows: list[Row] = []
    elapsed = 0.0
    try:
        subprocess.run(
            [sys.executable, "-m", "orchestrator", "dags", "trigger", DAG_ID],
            env=env,
            check=True,
            capture_output=True,
        )
        elapsed = run(args, chaos, scheduler, proxy)
        clean_stop = scheduler.stop(30)
        time.sleep(1.0)  # let the events of the last removals arrive
        left = len(containers(instance))
        events.close()
        rows = report(chaos, events, left, clean_stop)
        chaos.notes.insert(0, f"reconciliations after restarts: {reconciled(scheduler.log)}")
    except KeyboardInterrupt:
        interrupted = True
    finally:
        scheduler.kill()
        events.close()
        if proxy is not None:
            proxy.close()
        for cid, _, _ in containers(instance):
            docker("rm", "-f", cid, check=False)
        if args.keep:
            print(f"kept {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)
    if interrupted:
        print("interrupted: cleaned up")
        return 130
    print(
        f"{elapsed:.0f} s, scheduler killed {scheduler.kills} times (SIGKILL),"
        f" started {scheduler.starts} times"
    )
    print(f"engine restart: {engine_restart_check()}")
    for note in chaos.notes:
        print(f"  {note}")
    print()
    print(f"{'figure':<40} {'value':>8} {'target':>8}")
    missed = 0
    for name, value, target in rows:
        shown = "" if target is None else str(target)
        print(f"{name:<40} {value!s:>8} {shown:>8}")
        if target is not None and value != target:
            missed += 1
    print("all targets met" if not missed else f"{missed} target(s) missed")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
