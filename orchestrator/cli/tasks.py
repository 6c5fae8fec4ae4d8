"""`orchestrator tasks ...`: test one task, render its templates, read its logs, mark it."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from typing import Annotated

import typer

from orchestrator.cli.clearing import mark_task_command
from orchestrator.cli.console import ConsoleListener
from orchestrator.cli.context import build_context, fail, parse_date
from orchestrator.cli.output import OutputFormat
from orchestrator.errors import TaskNotFound
from orchestrator.models.specs import DagSpec, TaskSpec
from orchestrator.models.states import TaskState
from orchestrator.services.dag_processing import process_folder
from orchestrator.services.dag_sync import find_dag
from orchestrator.services.logs import attempt_log, follow, follow_attempt
from orchestrator.services.policy import OperatorPolicy
from orchestrator.services.run_context import render_preview, run_info, run_outputs
from orchestrator.services.runs import parse_conf, preview_run_info
from orchestrator.services.secrets import secret_source
from orchestrator.services.testing import run_task_test
from orchestrator.settings import Settings
from orchestrator.store import runs as run_store

app = typer.Typer(help="Test, render and read the logs of single tasks.", no_args_is_help=True)
app.command("mark")(mark_task_command)

DateArg = Annotated[str | None, typer.Argument(help="logical date (default: now)")]
ConfOpt = Annotated[str | None, typer.Option("--conf", "-c", help="run conf, a JSON object")]


def _task(spec: DagSpec, task_id: str) -> TaskSpec:
    try:
        return spec.task(task_id)
    except KeyError:
        raise TaskNotFound(
            f"DAG {spec.dag_id!r} has no task {task_id!r} (tasks: {', '.join(spec.task_ids)})"
        ) from None


def _parse_without_recording(settings: Settings, dag_id: str) -> DagSpec:
    folder = settings.resolved_dags_folder
    results = process_folder(folder, settings.dag_file_timeout) if folder.is_dir() else []
    results = OperatorPolicy.from_settings(settings).apply_to_results(results)
    return find_dag(results, dag_id, folder)


@app.command("render")
def render(
    dag_id: str,
    task_id: str,
    logical_date: DateArg = None,
    conf: ConfOpt = None,
    run_id: Annotated[
        str | None, typer.Option(help="render for this existing run (its conf and outputs)")
    ] = None,
    output: Annotated[OutputFormat, typer.Option("--output", "-o")] = OutputFormat.table,
) -> None:
    """Print a task's rendered fields for a date (or an existing run). Writes nothing."""
    ctx = build_context()
    spec = _parse_without_recording(ctx.settings, dag_id)
    task = _task(spec, task_id)
    outputs: dict[str, object] = {}
    with ctx.sessions() as session:
        if run_id is not None:
            run = run_store.get_run(session, dag_id, run_id)
            info = run_info(spec, run)
            outputs = run_outputs(session, run)
        else:
            when = parse_date(logical_date) or ctx.clock.now()
            info = preview_run_info(spec, when, parse_conf(conf))
        secrets = secret_source(ctx.settings, session)
        rendered = render_preview(spec, task, info, outputs, secrets)
    data = rendered.model_dump(mode="json")  # secret values masked
    if output == OutputFormat.json:
        typer.echo(json.dumps(data, indent=2))
        return
    for name, value in data.items():
        typer.secho(f"# {name}", bold=True)
        typer.echo(value if isinstance(value, str) else json.dumps(value, indent=2))


@app.command("test")
def test(
    dag_id: str,
    task_id: str,
    logical_date: DateArg = None,
    conf: ConfOpt = None,
) -> None:
    """Run one task's container now, ignoring dependencies; its state is not recorded."""
    ctx = build_context()
    spec = _parse_without_recording(ctx.settings, dag_id)
    _task(spec, task_id)
    outcome = run_task_test(
        ctx.settings,
        ctx.runtime,
        ctx.clock,
        spec,
        task_id,
        when=parse_date(logical_date) or ctx.clock.now(),
        conf=parse_conf(conf),
        listener=ConsoleListener(),
    )
    ti = outcome.task_instances[0]
    typer.echo(
        f"\n{task_id}: {ti.state}" + (f" ({ti.state_detail})" if ti.state != "success" else "")
    )
    if ti.output_json is not None:
        typer.echo(f"output: {ti.output_json}")
    if ti.state != TaskState.SUCCESS.value:
        raise typer.Exit(1)


@app.command("logs")
def logs(
    dag_id: str,
    run_id: str,
    task_id: str,
    try_number: Annotated[
        int | None, typer.Option("--try", help="attempt number (default: latest)")
    ] = None,
    map_index: Annotated[int, typer.Option(help="mapped instance")] = -1,
    follow_: Annotated[
        bool, typer.Option("--follow", "-f", help="keep printing until the attempt ends")
    ] = False,
) -> None:
    """Print an attempt's log (kept after its container is gone)."""
    ctx = build_context()
    with ctx.sessions() as session:
        log = attempt_log(
            session, dag_id, run_id, task_id, map_index=map_index, try_number=try_number
        )
    if not follow_:
        if not log.path.exists():
            fail(f"no log file at {log.path}")
        chunks: Iterable[bytes] = follow(log.path, finished=lambda: True)
    else:
        chunks = follow_attempt(ctx.sessions, log)
    for chunk in chunks:
        sys.stdout.buffer.write(chunk)
        sys.stdout.flush()
