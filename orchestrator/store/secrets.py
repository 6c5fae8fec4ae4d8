"""Queries on stored connections and variables. Values arrive here already encrypted: this
module never sees a secret in clear."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from orchestrator.store.tables import ConnectionRow, VariableRow


def get_connection(session: Session, conn_id: str) -> ConnectionRow | None:
    return session.get(ConnectionRow, conn_id)


def list_connections(session: Session) -> list[ConnectionRow]:
    return list(session.scalars(select(ConnectionRow).order_by(ConnectionRow.conn_id)))


def add_connection(session: Session, row: ConnectionRow) -> None:
    session.add(row)
    session.flush()


def delete_connection(session: Session, conn_id: str) -> bool:
    """Delete a connection; False when there was none."""
    row = session.get(ConnectionRow, conn_id)
    if row is None:
        return False
    session.delete(row)
    session.flush()
    return True


def get_variable(session: Session, name: str) -> VariableRow | None:
    return session.get(VariableRow, name)


def list_variables(session: Session) -> list[VariableRow]:
    return list(session.scalars(select(VariableRow).order_by(VariableRow.name)))


def put_variable(session: Session, row: VariableRow) -> VariableRow:
    """Create or replace a variable (by name)."""
    merged = session.merge(row)
    session.flush()
    return merged


def delete_variable(session: Session, name: str) -> bool:
    """Delete a variable; False when there was none."""
    row = session.get(VariableRow, name)
    if row is None:
        return False
    session.delete(row)
    session.flush()
    return True
