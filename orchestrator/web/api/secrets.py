"""`/api/v1/connections` and `/api/v1/variables`: stored connections and variables, for admins.

They are stored encrypted with `ORCH_FERNET_KEY` (the web server needs it to store one) and
never returned in clear: a connection's password and extra settings, and a variable's value,
show as `***`. Every change is audited under its id or name only. What tasks see also depends
on the scheduler's environment (`ORCH_CONN_<ID>`, `ORCH_VAR_<NAME>` come first); these
endpoints manage the store alone.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Path, Response, status

from orchestrator.errors import SecretError
from orchestrator.models.secrets import Connection
from orchestrator.services.secrets import SecretsService, connection_from_text
from orchestrator.services.users import Role
from orchestrator.web.actions import audited
from orchestrator.web.auth import Principal, api_user
from orchestrator.web.schemas import (
    ConnectionIn,
    ConnectionOut,
    VariableIn,
    VariableOut,
    connection_out,
    variable_out,
)
from orchestrator.web.state import WebState, web_state

router = APIRouter()
Admin = Depends(api_user(Role.ADMIN))
NEW_NAME = r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$"
ConnId = Path(description="the connection's id")
NewConnId = Path(
    description="the connection's id (letters, digits, `_`, `.`, `-`)",
    max_length=250,
    pattern=NEW_NAME,
)
VarName = Path(description="the variable's name")
NewVarName = Path(
    description="the variable's name (letters, digits, `_`, `.`, `-`)",
    max_length=250,
    pattern=NEW_NAME,
)
SAVED: dict[int | str, dict[str, Any]] = {
    201: {"description": "created"},
    200: {"description": "replaced"},
}


def _connection(conn_id: str, body: ConnectionIn) -> Connection:
    """The body as a connection; a URI or fields that do not make one are 422."""
    try:
        if body.uri is not None:
            return connection_from_text(conn_id, body.uri.get_secret_value(), "uri")
        fields = {
            "conn_type": body.conn_type,
            "host": body.host,
            "port": body.port,
            "login": body.login,
            "password": body.password.get_secret_value() if body.password else None,
            "schema": body.schema_,
            "extra": body.extra or {},
        }
        return connection_from_text(conn_id, json.dumps(fields), "the body")
    except SecretError as exc:
        raise HTTPException(422, str(exc)) from None


# ------------------------------------------------------------------------------ connections
@router.get("/connections", response_model=list[ConnectionOut], tags=["connections"])
def list_connections(
    state: WebState = Depends(web_state), _user: Principal = Admin
) -> list[ConnectionOut]:
    """Every stored connection (passwords and extra settings masked)."""
    with state.sessions() as session:
        service = SecretsService(state.settings, session)
        return [connection_out(c) for c in service.list_connections()]


@router.get("/connections/{conn_id}", response_model=ConnectionOut, tags=["connections"])
def get_connection(
    conn_id: str = ConnId, state: WebState = Depends(web_state), _user: Principal = Admin
) -> ConnectionOut:
    with state.sessions() as session:
        return connection_out(SecretsService(state.settings, session).stored_connection(conn_id))


@router.put(
    "/connections/{conn_id}", response_model=ConnectionOut, tags=["connections"], responses=SAVED
)
def put_connection(
    body: ConnectionIn,
    response: Response,
    conn_id: str = NewConnId,
    state: WebState = Depends(web_state),
    user: Principal = Admin,
) -> ConnectionOut:
    """Create a connection (201) or replace a stored one (200). Replacing, a `password`,
    `extra` or `description` left out of the body keeps the stored one."""
    connection = _connection(conn_id, body)
    given = body.model_fields_set
    with audited(state, user, "connection.set", detail=conn_id) as audit:
        service = SecretsService(state.settings, audit.session)
        created = service.set_connection(
            connection,
            audit.now,
            body.description,
            keep_password=body.uri is None and "password" not in given,
            keep_extra=body.uri is None and "extra" not in given,
            keep_description="description" not in given,
        )
        audit.detail = f"{conn_id} ({'created' if created else 'replaced'})"
        saved = connection_out(service.stored_connection(conn_id))
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return saved


@router.delete(
    "/connections/{conn_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["connections"]
)
def delete_connection(
    conn_id: str = ConnId, state: WebState = Depends(web_state), user: Principal = Admin
) -> Response:
    with audited(state, user, "connection.delete", detail=conn_id) as audit:
        SecretsService(state.settings, audit.session).delete_connection(conn_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# -------------------------------------------------------------------------------- variables
@router.get("/variables", response_model=list[VariableOut], tags=["variables"])
def list_variables(
    state: WebState = Depends(web_state), _user: Principal = Admin
) -> list[VariableOut]:
    """Every stored variable (values masked)."""
    with state.sessions() as session:
        return [variable_out(v) for v in SecretsService(state.settings, session).list_variables()]


@router.get("/variables/{name}", response_model=VariableOut, tags=["variables"])
def get_variable(
    name: str = VarName, state: WebState = Depends(web_state), _user: Principal = Admin
) -> VariableOut:
    with state.sessions() as session:
        return variable_out(SecretsService(state.settings, session).stored_variable(name))


@router.put("/variables/{name}", response_model=VariableOut, tags=["variables"], responses=SAVED)
def put_variable(
    body: VariableIn,
    response: Response,
    name: str = NewVarName,
    state: WebState = Depends(web_state),
    user: Principal = Admin,
) -> VariableOut:
    """Create a variable (201) or replace a stored one's value (200); without a description
    a replaced variable keeps its own."""
    with audited(state, user, "variable.set", detail=name) as audit:
        service = SecretsService(state.settings, audit.session)
        created = service.set_variable(
            name, body.value.get_secret_value(), audit.now, body.description
        )
        audit.detail = f"{name} ({'created' if created else 'replaced'})"
        saved = variable_out(service.stored_variable(name))
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return saved


@router.delete("/variables/{name}", status_code=status.HTTP_204_NO_CONTENT, tags=["variables"])
def delete_variable(
    name: str = VarName, state: WebState = Depends(web_state), user: Principal = Admin
) -> Response:
    with audited(state, user, "variable.delete", detail=name) as audit:
        SecretsService(state.settings, audit.session).delete_variable(name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
