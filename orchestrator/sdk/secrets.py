"""`Secret`: where a task's secret environment variables come from.

    ContainerTask(
        "load",
        image="...",
        secrets={
            "DB_PASSWORD": Secret.conn("my_db"),  # the connection's password
            "DB_URI": Secret.conn("my_db", "uri"),  # the whole connection as a URI
            "API_KEY": Secret.var("api_key"),  # a variable
            "TOKEN": Secret.env("HOST_TOKEN"),  # the scheduler's environment
        },
    )

The values are looked up when the container launches and passed to it as environment
variables; the store keeps only the reference (`conn:my_db.password`), and the values are
masked (`***`) in the task's log.
"""

from __future__ import annotations

from pydantic import ValidationError

from orchestrator.errors import DagDefinitionError
from orchestrator.models.secrets import CONNECTION_FIELDS, SecretRef

__all__ = ["Secret"]


class Secret:
    """Builds `SecretRef`s: `Secret.conn(id, field)`, `Secret.var(name)`, `Secret.env(name)`."""

    @staticmethod
    def conn(conn_id: str, field: str = "password") -> SecretRef:
        """A field of a connection (`password` by default; also `login`, `host`, `port`,
        `schema`, `conn_type`, or `uri` for the whole connection)."""
        if field not in CONNECTION_FIELDS:
            raise DagDefinitionError(
                f"Secret.conn({conn_id!r}, {field!r}): unknown field {field!r}; choose one of "
                f"{', '.join(CONNECTION_FIELDS)}"
            )
        return _ref("conn", conn_id, field, f"Secret.conn({conn_id!r})")

    @staticmethod
    def var(name: str) -> SecretRef:
        """A variable (`orchestrator variables set NAME VALUE`, or `ORCH_VAR_<NAME>`)."""
        return _ref("var", name, None, f"Secret.var({name!r})")

    @staticmethod
    def env(name: str) -> SecretRef:
        """A variable of the scheduler's own environment, e.g. a token its host provides."""
        return _ref("env", name, None, f"Secret.env({name!r})")


def _ref(source: str, key: str, field: str | None, where: str) -> SecretRef:
    if not isinstance(key, str) or not key.strip():
        raise DagDefinitionError(f"{where}: the name must be a non-empty string")
    try:
        return SecretRef.model_validate({"source": source, "key": key, "field": field})
    except ValidationError as exc:
        problems = "; ".join(error["msg"] for error in exc.errors())
        raise DagDefinitionError(f"{where}: {problems}") from None
