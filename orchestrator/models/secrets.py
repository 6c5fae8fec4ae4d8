"""Connections, references to secrets, and masking secret values out of text.

A `Connection` is what Airflow calls one: how to reach an external system (type, host, port,
login, password, schema, extra settings), written as a URI like
`postgresql://user:p%40ss@db.example:5432/sales?sslmode=require` (login and password
url-encoded). A `SecretRef` names a value a task receives as an environment variable without
it ever being stored with the task's rendered fields: a connection field, a variable, or a
variable of the scheduler's environment.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import field
from typing import Any, Literal
from urllib.parse import parse_qsl, quote, quote_plus, unquote, urlencode, urlsplit

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.dataclasses import dataclass

__all__ = [
    "CONNECTION_FIELDS",
    "MASK",
    "Connection",
    "ConnectionField",
    "SecretRef",
    "StreamMasker",
    "mask_json",
    "mask_text",
]

#: What a secret value is replaced with wherever it would be shown or stored.
MASK = "***"

#: Fields of a connection that `SecretRef` may name (`uri`: the whole connection as a URI).
ConnectionField = Literal["password", "login", "host", "port", "schema", "conn_type", "uri"]
CONNECTION_FIELDS: tuple[str, ...] = (
    "password",
    "login",
    "host",
    "port",
    "schema",
    "conn_type",
    "uri",
)

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-_]*$")


@dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class Connection:
    """How to reach an external system. `password` and `extra` never show in a repr.

    A pydantic dataclass rather than a model so that `schema` is a plain field name (templates
    read `{{ conn.my_db.schema }}`).
    """

    conn_id: str
    conn_type: str
    host: str | None = None
    port: int | None = None
    login: str | None = None
    password: str | None = field(default=None, repr=False)
    schema: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_uri(cls, conn_id: str, uri: str) -> Connection:
        """Parse `type://login:password@host:port/schema?key=value`.

        Login, password, host and schema are url-decoded (write `@` as `%40`, `/` as `%2F`);
        query parameters become `extra` (a key given twice keeps a list). Raises ValueError
        saying what is wrong with the URI, without repeating it (it may hold a password).
        """
        if "://" not in uri:
            raise ValueError(
                f"connection {conn_id!r}: the URI must look like "
                "type://login:password@host:port/schema?key=value"
            )
        scheme = uri.split("://", 1)[0]
        if not _SCHEME.match(scheme):
            raise ValueError(f"connection {conn_id!r}: the URI's type {scheme!r} is not valid")
        parts = urlsplit(uri)
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"connection {conn_id!r}: the URI's port is not a number") from None
        extra: dict[str, Any] = {}
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            if key in extra:
                previous = extra[key]
                extra[key] = [*previous, value] if isinstance(previous, list) else [previous, value]
            else:
                extra[key] = value
        path = parts.path[1:] if parts.path.startswith("/") else parts.path
        return cls(
            conn_id=conn_id,
            conn_type=scheme,
            host=unquote(parts.hostname) if parts.hostname else None,
            port=port,
            login=unquote(parts.username) if parts.username is not None else None,
            password=unquote(parts.password) if parts.password is not None else None,
            schema=unquote(path) if path else None,
            extra=extra,
        )

    def get_uri(self) -> str:
        """The connection as a URI (`from_uri` reads it back to an equal connection)."""
        uri = f"{self.conn_type}://"
        if self.login is not None or self.password is not None:
            uri += quote(self.login or "", safe="")
            if self.password is not None:
                uri += ":" + quote(self.password, safe="")
            uri += "@"
        if self.host:
            uri += quote(self.host, safe="")
        if self.port is not None:
            uri += f":{self.port}"
        if self.schema:
            uri += "/" + quote(self.schema, safe="")
        if self.extra:
            pairs = [
                (key, item if isinstance(item, str) else json.dumps(item))
                for key, value in self.extra.items()
                for item in (value if isinstance(value, list) else [value])
            ]
            uri += "?" + urlencode(pairs)
        return uri

    def field_value(self, name: str) -> str | None:
        """One field (of `CONNECTION_FIELDS`) as a string, None when the field is unset."""
        if name == "uri":
            return self.get_uri()
        value = getattr(self, name)
        return None if value is None else str(value)

    def secret_values(self) -> set[str]:
        """The values that must never be shown: the password, raw and url-encoded (as in a URI,
        as by Jinja's `urlencode`, and as in a form)."""
        if not self.password:
            return set()
        pw = self.password
        return {pw, quote(pw, safe=""), quote(pw), quote_plus(pw)}


class SecretRef(BaseModel):
    """A reference to a secret value, resolved by the scheduler when the task launches.

    `source` says where it lives: `conn` (field `field` of connection `key`), `var` (variable
    `key`) or `env` (variable `key` of the scheduler's own environment).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: Literal["conn", "var", "env"]
    key: str = Field(min_length=1, max_length=250)
    field: ConnectionField | None = None

    @model_validator(mode="before")
    @classmethod
    def _field_of_connections_only(cls, data: Any) -> Any:
        if isinstance(data, dict):
            if data.get("source") == "conn" and data.get("field") is None:
                data = {**data, "field": "password"}
            elif data.get("source") in ("var", "env") and data.get("field") is not None:
                raise ValueError("only a connection reference (source 'conn') has a field")
        return data

    def describe(self) -> str:
        """`conn:my_db.password`, `var:api_key`, `env:HOST_TOKEN`: what is stored and shown."""
        suffix = f".{self.field}" if self.field else ""
        return f"{self.source}:{self.key}{suffix}"


# ----------------------------------------------------------------------------- masking
def _pattern(values: Iterable[str]) -> re.Pattern[str] | None:
    ordered = sorted({v for v in values if v}, key=len, reverse=True)
    if not ordered:
        return None
    return re.compile("|".join(re.escape(v) for v in ordered))


def mask_text(text: str, values: Iterable[str]) -> str:
    """`text` with every occurrence of any of `values` replaced by `***` (longest first)."""
    pattern = _pattern(values)
    return pattern.sub(MASK, text) if pattern is not None else text


def mask_json(data: Any, values: Iterable[str]) -> Any:
    """A copy of a JSON-like value (dicts, lists, strings) with secret values masked in every
    string, keys included."""
    pattern = _pattern(values)
    if pattern is None:
        return data

    def walk(value: Any) -> Any:
        if isinstance(value, str):
            return pattern.sub(MASK, value)
        if isinstance(value, dict):
            return {walk(k): walk(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [walk(v) for v in value]
        return value

    return walk(data)


class StreamMasker:
    """Masks secret values in a byte stream that arrives in chunks.

    A value split over two chunks is still masked: the last `longest - 1` bytes of what has
    arrived are held back until the next chunk (or `flush`) shows whether they start a value.
    Matching is on bytes (UTF-8), so a value never needs decoding to be found.
    """

    def __init__(self, values: Iterable[str]) -> None:
        encoded = sorted({v.encode() for v in values if v}, key=len, reverse=True)
        self._pattern = re.compile(b"|".join(re.escape(v) for v in encoded)) if encoded else None
        self._hold = max((len(v) for v in encoded), default=1) - 1
        self._pending = b""

    def feed(self, chunk: bytes) -> bytes:
        """What of the stream so far can be written now, masked."""
        if self._pattern is None:
            return chunk
        data = self._pending + chunk
        cut = max(0, len(data) - self._hold)
        out: list[bytes] = []
        position = 0
        for match in self._pattern.finditer(data):
            if match.start() >= cut:
                break  # may be the start of a longer value: decide once more has arrived
            out.append(data[position : match.start()])
            out.append(MASK.encode())
            position = match.end()
        if position < cut:
            out.append(data[position:cut])
            position = cut
        self._pending = data[position:]
        return b"".join(out)

    def flush(self) -> bytes:
        """The rest of the stream, masked (call once it ended)."""
        if self._pattern is None:
            return b""
        rest, self._pending = self._pending, b""
        return self._pattern.sub(MASK.encode(), rest)
