"""Durations in specs: numbers of seconds accepted, and bounded so date arithmetic stays valid."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

#: Longest duration a spec may hold (100 years): longer ones would overflow when added to a date.
MAX_DURATION = timedelta(days=36525)


def as_timedelta(value: Any) -> Any:
    """A number of seconds as a timedelta; other values unchanged (pydantic checks them).
    ValueError for a number that is not finite or too large."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value) or abs(value) > MAX_DURATION.total_seconds():
            raise ValueError(
                f"a duration must be a finite number of seconds of at most "
                f"{MAX_DURATION.total_seconds():.0f} (100 years), got {value}"
            )
        return timedelta(seconds=value)
    return value


def bounded(value: timedelta | None) -> timedelta | None:
    """The duration, or ValueError if it is longer than `MAX_DURATION` either way."""
    if value is not None and abs(value) > MAX_DURATION:
        raise ValueError(f"a duration may be at most 100 years, got {value.days} days")
    return value
