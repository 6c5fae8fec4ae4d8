"""Engines, sessions and migrations.

SQLite runs in WAL mode with `BEGIN IMMEDIATE` transactions, so concurrent writers (scheduler
threads, the CLI) queue on the busy timeout instead of failing on a lock upgrade. Within one
process they queue on a lock of their own first (`_WriteTurns`). SQLite's busy handler polls,
sleeping longer and longer between tries (1, 2, 5, 10... ms), so a waiting transaction began
up to tens of milliseconds after the one before ended, and a thread that commits and begins
again at once (the scheduler's loop, pass after pass) took the database again before the
waiting ones tried: launch workers waiting to store a container id starved for seconds
(`tests/unit/store/test_sqlite_turns.py`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.errors import StoreUnavailable

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_BUSY_TIMEOUT = 60.0  # seconds a SQLite transaction waits for another to end


def make_engine(url: str) -> Engine:
    """An engine for `url`, configured for our use of the backend."""
    if url.startswith("sqlite"):
        database = url.split("///", 1)[-1] if "///" in url else ""
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"timeout": _BUSY_TIMEOUT, "check_same_thread": False}
        )
        _configure_sqlite(engine)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


class _WriteTurns:
    """One SQLite transaction at a time per engine in this process, handed over as soon as
    the holder commits or rolls back (other processes still queue on SQLite's busy handler).

    A thread that already holds the turn and begins a transaction on another connection is
    not made to wait for itself: that transaction waits on SQLite as before. A turn not
    given within the busy timeout is not waited for any longer."""

    def __init__(self, timeout: float) -> None:
        self._lock = threading.Lock()
        self._timeout = timeout
        self._holder: object | None = None  # the DBAPI connection holding the turn
        self._thread: int | None = None

    def take(self, dbapi_connection: object) -> None:
        if self._thread == threading.get_ident():
            return
        if self._lock.acquire(timeout=self._timeout):
            self._holder, self._thread = dbapi_connection, threading.get_ident()

    def give_back(self, dbapi_connection: object) -> None:
        # the dialect is handed the pool's proxy or the DBAPI connection itself
        dbapi_connection = getattr(dbapi_connection, "dbapi_connection", dbapi_connection)
        if self._holder is dbapi_connection:
            self._holder = self._thread = None
            self._lock.release()


def _configure_sqlite(engine: Engine) -> None:
    turns = _WriteTurns(timeout=_BUSY_TIMEOUT)
    dialect = engine.dialect

    def giving_back(end: Callable[[Any], None]) -> Callable[[Any], None]:
        def ended(dbapi_connection: Any) -> None:
            try:
                end(dbapi_connection)
            finally:
                turns.give_back(dbapi_connection)

        return ended

    # this engine's own dialect object: the turn goes once the database has the commit (or
    # the rollback, or the connection was closed)
    dialect.do_commit = giving_back(dialect.do_commit)  # type: ignore[method-assign,assignment]
    dialect.do_rollback = giving_back(dialect.do_rollback)  # type: ignore[method-assign,assignment]
    dialect.do_close = giving_back(dialect.do_close)  # type: ignore[method-assign,assignment]
    dialect.do_terminate = giving_back(dialect.do_terminate)  # type: ignore[method-assign,assignment]

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(_BUSY_TIMEOUT * 1000)}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        dbapi_connection = connection.connection.dbapi_connection
        turns.take(dbapi_connection)
        try:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            turns.give_back(dbapi_connection)
            raise


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
