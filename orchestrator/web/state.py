"""What the web app's handlers share: settings, the store's sessions, the clock."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.services.clock import Clock
from orchestrator.settings import Settings


@dataclass(frozen=True)
class WebState:
    settings: Settings
    sessions: sessionmaker[Session]
    clock: Clock


def web_state(request: Request) -> WebState:
    """The app's state (a FastAPI dependency)."""
    state: WebState = request.app.state.web
    return state
