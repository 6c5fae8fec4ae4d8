"""How healthy the installation is: database reachability and the scheduler's heartbeat.

The scheduler stamps `heartbeat_at` in `$ORCH_HOME/scheduler-status.json` after every pass
of its loop (and at least every `reconcile_interval`), and records there whether the container
engine answered at its last reconciliation. A heartbeat older than `scheduler_stale_after`
seconds (or none at all) means the scheduler is not running, or stuck.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.services.reconcile import read_status_file
from orchestrator.settings import Settings
from orchestrator.store import stats


@dataclass(frozen=True)
class SchedulerStatus:
    """What the scheduler's status file says, as of `now`."""

    heartbeat_at: datetime | None
    heartbeat_age: float | None  # seconds; None: no heartbeat recorded
    healthy: bool  # a heartbeat within `scheduler_stale_after`
    engine_up: bool | None  # the engine at the last reconciliation; None: never checked
    engine_error: str | None


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
