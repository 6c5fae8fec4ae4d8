"""Helpers shared by the test tiers (fixtures live in the conftest files)."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime, timedelta

#: Every container, volume and network a test session makes carries `orch.test=<this>`; the
#: value is put in the environment so CLI subprocesses started by tests use it too.
TEST_SESSION_LABEL = os.environ.setdefault("ORCH_TEST_SESSION_LABEL", f"s{uuid.uuid4().hex[:10]}")


class FixedClock:
    """A clock tests move by hand."""

    def __init__(self, now: datetime | None = None) -> None:
        self._now = now or datetime(2026, 3, 14, 12, tzinfo=UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, **kwargs: float) -> datetime:
        self._now += timedelta(**kwargs)
        return self._now
