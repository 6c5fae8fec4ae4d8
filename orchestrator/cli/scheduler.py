"""`orchestrator scheduler` (run it) and `orchestrator scheduler status` (is it running, can it
reach the container engine).

The status comes from `$ORCH_HOME/scheduler-status.json`, which the running scheduler stamps
after every pass (at least every `reconcile_interval`) and whenever it checks the engine; it
needs neither the database nor the engine, so it answers while either is down.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from datetime import datetime
from types import FrameType
from typing import Annotated, Any

import typer

from orchestrator.cli.context import build_context
from orchestrator.cli.output import OutputFormat
from orchestrator.errors import OrchestratorError
from orchestrator.services.health import SchedulerState, SchedulerStatus, scheduler_status
from orchestrator.services.reconcile import STATUS_FILE

app = typer.Typer(
    help="Run the scheduler (`orchestrator scheduler`, until SIGINT/SIGTERM), or show whether"
    " one is running (`orchestrator scheduler status`).",
    invoke_without_command=True,
    no_args_is_help=False,
)

OutputOpt = Annotated[OutputFormat, typer.Option("--output", "-o", help="table or json")]


@app.callback()
def scheduler(
    ctx: typer.Context,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="log at debug level")] = False,
) -> None:
    """Run the scheduler: parse DAGs, execute queued runs, until SIGINT/SIGTERM.

    `orchestrator scheduler status` shows whether one is running instead."""
    if ctx.invoked_subcommand is not None:
        return
    from orchestrator.services.claims import single_scheduler_lock
    from orchestrator.services.daemon import connect_runtime, run_scheduler

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    context = build_context()
    stop = threading.Event()

    def _signal(signum: int, _frame: FrameType | None) -> None:
        logging.getLogger("orchestrator").info("signal %s: stopping", signum)
        stop.set()

    signal.signal(signal.SIGINT, _signal)
    signal.signal(signal.SIGTERM, _signal)
    sessions = context.sessions  # a store that cannot be used fails here, at once
    code = 0
    try:
        with single_scheduler_lock(context.settings):  # a second one is refused before waiting
            runtime = connect_runtime(
                context.settings, context.clock, stop, lambda: context.runtime
            )
        if runtime is not None:
            run_scheduler(context.settings, sessions, runtime, context.clock, stop)
    except OrchestratorError as exc:  # refused, or replaced by the schedulers sharing the store
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        code = 1
    _exit_without_waiting(EXIT_GRACE_SECONDS, code)
    if code:
        raise typer.Exit(code)


#: How long a stopping scheduler lets its workers finish the engine calls they are in.
EXIT_GRACE_SECONDS = 2.0


def _exit_without_waiting(grace: float, code: int) -> None:
    """Leave (with exit `code`) once the workers' engine calls in progress are done, or after
    `grace` seconds.

    The interpreter's exit would wait for every worker thread, and one may be in a call that
    takes long (stopping a container that ignores SIGTERM waits out its grace period; a pull):
    a SIGTERM must end the process within seconds. What such a call did not finish, the next
    start's reconciliation does, as after a crash."""
    deadline = time.monotonic() + grace
    current = threading.current_thread()
    workers = [t for t in threading.enumerate() if t is not current and not t.daemon]
    for worker in workers:
        worker.join(max(deadline - time.monotonic(), 0.0))
    busy = [worker.name for worker in workers if worker.is_alive()]
    if not busy:
        return
    logging.getLogger("orchestrator.scheduler").warning(
        "leaving %d engine call(s) in progress (%s) to the next start", len(busy), ", ".join(busy)
    )
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


@app.command("status")
def status(
    output: OutputOpt = OutputFormat.table,
    stale_after: Annotated[
        float | None,
        typer.Option(
            "--stale-after",
            min=0.0,
            help="seconds without a heartbeat after which the scheduler counts as not running"
            " (default ORCH_SCHEDULER_STALE_AFTER)",
        ),
    ] = None,
) -> None:
    """Is a scheduler running, and can it reach the container engine?

    Shows the heartbeat's age (or when it stopped), and whether the engine answered at the
    scheduler's last check: since when it does not, the error, when it tries again (with
    backoff), or the last outage. Exits 1 when no scheduler is running or the engine is
    unreachable, else 0."""
    context = build_context()
    found = scheduler_status(context.settings, context.clock.now(), stale_after=stale_after)
    ok = found.state is SchedulerState.RUNNING and found.engine_up is not False
    if output == OutputFormat.json:
        typer.echo(json.dumps(_as_json(found, ok), indent=2))
    else:
        path = context.settings.home / STATUS_FILE
        for label, text, good in _lines(found, context.clock.now(), str(path)):
            colour = None if good is None else typer.colors.GREEN if good else typer.colors.RED
            typer.echo(f"{label:<10} " + typer.style(text, fg=colour))
    if not ok:
        raise typer.Exit(1)


def _lines(found: SchedulerStatus, now: datetime, path: str) -> list[tuple[str, str, bool | None]]:
    """(label, text, good) rows for people; good None: neither."""
    rows: list[tuple[str, str, bool | None]] = []
    pid = f", pid {found.pid}" if found.pid is not None else ""
    beat = (
        f"last heartbeat {_ago(found.heartbeat_at, now)} ({_when(found.heartbeat_at)})"
        if found.heartbeat_at is not None
        else ""
    )
    if found.state is SchedulerState.RUNNING:
        rows.append(("scheduler", f"running: {beat}{pid}", True))
    elif found.state is SchedulerState.STOPPED:
        rows.append(("scheduler", f"stopped at {_when(found.stopped_at)}: {beat}{pid}", False))
    elif found.state is SchedulerState.STALE:
        rows.append(
            (
                "scheduler",
                f"not responding: {beat}, over the {found.stale_after:g}s limit{pid}; killed"
                " or stuck? Start it with `orchestrator scheduler`",
                False,
            )
        )
    else:
        rows.append(
            (
                "scheduler",
                f"never started here (no heartbeat in {path}); run it with "
                "`orchestrator scheduler`",
                False,
            )
        )
    stale = "" if found.state is SchedulerState.RUNNING else " (as the scheduler last saw it)"
    if found.engine_up is None:
        rows.append(("engine", "unknown: no scheduler has checked it yet", None))
    elif found.engine_up:
        checked = f"checked {_ago(found.engine_checked_at, now)}" if found.engine_checked_at else ""
        rows.append(("engine", f"reachable{stale}{': ' + checked if checked else ''}", True))
    else:
        since = found.engine_down_since
        text = f"unreachable{stale}"
        if since is not None:
            text += f" since {_when(since)} ({_span(since, now)})"
        if found.next_engine_check_at is not None and found.state is SchedulerState.RUNNING:
            wait = (found.next_engine_check_at - now).total_seconds()
            text += f"; next check {'in ' + _seconds(wait) if wait > 0 else 'now'}"
        rows.append(("engine", text, False))
        if found.engine_error:
            rows.append(("", f"error: {found.engine_error}", None))
    outage = found.last_outage
    if found.engine_up and outage is not None and outage.error:
        span = (
            f"{_when(outage.since)} to {_when(outage.until)} ({_span(outage.since, outage.until)})"
            if outage.since is not None and outage.until is not None
            else "earlier"
        )
        rows.append(("", f"last outage {span}: {outage.error}", None))
    return rows


def _as_json(found: SchedulerStatus, ok: bool) -> dict[str, Any]:
    outage = found.last_outage
    engine = "unknown" if found.engine_up is None else "up" if found.engine_up else "down"
    return {
        "ok": ok,
        "scheduler": {
            "status": found.state.value,
            "running": found.state is SchedulerState.RUNNING,
            "heartbeat_at": _iso(found.heartbeat_at),
            "heartbeat_age_seconds": found.heartbeat_age,
            "stale_after_seconds": found.stale_after,
            "stopped_at": _iso(found.stopped_at),
            "pid": found.pid,
        },
        "engine": {
            "status": engine,
            "reachable": found.engine_up,
            "checked_at": _iso(found.engine_checked_at),
            "error": found.engine_error,
            "down_since": _iso(found.engine_down_since),
            "next_check_at": _iso(found.next_engine_check_at),
            "last_outage": None
            if outage is None
            else {
                "error": outage.error,
                "since": _iso(outage.since),
                "until": _iso(outage.until),
            },
        },
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _when(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value is not None else "?"


def _ago(value: datetime | None, now: datetime) -> str:
    return f"{_span(value, now)} ago" if value is not None else "never"


def _span(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return "?"
    return _seconds((end - start).total_seconds())


def _seconds(total: float) -> str:
    """A duration for people: 42s, 3m 05s, 2h 10m, 3d 4h."""
    seconds = max(int(total), 0)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h"
