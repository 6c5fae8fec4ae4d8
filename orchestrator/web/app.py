"""The web app's composition root: settings → store → app (routers, auth, metrics)."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.orm import Session, sessionmaker
from starlette.middleware.sessions import SessionMiddleware

from orchestrator.services.clock import Clock, SystemClock
from orchestrator.settings import Settings
from orchestrator.store.engine import make_session_factory, open_engine
from orchestrator.web import dag_pages, health, page_actions, pages
from orchestrator.web.api import router as api_router
from orchestrator.web.errors import install_error_handlers
from orchestrator.web.metrics import make_registry
from orchestrator.web.secret_key import session_secret_key
from orchestrator.web.state import WebState

SESSION_COOKIE = "orch_session"
SESSION_MAX_AGE = 7 * 24 * 3600
AUTH_OFF = (
    "Authentication is off (ORCH_WEB_AUTH=off): anyone who can reach this server can trigger,"
    " clear and change anything."
)


def create_app(
    settings: Settings,
    sessions: sessionmaker[Session] | None = None,
    clock: Clock | None = None,
) -> FastAPI:
    """The web server: `/api/v1` (OpenAPI at `/docs`), pages, `/health` and `/metrics`.
    `sessions` defaults to the store of `settings` (migrated like the CLI's)."""
    if sessions is None:
        sessions = make_session_factory(open_engine(settings.resolved_database_url))
    state = WebState(settings=settings, sessions=sessions, clock=clock or SystemClock())
    description = "REST API of the container-task orchestrator."
    if not settings.web_auth:
        description += f"\n\n**{AUTH_OFF}**"
    app = FastAPI(
        title="orchestrator",
        version="1",
        description=description,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.web = state
    app.add_middleware(
        SessionMiddleware,
        secret_key=session_secret_key(settings),
        session_cookie=SESSION_COOKIE,
        max_age=SESSION_MAX_AGE,
        same_site="lax",
    )
    install_error_handlers(app)
    app.include_router(api_router, prefix="/api/v1")
    app.include_router(health.router)
    app.include_router(health.api_router, prefix="/api/v1")
    app.include_router(pages.router)
    app.include_router(dag_pages.router)
    app.include_router(page_actions.router)
    registry = make_registry(state)

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app
