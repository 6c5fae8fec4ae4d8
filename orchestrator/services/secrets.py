"""Connections and variables: stored encrypted, resolved environment first.

Lookups (for templates, task `secrets`, and `variables get`) try the environment before the
store: `ORCH_CONN_<ID>` (the id upper-cased) holds a connection as a URI
(`postgresql://user:p%40ss@host:5432/db?sslmode=require`) or a JSON object of its fields, and
`ORCH_VAR_<NAME>` a variable. The store keeps a connection's password and extra settings, and
a variable's value, as Fernet tokens made with `ORCH_FERNET_KEY`; writing or reading one
without the key, or with another key, fails with a message saying which connection or
variable and what to do. A wrong key never yields a value.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from pydantic import SecretStr, ValidationError
from sqlalchemy.orm import Session

from orchestrator.errors import SecretError, SecretNotFound
from orchestrator.models.secrets import Connection
from orchestrator.settings import Settings
from orchestrator.store import secrets as secret_store
from orchestrator.store.tables import ConnectionRow, VariableRow

ENV_CONN_PREFIX = "ORCH_CONN_"
ENV_VAR_PREFIX = "ORCH_VAR_"

_MAKE_KEY = (
    "make one with `orchestrator secrets generate-key` and set ORCH_FERNET_KEY to it in the "
    "environment of every orchestrator command and the scheduler (keep it: what was stored "
    "with a key can only be read with it)"
)


def generate_key() -> str:
    """A new random Fernet key (url-safe base64, 32 bytes)."""
    return Fernet.generate_key().decode()


class Cipher:
    """Fernet encryption with the key(s) from `ORCH_FERNET_KEY`; checked when first used, so
    commands that touch no secret work without a key."""

    def __init__(self, key: SecretStr | str | None) -> None:
        self._key = key.get_secret_value() if isinstance(key, SecretStr) else key
        self._fernet: MultiFernet | None = None

    def _get(self, action: str) -> MultiFernet:
        if self._fernet is not None:
            return self._fernet
        if not self._key or not self._key.strip():
            raise SecretError(f"ORCH_FERNET_KEY is not set, so {action}: {_MAKE_KEY}")
        try:
            keys = [Fernet(part.strip()) for part in self._key.split(",") if part.strip()]
        except (ValueError, TypeError):
            raise SecretError(
                "ORCH_FERNET_KEY is not a valid Fernet key (32 url-safe base64-encoded bytes; "
                f"several keys are separated by commas): {_MAKE_KEY}"
            ) from None
        self._fernet = MultiFernet(keys)
        return self._fernet

    def encrypt(self, text: str, what: str) -> str:
        return self._get(f"{what} cannot be stored").encrypt(text.encode()).decode()

    def decrypt(self, token: str, what: str) -> str:
        fernet = self._get(f"{what} cannot be read")
        try:
            return fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise SecretError(
                f"{what} cannot be decrypted with ORCH_FERNET_KEY (invalid token): it was "
                "stored with another key. Set ORCH_FERNET_KEY to that key (or list it after "
                "the new one, separated by a comma), or store the value again"
            ) from None


class StoreSecrets:
    """The `SecretSource` of the services: the environment first, then the store."""

    def __init__(
        self, session: Session, cipher: Cipher, environ: Mapping[str, str] | None = None
    ) -> None:
        self._session = session
        self._cipher = cipher
        self._environ: Mapping[str, str] = os.environ if environ is None else environ

    def connection(self, conn_id: str) -> Connection:
        env_name = ENV_CONN_PREFIX + conn_id.upper()
        text = self._environ.get(env_name)
        if text is not None:
            return connection_from_text(conn_id, text, env_name)
        row = secret_store.get_connection(self._session, conn_id)
        if row is None:
            raise SecretNotFound(
                f"connection {conn_id!r} is not defined: set {env_name} to its URI, or run "
                f"`orchestrator connections add {conn_id} --uri ...`"
            )
        return _connection_of(row, self._cipher)

    def variable(self, name: str) -> str:
        env_name = ENV_VAR_PREFIX + name.upper()
        text = self._environ.get(env_name)
        if text is not None:
            return text
        row = secret_store.get_variable(self._session, name)
        if row is None:
            raise SecretNotFound(
                f"variable {name!r} is not defined: set {env_name}, or run "
                f"`orchestrator variables set {name} VALUE`"
            )
        return self._cipher.decrypt(row.value, f"variable {name!r}")

    def environ(self, name: str) -> str:
        value = self._environ.get(name)
        if value is None:
            raise SecretNotFound(
                f"environment variable {name!r} is not set in the scheduler's environment"
            )
        return value


def secret_source(
    settings: Settings, session: Session, environ: Mapping[str, str] | None = None
) -> StoreSecrets:
    """The lookups templates and task `secrets` use (the process environment by default)."""
    return StoreSecrets(session, Cipher(settings.fernet_key), environ)


def connection_from_text(conn_id: str, text: str, where: str) -> Connection:
    """A connection from a URI, or a JSON object of its fields (`where` names the source)."""
    try:
        if text.lstrip().startswith("{"):
            fields = json.loads(text)
            if not isinstance(fields, dict):
                raise ValueError("not a JSON object")
            return Connection(**{**fields, "conn_id": conn_id})
        return Connection.from_uri(conn_id, text.strip())
    except json.JSONDecodeError as exc:
        raise SecretError(f"{where}: connection {conn_id!r} is not valid JSON: {exc.msg}") from None
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise SecretError(f"{where}: connection {conn_id!r} is invalid: {problems}") from None
    except (ValueError, TypeError) as exc:
        raise SecretError(f"{where}: {exc}") from None


def _connection_of(row: ConnectionRow, cipher: Cipher) -> Connection:
    what = f"connection {row.conn_id!r}"
    password = cipher.decrypt(row.password, what) if row.password is not None else None
    extra: dict[str, Any] = {}
    if row.extra is not None:
        extra = json.loads(cipher.decrypt(row.extra, what))
    return Connection(
        conn_id=row.conn_id,
        conn_type=row.conn_type,
        host=row.host,
        port=row.port,
        login=row.login,
        password=password,
        schema=row.db_schema,
        extra=extra,
    )


# ------------------------------------------------------------------ management (CLI, API)
@dataclass(frozen=True)
class ConnectionSummary:
    """A stored connection as listed: never its password or extra settings."""

    conn_id: str
    conn_type: str
    host: str | None
    port: int | None
    login: str | None
    schema: str | None
    has_password: bool
    has_extra: bool
    description: str | None
    updated_at: datetime


def _summary(row: ConnectionRow) -> ConnectionSummary:
    return ConnectionSummary(
        conn_id=row.conn_id,
        conn_type=row.conn_type,
        host=row.host,
        port=row.port,
        login=row.login,
        schema=row.db_schema,
        has_password=row.password is not None,
        has_extra=row.extra is not None,
        description=row.description,
        updated_at=row.updated_at,
    )


@dataclass(frozen=True)
class VariableSummary:
    """A stored variable as listed: never its value."""

    name: str
    description: str | None
    updated_at: datetime


class SecretsService:
    """Adds, lists and deletes stored connections and variables."""

    def __init__(
        self, settings: Settings, session: Session, environ: Mapping[str, str] | None = None
    ) -> None:
        self._session = session
        self._cipher = Cipher(settings.fernet_key)
        self._source = StoreSecrets(session, self._cipher, environ)

    def add_connection(
        self, connection: Connection, now: datetime, description: str | None = None
    ) -> None:
        """Store a new connection; an id that is taken is an error (delete it first)."""
        conn_id = connection.conn_id
        if not conn_id.strip():
            raise SecretError("a connection needs a non-empty id")
        if secret_store.get_connection(self._session, conn_id) is not None:
            raise SecretError(
                f"connection {conn_id!r} already exists: delete it first "
                f"(`orchestrator connections delete {conn_id}`)"
            )
        what = f"connection {conn_id!r}"
        encrypt = self._cipher.encrypt
        secret_store.add_connection(
            self._session,
            ConnectionRow(
                conn_id=conn_id,
                conn_type=connection.conn_type,
                description=description,
                host=connection.host,
                port=connection.port,
                login=connection.login,
                password=(
                    encrypt(connection.password, what) if connection.password is not None else None
                ),
                db_schema=connection.schema,
                extra=encrypt(json.dumps(connection.extra), what) if connection.extra else None,
                updated_at=now,
            ),
        )

    def set_connection(
        self,
        connection: Connection,
        now: datetime,
        description: str | None = None,
        *,
        keep_password: bool = False,
        keep_extra: bool = False,
        keep_description: bool = False,
    ) -> bool:
        """Create a connection or replace a stored one (True: it was created). Replacing,
        `keep_*` keeps the stored password, extra settings or description instead of the
        ones given (a client that never saw them can change the other fields)."""
        conn_id = connection.conn_id
        if not conn_id.strip():
            raise SecretError("a connection needs a non-empty id")
        row = secret_store.get_connection(self._session, conn_id)
        if row is None:
            self.add_connection(connection, now, description)
            return True
        what = f"connection {conn_id!r}"
        encrypt = self._cipher.encrypt
        password = encrypt(connection.password, what) if connection.password is not None else None
        extra = encrypt(json.dumps(connection.extra), what) if connection.extra else None
        row.conn_type = connection.conn_type
        row.host, row.port, row.login = connection.host, connection.port, connection.login
        row.db_schema = connection.schema
        if not keep_password:
            row.password = password
        if not keep_extra:
            row.extra = extra
        if not keep_description:
            row.description = description
        row.updated_at = now
        self._session.flush()
        return False

    def list_connections(self) -> list[ConnectionSummary]:
        return [_summary(row) for row in secret_store.list_connections(self._session)]

    def stored_connection(self, conn_id: str) -> ConnectionSummary:
        """A stored connection without its secrets (the environment is not consulted)."""
        row = secret_store.get_connection(self._session, conn_id)
        if row is None:
            raise SecretNotFound(f"no stored connection {conn_id!r}")
        return _summary(row)

    def get_connection(self, conn_id: str) -> Connection:
        """A connection as tasks see it (environment first, then the store)."""
        return self._source.connection(conn_id)

    def delete_connection(self, conn_id: str) -> None:
        if not secret_store.delete_connection(self._session, conn_id):
            raise SecretNotFound(f"no stored connection {conn_id!r}")

    def set_variable(
        self, name: str, value: str, now: datetime, description: str | None = None
    ) -> bool:
        """Create or replace a stored variable (True: it was created); without a description
        a replaced variable keeps its own."""
        if not name.strip():
            raise SecretError("a variable needs a non-empty name")
        token = self._cipher.encrypt(value, f"variable {name!r}")
        existing = secret_store.get_variable(self._session, name)
        if description is None and existing is not None:
            description = existing.description
        secret_store.put_variable(
            self._session,
            VariableRow(name=name, value=token, description=description, updated_at=now),
        )
        return existing is None

    def stored_variable(self, name: str) -> VariableSummary:
        """A stored variable without its value (the environment is not consulted)."""
        row = secret_store.get_variable(self._session, name)
        if row is None:
            raise SecretNotFound(f"no stored variable {name!r}")
        return VariableSummary(row.name, row.description, row.updated_at)

    def get_variable(self, name: str) -> str:
        """A variable as tasks see it (environment first, then the store)."""
        return self._source.variable(name)

    def list_variables(self) -> list[VariableSummary]:
        return [
            VariableSummary(row.name, row.description, row.updated_at)
            for row in secret_store.list_variables(self._session)
        ]

    def delete_variable(self, name: str) -> None:
        if not secret_store.delete_variable(self._session, name):
            raise SecretNotFound(f"no stored variable {name!r}")
