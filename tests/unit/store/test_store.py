from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from orchestrator.errors import IllegalTransition, RunAlreadyExists
from orchestrator.models.specs import DagSpec, TaskSpec
from orchestrator.models.states import RunState, TaskState
from orchestrator.store import dags as dag_store
from orchestrator.store import runs as run_store
from orchestrator.store import task_instances as ti_store
from orchestrator.store.engine import engine_of
from orchestrator.store.tables import DagRunRow, TaskAttemptRow

NOW = datetime(2026, 3, 14, 12, tzinfo=UTC)
SPEC = DagSpec(
    dag_id="d",
    fileloc="/dags/d.py",
    tasks=(
        TaskSpec(task_id="a", image="img", retries=2),
        TaskSpec(task_id="b", image="img", upstream_task_ids=("a",)),
    ),
)


def make_run(session: Session, run_id: str = "manual__1") -> int:
    run = run_store.create_run(
        session,
        SPEC,
        run_id=run_id,
        run_type="manual",
        logical_date=NOW,
        data_interval=(NOW - timedelta(days=1), NOW),
        conf={"x": 1},
        now=NOW,
    )
    return run.id


def test_spec_round_trips_through_the_store(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        dag_store.upsert_dag(session, SPEC, NOW)
    with sessions() as session:
        assert dag_store.get_dag_spec(session, "d") == SPEC


def test_run_creates_task_instances_and_keeps_times_in_utc(
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as session:
        run_pk = make_run(session)
    with sessions() as session:
        run = run_store.get_run(session, "d", "manual__1")
        assert run.logical_date == NOW and run.logical_date.tzinfo is not None
        assert run.conf == {"x": 1}
        tis = run_store.task_instances(session, run_pk)
        assert [(t.task_id, t.state, t.max_tries) for t in tis] == [
            ("a", "none", 2),
            ("b", "none", 0),
        ]


def test_duplicate_run_id_is_refused(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        make_run(session)
    with (
        pytest.raises(RunAlreadyExists, match="already has a run 'manual__1'"),
        sessions.begin() as session,
    ):
        make_run(session)


def test_every_state_change_is_recorded_with_its_time(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        run_pk = make_run(session)
        ti = run_store.task_instances(session, run_pk)[0]
        ti_store.set_ti_state(session, ti, TaskState.SCHEDULED, NOW)
        ti_store.set_ti_state(session, ti, TaskState.QUEUED, NOW + timedelta(seconds=1))
        ti_id = ti.id
    with sessions() as session:
        changes = ti_store.state_changes(session, ti_id)
        assert [(c.from_state, c.to_state, c.at) for c in changes] == [
            ("none", "scheduled", NOW),
            ("scheduled", "queued", NOW + timedelta(seconds=1)),
        ]


def test_state_changes_kept_back_are_written_before_reads_and_commit(
    sessions: sessionmaker[Session],
) -> None:
    session = sessions()
    ti_store.PendingInserts().attach(session)
    with session.begin():
        run_pk = make_run(session)
        ti = run_store.task_instances(session, run_pk)[0]
        ti_store.set_ti_state(session, ti, TaskState.SCHEDULED, NOW)
        assert [c.to_state for c in ti_store.state_changes(session, ti.id)] == ["scheduled"]
        ti_store.set_ti_state(session, ti, TaskState.QUEUED, NOW)
        ti_id = ti.id
    session.close()
    with sessions() as other:
        assert [c.to_state for c in ti_store.state_changes(other, ti_id)] == [
            "scheduled",
            "queued",
        ]


def test_a_savepoints_rollback_forgets_only_the_state_changes_made_inside_it(
    sessions: sessionmaker[Session],
) -> None:
    session = sessions()
    ti_store.PendingInserts().attach(session)
    with session.begin():
        run_pk = make_run(session)
        ti = run_store.task_instances(session, run_pk)[0]
        ti_store.set_ti_state(session, ti, TaskState.SCHEDULED, NOW)  # kept, not written
        with pytest.raises(ValueError), ti_store.begin_savepoint(session):
            ti_store.set_ti_state(session, ti, TaskState.QUEUED, NOW)
            ti_store.state_changes(session, ti.id)  # writes the queued one inside
            ti_store.set_ti_state(session, ti, TaskState.RUNNING, NOW)  # kept inside
            raise ValueError
        ti_id = ti.id
    session.close()
    with sessions() as other:
        assert [c.to_state for c in ti_store.state_changes(other, ti_id)] == ["scheduled"]


def test_a_savepoint_begun_past_kept_state_changes_is_refused(
    sessions: sessionmaker[Session],
) -> None:
    session = sessions()
    ti_store.PendingInserts().attach(session)
    with session.begin():
        run_pk = make_run(session)
        ti = run_store.task_instances(session, run_pk)[0]
        ti_store.set_ti_state(session, ti, TaskState.SCHEDULED, NOW)
        with pytest.raises(RuntimeError, match="begin_savepoint"):
            session.begin_nested()
        session.rollback()
    session.close()


def test_a_write_over_a_task_instance_changed_elsewhere_is_refused_and_versions_move(
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as session:
        run_pk = make_run(session)
    mine, theirs = sessions(), sessions()
    with mine.begin():
        kept = run_store.task_instances(mine, run_pk)[0]
        assert kept.version == 1
    with theirs.begin():
        other = run_store.task_instances(theirs, run_pk)[0]
        ti_store.set_ti_state(theirs, other, TaskState.SCHEDULED, NOW)
    assert other.version == 2  # every write bumps it
    with pytest.raises(StaleDataError, match="changed in the store"), mine.begin():
        kept.state_detail = "written over a stale copy"
    mine.close()
    with sessions() as session:
        fresh = run_store.task_instances(session, run_pk)[0]
        assert (fresh.state, fresh.state_detail, fresh.version) == ("scheduled", None, 2)
    theirs.close()


def test_a_task_instance_set_to_the_values_it_had_is_not_written(
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as session:
        run_pk = make_run(session)
    writes = select(DagRunRow.ti_writes).where(DagRunRow.id == run_pk)
    with sessions.begin() as session:
        before = session.scalar(writes)
        ti = run_store.task_instances(session, run_pk)[0]
        ti.state = "none"  # as it was
        ti.state_detail = "changed, then back"
        ti.state_detail = None
    with sessions.begin() as session:
        ti = run_store.task_instances(session, run_pk)[0]
        assert (ti.version, session.scalar(writes)) == (1, before)
        ti.state_detail = "changed"
    with sessions() as session:
        ti = run_store.task_instances(session, run_pk)[0]
        assert (ti.state_detail, ti.version, session.scalar(writes)) == ("changed", 2, before + 1)


def test_written_task_instances_are_left_clean_and_a_rollback_forgets_their_values(
    sessions: sessionmaker[Session],
) -> None:
    """Task instances are written by the version check itself, not the unit of work: the
    rows hold the values, the objects are clean, and a savepoint's rollback expires them."""
    with sessions.begin() as session:
        run_pk = make_run(session)
    with sessions.begin() as session:
        first, second = run_store.task_instances(session, run_pk)[:2]
        first.state_detail, second.exit_code = "one", 3
        session.flush()
        assert not session.dirty
        assert (first.version, second.version) == (2, 2)
        with pytest.raises(RuntimeError), session.begin_nested():
            first.state_detail = "rolled back"
            session.flush()
            raise RuntimeError("the savepoint rolls back")
        assert first.state_detail == "one"  # read again: the value the store has
        assert first.version == 2
    with sessions() as session:
        tis = run_store.task_instances(session, run_pk)[:2]
        assert [(ti.state_detail, ti.exit_code, ti.version) for ti in tis] == [
            ("one", None, 2),
            (None, 3, 2),
        ]


def test_illegal_transition_raises(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        run_pk = make_run(session)
        ti = run_store.task_instances(session, run_pk)[0]
        with pytest.raises(IllegalTransition):
            ti_store.set_ti_state(session, ti, TaskState.RUNNING, NOW)  # never queued


def test_run_state_stamps_start_and_end(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        make_run(session)
        run = run_store.get_run(session, "d", "manual__1")
        run_store.set_run_state(session, run, RunState.RUNNING, NOW)
        run_store.set_run_state(session, run, RunState.SUCCESS, NOW + timedelta(minutes=1))
        assert run.start_date == NOW and run.end_date == NOW + timedelta(minutes=1)


def test_import_error_is_kept_and_cleared(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        dag_store.record_file_result(session, "/dags/d.py", [SPEC], None, NOW)
        dag_store.record_file_result(session, "/dags/d.py", [], "SyntaxError", NOW)
    with sessions() as session:
        errors = dag_store.list_import_errors(session)
        assert [(e.fileloc, e.error) for e in errors] == [("/dags/d.py", "SyntaxError")]
        # the DAG parsed before the error is still known
        assert [d.dag_id for d in dag_store.list_dag_rows(session)] == ["d"]
    with sessions.begin() as session:
        dag_store.record_file_result(session, "/dags/d.py", [SPEC], None, NOW)
    with sessions() as session:
        assert dag_store.list_import_errors(session) == []


def test_container_id_is_stored_on_a_plain_connection_for_the_current_try_only(
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as session:
        make_run(session)
        ti = ti_store.get_ti(session, "d", "manual__1", "a")
        ti.try_number = 1
        session.add(
            TaskAttemptRow(
                ti_id=ti.id,
                try_number=1,
                state="queued",
                rendered={},
                container_name="c",
                log_path="/logs/a.log",
                queued_at=NOW,
            )
        )
    with sessions() as session:
        ti = ti_store.get_ti(session, "d", "manual__1", "a")
        ti_id, version = ti.id, ti.version
    with engine_of(sessions).begin() as connection:
        ti_store.set_container_id(connection, ti_id, 1, "cid-1", 42)
        ti_store.set_container_id(connection, ti_id, 2, "cid-stale", 0)  # not its try
    with sessions() as session:
        ti = ti_store.get_ti(session, "d", "manual__1", "a")
        attempt = ti_store.get_attempt(session, ti_id, 1)
        assert attempt is not None
        assert (ti.container_id, attempt.container_id, attempt.log_offset) == ("cid-1", "cid-1", 42)
        # left alone: a scheduler holding the row does not take it for a change made elsewhere
        assert ti.version == version


def test_engine_of_refuses_a_factory_without_an_engine() -> None:
    with pytest.raises(TypeError, match="not bound to an engine"):
        engine_of(sessionmaker())


def test_times_are_read_back_aware_in_utc_and_naive_ones_are_refused(
    sessions: sessionmaker[Session],
) -> None:
    from orchestrator.store.tables import UTCDateTime

    when = datetime(2026, 3, 29, 1, 30, 0, 250, tzinfo=timezone(timedelta(hours=5)))
    with sessions.begin() as session:
        run_pk = make_run(session)
        session.get(DagRunRow, run_pk).start_date = when  # type: ignore[union-attr]
    with sessions() as session:
        read = session.get(DagRunRow, run_pk).start_date  # type: ignore[union-attr]
        assert read == when and read.tzinfo == UTC  # type: ignore[union-attr]
    dialect = engine_of(sessions).dialect
    stored = UTCDateTime().bind_processor(dialect)
    assert stored is not None
    with pytest.raises(ValueError, match="naive datetime"):
        stored(datetime(2026, 1, 1))


def test_times_are_stored_as_sqlalchemy_datetime_text_on_sqlite(
    sessions: sessionmaker[Session],
) -> None:
    """The store's own SQLite time format is SQLAlchemy's `DateTime` text, so rows written
    before and after read the same."""
    from sqlalchemy import DateTime, text

    from orchestrator.store.tables import UTCDateTime

    dialect = engine_of(sessions).dialect
    if dialect.name != "sqlite":
        pytest.skip("SQLite's text format")
    stored = UTCDateTime().bind_processor(dialect)
    standard = DateTime().dialect_impl(dialect).bind_processor(dialect)
    assert stored is not None and standard is not None
    east = timezone(timedelta(hours=5))
    for value in (datetime(2026, 3, 29, 1, 30, tzinfo=east), datetime(999, 1, 2, 3, 4, 5, 6, UTC)):
        assert stored(value) == standard(value.astimezone(UTC).replace(tzinfo=None))
    assert stored(None) is None
    with sessions.begin() as session:
        run_pk = make_run(session)
        run = session.get(DagRunRow, run_pk)
        run.start_date = datetime(2026, 3, 29, 1, 30, 0, 250, tzinfo=east)  # type: ignore[union-attr]
    with sessions() as session:
        raw = text("SELECT start_date FROM dag_runs WHERE id = :id")
        assert session.scalar(raw, {"id": run_pk}) == "2026-03-28 20:30:00.000250"
