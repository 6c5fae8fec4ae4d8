"""`orchestrator dags ...`: list, show, trigger, test, pause, unpause, backfill."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from orchestrator.cli.console import ConsoleListener
from orchestrator.cli.context import build_context, fail, parse_date
from orchestrator.cli.groups import collapse, groups_json, task_groups
from orchestrator.cli.output import OutputFormat, emit
from orchestrator.cli.rows import dag_row, import_error_row, run_row, ti_row
from orchestrator.models.specs import DagSpec
from orchestrator.models.states import RunState
from orchestrator.services.backfill import backfill as queue_backfill
from orchestrator.services.backfill import parse_dag_date, wait_for_runs
from orchestrator.services.run_planner import set_paused, upcoming_run, upcoming_runs
from orchestrator.services.runs import parse_conf, trigger_run
from orchestrator.services.testing import run_dag_test
from orchestrator.store import dags as dag_store

app = typer.Typer(
    help="List, inspect, trigger, test, pause and backfill DAGs.", no_args_is_help=True
)

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
        upcoming = upcoming_runs(session, rows, ctx.clock.now())
        dags = [dag_row(r, upcoming[r.dag_id]) for r in rows]
        errors = [import_error_row(r) for r in dag_store.list_import_errors(session)]
    if output == OutputFormat.json:
        typer.echo(json.dumps({"dags": dags, "import_errors": errors}, indent=2))
        return
    columns = ["dag_id", "schedule", "paused", "next_run", "tasks", "fileloc"]
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
    with ctx.sessions() as session:
        paused = dag_store.get_dag_row(session, dag_id).is_paused
        upcoming = upcoming_run(session, spec, ctx.clock.now())
    next_run = [i.isoformat() for i in upcoming] if upcoming else None
    if output == OutputFormat.json:
        shown = {**spec.model_dump(mode="json"), "groups": groups_json(spec)}
        typer.echo(json.dumps({**shown, "paused": paused, "next_run": next_run}, indent=2))
        return
    typer.echo(f"DAG {spec.dag_id}  ({spec.fileloc})")
    if spec.description:
        typer.echo(f"  {spec.description}")
    for line in _schedule_lines(spec, paused, next_run):
        typer.echo(f"  {line}")
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


def _schedule_lines(spec: DagSpec, paused: bool, next_run: list[str] | None) -> list[str]:
    """What `dags show` says about when the DAG runs."""
    if spec.schedule is None:  # manual runs only: nothing to say unless paused
        return ["paused: yes (its queued runs wait)"] if paused else []
    every = getattr(spec.schedule, "expression", None) or str(getattr(spec.schedule, "every", ""))
    start = spec.start_date.isoformat() if spec.start_date else "-"
    end = f", end {spec.end_date.isoformat()}" if spec.end_date else ""
    lines = [
        f"schedule: {every} ({spec.timezone}), start {start}{end}, catchup"
        f" {'on' if spec.catchup else 'off'}, max_active_runs {spec.max_active_runs}"
        + (
            f", dagrun_timeout {spec.dagrun_timeout.total_seconds():g}s"
            if spec.dagrun_timeout
            else ""
        ),
        "paused: yes (no new scheduled runs)" if paused else "paused: no",
    ]
    if next_run:
        lines.append(f"next run: {next_run[0]}  (data interval {next_run[0]} to {next_run[1]})")
    return lines


@app.command("pause")
def pause(dag_id: str) -> None:
    """Pause a DAG: no new scheduled runs, queued runs wait; running runs finish."""
    _set_paused(dag_id, True)


@app.command("unpause")
def unpause(dag_id: str) -> None:
    """Unpause a DAG: missed intervals get runs as its catchup setting says."""
    _set_paused(dag_id, False)


def _set_paused(dag_id: str, paused: bool) -> None:
    ctx = build_context()
    ctx.sync_dags()
    with ctx.sessions.begin() as session:
        set_paused(session, dag_id, paused)
    typer.echo(f"DAG {dag_id} {'paused' if paused else 'unpaused'}")


@app.command("backfill")
def backfill(
    dag_id: str,
    start: Annotated[str, typer.Option("--start", "-s", help="first logical date (inclusive)")],
    end: Annotated[str, typer.Option("--end", "-e", help="last logical date (inclusive)")],
    rerun: Annotated[
        bool, typer.Option("--rerun", help="clear and rerun intervals that already have a run")
    ] = False,
    conf: ConfOpt = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="wait for the runs to finish; exit 1 if any failed")
    ] = False,
    timeout: Annotated[
        float | None, typer.Option("--timeout", help="seconds --wait waits at most")
    ] = None,
    output: OutputOpt = OutputFormat.table,
) -> None:
    """Queue runs for every schedule interval with a logical date in [--start, --end].

    Dates without an offset are in the DAG's timezone; an --end date without a time
    includes that whole day. A running `orchestrator scheduler`
    executes the runs, oldest first, within max_active_runs (also when the DAG is paused).
    """
    ctx = build_context()
    spec = ctx.load_dag(dag_id)
    first = parse_dag_date(start, spec, "--start")
    last = parse_dag_date(end, spec, "--end", end_of_day=True)
    with ctx.sessions.begin() as session:
        report = queue_backfill(
            session,
            spec,
            start=first,
            end=last,
            now=ctx.clock.now(),
            rerun=rerun,
            conf=parse_conf(conf),
        )
    if output == OutputFormat.json and not wait:
        summary = {"created": report.created, "skipped": report.skipped, "rerun": report.rerun}
        typer.echo(json.dumps(summary, indent=2))
        return
    for label, run_ids in (
        ("created", report.created),
        ("skipped (a run exists; --rerun to run it again)", report.skipped),
        ("rerun (cleared)", report.rerun),
    ):
        for run_id in run_ids:
            typer.echo(f"{label}: {run_id}")
    typer.echo(
        f"backfill of {dag_id}: {len(report.created)} created, {len(report.skipped)} skipped,"
        f" {len(report.rerun)} rerun"
    )
    if not wait or not report.queued:
        return
    states = wait_for_runs(
        ctx.sessions,
        dag_id,
        report.queued,
        timeout=timeout,
        on_finished=lambda run_id, state: typer.echo(f"run {run_id}: {state.value}"),
    )
    if states is None:
        fail(f"runs of {dag_id} still not finished after {timeout:g}s (is a scheduler running?)")
        return
    failed = sorted(run_id for run_id, state in states.items() if state != RunState.SUCCESS)
    if failed:
        fail(f"{len(failed)} of {len(states)} backfill run(s) failed: {', '.join(failed)}")
