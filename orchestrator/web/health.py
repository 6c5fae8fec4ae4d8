"""`/health`: liveness and readiness for load balancers and orchestration.

`/health` (also `/health/ready` and `/api/v1/health`) answers 200 when the database answers,
else 503: ready to serve. `/health/live` answers 200 whenever the process serves requests (a
liveness probe that must not restart the server because the database is down). The
scheduler's state is reported (its heartbeat age, how long its last pass took, whether it
reached the container engine) but does not make the web server unready: the UI and API stay
useful while the scheduler restarts. None of them needs credentials.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from orchestrator.services.health import database_error, scheduler_status
from orchestrator.web.state import WebState, web_state

router = APIRouter(tags=["health"])


class DatabaseHealth(BaseModel):
    status: str  # healthy or unhealthy
    error: str | None


class SchedulerHealth(BaseModel):
    status: str  # healthy, unhealthy (stale heartbeat) or unknown (never ran here)
    latest_heartbeat: datetime | None
    heartbeat_age_seconds: float | None
    engine: str  # up, down, or unknown
    engine_error: str | None
    last_pass_seconds: float | None  # how long the loop's latest pass took


class Health(BaseModel):
    status: str  # healthy when the database answers
    database: DatabaseHealth
    scheduler: SchedulerHealth


class Liveness(BaseModel):
    status: str  # alive


@router.get("/health/live", response_model=Liveness)
def live() -> Liveness:
    """200 while the process serves requests (checks nothing else)."""
    return Liveness(status="alive")


@router.get("/health", response_model=Health)
@router.get("/health/ready", response_model=Health)
def health(state: WebState = Depends(web_state)) -> JSONResponse:
    """200 when the database answers, else 503; the scheduler's state is reported."""
    error = database_error(state.sessions)
    status = scheduler_status(state.settings, state.clock.now())
    scheduler = (
        "unknown" if status.heartbeat_at is None else ("healthy" if status.healthy else "unhealthy")
    )
    engine = "unknown" if status.engine_up is None else ("up" if status.engine_up else "down")
    body = Health(
        status="healthy" if error is None else "unhealthy",
        database=DatabaseHealth(status="healthy" if error is None else "unhealthy", error=error),
        scheduler=SchedulerHealth(
            status=scheduler,
            latest_heartbeat=status.heartbeat_at,
            heartbeat_age_seconds=status.heartbeat_age,
            engine=engine,
            engine_error=status.engine_error,
            last_pass_seconds=status.loop.last_seconds if status.loop else None,
        ),
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if error is None else 503)


#: `/api/v1/health`: the same answer, where API clients look for it.
api_router = APIRouter(tags=["health"])
api_router.add_api_route("/health", health, methods=["GET"], response_model=Health)
