"""How healthy the installation is: database reachability and the scheduler's heartbeat.

The scheduler stamps `heartbeat_at` in `$ORCH_HOME/scheduler-status.json` after every pass
of its loop (and at least every `reconcile_interval`), with how long its passes take
(`LoopTimes`), and records there whether the container engine answered at its last
reconciliation. A heartbeat older than `scheduler_stale_after` seconds (or none at all) means
the scheduler is not running, or stuck.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime
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


@dataclass(frozen=True)
class SchedulerStatus:
    """What the scheduler's status file says, as of `now`."""

    heartbeat_at: datetime | None
    heartbeat_age: float | None  # seconds; None: no heartbeat recorded
    healthy: bool  # a heartbeat within `scheduler_stale_after`
    engine_up: bool | None  # the engine at the last reconciliation; None: never checked
    engine_error: str | None
    loop: LoopStatus | None = None  # None: no pass timed yet


def scheduler_status(settings: Settings, now: datetime) -> SchedulerStatus:
    status = read_status_file(settings.home)
    heartbeat = _time(status.get("heartbeat_at"))
    age = max((now - heartbeat).total_seconds(), 0.0) if heartbeat is not None else None
    engine = status.get("engine")
    error = status.get("engine_error")
    return SchedulerStatus(
        heartbeat_at=heartbeat,
        heartbeat_age=age,
        healthy=age is not None and age <= settings.scheduler_stale_after,
        engine_up=None if engine not in ("up", "down") else engine == "up",
        engine_error=error if isinstance(error, str) else None,
        loop=_loop(status.get("loop")),
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


def _time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None
