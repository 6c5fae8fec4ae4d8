"""Our exceptions as HTTP answers: `{"detail": message}` with a status code. A request that
does not validate is 422 with a list of what is wrong where (`loc`, `msg`, `type`), without
echoing the values sent (they may be passwords)."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response

from orchestrator.errors import (
    AccountError,
    DagNotFound,
    IllegalTransition,
    InvalidConf,
    OrchestratorError,
    PoolError,
    PoolNotFound,
    RunAlreadyExists,
    RunNotFound,
    SecretNotFound,
    StoreUnavailable,
    TaskNotFound,
    UserError,
    UserNotFound,
)
from orchestrator.web.auth import LoginRequired

#: The first matching class decides the status; anything else we raise is a 500.
STATUS_BY_ERROR: list[tuple[type[OrchestratorError], int]] = [
    (DagNotFound, 404),
    (RunNotFound, 404),
    (TaskNotFound, 404),
    (PoolNotFound, 404),
    (UserNotFound, 404),
    (SecretNotFound, 404),
    (InvalidConf, 422),
    (RunAlreadyExists, 409),
    (IllegalTransition, 409),
    (PoolError, 400),
    (AccountError, 400),
    (UserError, 400),
    (StoreUnavailable, 503),
]


def status_of(exc: OrchestratorError) -> int:
    for kind, code in STATUS_BY_ERROR:
        if isinstance(exc, kind):
            return code
    return 500


def install_error_handlers(app: FastAPI) -> None:
    async def orchestrator_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, OrchestratorError)
        return JSONResponse({"detail": str(exc)}, status_code=status_of(exc))

    async def login_required(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, LoginRequired)
        return RedirectResponse(f"/login?next={quote(exc.next_path)}", status_code=303)

    async def invalid_request(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        problems = [
            {key: value for key, value in error.items() if key in ("type", "loc", "msg")}
            for error in exc.errors()
        ]
        return JSONResponse({"detail": jsonable_encoder(problems)}, status_code=422)

    app.add_exception_handler(OrchestratorError, orchestrator_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(LoginRequired, login_required)
