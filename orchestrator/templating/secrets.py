"""Connections and variables in templates, and the secret values to mask.

Templates read `{{ conn.my_db.host }}`, `{{ conn.my_db.password }}`, `{{ var.value.x }}` and
`{{ var.json.x.field }}`. Nothing is looked up until a template uses it; an unknown id is a
`TemplateError` naming it. The lookups go through a `SecretSource` the caller passes in (the
services layer: environment first, then the encrypted store): this package never touches the
store.

Every value that must not be shown is collected in a `Revealed` set while rendering: the
password of each connection a template read, every value given through a task's `secrets`,
and variables whose name looks sensitive (Airflow's rule: `password`, `secret`, `token`,
`api_key`, ... in the name). Rendered fields keep the real values for the launch, but are
masked wherever they are serialized or shown.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol

from orchestrator.errors import SecretError, SecretNotFound, TemplateError
from orchestrator.models.secrets import Connection, SecretRef

__all__ = [
    "SENSITIVE_NAME_PARTS",
    "Connections",
    "NoSecrets",
    "Revealed",
    "SecretSource",
    "Variables",
    "resolve_secret_refs",
]

#: A variable whose name contains one of these (any case) is masked like a password.
SENSITIVE_NAME_PARTS = (
    "access_token",
    "api_key",
    "apikey",
    "authorization",
    "passphrase",
    "passwd",
    "password",
    "private_key",
    "secret",
    "token",
)


class SecretSource(Protocol):
    """Looks up connections and variables; raises `SecretNotFound` (or another
    `SecretError`, say for a wrong key) with a message naming what it could not read."""

    def connection(self, conn_id: str) -> Connection: ...

    def variable(self, name: str) -> str: ...

    def environ(self, name: str) -> str: ...


class NoSecrets:
    """A source for rendering where connections and variables are not available."""

    def _refuse(self, what: str) -> SecretError:
        return SecretError(
            f"{what} cannot be read here: connections and variables are available to "
            "container tasks only"
        )

    def connection(self, conn_id: str) -> Connection:
        raise self._refuse(f"connection {conn_id!r}")

    def variable(self, name: str) -> str:
        raise self._refuse(f"variable {name!r}")

    def environ(self, name: str) -> str:
        raise self._refuse(f"environment variable {name!r}")


class Revealed:
    """The secret values one rendering handed out (to be masked wherever shown)."""

    def __init__(self) -> None:
        self._values: set[str] = set()

    def add(self, *values: str | None) -> None:
        self._values.update(v for v in values if v)

    @property
    def values(self) -> frozenset[str]:
        return frozenset(self._values)


def _is_sensitive(name: str) -> bool:
    lowered = name.lower()
    return any(part in lowered for part in SENSITIVE_NAME_PARTS)


class Connections:
    """`conn`: connections by id (`conn.my_db`, `conn["my-db"]`), looked up on first use."""

    __slots__ = ("_cache", "_revealed", "_source")

    def __init__(self, source: SecretSource, revealed: Revealed) -> None:
        self._source = source
        self._revealed = revealed
        self._cache: dict[str, Connection] = {}

    def __getitem__(self, conn_id: str) -> Connection:
        if conn_id not in self._cache:
            try:
                connection = self._source.connection(str(conn_id))
            except SecretError as exc:
                raise TemplateError(f"conn.{conn_id}: {exc}") from None
            self._revealed.add(*connection.secret_values())
            self._cache[conn_id] = connection
        return self._cache[conn_id]

    def __getattr__(self, name: str) -> Connection:
        if name.startswith("_"):
            raise AttributeError(name)
        return self[name]

    def __repr__(self) -> str:
        return "Connections()"


class _VariableValues:
    """`var.value` (strings) or `var.json` (parsed JSON)."""

    __slots__ = ("_as_json", "_cache", "_revealed", "_source")

    def __init__(self, source: SecretSource, revealed: Revealed, *, as_json: bool) -> None:
        self._source = source
        self._revealed = revealed
        self._as_json = as_json
        self._cache: dict[str, Any] = {}

    def _lookup(self, name: str) -> str:
        value = self._source.variable(name)
        if _is_sensitive(name):
            self._revealed.add(value)
        return value

    def __getitem__(self, name: str) -> Any:
        if name not in self._cache:
            kind = "json" if self._as_json else "value"
            try:
                text = self._lookup(str(name))
            except SecretError as exc:
                raise TemplateError(f"var.{kind}.{name}: {exc}") from None
            self._cache[name] = self._parse(name, text) if self._as_json else text
        return self._cache[name]

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return self[name]

    def get(self, name: str, default: Any = None) -> Any:
        """The variable, or `default` when it is not defined (Airflow's `var.value.get`)."""
        if name in self._cache:
            return self._cache[name]
        try:
            text = self._lookup(str(name))
        except SecretNotFound:
            return default
        except SecretError as exc:
            raise TemplateError(
                f"var.{'json' if self._as_json else 'value'}.{name}: {exc}"
            ) from None
        self._cache[name] = self._parse(name, text) if self._as_json else text
        return self._cache[name]

    @staticmethod
    def _parse(name: str, text: str) -> Any:
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise TemplateError(
                f"var.json.{name}: variable {name!r} is not JSON ({exc.msg} at line "
                f"{exc.lineno} column {exc.colno}); read it as var.value.{name}"
            ) from None

    def __repr__(self) -> str:
        return "Variables()"


class Variables:
    """`var`: `var.value.<name>` is a variable's text, `var.json.<name>` its parsed JSON."""

    __slots__ = ("json", "value")

    def __init__(self, source: SecretSource, revealed: Revealed) -> None:
        self.value = _VariableValues(source, revealed, as_json=False)
        self.json = _VariableValues(source, revealed, as_json=True)

    def __repr__(self) -> str:
        return "Variables()"


def resolve_secret_refs(
    refs: Mapping[str, SecretRef], source: SecretSource, revealed: Revealed, where: str
) -> dict[str, str]:
    """The values of a task's `secrets`, by environment variable name; each is added to
    `revealed`. Raises `TemplateError` naming `where`, the variable and the missing id."""
    values: dict[str, str] = {}
    for name, ref in refs.items():
        try:
            value = _resolve(ref, source, revealed)
        except SecretError as exc:
            raise TemplateError(
                f"{where}: secret {name} ({ref.describe()}) cannot be resolved: {exc}"
            ) from None
        revealed.add(value)
        values[name] = value
    return values


def _resolve(ref: SecretRef, source: SecretSource, revealed: Revealed) -> str:
    if ref.source == "var":
        return source.variable(ref.key)
    if ref.source == "env":
        return source.environ(ref.key)
    connection = source.connection(ref.key)
    revealed.add(*connection.secret_values())
    value = connection.field_value(ref.field or "password")
    if value is None:
        raise SecretError(f"connection {ref.key!r} has no {ref.field or 'password'}")
    return value
