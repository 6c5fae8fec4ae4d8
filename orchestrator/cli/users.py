"""`orchestrator users ...`: who may use the web server and REST API, and their tokens."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from orchestrator.cli.context import build_context
from orchestrator.cli.output import OutputFormat, emit
from orchestrator.services import users as user_service
from orchestrator.store import users as user_store

app = typer.Typer(
    help="Users of the web server and REST API (roles: viewer, operator, admin).",
    no_args_is_help=True,
)

OutputOpt = Annotated[OutputFormat, typer.Option("--output", "-o", help="table or json")]


@app.command("create")
def create(
    username: str,
    role: Annotated[str, typer.Option("--role", "-r", help="viewer, operator or admin")],
    password: Annotated[
        str | None, typer.Option("--password", "-p", help="default: asked for (not echoed)")
    ] = None,
) -> None:
    """Create a user. viewer: reads; operator: also triggers, clears, marks, pauses;
    admin: also manages users, pools, connections and variables."""
    parsed = user_service.parse_role(role)
    if password is None:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    ctx = build_context()
    with ctx.sessions.begin() as session:
        user_service.create_user(session, username, password, parsed, ctx.clock.now())
    typer.echo(f"created user {username} ({parsed.value})")


@app.command("list")
def list_users(output: OutputOpt = OutputFormat.table) -> None:
    """Every user and their role."""
    ctx = build_context()
    with ctx.sessions() as session:
        rows = [
            {"username": u.username, "role": u.role, "created_at": u.created_at.isoformat()}
            for u in user_store.list_users(session)
        ]
    emit(rows, ["username", "role", "created_at"], output)
    if not rows and output == OutputFormat.table:
        typer.echo(
            "no users yet: create one with `orchestrator users create NAME --role admin`",
            err=True,
        )


@app.command("delete")
def delete(username: str) -> None:
    """Delete a user; their API tokens stop working and their sessions end."""
    ctx = build_context()
    with ctx.sessions.begin() as session:
        user_service.delete_user(session, username)
    typer.echo(f"deleted user {username}")


@app.command("token")
def token(username: str, output: OutputOpt = OutputFormat.table) -> None:
    """Issue an API token for the user (shown once; send it as `Authorization: Bearer ...`)."""
    ctx = build_context()
    with ctx.sessions.begin() as session:
        issued = user_service.issue_token(session, username, ctx.clock.now())
    if output == OutputFormat.json:
        typer.echo(json.dumps({"username": username, "token": issued}))
        return
    typer.echo(issued)
