"""`orchestrator dags ...`: list, show, trigger, test."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from orchestrator.cli.console import ConsoleListener
from orchestrator.cli.context import build_context, parse_date
from orchestrator.cli.groups import collapse, groups_json, task_groups
from orchestrator.cli.output import OutputFormat, emit
from orchestrator.cli.rows import dag_row, import_error_row, run_row, ti_row
from orchestrator.models.states import RunState
from orchestrator.services.runs import parse_conf, trigger_run
from orchestrator.services.testing import run_dag_test
from orchestrator.store import dags as dag_store

app = typer.Typer(help="List, inspect, trigger and test DAGs.", no_args_is_help=True)

OutputOpt = Annotated[OutputFormat, typer.Option("--output", "-o", help="table or json")]
ConfOpt = Annotated[str | None, typer.Option("--conf", "-c", help="run conf, a JSON object")]


@app.command("list")
def list_dags(
    output: OutputOpt = OutputFormat.table,
    show_all: Annotated[
        bool, typer.Option("--all", "-a", help="also inactive DAGs (file gone; history kept)")
    ] = False,
) -> None:
    """Parse the DAG folder and list its DAGs and import errors."""
    ctx = build_context()
    ctx.sync_dags()
    with ctx.sessions() as session:
        rows = dag_store.list_dag_rows(session, include_inactive=show_all)
        dags = [dag_row(r) for r in rows]
        errors = [import_error_row(r) for r in dag_store.list_import_errors(session)]
    if output == OutputFormat.json:
        typer.echo(json.dumps({"dags": dags, "import_errors": errors}, indent=2))
        return
    columns = ["dag_id", "schedule", "paused", "tasks", "fileloc"]
    emit(dags, [*columns[:3], "active", *columns[3:]] if show_all else columns, output)
    for err in errors:
        typer.secho(f"\nimport error in {err['fileloc']}:", fg=typer.colors.RED, err=True)
        typer.echo(err["error"].rstrip(), err=True)


@app.command("show")
def show(
    dag_id: str,
    output: OutputOpt = OutputFormat.table,
    expand: Annotated[
        bool, typer.Option("--expand", "-e", help="list every task of groups")
    ] = False,
) -> None:
    """Show a DAG's tasks and dependencies (task groups as one line unless --expand)."""
    ctx = build_context()
    spec = ctx.load_dag(dag_id)
    if output == OutputFormat.json:
        typer.echo(
            json.dumps({**spec.model_dump(mode="json"), "groups": groups_json(spec)}, indent=2)
        )
        return
    typer.echo(f"DAG {spec.dag_id}  ({spec.fileloc})")
    if spec.description:
        typer.echo(f"  {spec.description}")
    rows = [
        {
            "task_id": t.task_id,
            # tasks without a container show their kind instead
            "image": (t.image or f"({t.kind.value})") + (" (branch)" if t.branch else ""),
            "upstream": ", ".join(t.upstream_task_ids),
            "trigger_rule": t.trigger_rule.value,
            "retries": t.retries,
        }
        for t in spec.tasks
    ]
    if not expand:
        rows = collapse(
            rows,
            task_groups(spec),
            upstream_key="upstream",
            shared_keys=("image", "trigger_rule", "retries"),
        )
    emit(rows, ["task_id", "image", "upstream", "trigger_rule", "retries"], output)


@app.command("trigger")
def trigger(
    dag_id: str,
    conf: ConfOpt = None,
    run_id: Annotated[str | None, typer.Option(help="run id (default manual__<date>)")] = None,
    logical_date: Annotated[str | None, typer.Option("--date", help="logical date")] = None,
    output: OutputOpt = OutputFormat.table,
) -> None:
    """Queue a manual run for a running `orchestrator scheduler` to execute."""
    ctx = build_context()
    spec = ctx.load_dag(dag_id)
    now = ctx.clock.now()
    with ctx.sessions.begin() as session:
        run = trigger_run(
            session,
            spec,
            now=now,
            conf=parse_conf(conf),
            logical_date=parse_date(logical_date),
            run_id=run_id,
        )
        row = run_row(run)
    if output == OutputFormat.json:
        typer.echo(json.dumps(row, indent=2))
    else:
        typer.echo(f"queued run {row['run_id']} of {dag_id}")


@app.command("test")
def test(
    dag_id: str,
    logical_date: Annotated[
        str | None, typer.Option("--date", "-d", help="logical date (default: now)")
    ] = None,
    conf: ConfOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="hide task logs")] = False,
) -> None:
    """Run one run of a DAG now, in this process, against Docker; exit 1 if it fails."""
    ctx = build_context()
    spec = ctx.load_dag(dag_id)
    outcome = run_dag_test(
        ctx.settings,
        ctx.sessions,
        ctx.runtime,
        ctx.clock,
        spec,
        when=parse_date(logical_date) or ctx.clock.now(),
        conf=parse_conf(conf),
        listener=ConsoleListener(show_logs=not quiet),
        on_created=lambda run_id: typer.echo(f"testing DAG {dag_id}: run {run_id}"),
    )
    rows = [ti_row(ti) for ti in outcome.task_instances]
    typer.echo("")
    emit(
        rows,
        ["task_id", "map_index", "state", "try_number", "exit_code", "output", "state_detail"],
        OutputFormat.table,
    )
    if outcome.state != RunState.SUCCESS:
        raise typer.Exit(1)
