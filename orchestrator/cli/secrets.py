"""`orchestrator connections|variables|secrets ...`: stored connections and variables.

Values are encrypted with `ORCH_FERNET_KEY`; `secrets generate-key` makes a key. Listings never
show a password, a connection's extra settings or a variable's value; `variables get` prints
one value on request.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from orchestrator.cli.context import build_context, fail
from orchestrator.cli.output import OutputFormat, emit
from orchestrator.errors import SecretError
from orchestrator.models.secrets import MASK, Connection
from orchestrator.services.secrets import (
    ConnectionSummary,
    SecretsService,
    connection_from_text,
    generate_key,
)

connections_app = typer.Typer(
    help="Connections: how tasks reach external systems (encrypted in the store).",
    no_args_is_help=True,
)
variables_app = typer.Typer(
    help="Variables: named values for templates and task secrets (encrypted in the store).",
    no_args_is_help=True,
)
secrets_app = typer.Typer(help="The key that encrypts connections and variables.")

OutputOpt = Annotated[OutputFormat, typer.Option("--output", "-o", help="table or json")]
CONNECTION_COLUMNS = [
    "conn_id",
    "conn_type",
    "host",
    "port",
    "login",
    "schema",
    "password",
    "extra",
]
VARIABLE_COLUMNS = ["name", "description", "updated_at"]


@secrets_app.command("generate-key")
def generate_key_command() -> None:
    """Print a new Fernet key, for ORCH_FERNET_KEY."""
    typer.echo(generate_key())


@connections_app.command("add")
def add_connection(
    conn_id: str,
    uri: Annotated[
        str | None,
        typer.Option(help="the whole connection: type://login:password@host:port/schema?k=v"),
    ] = None,
    conn_type: Annotated[str | None, typer.Option("--type", help="e.g. postgresql")] = None,
    host: Annotated[str | None, typer.Option()] = None,
    port: Annotated[int | None, typer.Option()] = None,
    login: Annotated[str | None, typer.Option()] = None,
    password: Annotated[str | None, typer.Option()] = None,
    schema: Annotated[str | None, typer.Option()] = None,
    extra: Annotated[str | None, typer.Option(help="a JSON object of extra settings")] = None,
    description: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Store a connection, from --uri or from --type and the other fields."""
    fields_given = any(v is not None for v in (conn_type, host, port, login, password, schema))
    if uri is not None and (fields_given or extra is not None):
        fail("give either --uri or --type with the other fields, not both")
    connection: Connection
    if uri is not None:
        connection = connection_from_text(conn_id, uri, "--uri")
    else:
        if conn_type is None:
            fail("give --uri, or --type (with --host, --port, --login, --password, --schema)")
        connection = connection_from_text(
            conn_id,
            json.dumps(
                {
                    "conn_type": conn_type,
                    "host": host,
                    "port": port,
                    "login": login,
                    "password": password,
                    "schema": schema,
                    "extra": _extra(extra),
                }
            ),
            "the options",
        )
    ctx = build_context()
    with ctx.sessions.begin() as session:
        SecretsService(ctx.settings, session).add_connection(
            connection, ctx.clock.now(), description
        )
    typer.echo(f"added connection {conn_id}")


def _extra(text: str | None) -> dict[str, Any]:
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SecretError(f"--extra is not valid JSON: {exc.msg}") from None
    if not isinstance(value, dict):
        raise SecretError('--extra must be a JSON object, like \'{"sslmode": "require"}\'')
    return value


def _connection_row(summary: ConnectionSummary) -> dict[str, Any]:
    return {
        "conn_id": summary.conn_id,
        "conn_type": summary.conn_type,
        "host": summary.host,
        "port": summary.port,
        "login": summary.login,
        "schema": summary.schema,
        "password": MASK if summary.has_password else None,
        "extra": MASK if summary.has_extra else None,
        "description": summary.description,
    }


@connections_app.command("list")
def list_connections(output: OutputOpt = OutputFormat.table) -> None:
    """Stored connections (passwords and extra settings are never shown)."""
    ctx = build_context()
    with ctx.sessions() as session:
        rows = [
            _connection_row(s) for s in SecretsService(ctx.settings, session).list_connections()
        ]
    emit(rows, CONNECTION_COLUMNS, output)


@connections_app.command("delete")
def delete_connection(conn_id: str) -> None:
    """Delete a stored connection."""
    ctx = build_context()
    with ctx.sessions.begin() as session:
        SecretsService(ctx.settings, session).delete_connection(conn_id)
    typer.echo(f"deleted connection {conn_id}")


@variables_app.command("set")
def set_variable(
    name: str,
    value: str,
    description: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Create or replace a stored variable."""
    ctx = build_context()
    with ctx.sessions.begin() as session:
        SecretsService(ctx.settings, session).set_variable(
            name, value, ctx.clock.now(), description
        )
    typer.echo(f"set variable {name}")


@variables_app.command("get")
def get_variable(name: str) -> None:
    """Print a variable's value, as tasks see it (ORCH_VAR_<NAME> first, then the store)."""
    ctx = build_context()
    with ctx.sessions() as session:
        value = SecretsService(ctx.settings, session).get_variable(name)
    typer.echo(value)


@variables_app.command("list")
def list_variables(output: OutputOpt = OutputFormat.table) -> None:
    """Stored variables by name (values are not shown: `variables get NAME` prints one)."""
    ctx = build_context()
    with ctx.sessions() as session:
        rows = [
            {"name": v.name, "description": v.description, "updated_at": v.updated_at}
            for v in SecretsService(ctx.settings, session).list_variables()
        ]
    emit(rows, VARIABLE_COLUMNS, output)


@variables_app.command("delete")
def delete_variable(name: str) -> None:
    """Delete a stored variable."""
    ctx = build_context()
    with ctx.sessions.begin() as session:
        SecretsService(ctx.settings, session).delete_variable(name)
    typer.echo(f"deleted variable {name}")
