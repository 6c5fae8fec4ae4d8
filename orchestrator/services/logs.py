"""Task logs: one file per attempt, appended while the container runs, kept afterwards."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


class LogFile:
    """Append-only log of one attempt. Each write opens in append mode, so the log-following
    thread and the scheduler can both add lines without sharing a handle."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, chunk: bytes | str) -> None:
        data = chunk.encode() if isinstance(chunk, str) else chunk
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("ab") as handle:
            handle.write(data)

    def write_line(self, line: str) -> None:
        self.write(line if line.endswith("\n") else line + "\n")

    @contextmanager
    def appending(self) -> Iterator[Callable[[bytes], object]]:
        """One open, unbuffered append handle for a stream of chunks (a container's output):
        each chunk reaches the file at once, without reopening it per chunk."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("ab", buffering=0) as handle:
            yield handle.write


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
