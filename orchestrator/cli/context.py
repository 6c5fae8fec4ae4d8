"""The CLI's composition root: settings → engine → sessions → runtime → services."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property

import pendulum
import typer
from pydantic import ValidationError
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.errors import OrchestratorError
from orchestrator.models.specs import DagSpec
from orchestrator.runtime.base import ContainerRuntime
from orchestrator.services.clock import Clock, SystemClock
from orchestrator.services.dag_processing import FileResult
from orchestrator.services.dag_sync import find_dag, sync_dags_folder
from orchestrator.services.policy import OperatorPolicy
from orchestrator.settings import Settings
from orchestrator.store.engine import make_session_factory, open_engine


@dataclass
class AppContext:
    """Everything a command needs, built on first use."""

    settings: Settings
    clock: Clock = field(default_factory=SystemClock)

    @cached_property
    def engine(self) -> Engine:
        """The store, migrated to the latest schema on first use."""
        return open_engine(self.settings.resolved_database_url)

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        return make_session_factory(self.engine)

    @cached_property
    def runtime(self) -> ContainerRuntime:
        from orchestrator.runtime.docker import DockerRuntime

        return DockerRuntime.from_url(self.settings.docker_url)

    def sync_dags(self) -> list[FileResult]:
        return sync_dags_folder(
            self.sessions,
            self.settings.resolved_dags_folder,
            timeout=self.settings.dag_file_timeout,
            now=self.clock.now(),
            paused_at_creation=self.settings.dags_are_paused_at_creation,
            policy=OperatorPolicy.from_settings(self.settings),
        )

    def load_dag(self, dag_id: str) -> DagSpec:
        """Parse the DAG folder (recording the result) and return one DAG."""
        return find_dag(self.sync_dags(), dag_id, self.settings.resolved_dags_folder)


def build_context() -> AppContext:
    try:
        settings = Settings()
    except ValidationError as exc:  # a bad ORCH_* variable
        raise OrchestratorError(f"bad settings in the environment (ORCH_*): {exc}") from exc
    return AppContext(settings)


def fail(message: str, code: int = 1) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def parse_date(text: str | None, *, what: str = "date") -> datetime | None:
    """Parse a date or datetime argument (`2026-01-31`, `2026-01-31T06:00:00+01:00`); naive
    values are UTC."""
    if text is None:
        return None
    try:
        parsed = pendulum.parse(text, tz="UTC")
    except Exception as exc:
        raise OrchestratorError(
            f"{what} {text!r} is not a date like 2026-01-31 or 2026-01-31T06:00:00+00:00"
        ) from exc
    if not isinstance(parsed, datetime):
        raise OrchestratorError(f"{what} {text!r} is not a date or datetime")
    return parsed
