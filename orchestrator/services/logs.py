"""Task logs: one file per attempt, appended while the container runs, kept afterwards.

Secret values of the attempt (its `secrets` and the connection passwords its templates read)
are written as `***`, also when a value arrives split over two chunks of the stream.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from orchestrator.models.secrets import StreamMasker, mask_text


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
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("ab") as handle:
            handle.write(data)

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
        self.path.parent.mkdir(parents=True, exist_ok=True)
        masker = StreamMasker(self.secrets)
        with self.path.open("ab", buffering=0) as handle:

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
