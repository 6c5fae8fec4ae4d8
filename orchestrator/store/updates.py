"""Changing rows cheaply: many at once, one `executemany` per set of columns changed, where the
ORM works out and sends each row's change on its own (each statement is built once: building
one costs about as much as running it); and an object's attributes, only where they change."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Connection, Table, Update, bindparam, update

_BUILT: dict[tuple[Table, tuple[str, ...], tuple[str, ...]], Update] = {}


def update_rows(
    connection: Connection,
    table: Table,
    keys: tuple[str, ...],
    changes: Iterable[tuple[tuple[Any, ...], Mapping[str, Any]]],
) -> None:
    """Change rows of `table`: each change is the row's values of the `keys` columns and the
    new values of the columns it changes."""
    by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for key, values in changes:
        row = {f"b_{name}": value for name, value in zip(keys, key, strict=True)}
        row.update(values)
        by_columns.setdefault(tuple(sorted(values)), []).append(row)
    for columns, rows in by_columns.items():
        statement = _BUILT.get((table, keys, columns))
        if statement is None:
            statement = _BUILT[(table, keys, columns)] = (
                update(table)
                .where(*(table.c[name] == bindparam(f"b_{name}") for name in keys))
                .values({column: bindparam(column) for column in columns})
            )
        connection.execute(statement, rows)


def assign(obj: object, **values: Any) -> None:
    """Set attributes of a mapped object, skipping those already loaded with the same value:
    every set costs the ORM's change bookkeeping, and a column in the flush's update."""
    loaded = obj.__dict__
    for name, value in values.items():
        if name not in loaded or loaded[name] != value:
            setattr(obj, name, value)
