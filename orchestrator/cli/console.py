"""Showing a run's progress and its tasks' logs on the terminal (`dags test`, `tasks test`)."""

from __future__ import annotations

import threading
from datetime import datetime

import typer

from orchestrator.models.states import RunState, TaskState
from orchestrator.services.containers import AttemptKey

_COLOURS = {
    TaskState.SUCCESS: typer.colors.GREEN,
    TaskState.FAILED: typer.colors.RED,
    TaskState.UPSTREAM_FAILED: typer.colors.RED,
    TaskState.UP_FOR_RETRY: typer.colors.YELLOW,
    TaskState.UP_FOR_RESCHEDULE: typer.colors.CYAN,
    TaskState.SKIPPED: typer.colors.MAGENTA,
}


class ConsoleListener:
    """Prints state changes and whole log lines, prefixed by task (and try) id."""

    def __init__(self, show_logs: bool = True) -> None:
        self._show_logs = show_logs
        self._partial: dict[AttemptKey, bytes] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _label(key: AttemptKey) -> str:
        label = key.task_id if key.map_index < 0 else f"{key.task_id}[{key.map_index}]"
        return f"{label}#{key.try_number}" if key.try_number > 1 else label

    def on_state(self, key: AttemptKey, state: TaskState, detail: str | None) -> None:
        stamp = datetime.now().strftime("%H:%M:%S")
        text = f"{stamp} {self._label(key)}: {state.value}"
        if detail and state not in (TaskState.SCHEDULED, TaskState.QUEUED, TaskState.RUNNING):
            text += f" ({detail})"
        with self._lock:
            typer.secho(text, fg=_COLOURS.get(state), bold=state in _COLOURS)

    def on_log(self, key: AttemptKey, chunk: bytes) -> None:
        if not self._show_logs:
            return
        with self._lock:
            data = self._partial.pop(key, b"") + chunk
            *lines, rest = data.split(b"\n")
            if rest:
                self._partial[key] = rest
            for line in lines:
                typer.echo(f"  {self._label(key)} | {line.decode('utf-8', 'replace')}")

    def on_run(self, dag_id: str, run_id: str, state: RunState) -> None:
        with self._lock:
            for key, rest in list(self._partial.items()):
                if key.run_id == run_id and rest:
                    typer.echo(f"  {self._label(key)} | {rest.decode('utf-8', 'replace')}")
                    del self._partial[key]
            colour = {RunState.SUCCESS: typer.colors.GREEN, RunState.FAILED: typer.colors.RED}
            typer.secho(
                f"run {run_id} of {dag_id}: {state.value}",
                fg=colour.get(state),
                bold=state.is_finished,
            )
