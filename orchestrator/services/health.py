"""How healthy the installation is: database reachability and the scheduler's heartbeat.

The scheduler stamps `heartbeat_at` in `$ORCH_HOME/scheduler-status.json` after every pass
of its loop (and at least every `reconcile_interval`), with how long its passes take
(`LoopTimes`), `stopped_at` when it stops, and records there whether the container engine
answered at its last reconciliation (since when it does not, when it tries again, the last
error). A heartbeat older than
`scheduler_stale_after` seconds (or none at all) means the scheduler is not running, or stuck.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.services.reconcile import read_status_file
from orchestrator.settings import Settings
from orchestrator.store import stats

#: The quantiles of the latest passes' durations the status file reports.
LOOP_QUANTILES = (0.5, 0.9, 0.99)


class LoopTimes:
    """How long the scheduler loop's passes take (reconciling if due, then a tick): the
    count and sum since the process started, and quantiles over the latest `window`."""

    def __init__(self, window: int = 1000) -> None:
        self._recent: deque[float] = deque(maxlen=window)
        self.count = 0
        self.total = 0.0

    def add(self, seconds: float) -> None:
        self._recent.append(seconds)
        self.count += 1
        self.total += seconds

    def fields(self) -> dict[str, Any]:
        """What the status file records under `loop`."""
        ordered = sorted(self._recent)
        quantiles = {
            str(q): ordered[min(int(q * len(ordered)), len(ordered) - 1)]
            for q in LOOP_QUANTILES
            if ordered
        }
        last = self._recent[-1] if self._recent else None
        return {
            "count": self.count,
            "sum_seconds": self.total,
            "last_seconds": last,
            "quantiles": quantiles,
        }


@dataclass(frozen=True)
class LoopStatus:
    """The scheduler's pass durations as its status file reports them."""

    count: int
    sum_seconds: float
    last_seconds: float | None
    quantiles: dict[str, float]


class SchedulerState(StrEnum):
    """Whether a scheduler is running, as its status file tells."""

    RUNNING = "running"  # a heartbeat within `scheduler_stale_after`
    STOPPED = "stopped"  # it stopped (SIGTERM, Ctrl-C) after its last heartbeat
    STALE = "not responding"  # its last heartbeat is too old: killed, or its loop is stuck
    NEVER = "never started"  # no heartbeat recorded in this ORCH_HOME


@dataclass(frozen=True)
class EngineOutage:
    """The last time the scheduler could not reach the container engine."""

    error: str | None
    since: datetime | None
    until: datetime | None  # None: not over


@dataclass(frozen=True)
class SchedulerStatus:
    """What the scheduler's status file says, as of `now`."""

    heartbeat_at: datetime | None
    heartbeat_age: float | None  # seconds; None: no heartbeat recorded
    healthy: bool  # running: a heartbeat within `scheduler_stale_after`, and not stopped
    engine_up: bool | None  # the engine at the last reconciliation; None: never checked
    engine_error: str | None
    state: SchedulerState
    stale_after: float  # the threshold `healthy` was judged by (seconds)
    pid: int | None
    stopped_at: datetime | None
    engine_checked_at: datetime | None
    engine_down_since: datetime | None
    next_engine_check_at: datetime | None  # while down: when the backoff ends
    last_outage: EngineOutage | None  # the current outage, or the last one that ended
    loop: LoopStatus | None = None  # None: no pass timed yet


def scheduler_status(
    settings: Settings, now: datetime, *, stale_after: float | None = None
) -> SchedulerStatus:
    """Read `$ORCH_HOME/scheduler-status.json`. A heartbeat older than `stale_after`
    (default `scheduler_stale_after`) means the scheduler is not running, or stuck."""
    threshold = settings.scheduler_stale_after if stale_after is None else stale_after
    status = read_status_file(settings.home)
    heartbeat = _time(status.get("heartbeat_at"))
    stopped = _time(status.get("stopped_at"))
    age = max((now - heartbeat).total_seconds(), 0.0) if heartbeat is not None else None
    if heartbeat is None:
        state = SchedulerState.NEVER
    elif stopped is not None and stopped >= heartbeat:
        state = SchedulerState.STOPPED
    elif age is not None and age <= threshold:
        state = SchedulerState.RUNNING
    else:
        state = SchedulerState.STALE
    engine = status.get("engine")
    error = _text(status.get("engine_error"))
    down_since = _time(status.get("engine_down_since"))
    return SchedulerStatus(
        heartbeat_at=heartbeat,
        heartbeat_age=age,
        healthy=state is SchedulerState.RUNNING,
        engine_up=None if engine not in ("up", "down") else engine == "up",
        engine_error=error,
        state=state,
        stale_after=threshold,
        pid=status.get("pid") if isinstance(status.get("pid"), int) else None,
        stopped_at=stopped if state is SchedulerState.STOPPED else None,
        engine_checked_at=_time(status.get("checked_at")),
        engine_down_since=down_since if engine == "down" else None,
        next_engine_check_at=_time(status.get("next_check_at")) if engine == "down" else None,
        last_outage=_last_outage(status, error, down_since),
        loop=_loop(status.get("loop")),
    )


def _last_outage(
    status: dict[str, object], error: str | None, down_since: datetime | None
) -> EngineOutage | None:
    last_error = _text(status.get("last_engine_error"))
    if status.get("engine") == "down":
        return EngineOutage(error=error or last_error, since=down_since, until=None)
    if last_error is None:
        return None
    outage = status.get("last_outage")
    times = outage if isinstance(outage, dict) else {}
    return EngineOutage(
        error=last_error, since=_time(times.get("from")), until=_time(times.get("to"))
    )


def _loop(value: object) -> LoopStatus | None:
    """The `loop` record of the status file; None when it is missing or malformed."""
    if not isinstance(value, dict):
        return None
    count, total, last = value.get("count"), value.get("sum_seconds"), value.get("last_seconds")
    quantiles = value.get("quantiles")
    if not isinstance(count, int) or not isinstance(total, int | float):
        return None
    return LoopStatus(
        count=count,
        sum_seconds=float(total),
        last_seconds=float(last) if isinstance(last, int | float) else None,
        quantiles={
            str(k): float(v)
            for k, v in (quantiles.items() if isinstance(quantiles, dict) else [])
            if isinstance(v, int | float)
        },
    )


def database_error(sessions: sessionmaker[Session]) -> str | None:
    """None if the database answers, else why it does not."""
    try:
        with sessions() as session:
            stats.ping(session)
    except SQLAlchemyError as exc:
        return str(getattr(exc, "orig", None) or exc)
    return None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None
