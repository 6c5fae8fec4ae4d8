"""SQLite transactions of one process take turns on a lock of their own, handed over as soon
as the holder commits, rolls back or closes its connection: a thread that begins again at once
after each commit (the scheduler's loop) cannot starve the others, as it did when they waited
on SQLite's busy handler alone (which polls)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from orchestrator.store.engine import make_engine


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (x INTEGER)"))
    yield engine
    engine.dispose()


def _writer_waits_for(engine: Engine, end: str) -> float:
    """Seconds a second thread's transaction waits after the first one ends by `end`."""
    began = threading.Event()
    ended_at: list[float] = []
    waited: list[float] = []

    def second() -> None:
        began.wait()
        with engine.begin() as connection:
            waited.append(time.perf_counter())
            connection.execute(text("INSERT INTO t VALUES (2)"))

    thread = threading.Thread(target=second)
    thread.start()
    connection = engine.connect()
    connection.execute(text("INSERT INTO t VALUES (1)"))
    began.set()
    time.sleep(0.2)  # the second thread now waits for its turn
    assert not waited
    ended_at.append(time.perf_counter())
    if end == "commit":
        connection.commit()
    elif end == "rollback":
        connection.rollback()
    connection.close()  # "close": ends the transaction by closing
    thread.join(10)
    assert waited, "the second transaction never had its turn"
    return waited[0] - ended_at[0]


def test_a_thread_that_begins_again_at_once_does_not_starve_the_others(engine: Engine) -> None:
    stop = threading.Event()
    done = {"loop": 0, "a": 0, "b": 0}

    def busy_loop() -> None:  # pass after pass, each holding the database for 5 ms
        while not stop.is_set():
            with engine.begin() as connection:
                connection.execute(text("INSERT INTO t VALUES (0)"))
                time.sleep(0.005)
            done["loop"] += 1

    def worker(name: str) -> None:  # a short transaction now and then (a launch worker)
        while not stop.is_set():
            with engine.begin() as connection:
                connection.execute(text("INSERT INTO t VALUES (1)"))
            done[name] += 1
            time.sleep(0.002)

    threads = [threading.Thread(target=busy_loop)]
    threads += [threading.Thread(target=worker, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    time.sleep(1.0)
    stop.set()
    for thread in threads:
        thread.join(10)
    # on SQLite's busy handler alone: one transaction per worker in that second
    assert done["a"] >= 20 and done["b"] >= 20 and done["loop"] >= 20, done


@pytest.mark.parametrize("end", ["commit", "rollback", "close"])
def test_the_next_transaction_begins_as_soon_as_the_holder_ends(engine: Engine, end: str) -> None:
    # on SQLite's busy handler alone, after 0.2 s of waiting: about 30 ms after the end
    assert _writer_waits_for(engine, end) < 0.02
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT x FROM t ORDER BY x")).scalars().all()
    assert rows == ([1, 2] if end == "commit" else [2])


def test_a_failed_statement_and_many_threads_leave_no_turn_taken(engine: Engine) -> None:
    with pytest.raises(Exception, match="no such table"), engine.begin() as connection:
        connection.execute(text("INSERT INTO missing VALUES (1)"))

    def write(n: int) -> None:
        for _ in range(20):
            with engine.begin() as connection:
                connection.execute(text("INSERT INTO t VALUES (:n)"), {"n": n})

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM t")).scalar() == 160
    assert _writer_waits_for(engine, "commit") < 0.02
