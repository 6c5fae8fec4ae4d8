"""`/api/v1`: import errors, pools, users and the audit log."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Query, Response, status
from pydantic import BaseModel

from orchestrator.services import pools as pool_service
from orchestrator.services import users as user_service
from orchestrator.services.users import Role
from orchestrator.store import dags as dag_store
from orchestrator.store import users as user_store
from orchestrator.web.actions import audited
from orchestrator.web.auth import Principal, api_user
from orchestrator.web.schemas import (
    ImportErrorOut,
    PoolIn,
    PoolOut,
    UserIn,
    UserOut,
    import_error_out,
    pool_out,
)
from orchestrator.web.state import WebState, web_state

router = APIRouter()


class AuditEntry(BaseModel):
    at: datetime
    username: str
    action: str
    dag_id: str | None
    run_id: str | None
    detail: str | None


@router.get("/import-errors", response_model=list[ImportErrorOut], tags=["dags"])
def import_errors(
    state: WebState = Depends(web_state), _user: Principal = Depends(api_user())
) -> list[ImportErrorOut]:
    """DAG files that failed to load, with their tracebacks."""
    with state.sessions() as session:
        return [import_error_out(row) for row in dag_store.list_import_errors(session)]


@router.get("/pools", response_model=list[PoolOut], tags=["pools"])
def list_pools(
    state: WebState = Depends(web_state), _user: Principal = Depends(api_user())
) -> list[PoolOut]:
    """Every pool with the slots its running and queued task instances hold."""
    with state.sessions.begin() as session:
        return [pool_out(p) for p in pool_service.list_pools(session)]


@router.put("/pools/{name}", response_model=PoolOut, tags=["pools"])
def set_pool(
    name: str,
    body: PoolIn,
    state: WebState = Depends(web_state),
    user: Principal = Depends(api_user(Role.ADMIN)),
) -> PoolOut:
    """Create a pool or resize it."""
    with audited(state, user, "pool.set", detail=f"{name}: {body.slots} slots") as audit:
        return pool_out(pool_service.set_pool(audit.session, name, body.slots, body.description))


@router.delete("/pools/{name}", status_code=status.HTTP_204_NO_CONTENT, tags=["pools"])
def delete_pool(
    name: str,
    state: WebState = Depends(web_state),
    user: Principal = Depends(api_user(Role.ADMIN)),
) -> Response:
    """Delete a pool no task instance is using (`default_pool` cannot be deleted)."""
    with audited(state, user, "pool.delete", detail=name) as audit:
        pool_service.delete_pool(audit.session, name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/users", response_model=list[UserOut], tags=["users"])
def list_users(
    state: WebState = Depends(web_state), _user: Principal = Depends(api_user(Role.ADMIN))
) -> list[UserOut]:
    with state.sessions() as session:
        return [
            UserOut(username=u.username, role=u.role, created_at=u.created_at)
            for u in user_store.list_users(session)
        ]


@router.post("/users", response_model=UserOut, status_code=status.HTTP_201_CREATED, tags=["users"])
def create_user(
    body: UserIn,
    state: WebState = Depends(web_state),
    user: Principal = Depends(api_user(Role.ADMIN)),
) -> UserOut:
    with audited(state, user, "user.create", detail=f"{body.username} ({body.role})") as audit:
        row = user_service.create_user(
            audit.session, body.username, body.password, Role(body.role), audit.now
        )
        return UserOut(username=row.username, role=row.role, created_at=row.created_at)


@router.delete("/users/{username}", status_code=status.HTTP_204_NO_CONTENT, tags=["users"])
def delete_user(
    username: str,
    state: WebState = Depends(web_state),
    user: Principal = Depends(api_user(Role.ADMIN)),
) -> Response:
    with audited(state, user, "user.delete", detail=username) as audit:
        user_service.delete_user(audit.session, username)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/audit", response_model=list[AuditEntry], tags=["users"])
def audit_log(
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0),
    state: WebState = Depends(web_state),
    _user: Principal = Depends(api_user(Role.ADMIN)),
) -> list[AuditEntry]:
    """Changes made through the web server, newest first."""
    with state.sessions() as session:
        return [
            AuditEntry(
                at=e.at,
                username=e.username,
                action=e.action,
                dag_id=e.dag_id,
                run_id=e.run_id,
                detail=e.detail,
            )
            for e in user_store.audit_entries(session, limit, offset)
        ]
