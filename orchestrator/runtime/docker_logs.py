"""De-duplicating a resumed log stream of a Docker container.

The engine's log stream can break while a container runs; `DockerRuntime.follow_logs` then asks
again from a little before the newest line it delivered. `DeliveredFrames` remembers what was
delivered so that the overlap is dropped and no line reaches the sink twice.
"""

from __future__ import annotations

import calendar
import time
from collections import Counter

_RESUME_MARGIN_SECONDS = 1.0  # a resumed log stream re-reads this much before the newest line
_REMEMBERED_FRAMES = 10_000  # log frames remembered (at least) to de-duplicate a resumed stream


def _stamp_seconds(stamp: bytes) -> float:
    """A log timestamp (`2026-01-02T03:04:05.123456789Z`, UTC) in seconds; 0 if unreadable."""
    try:
        text = stamp.decode()
        whole = calendar.timegm(time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S"))
    except (UnicodeDecodeError, ValueError):
        return 0.0
    micros = text[20:26] if text[19:20] == "." else "0"
    return whole + int(micros.ljust(6, "0")) / 1_000_000


class DeliveredFrames:
    """Remembers recently delivered log frames so that a resumed stream repeats none of them.

    The engine stamps each line when it reads the container's pipe, so stdout and stderr lines
    are stored slightly out of timestamp order: the resume point is the newest stamp minus a
    margin, and replayed frames are recognised by (stamp, payload), not by position.
    """

    def __init__(self) -> None:
        self._delivered: Counter[tuple[bytes, int]] = Counter()
        self._replay: Counter[tuple[bytes, int]] = Counter()
        self._newest = b""
        self._limit = _REMEMBERED_FRAMES

    def resume_point(self) -> float | None:
        """Where a new stream should start (seconds since the epoch); None for the beginning."""
        if not self._newest:
            return None
        self._replay = Counter(self._delivered)
        point = _stamp_seconds(self._newest) - _RESUME_MARGIN_SECONDS
        return point if point > 0 else None

    def admit(self, frame: bytes) -> bytes | None:
        """The frame's payload, or None if it was delivered before."""
        stamp, _, payload = frame.partition(b" ")
        key = (stamp, hash(payload))
        if self._replay[key] > 0:
            self._replay[key] -= 1
            return None
        self._delivered[key] += 1
        self._newest = max(self._newest, stamp)
        if len(self._delivered) > self._limit:
            cutoff = _stamp_seconds(self._newest) - 2 * _RESUME_MARGIN_SECONDS
            self._delivered = Counter(
                {k: n for k, n in self._delivered.items() if _stamp_seconds(k[0]) >= cutoff}
            )
            self._limit = max(_REMEMBERED_FRAMES, 2 * len(self._delivered))
        return payload
