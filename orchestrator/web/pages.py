"""Server-rendered pages: the login form, signing out, and the home page.

Pages use the session cookie (signed with the secret key). A page asked for without a
signed-in user redirects to `/login?next=<path>`; after signing in the user returns there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from orchestrator.services.users import authenticate
from orchestrator.store import dags as dag_store
from orchestrator.web.auth import SESSION_USER, Principal, page_user
from orchestrator.web.state import WebState, web_state

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")
router = APIRouter(include_in_schema=False)


def render(
    request: Request, name: str, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    """A page from `templates/`; the base layout sees the user and whether auth is off."""
    state: WebState = request.app.state.web
    full = {"auth_off": not state.settings.web_auth, "user": None, **context}
    return TEMPLATES.TemplateResponse(request, name, full, status_code=status_code)


def _safe_next(target: str | None) -> str:
    """Only paths of this site (never `//host` or `https://...`)."""
    if target and target.startswith("/") and not target.startswith("//"):
        return target
    return "/"


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str | None = None) -> Response:
    return render(request, "login.html", {"next": _safe_next(next), "error": None})


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request,
    username: str = Form(""),
    password: str = Form(""),
    next: str = Form("/"),
    state: WebState = Depends(web_state),
) -> Response:
    with state.sessions() as session:
        user = authenticate(session, username, password) if username else None
    if user is None:
        context = {"next": _safe_next(next), "error": "Wrong username or password."}
        return render(request, "login.html", context, status_code=401)
    request.session.clear()
    request.session[SESSION_USER] = user.username
    return RedirectResponse(_safe_next(next), status_code=303)


@router.post("/logout")
def logout(request: Request) -> Response:
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


@router.get("/", response_class=HTMLResponse)
def home(
    request: Request,
    state: WebState = Depends(web_state),
    user: Principal = Depends(page_user()),
) -> Response:
    with state.sessions() as session:
        dags = dag_store.list_dag_rows(session)
        errors = len(dag_store.list_import_errors(session))
    return render(request, "home.html", {"user": user, "dags": dags, "import_errors": errors})
