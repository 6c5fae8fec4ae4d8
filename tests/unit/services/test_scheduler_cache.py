"""The scheduler's long-lived session: changes other processes make between passes are seen
(by version), and a write over a stale copy is refused and the pass done again."""

from __future__ import annotations

from collections.abc import Callable
from unittest import mock

import pytest
from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.models.launch import LABEL_DAG, LaunchRequest
from orchestrator.models.states import RunState, TaskState
from orchestrator.runtime.fake import FakeBehavior
from orchestrator.services import clearing
from orchestrator.settings import Settings
from orchestrator.store import runs as run_store
from orchestrator.store import task_instances as ti_store
from orchestrator.store.engine import engine_of
from tests.support import FixedClock
from tests.unit.services.test_scheduler import Harness, make, spec, t  # noqa: F401 - fixture


def hang(_request: LaunchRequest) -> FakeBehavior:
    return FakeBehavior(hang=True)


def _mark_then_fail_the_container(h: Harness, run_id: str) -> None:
    """Mark the running task success from another session, then let its container fail."""
    with h.sessions.begin() as session:
        clearing.mark_task(session, "d", run_id, "a", TaskState.SUCCESS, now=h.clock.now())
    (container_id,) = h.runtime.containers
    h.runtime.finish(container_id, exit_code=1)
    h.runtime.settle()


def test_a_mark_made_elsewhere_between_passes_wins_over_the_exit(
    make: Callable[..., Harness],  # noqa: F811 - the fixture
) -> None:
    h = make(hang)
    run_id = h.trigger(spec(t("a"), t("b", "a")))
    h.tick(2)
    assert h.tis(run_id)["a"].state == TaskState.RUNNING.value
    _mark_then_fail_the_container(h, run_id)
    h.tick(2)
    tis = h.tis(run_id)
    assert tis["a"].state == TaskState.SUCCESS.value
    assert tis["b"].state in (TaskState.SCHEDULED.value, TaskState.QUEUED.value, "running")


def test_a_missed_change_is_refused_at_write_and_the_pass_done_again(
    make: Callable[..., Harness],  # noqa: F811 - the fixture
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """If the version check missed a change, the write over the stale copy fails
    (StaleDataError) and the pass is done again from the store: nothing is overwritten."""
    h = make(hang)
    run_id = h.trigger(spec(t("a")))
    h.tick(2)
    view = h.scheduler._view
    assert view._run_cache  # what the session kept
    # blind the checks: rows named by messages are not reloaded, and (below) every run looks
    # as this session's own writes left it
    for name in ("tis_by_ids", "tis_by_containers"):
        real = getattr(ti_store, name)
        monkeypatch.setattr(
            ti_store, name, lambda session, keys, fresh=False, real=real: real(session, keys)
        )
    _mark_then_fail_the_container(h, run_id)
    with h.sessions() as session:
        view._writes.update(run_store.ti_writes(session, list(view._run_cache)))
    h.tick(2)
    assert h.tis(run_id)["a"].state == TaskState.SUCCESS.value
    assert h.run_state(run_id) == RunState.SUCCESS
    assert "changed under the pass; doing it again" in caplog.text


def test_every_flush_that_writes_a_runs_task_instances_counts_the_run_up(
    make: Callable[..., Harness],  # noqa: F811 - the fixture
) -> None:
    """`ti_writes` moves with every writer (here a mark from another session), and a
    session's own flushes leave the new values where the scheduler's view finds them."""
    from orchestrator.store.tables import RUN_TI_WRITES, DagRunRow

    h = make(hang)
    run_id = h.trigger(spec(t("a"), t("b", "a")))
    with h.sessions() as session:
        run = run_store.get_run(session, "d", run_id)
        before, run_pk = run.ti_writes, run.id
    with h.sessions.begin() as session:
        clearing.mark_task(session, "d", run_id, "a", TaskState.SUCCESS, now=h.clock.now())
        session.flush()
        assert session.info[RUN_TI_WRITES] == {run_pk: before + 1}
    with h.sessions() as session:
        assert session.get(DagRunRow, run_pk).ti_writes == before + 1
        assert run_store.ti_writes(session, [run_pk]) == {run_pk: before + 1}


def test_slots_held_are_counted_from_memory_between_sweeps_and_from_the_store_in_them(
    settings: Settings, sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    """Passes driven by container events count held slots from the instances the scheduler
    keeps (no query); a sweep reads them from the store, so an instance another process
    queued counts from then on."""
    h = Harness(settings.model_copy(update={"parallelism": 2}), sessions, clock, hang)
    run_id = h.trigger(spec(*(t(f"t{i}") for i in range(5))))
    h.tick(3)
    assert len(h.runtime.created) == 2
    with h.sessions.begin() as session:  # as another scheduler would
        other = run_store.task_instances(session, run_store.get_run(session, "d", run_id).id)
        ti_store.set_ti_state(session, other[-1], TaskState.QUEUED, h.clock.now())
    statements: list[str] = []
    engine = engine_of(h.sessions)
    listener = lambda *args: statements.append(args[2])  # noqa: E731 - (conn, cursor, sql, ...)
    event.listen(engine, "before_cursor_execute", listener)
    try:
        h.runtime.finish(h.runtime.started[0], exit_code=0)
        h.runtime.settle()
        h.tick()  # its passes handle the exit and the launch: no sweep
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    assert len(h.runtime.created) == 3  # the other's queued instance is not known yet
    assert not [s for s in statements if "GROUP BY" in s or "task_instances.state IN" in s]
    h.tick()  # no event: a sweep, which reads the queued and running instances
    h.runtime.finish(h.runtime.started[1], exit_code=0)
    h.runtime.settle()
    h.tick()
    assert len(h.runtime.created) == 3  # one running and the other's queued one: no slot


def test_between_sweeps_running_runs_are_checked_by_state_and_only_changed_ones_read(
    make: Callable[..., Harness],  # noqa: F811 - the fixture
) -> None:
    """Passes driven by container events read the running runs' states, not their rows; a
    run another process marked meanwhile is read again, so the pass sees it ended."""
    h = make(hang)
    marked = h.trigger(spec(t("a"), t("b", "a"), dag_id="d"))
    other = h.trigger(spec(t("a"), dag_id="e"))
    h.tick(2)
    assert len(h.runtime.started) == 2
    with h.sessions.begin() as session:
        clearing.mark_run(session, "d", marked, TaskState.FAILED, now=h.clock.now())
        marked_pk = run_store.get_run(session, "d", marked).id
    statements: list[tuple[str, object]] = []  # (SQL, parameters)
    engine = engine_of(h.sessions)
    listener = lambda *args: statements.append((" ".join(args[2].split()), args[3]))  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    try:
        (container,) = (
            c.id for c in h.runtime.containers.values() if c.request.labels[LABEL_DAG] == "e"
        )
        h.runtime.finish(container, exit_code=0)
        h.runtime.settle()
        h.scheduler.tick(h.clock.now())  # its passes handle the exit: no sweep
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    reads = [(sql, params) for sql, params in statements if "dag_runs.conf" in sql]
    assert not [sql for sql, _ in reads if "WHERE dag_runs.state" in sql]  # no full read
    assert reads == [(mock.ANY, (marked_pk,))]  # but the marked run, by id
    assert h.run_state(other, dag_id="e") == RunState.SUCCESS


def test_a_message_that_fails_is_logged_and_skipped_and_the_others_are_handled(
    make: Callable[..., Harness],  # noqa: F811 - the fixture
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Messages are handled with the rest of the pass; when the pass fails it is done again
    with each message in its own savepoint, so only the bad one is lost."""
    from orchestrator.services.attempt_records import AttemptRecords

    h = make(hang)
    run_id = h.trigger(spec(t("good"), t("bad")))
    h.tick(2)
    bad_id = h.tis(run_id)["bad"].id
    real = AttemptRecords.finish

    def finish(self: AttemptRecords, session: Session, ti_id: int, *args: object) -> bool:
        if ti_id == bad_id:
            raise RuntimeError("a bug in handling this message")
        return real(self, session, ti_id, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(AttemptRecords, "finish", finish)
    for container_id in list(h.runtime.started):
        h.runtime.finish(container_id, exit_code=0)
    h.runtime.settle()
    h.tick(2)
    tis = h.tis(run_id)
    assert tis["good"].state == TaskState.SUCCESS.value
    assert tis["bad"].state == TaskState.RUNNING.value  # its harvest's message was dropped
    assert "doing it again with each message on its own" in caplog.text
    assert "could not handle" in caplog.text and "a bug in handling this message" in caplog.text
