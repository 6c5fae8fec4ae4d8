"""Queries on task instances, their attempts and their state-change history."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, Table, bindparam, event, func, insert, select, update
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction

from orchestrator.errors import TaskNotFound
from orchestrator.models.states import TaskState, check_task_transition
from orchestrator.store.chunks import in_chunks
from orchestrator.store.tables import (
    Base,
    DagRunRow,
    TaskAttemptRow,
    TaskInstanceRow,
    TaskStateChangeRow,
)
from orchestrator.store.updates import update_rows

# Statements the scheduler runs for every attempt, built once (building an ORM expression
# costs about as much as running it).
_TIS = Base.metadata.tables[TaskInstanceRow.__tablename__]
_ATTEMPTS = Base.metadata.tables[TaskAttemptRow.__tablename__]
_STATE_CHANGES = Base.metadata.tables[TaskStateChangeRow.__tablename__]
_SET_TI_CONTAINER = (
    update(_TIS)
    .where(_TIS.c.id == bindparam("ti"), _TIS.c.try_number == bindparam("try"))
    .values(container_id=bindparam("cid"))
)
_SET_ATTEMPT_CONTAINER = (
    update(_ATTEMPTS)
    .where(_ATTEMPTS.c.ti_id == bindparam("ti"), _ATTEMPTS.c.try_number == bindparam("try"))
    .values(container_id=bindparam("cid"), log_offset=bindparam("offset"))
)
_GET_ATTEMPT = select(TaskAttemptRow).where(
    TaskAttemptRow.ti_id == bindparam("ti_id"),
    TaskAttemptRow.try_number == bindparam("try_number"),
)
_TI_BY_CONTAINER = select(TaskInstanceRow).where(
    TaskInstanceRow.container_id == bindparam("container_id")
)


_PENDING_KEY = "orchestrator.pending_inserts"
_ATTEMPT_COLUMNS = tuple(column.name for column in _ATTEMPTS.c if column.name != "id")


class PendingInserts:
    """A session's new task state-change records and attempt rows, and changes to attempt
    rows, kept back and written together: one statement per table (or set of columns) and
    batch, where the ORM writes an attempt row at a time (it reads each new id back), a state
    change through a unit of work each, and changes an attempt only once it loaded it.

    Once `attach`ed, `set_ti_state`, `add_attempt` and `update_attempt` on that session keep
    their rows here. They are written before every ORM statement the session runs (so reads
    see them) and before it commits; a rollback (of the transaction or of a savepoint)
    forgets those not yet written. Savepoints must begin through `begin_savepoint`, which
    writes what is kept first (else a savepoint's rollback would take earlier rows with it).
    Attempt objects the session holds do not see the changes: read them with `get_attempt(...,
    fresh=True)`."""

    def __init__(self) -> None:
        self._rows: dict[Table, list[dict[str, object]]] = {}
        self._attempt_changes: dict[tuple[int, int], dict[str, object]] = {}

    def attach(self, session: Session) -> None:
        session.info[_PENDING_KEY] = self
        event.listen(session, "do_orm_execute", self._before_statement)
        event.listen(session, "before_commit", self.write)
        event.listen(session, "after_soft_rollback", self._after_rollback)
        event.listen(session, "after_transaction_create", self._after_transaction_create)

    def add(self, table: Table, row: dict[str, object]) -> None:
        self._rows.setdefault(table, []).append(row)

    def change_attempt(self, ti_id: int, try_number: int, values: dict[str, object]) -> None:
        self._attempt_changes.setdefault((ti_id, try_number), {}).update(values)

    def write(self, session: Session) -> None:
        kept, self._rows = self._rows, {}
        changes, self._attempt_changes = self._attempt_changes, {}
        for table, rows in kept.items():  # attempts before the changes they explain
            session.execute(insert(table), rows)
        if changes:  # after the inserts: a change may be to an attempt inserted just now
            update_rows(session.connection(), _ATTEMPTS, ("ti_id", "try_number"), changes.items())

    @property
    def pending(self) -> bool:
        return bool(self._rows or self._attempt_changes)

    def _before_statement(self, state: ORMExecuteState) -> None:
        if self.pending:
            self.write(state.session)

    def _after_rollback(self, session: Session, previous: SessionTransaction) -> None:
        # a savepoint begins with nothing kept: what is kept now was made inside it
        self._rows.clear()
        self._attempt_changes.clear()

    def _after_transaction_create(self, session: Session, transaction: SessionTransaction) -> None:
        if transaction.nested and self.pending:
            raise RuntimeError("inserts are pending: begin savepoints with begin_savepoint")


def add_attempt(session: Session, **values: Any) -> None:
    """Add a new attempt row (kept back if the session has `PendingInserts` attached: it is
    then read back by a query, not found in the session)."""
    pending = session.info.get(_PENDING_KEY)
    if pending is None:
        session.add(TaskAttemptRow(**values))
        return
    row: dict[str, object] = dict.fromkeys(_ATTEMPT_COLUMNS)
    row.update(oom_killed=False, timed_out=False)
    row.update(values)
    pending.add(_ATTEMPTS, row)


def update_attempt(session: Session, ti_id: int, try_number: int, **values: Any) -> None:
    """Change columns of a try's attempt row (nothing if there is none). Kept back if the
    session has `PendingInserts` attached (no attempt object is loaded then), else through
    the attempt object."""
    pending = session.info.get(_PENDING_KEY)
    if pending is not None:
        pending.change_attempt(ti_id, try_number, values)
        return
    attempt = get_attempt(session, ti_id, try_number)
    for column, value in values.items() if attempt is not None else ():
        setattr(attempt, column, value)


def begin_savepoint(session: Session) -> SessionTransaction:
    """`session.begin_nested()`, once the rows kept for the session are written."""
    pending = session.info.get(_PENDING_KEY)
    if pending is not None:
        pending.write(session)
    return session.begin_nested()


def set_ti_state(
    session: Session,
    ti: TaskInstanceRow,
    state: TaskState,
    now: datetime,
    detail: str | None = None,
) -> None:
    """Move a task instance to `state` (checked against the transition table) and record it
    (kept back if the session has `PendingInserts` attached)."""
    old = TaskState(ti.state)
    if old == state:
        return
    check_task_transition(old, state)
    pending = session.info.get(_PENDING_KEY)
    if pending is not None:
        pending.add(
            _STATE_CHANGES,
            {
                "ti_id": ti.id,
                "try_number": ti.try_number,
                "from_state": old.value,
                "to_state": state.value,
                "detail": detail,
                "at": now,
            },
        )
    else:
        session.add(
            TaskStateChangeRow(
                ti_id=ti.id,
                try_number=ti.try_number,
                from_state=old.value,
                to_state=state.value,
                detail=detail,
                at=now,
            )
        )
    ti.state = state.value
    ti.updated_at = now
    if detail is not None:
        ti.state_detail = detail


def tis_in_states(session: Session, states: Sequence[TaskState]) -> list[TaskInstanceRow]:
    return list(
        session.scalars(
            select(TaskInstanceRow)
            .where(TaskInstanceRow.state.in_([s.value for s in states]))
            .order_by(TaskInstanceRow.id)
        )
    )


def count_in_states(session: Session, states: Sequence[TaskState]) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(TaskInstanceRow)
            .where(TaskInstanceRow.state.in_([s.value for s in states]))
        )
        or 0
    )


def ti_by_container(session: Session, container_id: str) -> TaskInstanceRow | None:
    return session.scalar(_TI_BY_CONTAINER, {"container_id": container_id})


def get_ti(
    session: Session, dag_id: str, run_id: str, task_id: str, map_index: int = -1
) -> TaskInstanceRow:
    ti = session.scalar(
        select(TaskInstanceRow).where(
            TaskInstanceRow.dag_id == dag_id,
            TaskInstanceRow.run_id == run_id,
            TaskInstanceRow.task_id == task_id,
            TaskInstanceRow.map_index == map_index,
        )
    )
    if ti is None:
        raise TaskNotFound(f"run {run_id!r} of DAG {dag_id!r} has no task {task_id!r}")
    return ti


def get_run_of(session: Session, ti: TaskInstanceRow) -> DagRunRow:
    with session.no_autoflush:  # by primary key: pending changes cannot matter
        run = session.get(DagRunRow, ti.dag_run_id)
    assert run is not None
    return run


def set_container_id(
    session: Session | Connection,
    ti_id: int,
    try_number: int,
    container_id: str,
    log_offset: int | None = None,
) -> None:
    """Persist the container id of an attempt (done before the container is started), and
    where the container's output will begin in the attempt's log file.

    Plain SQL on the session's connection (or on a connection without a session, which a
    launch worker uses: cheaper), and the task instance's version is left alone:
    the scheduler, which keeps task instances between passes, reloads the ones its
    messages name (their container ids with them) and never writes a container id while a
    launch is under way, so nothing it writes can overwrite this one."""
    values = {"ti": ti_id, "try": try_number, "cid": container_id, "offset": log_offset}
    connection = session.connection() if isinstance(session, Session) else session
    connection.execute(_SET_TI_CONTAINER, values)
    connection.execute(_SET_ATTEMPT_CONTAINER, values)


def tis_by_ids(
    session: Session, ids: Collection[int], *, fresh: bool = False
) -> list[TaskInstanceRow]:
    """Task instances by primary key (unknown ids are left out), in few queries; `fresh`
    reloads the ones the session already holds."""
    return [
        ti
        for chunk in in_chunks(ids)
        for ti in session.scalars(
            select(TaskInstanceRow)
            .where(TaskInstanceRow.id.in_(chunk))
            .execution_options(populate_existing=fresh)
        )
    ]


def tis_by_containers(
    session: Session, container_ids: Collection[str], *, fresh: bool = False
) -> list[TaskInstanceRow]:
    """Task instances whose current attempt runs in one of these containers."""
    column = TaskInstanceRow.container_id
    return [
        ti
        for chunk in in_chunks(container_ids)
        for ti in session.scalars(
            select(TaskInstanceRow)
            .where(column.in_(chunk))
            .execution_options(populate_existing=fresh)
        )
    ]


def attempts_by_keys(
    session: Session, keys: Collection[tuple[int, int]]
) -> dict[tuple[int, int], TaskAttemptRow]:
    """Attempt rows by (task instance id, try number), in few queries."""
    wanted = set(keys)
    found: dict[tuple[int, int], TaskAttemptRow] = {}
    for chunk in in_chunks({ti for ti, _ in wanted}):
        for row in session.scalars(select(TaskAttemptRow).where(TaskAttemptRow.ti_id.in_(chunk))):
            if (row.ti_id, row.try_number) in wanted:
                found[row.ti_id, row.try_number] = row
    return found


def get_attempt(
    session: Session, ti_id: int, try_number: int, *, fresh: bool = False
) -> TaskAttemptRow | None:
    """A try's attempt row; `fresh` reads it again if the session holds it already."""
    return session.scalar(
        _GET_ATTEMPT,
        {"ti_id": ti_id, "try_number": try_number},
        execution_options={"populate_existing": fresh},
    )


def attempts(session: Session, ti_id: int) -> list[TaskAttemptRow]:
    return list(
        session.scalars(
            select(TaskAttemptRow)
            .where(TaskAttemptRow.ti_id == ti_id)
            .order_by(TaskAttemptRow.try_number)
        )
    )


def state_changes(session: Session, ti_id: int) -> list[TaskStateChangeRow]:
    return list(
        session.scalars(
            select(TaskStateChangeRow)
            .where(TaskStateChangeRow.ti_id == ti_id)
            .order_by(TaskStateChangeRow.id)
        )
    )


class TiSummary(NamedTuple):
    """The columns of a task instance that the overview pages draw (no ORM object)."""

    dag_run_id: int
    task_id: str
    map_index: int
    state: str
    try_number: int
    start_date: datetime | None
    end_date: datetime | None


def ti_summaries(session: Session, dag_run_ids: Collection[int]) -> list[TiSummary]:
    """The task instances of these runs (and only these), as plain rows, in few queries."""
    found: list[TiSummary] = []
    for chunk in in_chunks(dag_run_ids):
        rows = session.execute(
            select(
                TaskInstanceRow.dag_run_id,
                TaskInstanceRow.task_id,
                TaskInstanceRow.map_index,
                TaskInstanceRow.state,
                TaskInstanceRow.try_number,
                TaskInstanceRow.start_date,
                TaskInstanceRow.end_date,
            )
            .where(TaskInstanceRow.dag_run_id.in_(chunk))
            .order_by(TaskInstanceRow.id)
        )
        found.extend(TiSummary(*row) for row in rows)
    return found


def attempts_of_run(session: Session, dag_run_id: int) -> dict[int, list[TaskAttemptRow]]:
    """Every attempt of a run's task instances, by task instance id, oldest try first."""
    found: dict[int, list[TaskAttemptRow]] = {}
    query = (
        select(TaskAttemptRow)
        .join(TaskInstanceRow, TaskInstanceRow.id == TaskAttemptRow.ti_id)
        .where(TaskInstanceRow.dag_run_id == dag_run_id)
        .order_by(TaskAttemptRow.ti_id, TaskAttemptRow.try_number)
    )
    for row in session.scalars(query):
        found.setdefault(row.ti_id, []).append(row)
    return found
