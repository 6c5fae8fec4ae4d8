"""The store: SQLAlchemy tables, query functions taking a Session, Alembic migrations."""

from orchestrator.store.engine import make_engine, make_session_factory, upgrade

__all__ = ["make_engine", "make_session_factory", "upgrade"]
