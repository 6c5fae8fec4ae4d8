"""`orchestrator runs ...`: list, show, clear and mark runs; their SLA misses and notifications."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from orchestrator.cli.clearing import clear_command, mark_run_command
from orchestrator.cli.context import build_context
from orchestrator.cli.groups import collapse, groups_json, task_groups
from orchestrator.cli.notification_rows import notification_row, sla_miss_row
from orchestrator.cli.output import OutputFormat, emit
from orchestrator.cli.rows import run_row, ti_row
from orchestrator.models.specs import DagSpec
from orchestrator.store import notifications as notification_store
from orchestrator.store import runs as run_store
from orchestrator.store.tables import DagRow

app = typer.Typer(help="List, inspect, clear and mark DAG runs.", no_args_is_help=True)
app.command("clear")(clear_command)
app.command("mark")(mark_run_command)

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
def show(
    dag_id: str,
    run_id: str,
    output: OutputOpt = OutputFormat.table,
    expand: Annotated[
        bool, typer.Option("--expand", "-e", help="list every task of groups")
    ] = False,
) -> None:
    """A run and its task instances (task groups as one line with a summary unless --expand)."""
    ctx = build_context()
    with ctx.sessions() as session:
        run = run_store.get_run(session, dag_id, run_id)
        row = run_row(run)
        tis = [ti_row(ti) for ti in run_store.task_instances(session, run.id)]
        dag = session.get(DagRow, dag_id)
        spec = DagSpec.model_validate_json(dag.spec_json) if dag is not None else None
    if output == OutputFormat.json:
        states: dict[str, list[str]] = {}
        for ti in tis:
            states.setdefault(ti["task_id"], []).append(ti["state"])
        groups = groups_json(spec, states)
        typer.echo(json.dumps({**row, "task_instances": tis, "groups": groups}, indent=2))
        return
    detail = f"  ({row['state_detail']})" if row["state_detail"] else ""
    typer.echo(f"run {run_id} of {dag_id}: {row['state']}{detail}")
    if not expand:
        tis = collapse(tis, task_groups(spec), state_key="state")
    emit(
        tis,
        ["task_id", "map_index", "state", "try_number", "exit_code", "output", "state_detail"],
        output,
    )


@app.command("sla-misses")
def sla_misses(
    dag_id: Annotated[str | None, typer.Argument(help="only this DAG")] = None,
    output: OutputOpt = OutputFormat.table,
) -> None:
    """Task instances that had not succeeded by their SLA deadline, newest first."""
    ctx = build_context()
    with ctx.sessions() as session:
        rows = [sla_miss_row(r) for r in notification_store.sla_misses(session, dag_id)]
    emit(
        rows,
        [
            "dag_id",
            "run_id",
            "task_id",
            "map_index",
            "deadline",
            "detected_at",
            "state",
            "notified",
        ],
        output,
    )


@app.command("notifications")
def notifications(
    dag_id: str,
    run_id: Annotated[str | None, typer.Argument(help="only this run")] = None,
    output: OutputOpt = OutputFormat.table,
) -> None:
    """Notifications sent for a DAG's runs (or one run) and how each delivery went."""
    ctx = build_context()
    with ctx.sessions() as session:
        rows = [notification_row(r) for r in notification_store.deliveries(session, dag_id, run_id)]
    emit(
        rows,
        ["run_id", "event", "task_id", "try_number", "target", "status", "attempts", "error"],
        output,
    )
