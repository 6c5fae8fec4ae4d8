"""`orchestrator runs ...`: list and show runs."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from orchestrator.cli.context import build_context
from orchestrator.cli.output import OutputFormat, emit
from orchestrator.cli.rows import run_row, ti_row
from orchestrator.store import runs as run_store

app = typer.Typer(help="List and inspect DAG runs.", no_args_is_help=True)

OutputOpt = Annotated[OutputFormat, typer.Option("--output", "-o", help="table or json")]


@app.command("list")
def list_runs(
    dag_id: str,
    limit: Annotated[int, typer.Option(help="most recent N runs (0: all)")] = 0,
    output: OutputOpt = OutputFormat.table,
) -> None:
    """A DAG's runs, newest first."""
    ctx = build_context()
    with ctx.sessions() as session:
        rows = [run_row(r) for r in run_store.list_runs(session, dag_id, limit or None)]
    emit(rows, ["run_id", "state", "logical_date", "start_date", "end_date", "conf"], output)


@app.command("show")
def show(dag_id: str, run_id: str, output: OutputOpt = OutputFormat.table) -> None:
    """A run and its task instances."""
    ctx = build_context()
    with ctx.sessions() as session:
        run = run_store.get_run(session, dag_id, run_id)
        row = run_row(run)
        tis = [ti_row(ti) for ti in run_store.task_instances(session, run.id)]
    if output == OutputFormat.json:
        typer.echo(json.dumps({**row, "task_instances": tis}, indent=2))
        return
    typer.echo(f"run {run_id} of {dag_id}: {row['state']}")
    emit(
        tis,
        ["task_id", "map_index", "state", "try_number", "exit_code", "output", "state_detail"],
        output,
    )
