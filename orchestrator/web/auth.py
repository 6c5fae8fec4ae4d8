"""Who is asking, and may they.

The API takes a bearer token (`orchestrator users token NAME`), HTTP basic credentials, or the
session cookie of a signed-in page user; pages take the session cookie. Without credentials
the API answers 401 and pages redirect to `/login`; a role too low gets 403. An API call that
changes something with only the session cookie must also send the session's CSRF token (see
`csrf`). With `ORCH_WEB_AUTH=off` everyone is an anonymous admin (and every page says so).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Depends, HTTPException, Request, status

from orchestrator.services.users import Role, authenticate, user_for_token
from orchestrator.store import users as user_store
from orchestrator.web.csrf import require_header_token
from orchestrator.web.state import WebState, web_state

SESSION_USER = "user"
ANONYMOUS = "anonymous"


@dataclass(frozen=True)
class Principal:
    """The user a request acts as."""

    username: str
    role: Role
    by_session: bool = False  # signed in by the session cookie (not a token or password)


class LoginRequired(Exception):
    """A page was asked for without a signed-in user: redirect to the login page."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def identify(request: Request, state: WebState) -> Principal | None:
    """The principal of the request's credentials, or None when it has none (or bad ones)."""
    if not state.settings.web_auth:
        return Principal(ANONYMOUS, Role.ADMIN)
    header = request.headers.get("authorization")
    with state.sessions() as session:
        if header:
            scheme, _, value = header.partition(" ")
            user = None
            if scheme.lower() == "bearer" and value.strip():
                user = user_for_token(session, value.strip())
            elif scheme.lower() == "basic":
                credentials = _basic(value.strip())
                if credentials is not None:
                    user = authenticate(session, *credentials)
            return Principal(user.username, Role(user.role)) if user is not None else None
        username = request.session.get(SESSION_USER)
        if isinstance(username, str):
            row = user_store.get_user(session, username)
            if row is not None:  # a deleted user's session ends
                return Principal(row.username, Role(row.role), by_session=True)
    return None


def _basic(value: str) -> tuple[str, str] | None:
    try:
        decoded = base64.b64decode(value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    username, sep, password = decoded.partition(":")
    return (username, password) if sep else None


def api_user(role: Role = Role.VIEWER) -> Callable[..., Principal]:
    """A dependency: the API caller, who must hold at least `role`."""

    def dependency(request: Request, state: WebState = Depends(web_state)) -> Principal:
        principal = identify(request, state)
        if principal is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "authentication required: a bearer token, basic credentials or a session",
                headers={"WWW-Authenticate": 'Bearer, Basic realm="orchestrator"'},
            )
        if principal.by_session:
            require_header_token(request)
        _check_role(principal, role)
        return principal

    return dependency


def page_user(role: Role = Role.VIEWER) -> Callable[..., Principal]:
    """A dependency: the signed-in page user (else a redirect to `/login`)."""

    def dependency(request: Request, state: WebState = Depends(web_state)) -> Principal:
        principal = identify(request, state)
        if principal is None:
            raise LoginRequired(request.url.path)
        _check_role(principal, role)
        return principal

    return dependency


def _check_role(principal: Principal, role: Role) -> None:
    if not principal.role.allows(role):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"user {principal.username!r} has role {principal.role.value}; this needs"
            f" {role.value} or higher",
        )
