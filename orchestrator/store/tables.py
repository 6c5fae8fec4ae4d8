"""ORM tables: columns and relationships, no behaviour. Times are stored in UTC."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    bindparam,
    event,
    select,
    update,
)
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.orm.attributes import instance_state
from sqlalchemy.orm.base import NO_VALUE
from sqlalchemy.orm.exc import StaleDataError
from sqlalchemy.orm.state import InstanceState

from orchestrator.store.updates import update_rows

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """An aware datetime stored as naive UTC; read back as aware UTC on every backend."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given to the store; pass aware times")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        """On SQLite, one step to the text SQLAlchemy's `DateTime` stores there (its format,
        `YYYY-MM-DD HH:MM:SS.ffffff`): the scheduler writes several datetimes per state
        change, and the two steps (to naive UTC, then formatted field by field) cost more
        than the write itself."""
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)
        to_naive = self.process_bind_param

        def process(value: Any) -> str | None:
            naive = to_naive(value, dialect)
            return None if naive is None else naive.isoformat(" ", "microseconds")

        return process


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class DagRow(Base):
    """A DAG as last parsed from its file: the serialized spec plus operator flags."""

    __tablename__ = "dags"

    dag_id: Mapped[str] = mapped_column(String(250), primary_key=True)
    fileloc: Mapped[str] = mapped_column(Text)
    spec_json: Mapped[str] = mapped_column(Text)
    spec_hash: Mapped[str] = mapped_column(String(64))
    is_paused: Mapped[bool] = mapped_column(Boolean, default=False)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    last_parsed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: When the scheduler next needs to plan runs of this DAG (None: at its next pass).
    next_dagrun_create_after: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ImportErrorRow(Base):
    """A DAG file that failed to load, with its traceback."""

    __tablename__ = "import_errors"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fileloc: Mapped[str] = mapped_column(Text, unique=True)
    error: Mapped[str] = mapped_column(Text)
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime)


class DagRunRow(Base):
    """One run of a DAG over one data interval."""

    __tablename__ = "dag_runs"
    __table_args__ = (
        UniqueConstraint("dag_id", "run_id"),
        Index("ix_dag_runs_state", "state"),
        Index("ix_dag_runs_claimed_by", "claimed_by"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dag_id: Mapped[str] = mapped_column(String(250))
    run_id: Mapped[str] = mapped_column(String(250))
    run_type: Mapped[str] = mapped_column(String(20))
    state: Mapped[str] = mapped_column(String(20))
    logical_date: Mapped[datetime] = mapped_column(UTCDateTime)
    data_interval_start: Mapped[datetime] = mapped_column(UTCDateTime)
    data_interval_end: Mapped[datetime] = mapped_column(UTCDateTime)
    conf: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    spec_hash: Mapped[str] = mapped_column(String(64))
    queued_at: Mapped[datetime] = mapped_column(UTCDateTime)
    start_date: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    end_date: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: Why the run ended as it did when no task says so (e.g. its dagrun_timeout passed).
    state_detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: The scheduler (`schedulers.id`) executing the run, or that last did; None: nobody yet.
    claimed_by: Mapped[str | None] = mapped_column(String(32), nullable=True)
    #: Goes up with every flush that writes the run's task instances (see
    #: `_check_and_bump_versions`): a long-lived reader that knows the value its own writes
    #: left sees from the run row alone whether anything else wrote them.
    ti_writes: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class SchedulerRow(Base):
    """A scheduler process that executes runs (several may share a PostgreSQL store), with
    its latest heartbeat."""

    __tablename__ = "schedulers"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))  # the host name, for people
    pid: Mapped[int] = mapped_column(Integer)
    #: Which process table `pid` belongs to (host name and boot id): a scheduler on the same
    #: machine can tell at once that this one's process is gone.
    machine: Mapped[str] = mapped_column(String(255))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime)


class TaskInstanceRow(Base):
    """A task within a run: its current state and latest attempt."""

    __tablename__ = "task_instances"
    __table_args__ = (
        UniqueConstraint("dag_run_id", "task_id", "map_index"),
        Index("ix_task_instances_state", "state"),
        Index("ix_task_instances_container_id", "container_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dag_run_id: Mapped[int] = mapped_column(ForeignKey("dag_runs.id", ondelete="CASCADE"))
    dag_id: Mapped[str] = mapped_column(String(250))
    run_id: Mapped[str] = mapped_column(String(250))
    task_id: Mapped[str] = mapped_column(String(250))
    map_index: Mapped[int] = mapped_column(Integer, default=-1)
    state: Mapped[str] = mapped_column(String(20))
    try_number: Mapped[int] = mapped_column(Integer, default=0)
    max_tries: Mapped[int] = mapped_column(Integer, default=0)
    state_detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    output_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    container_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    container_id: Mapped[str | None] = mapped_column(String(80), nullable=True)
    stop_reason: Mapped[str | None] = mapped_column(String(40), nullable=True)
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    start_date: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    end_date: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    next_try_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: A mapped instance's values by expanded field (`map_index` >= 0 rows only).
    map_values: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # the pool and slots the latest attempt took when it was queued
    pool: Mapped[str | None] = mapped_column(String(250), nullable=True)
    pool_slots: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    #: Bumped by every write (`_check_and_bump_versions` does it for the ORM; plain SQL
    #: updates must too): a long-lived reader notices what changed elsewhere, and a write
    #: over a stale copy fails.
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")


class TaskAttemptRow(Base):
    """One attempt (container) of a task instance: what was rendered and how it ended."""

    __tablename__ = "task_attempts"
    __table_args__ = (UniqueConstraint("ti_id", "try_number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ti_id: Mapped[int] = mapped_column(ForeignKey("task_instances.id", ondelete="CASCADE"))
    try_number: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(20))
    rendered: Mapped[dict[str, Any]] = mapped_column(JSON)
    container_name: Mapped[str] = mapped_column(String(255))
    container_id: Mapped[str | None] = mapped_column(String(80), nullable=True)
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    oom_killed: Mapped[bool] = mapped_column(Boolean, default=False)
    timed_out: Mapped[bool] = mapped_column(Boolean, default=False)
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    output_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    log_path: Mapped[str] = mapped_column(Text)
    # the log file's size when the container was started: where its output begins (a
    # restarted scheduler resumes the log from there without repeating a line)
    log_offset: Mapped[int | None] = mapped_column(Integer, nullable=True)
    queued_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # when a worker began launching (making the image ready: pulling it if need be) and when
    # the image was ready; None when the container was started after a restart, or not at all
    launch_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    image_ready_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    start_date: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    end_date: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class TaskStateChangeRow(Base):
    """Every task state change, with its time: the audit trail."""

    __tablename__ = "task_state_changes"
    __table_args__ = (Index("ix_task_state_changes_ti_id", "ti_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ti_id: Mapped[int] = mapped_column(ForeignKey("task_instances.id", ondelete="CASCADE"))
    try_number: Mapped[int] = mapped_column(Integer)
    from_state: Mapped[str] = mapped_column(String(20))
    to_state: Mapped[str] = mapped_column(String(20))
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class SensorPokeRow(Base):
    """One poke (container) of a sensor's try: several per attempt, the try number unchanged."""

    __tablename__ = "sensor_pokes"
    __table_args__ = (UniqueConstraint("ti_id", "try_number", "poke_number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ti_id: Mapped[int] = mapped_column(ForeignKey("task_instances.id", ondelete="CASCADE"))
    try_number: Mapped[int] = mapped_column(Integer)
    poke_number: Mapped[int] = mapped_column(Integer)
    container_name: Mapped[str] = mapped_column(String(255))
    state: Mapped[str | None] = mapped_column(String(20), nullable=True)
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    queued_at: Mapped[datetime] = mapped_column(UTCDateTime)
    end_date: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class PoolRow(Base):
    """A named number of slots that task instances take while queued or running."""

    __tablename__ = "pools"

    name: Mapped[str] = mapped_column(String(250), primary_key=True)
    slots: Mapped[int] = mapped_column(Integer)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)


class NotificationRow(Base):
    """One delivery of a notification to one notifier, and how it went."""

    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_dag_id_run_id", "dag_id", "run_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event: Mapped[str] = mapped_column(String(20))
    dag_id: Mapped[str] = mapped_column(String(250))
    run_id: Mapped[str] = mapped_column(String(250))
    task_id: Mapped[str | None] = mapped_column(String(250), nullable=True)
    map_index: Mapped[int | None] = mapped_column(Integer, nullable=True)
    try_number: Mapped[int | None] = mapped_column(Integer, nullable=True)
    notifier: Mapped[str] = mapped_column(String(20))  # webhook, command, container
    target: Mapped[str] = mapped_column(Text)  # the URL (no credentials), program or image
    status: Mapped[str] = mapped_column(String(20))  # delivered, failed, refused
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)  # when the event happened
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SlaMissRow(Base):
    """A task instance that had not succeeded by its SLA deadline; recorded once."""

    __tablename__ = "sla_misses"
    __table_args__ = (UniqueConstraint("dag_id", "run_id", "task_id", "map_index"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dag_id: Mapped[str] = mapped_column(String(250))
    run_id: Mapped[str] = mapped_column(String(250))
    task_id: Mapped[str] = mapped_column(String(250))
    map_index: Mapped[int] = mapped_column(Integer, default=-1)
    deadline: Mapped[datetime] = mapped_column(UTCDateTime)
    detected_at: Mapped[datetime] = mapped_column(UTCDateTime)
    state: Mapped[str] = mapped_column(String(20))  # the task's state when the miss was seen
    notified: Mapped[bool] = mapped_column(Boolean, default=False)


class ConnectionRow(Base):
    """A stored connection. `password` and `extra` (a JSON object) are Fernet tokens; the
    other fields are kept in clear so that connections can be listed without the key."""

    __tablename__ = "connections"

    conn_id: Mapped[str] = mapped_column(String(250), primary_key=True)
    conn_type: Mapped[str] = mapped_column(String(100))
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    host: Mapped[str | None] = mapped_column(Text, nullable=True)
    port: Mapped[int | None] = mapped_column(Integer, nullable=True)
    login: Mapped[str | None] = mapped_column(Text, nullable=True)
    password: Mapped[str | None] = mapped_column(Text, nullable=True)  # encrypted
    db_schema: Mapped[str | None] = mapped_column("schema", Text, nullable=True)
    extra: Mapped[str | None] = mapped_column(Text, nullable=True)  # encrypted JSON
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class VariableRow(Base):
    """A stored variable; `value` is a Fernet token."""

    __tablename__ = "variables"

    name: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(Text)  # encrypted
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class UserRow(Base):
    """A person (or program) allowed to use the web server and REST API."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(250), unique=True)
    password_hash: Mapped[str] = mapped_column(Text)  # scrypt, see `services.users`
    role: Mapped[str] = mapped_column(String(20))  # viewer, operator, admin
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ApiTokenRow(Base):
    """An API token of a user; only its SHA-256 digest is kept."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AuditLogRow(Base):
    """Who changed what through the web server or REST API, and when."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_at", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    username: Mapped[str] = mapped_column(String(250))
    action: Mapped[str] = mapped_column(String(40))  # trigger, clear, mark, pause, pool.set, ...
    dag_id: Mapped[str | None] = mapped_column(String(250), nullable=True)
    run_id: Mapped[str | None] = mapped_column(String(250), nullable=True)
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)


#: `session.info` key: {run id: its `ti_writes` after this session's latest flush}.
RUN_TI_WRITES = "orchestrator.run_ti_writes"
#: `session.info` key: the task instances `_check_and_bump_versions` wrote in the session's
#: transaction since its latest commit (of a savepoint or the whole).
_WRITTEN_TIS = "orchestrator.written_tis"


@event.listens_for(Session, "before_flush")
def _check_and_bump_versions(session: Session, _context: object, _instances: object) -> None:
    """Before a flush writes task instances: refuse (StaleDataError) if any changed in the
    store since this session read it, else bump their versions, and their runs' `ti_writes`
    (the new values are left in `session.info[RUN_TI_WRITES]`).

    What SQLAlchemy's `version_id_col` does, but with one read for the whole flush, so the
    updates themselves go out as one statement per set of columns rather than one per row
    (a versioned update is never batched). The read is exact: SQLite writes only in
    `BEGIN IMMEDIATE` transactions (no other writer until the commit), and on PostgreSQL it
    locks the rows (`FOR UPDATE`) until the commit. The runs are written first, so their
    rows are locked before their task instances', as elsewhere. It is made whatever the
    session's owner knows (`StoreView` checks versions before each pass): a net under that
    check.

    The changed task instances are then written here, one `executemany` per set of columns,
    and left clean for the unit of work, whose bookkeeping per object costs several times
    the statement (see `_write_task_instances`)."""
    written = [obj for obj in session.dirty if isinstance(obj, TaskInstanceRow) and _changed(obj)]
    added = [obj for obj in (*session.new, *session.deleted) if isinstance(obj, TaskInstanceRow)]
    runs = {ti.dag_run_id for ti in (*written, *added) if ti.dag_run_id is not None}
    if not runs and not written:
        return
    connection = session.connection()
    if runs:
        after = session.info.setdefault(RUN_TI_WRITES, {})
        bumped = connection.execute(_BUMP_RUNS, {"ids": sorted(runs)})
        after.update((run_id, count) for run_id, count in bumped)
    if not written:
        return
    read = {ti.id: ti.version for ti in written}
    query = _TI_VERSIONS_FOR_UPDATE if connection.dialect.name == "postgresql" else _TI_VERSIONS
    found: dict[int, int] = {}
    ids = list(read)
    for start in range(0, len(ids), _IDS_PER_QUERY):
        chunk = {"ids": ids[start : start + _IDS_PER_QUERY]}
        found.update((ti_id, version) for ti_id, version in connection.execute(query, chunk))
    stale = sorted(ti_id for ti_id, version in read.items() if found.get(ti_id) != version)
    if stale:
        shown = ", ".join(map(str, stale[:10]))
        raise StaleDataError(
            f"task instance(s) {shown} changed in the store since this session read them"
        )
    for ti in written:
        ti.version = read[ti.id] + 1
    _write_task_instances(session, connection, written)


def _write_task_instances(
    session: Session, connection: Connection, written: list[TaskInstanceRow]
) -> None:
    """Write the attributes set on these task instances (their version included) and mark
    them clean. As the unit of work would, a rollback expires them (`_expire_written`):
    the values they hold were never committed."""
    changes = []
    mine = []
    for ti in written:
        state = instance_state(ti)
        values = state.dict
        if not all(column in values for column in state.committed_state):
            continue  # an attribute set, then expired: the unit of work knows what to do
        changes.append(((ti.id,), {column: values[column] for column in state.committed_state}))
        mine.append(ti)
    update_rows(connection, _TIS, ("id",), changes)
    # what the unit of work does after its own writes (SQLAlchemy 2.x; `pyproject.toml`
    # bounds the version, and the store tests check the objects are left clean)
    InstanceState._commit_all_states(
        [(instance_state(ti), instance_state(ti).dict) for ti in mine], session.identity_map
    )
    session.info.setdefault(_WRITTEN_TIS, []).extend(mine)


@event.listens_for(Session, "after_soft_rollback")
def _expire_written(session: Session, _previous: object) -> None:
    """Task instances written since the latest commit hold values the rollback discarded."""
    for ti in session.info.pop(_WRITTEN_TIS, ()):
        if ti in session:
            session.expire(ti)


@event.listens_for(Session, "after_commit")
def _forget_written(session: Session) -> None:
    session.info.pop(_WRITTEN_TIS, None)


def _changed(obj: object) -> bool:
    """Whether a flush would write the object: an attribute set since it was loaded holds a
    value other than the one it had (`Session.is_modified`, for only the attributes set)."""
    state = instance_state(obj)
    values = state.dict
    return any(
        old is NO_VALUE or values.get(key, NO_VALUE) != old
        for key, old in state.committed_state.items()
    )


# built once: building a statement costs about as much as running it
_TIS = Base.metadata.tables[TaskInstanceRow.__tablename__]
_RUNS = Base.metadata.tables[DagRunRow.__tablename__]
_TI_VERSIONS = select(_TIS.c.id, _TIS.c.version).where(
    _TIS.c.id.in_(bindparam("ids", expanding=True))
)
_TI_VERSIONS_FOR_UPDATE = _TI_VERSIONS.with_for_update()
_BUMP_RUNS = (
    update(_RUNS)
    .where(_RUNS.c.id.in_(bindparam("ids", expanding=True)))
    .values(ti_writes=_RUNS.c.ti_writes + 1)
    .returning(_RUNS.c.id, _RUNS.c.ti_writes)
)
_IDS_PER_QUERY = 500
