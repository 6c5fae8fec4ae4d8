"""Task logs: one file per attempt, appended while the container runs, kept afterwards.

Secret values of the attempt (its `secrets` and the connection passwords its templates read)
are written as `***`, also when a value arrives split over two chunks of the stream.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from sqlalchemy.orm import Session, sessionmaker

from orchestrator.errors import TaskNotFound
from orchestrator.models.secrets import StreamMasker, mask_text
from orchestrator.models.states import TaskState
from orchestrator.store import task_instances as ti_store


class LogFile:
    """Append-only log of one attempt. Each write opens in append mode, so the log-following
    thread and the scheduler can both add lines without sharing a handle. Values in `secrets`
    are masked in everything written."""

    def __init__(self, path: Path, secrets: Iterable[str] = ()) -> None:
        self.path = path
        self.secrets = frozenset(value for value in secrets if value)

    def write(self, chunk: bytes | str) -> None:
        if self.secrets:
            text = chunk.decode(errors="surrogateescape") if isinstance(chunk, bytes) else chunk
            chunk = mask_text(text, self.secrets)
        data = chunk.encode(errors="surrogateescape") if isinstance(chunk, str) else chunk
        with self._open(buffering=-1) as handle:
            handle.write(data)

    def _open(self, buffering: int) -> BinaryIO:
        """The file opened for appending; its folder is made on the first write."""
        try:
            return open(self.path, "ab", buffering=buffering)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            return open(self.path, "ab", buffering=buffering)

    def write_line(self, line: str) -> None:
        self.write(line if line.endswith("\n") else line + "\n")

    @contextmanager
    def appending(
        self, written: Callable[[bytes], object] | None = None
    ) -> Iterator[Callable[[bytes], None]]:
        """One open, unbuffered append handle for a stream of chunks (a container's output):
        each chunk reaches the file at once, without reopening it per chunk. With secrets to
        mask, the tail of a chunk that may start a secret value waits for the next chunk (or
        the end of the stream). `written` hears every piece as written to the file."""
        masker = StreamMasker(self.secrets)
        with self._open(buffering=0) as handle:

            def emit(data: bytes) -> None:
                if data:
                    handle.write(data)
                    if written is not None:
                        written(data)

            try:
                yield lambda chunk: emit(masker.feed(chunk))
            finally:
                emit(masker.flush())


def follow(
    path: Path,
    *,
    finished: Callable[[], bool],
    poll: float = 0.2,
    from_start: bool = True,
) -> Iterator[bytes]:
    """Yield the file's content as it grows until `finished()` and nothing more comes."""
    position = 0 if from_start else (path.stat().st_size if path.exists() else 0)
    while True:
        done = finished()
        if path.exists():
            with path.open("rb") as handle:
                handle.seek(position)
                chunk = handle.read()
            if chunk:
                position += len(chunk)
                yield chunk
                continue
        if done:
            return
        time.sleep(poll)


@dataclass(frozen=True)
class AttemptLog:
    """Where one attempt's log is, and which attempt it is."""

    path: Path
    ti_id: int
    try_number: int


def attempt_log(
    session: Session,
    dag_id: str,
    run_id: str,
    task_id: str,
    *,
    map_index: int = -1,
    try_number: int | None = None,
) -> AttemptLog:
    """The log of one attempt (default: the latest). Raises RunNotFound or TaskNotFound."""
    ti = ti_store.get_ti(session, dag_id, run_id, task_id, map_index)
    number = try_number or ti.try_number
    attempt = ti_store.get_attempt(session, ti.id, number)
    if attempt is None:
        raise TaskNotFound(f"task {task_id!r} of run {run_id!r} has no attempt {number} yet")
    return AttemptLog(Path(attempt.log_path), ti.id, number)


def attempt_ended(session: Session, log: AttemptLog) -> bool:
    """Whether the attempt is over (its log will not grow any more)."""
    row = ti_store.get_attempt(session, log.ti_id, log.try_number)
    return row is None or TaskState(row.state) not in (TaskState.QUEUED, TaskState.RUNNING)


def follow_attempt(
    sessions: sessionmaker[Session], log: AttemptLog, *, poll: float = 0.2
) -> Iterator[bytes]:
    """The attempt's whole log, then what is appended until the attempt ends."""

    def ended() -> bool:
        with sessions() as session:
            return attempt_ended(session, log)

    return follow(log.path, finished=ended, poll=poll)
