"""Protection against cross-site request forgery for what the session cookie authorises.

Each session holds a random token (made when a page is first drawn, new after signing in).
Every form of the pages carries it in a hidden field (`csrf_token`), and every page in a
`<meta name="csrf-token">` for scripts. A form posted without the session's token is refused
(403) before anything changes, whoever is signed in, and also with `ORCH_WEB_AUTH=off`. An API
call authorised by the session cookie that changes something (POST, PUT, PATCH, DELETE) must
send the token in the `X-CSRF-Token` header; calls with a bearer token or basic credentials
need none (a browser never adds those to a request another site makes).

The session cookie is also `SameSite=lax`, so browsers do not send it with another site's
POST; the token covers older browsers, and sites under the same registrable domain.
"""

from __future__ import annotations

import hmac
import secrets

from fastapi import Form, HTTPException, Request, status

SESSION_KEY = "csrf"
FIELD = "csrf_token"
HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
REFUSED = (
    "the form's CSRF token is missing or does not match your session (the page may be older"
    " than your last sign-in): reload the page and submit the form again"
)


def csrf_token(request: Request) -> str:
    """The session's token, made on first use."""
    token = request.session.get(SESSION_KEY)
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        request.session[SESSION_KEY] = token
    return token


def new_csrf_token(request: Request) -> str:
    """A fresh token (after signing in: a token seen before then is worth nothing)."""
    request.session.pop(SESSION_KEY, None)
    return csrf_token(request)


def matches(request: Request, submitted: str | None) -> bool:
    """Whether `submitted` is the session's token."""
    expected = request.session.get(SESSION_KEY)
    if not isinstance(expected, str) or not expected or not submitted:
        return False
    return hmac.compare_digest(expected.encode(), submitted.encode())


def require_form_token(request: Request, csrf_token: str = Form("")) -> None:
    """A dependency of the pages' forms: 403 unless the form carries the session's token."""
    if not matches(request, csrf_token):
        raise HTTPException(status.HTTP_403_FORBIDDEN, REFUSED)


def require_header_token(request: Request) -> None:
    """For API calls authorised by the session cookie: 403 unless a call that changes
    something sends the session's token in `X-CSRF-Token`."""
    if request.method in SAFE_METHODS:
        return
    if not matches(request, request.headers.get(HEADER)):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"an API call signed in by the session cookie must send the {HEADER} header (the"
            ' token in the page\'s <meta name="csrf-token">), or use a bearer token or basic'
            " credentials instead",
        )
