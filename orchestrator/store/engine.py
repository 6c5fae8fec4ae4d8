"""Engines, sessions and migrations.

SQLite runs in WAL mode with `BEGIN IMMEDIATE` transactions, so concurrent writers (scheduler
threads, the CLI) queue on the busy timeout instead of failing on a lock upgrade.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.errors import StoreUnavailable

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def make_engine(url: str) -> Engine:
    """An engine for `url`, configured for our use of the backend."""
    if url.startswith("sqlite"):
        database = url.split("///", 1)[-1] if "///" in url else ""
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})
        _configure_sqlite(engine)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def engine_of(sessions: sessionmaker[Session]) -> Engine:
    """The engine a session factory is bound to, for plain statements that need no session."""
    bind = sessions.kw.get("bind")
    if not isinstance(bind, Engine):
        raise TypeError("the session factory is not bound to an engine")
    return bind


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema up to `revision` with Alembic."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def open_engine(url: str) -> Engine:
    """An engine for `url`, its schema migrated when the store is new or SQLite (a server
    database is migrated explicitly with `orchestrator db upgrade`). Raises StoreUnavailable
    naming the database (without its password) when it cannot be used."""
    engine = make_engine(url)
    try:
        if current_revision(engine) is None or url.startswith("sqlite"):
            upgrade(engine)
    except SQLAlchemyError as exc:
        shown = make_url(url).render_as_string(hide_password=True)
        reason = getattr(exc, "orig", None) or exc
        raise StoreUnavailable(
            f"cannot use the database at {shown} (ORCH_DATABASE_URL): {reason}"
        ) from exc
    return engine
