"""Splitting long `IN (...)` lists: every backend caps the parameters of one statement."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from typing import TypeVar

T = TypeVar("T")

#: Most values one `IN` list carries.
IN_CHUNK = 500


def in_chunks(values: Collection[T]) -> Iterator[list[T]]:
    """The values in lists of at most `IN_CHUNK`; nothing for no values."""
    items = list(values)
    for start in range(0, len(items), IN_CHUNK):
        yield items[start : start + IN_CHUNK]
