"""Queries on web users, their API tokens and the audit log."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from orchestrator.store.tables import ApiTokenRow, AuditLogRow, UserRow


def get_user(session: Session, username: str) -> UserRow | None:
    return session.scalar(select(UserRow).where(UserRow.username == username))


def list_users(session: Session) -> list[UserRow]:
    return list(session.scalars(select(UserRow).order_by(UserRow.username)))


def add_user(
    session: Session, username: str, password_hash: str, role: str, now: datetime
) -> UserRow:
    row = UserRow(username=username, password_hash=password_hash, role=role, created_at=now)
    session.add(row)
    session.flush()
    return row


def delete_user(session: Session, row: UserRow) -> None:
    session.execute(delete(ApiTokenRow).where(ApiTokenRow.user_id == row.id))
    session.delete(row)


def add_token(session: Session, user: UserRow, token_hash: str, now: datetime) -> ApiTokenRow:
    row = ApiTokenRow(user_id=user.id, token_hash=token_hash, created_at=now)
    session.add(row)
    session.flush()
    return row


def user_by_token(session: Session, token_hash: str) -> UserRow | None:
    return session.scalar(
        select(UserRow)
        .join(ApiTokenRow, ApiTokenRow.user_id == UserRow.id)
        .where(ApiTokenRow.token_hash == token_hash)
    )


def record_audit(
    session: Session,
    *,
    at: datetime,
    username: str,
    action: str,
    dag_id: str | None = None,
    run_id: str | None = None,
    detail: str | None = None,
) -> None:
    session.add(
        AuditLogRow(
            at=at, username=username, action=action, dag_id=dag_id, run_id=run_id, detail=detail
        )
    )


def audit_entries(session: Session, limit: int = 100, offset: int = 0) -> list[AuditLogRow]:
    """The newest entries first."""
    query = select(AuditLogRow).order_by(AuditLogRow.id.desc()).limit(limit).offset(offset)
    return list(session.scalars(query))
