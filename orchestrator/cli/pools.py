"""`orchestrator pools ...`: set, list and delete pools."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from orchestrator.cli.context import build_context
from orchestrator.cli.output import OutputFormat, emit
from orchestrator.services import pools as pool_service

app = typer.Typer(
    help="Pools: named numbers of slots that limit how many tasks run at once.",
    no_args_is_help=True,
)

OutputOpt = Annotated[OutputFormat, typer.Option("--output", "-o", help="table or json")]
COLUMNS = ["pool", "slots", "running", "queued", "open", "description"]


def _row(pool: pool_service.PoolUse) -> dict[str, Any]:
    return {
        "pool": pool.name,
        "slots": pool.slots,
        "running": pool.running,
        "queued": pool.queued,
        "open": pool.open,
        "description": pool.description,
    }


@app.command("set")
def set_pool(
    name: str,
    slots: int,
    description: Annotated[str | None, typer.Option(help="what the pool is for")] = None,
    output: OutputOpt = OutputFormat.table,
) -> None:
    """Create a pool with SLOTS slots, or resize an existing one."""
    ctx = build_context()
    with ctx.sessions.begin() as session:
        row = _row(pool_service.set_pool(session, name, slots, description))
    if output == OutputFormat.json:
        typer.echo(json.dumps(row, indent=2))
        return
    emit([row], COLUMNS, output)


@app.command("list")
def list_pools(output: OutputOpt = OutputFormat.table) -> None:
    """Every pool with its slots: held by running and queued task instances, and open."""
    ctx = build_context()
    with ctx.sessions.begin() as session:
        rows = [_row(p) for p in pool_service.list_pools(session)]
    emit(rows, COLUMNS, output)


@app.command("delete")
def delete_pool(name: str, output: OutputOpt = OutputFormat.table) -> None:
    """Delete a pool no task instance is using (default_pool cannot be deleted)."""
    ctx = build_context()
    with ctx.sessions.begin() as session:
        pool_service.delete_pool(session, name)
    if output == OutputFormat.json:
        typer.echo(json.dumps({"deleted": name}))
        return
    typer.echo(f"deleted pool {name}")
