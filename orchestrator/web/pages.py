"""Server-rendered pages: the login form, signing out, and the DAG list (the home page).
The DAG, run and task instance pages are in `dag_pages`, the forms that change things in
`page_actions`.

Pages use the session cookie (signed with the secret key). A page asked for without a
signed-in user redirects to `/login?next=<path>`; after signing in the user returns there.
Every form carries the session's CSRF token (`csrf`), the sign-in and sign-out forms too.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from markupsafe import Markup

from orchestrator.services.dag_views import dag_summaries
from orchestrator.services.users import Role, authenticate
from orchestrator.store import dags as dag_store
from orchestrator.store import users as user_store
from orchestrator.web import csrf
from orchestrator.web.auth import SESSION_USER, Principal, page_user
from orchestrator.web.schemas import dag_out
from orchestrator.web.state import WebState, web_state
from orchestrator.web.svg import STATE_COLOURS, colour


def stacked_fill(counts: Sequence[tuple[str, int]]) -> str:
    """A cell's style showing several states at once: a band per state, as tall as its share
    of the count (the most urgent at the bottom); '' for one state."""
    total = sum(count for _state, count in counts)
    if len(counts) < 2 or total <= 0:
        return ""
    stops, done = [], 0
    for state, count in counts:
        start, done = done, done + count
        stops.append(f"{colour(state)} {start * 100 / total:.1f}% {done * 100 / total:.1f}%")
    return f"background: linear-gradient(to top, {', '.join(stops)})"


TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")
TEMPLATES.env.filters["q"] = lambda value: quote(str(value), safe="")
TEMPLATES.env.filters["dt"] = lambda value: value.strftime("%Y-%m-%d %H:%M:%S") if value else ""
TEMPLATES.env.globals["colours"] = STATE_COLOURS
TEMPLATES.env.filters["stacked"] = stacked_fill
router = APIRouter(include_in_schema=False)
FLASH = "flash"
RECENT_RUNS = 10  # squares per DAG in the list


def render(
    request: Request, name: str, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    """A page from `templates/`; the base layout sees the user, whether auth is off, and the
    session's CSRF token (`csrf_field` goes in every form)."""
    state: WebState = request.app.state.web
    token = csrf.csrf_token(request)
    full = {
        "auth_off": not state.settings.web_auth,
        "user": None,
        "flash": request.session.pop(FLASH, None),
        "csrf_token": token,
        "csrf_field": Markup(f'<input type="hidden" name="{csrf.FIELD}" value="{token}">'),
        **context,
    }
    return TEMPLATES.TemplateResponse(request, name, full, status_code=status_code)


def flash(request: Request, message: str) -> None:
    """A message shown once, on the next page the user sees."""
    request.session[FLASH] = message


def may_act(user: Principal) -> bool:
    """Whether the page shows the buttons that change things (operators and admins)."""
    return user.role.allows(Role.OPERATOR)


def safe_next(target: str | None) -> str:
    """Only paths of this site (never `//host` or `https://...`)."""
    if target and target.startswith("/") and not target.startswith("//"):
        return target
    return "/"


def _no_users(state: WebState) -> bool:
    with state.sessions() as session:
        return state.settings.web_auth and not user_store.list_users(session)


@router.get("/login", response_class=HTMLResponse)
def login_form(
    request: Request, next: str | None = None, state: WebState = Depends(web_state)
) -> Response:
    """The sign-in form (on a fresh install, how to make the first user)."""
    context = {"next": safe_next(next), "error": None, "no_users": _no_users(state)}
    return render(request, "login.html", context)


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request,
    username: str = Form(""),
    password: str = Form(""),
    next: str = Form("/"),
    csrf_token: str = Form(""),
    state: WebState = Depends(web_state),
) -> Response:
    """Sign in; the form must carry the token of the session it was drawn for (else another
    site could sign the browser in to an account of its choosing)."""
    if not csrf.matches(request, csrf_token):
        context = {
            "next": safe_next(next),
            "error": "The form expired; please sign in again.",
            "no_users": _no_users(state),
        }
        return render(request, "login.html", context, status_code=403)
    with state.sessions() as session:
        user = authenticate(session, username, password) if username else None
    if user is None:
        context = {
            "next": safe_next(next),
            "error": "Wrong username or password.",
            "no_users": _no_users(state),
        }
        return render(request, "login.html", context, status_code=401)
    request.session.clear()
    request.session[SESSION_USER] = user.username
    csrf.new_csrf_token(request)
    return RedirectResponse(safe_next(next), status_code=303)


@router.post("/logout")
def logout(request: Request, csrf_token: str = Form("")) -> Response:
    """Sign out (a form without the session's token is refused, unless no one is signed in)."""
    if request.session.get(SESSION_USER) is not None and not csrf.matches(request, csrf_token):
        raise HTTPException(status.HTTP_403_FORBIDDEN, csrf.REFUSED)
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


@router.get("/", response_class=HTMLResponse)
def home(
    request: Request,
    state: WebState = Depends(web_state),
    user: Principal = Depends(page_user()),
) -> Response:
    """The DAG list: schedule, next run, the latest runs as squares, the paused switch, and
    the DAG files that failed to load (with their tracebacks) at the top."""
    with state.sessions() as session:
        summaries = dag_summaries(session, state.clock.now(), recent=RECENT_RUNS)
        dags = [
            (dag_out(d.row, d.spec, d.upcoming, d.last_run), list(reversed(d.recent_runs)))
            for d in summaries
        ]
        errors = dag_store.list_import_errors(session)
    context = {"user": user, "dags": dags, "import_errors": errors, "may_act": may_act(user)}
    return render(request, "home.html", context)
