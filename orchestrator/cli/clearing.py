"""`orchestrator runs clear`, `runs mark` and `tasks mark`: re-run or settle tasks by hand.

The commands only write the store; a running `orchestrator scheduler` picks the changes up
on its next pass (re-running cleared tasks, stopping containers of running ones).
"""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from typing import Annotated

import typer

from orchestrator.cli.context import build_context
from orchestrator.cli.output import OutputFormat
from orchestrator.models.states import TaskState
from orchestrator.services.clearing import Changes, clear, mark_run, mark_task, plan_clear

RunOpt = Annotated[str, typer.Option("--run", "-r", help="the run id (see `runs list`)")]
OutputOpt = Annotated[OutputFormat, typer.Option("--output", "-o", help="table or json")]


class MarkState(StrEnum):
    """States a task or run may be marked with."""

    success = "success"
    failed = "failed"


StateOpt = Annotated[MarkState, typer.Option("--state", "-s", help="success or failed")]


def clear_command(
    dag_id: str,
    run_id: RunOpt,
    task: Annotated[
        list[str] | None,
        typer.Option("--task", "-t", help="task to clear (repeatable; default all)"),
    ] = None,
    downstream: Annotated[
        bool, typer.Option("--downstream", "-d", help="also clear every downstream task")
    ] = False,
    failed_only: Annotated[
        bool, typer.Option("--failed-only", "-f", help="only failed and upstream_failed tasks")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")] = False,
    output: OutputOpt = OutputFormat.table,
) -> None:
    """Clear tasks of a run so they run again (try number + 1; history kept)."""
    ctx = build_context()
    with ctx.sessions() as session:
        planned = plan_clear(
            session, dag_id, run_id, task or None, downstream=downstream, failed_only=failed_only
        )
        preview = [(ti.task_id, ti.map_index, ti.state, ti.try_number) for ti in planned]
    if not preview:
        typer.echo(f"nothing to clear in run {run_id} of {dag_id}")
        return
    if output == OutputFormat.table:
        typer.echo(f"will clear {len(preview)} task instance(s) of run {run_id} of {dag_id}:")
        for task_id, map_index, state, try_number in preview:
            typer.echo(f"  {_label(task_id, map_index)}  ({state}, try {try_number})")
    if not yes and sys.stdin.isatty():
        typer.confirm("Clear them?", abort=True)
    with ctx.sessions.begin() as session:
        changes = clear(
            session,
            dag_id,
            run_id,
            task or None,
            downstream=downstream,
            failed_only=failed_only,
            now=ctx.clock.now(),
            by="the CLI",
        )
    _report(changes, output, "cleared")


def mark_run_command(
    dag_id: str, run_id: RunOpt, state: StateOpt, output: OutputOpt = OutputFormat.table
) -> None:
    """Mark a run success (its unfinished tasks succeed) or failed (they fail or skip)."""
    ctx = build_context()
    with ctx.sessions.begin() as session:
        changes = mark_run(
            session, dag_id, run_id, TaskState(state.value), now=ctx.clock.now(), by="the CLI"
        )
    _report(changes, output, f"marked {state.value}")


def mark_task_command(
    dag_id: str,
    task_id: str,
    run_id: RunOpt,
    state: StateOpt,
    map_index: Annotated[int, typer.Option(help="mapped instance")] = -1,
    output: OutputOpt = OutputFormat.table,
) -> None:
    """Mark one task of a run success or failed; its downstream tasks then follow their rules."""
    ctx = build_context()
    with ctx.sessions.begin() as session:
        changes = mark_task(
            session,
            dag_id,
            run_id,
            task_id,
            TaskState(state.value),
            now=ctx.clock.now(),
            by="the CLI",
            map_index=map_index,
        )
    _report(changes, output, f"marked {state.value}")


def _report(changes: Changes, output: OutputFormat, verb: str) -> None:
    if output == OutputFormat.json:
        data = {
            "dag_id": changes.dag_id,
            "run_id": changes.run_id,
            "run_state_before": changes.run_state_before,
            "run_state": changes.run_state,
            "tasks": [
                {
                    "task_id": c.task_id,
                    "map_index": c.map_index,
                    "from_state": c.from_state,
                    "to_state": c.to_state,
                    "try_number": c.try_number,
                    "stopping": c.stopping,
                }
                for c in changes.tasks
            ],
        }
        typer.echo(json.dumps(data, indent=2))
        return
    if not changes.tasks:
        typer.echo(f"nothing changed in run {changes.run_id} of {changes.dag_id}")
    for c in changes.tasks:
        if c.stopping:
            typer.echo(
                f"{verb} {_label(c.task_id, c.map_index)}: its container is being stopped;"
                f" it becomes {c.to_state} once stopped (needs a running scheduler)"
            )
        else:
            typer.echo(f"{verb} {_label(c.task_id, c.map_index)}: {c.from_state} -> {c.to_state}")
    if changes.run_state != changes.run_state_before:
        typer.echo(f"run {changes.run_id}: {changes.run_state_before} -> {changes.run_state}")


def _label(task_id: str, map_index: int) -> str:
    return task_id if map_index < 0 else f"{task_id}[{map_index}]"
