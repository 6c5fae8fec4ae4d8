"""The one settings model. Loaded once at an entry point and passed down; nothing reads the
environment at import time."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything configurable, from `ORCH_*` environment variables."""

    model_config = SettingsConfigDict(env_prefix="ORCH_", extra="ignore")

    home: Path = Field(default_factory=lambda: Path("~/.orchestrator"))
    """Holds the SQLite database, task logs and per-attempt output directories."""
    dags_folder: Path | None = None
    """Where DAG files live; defaults to `<home>/dags`."""
    database_url: str | None = None
    """SQLAlchemy URL; defaults to SQLite (WAL) at `<home>/orchestrator.db`."""
    docker_url: str | None = None
    """Docker engine URL; defaults to the docker SDK's `from_env` (DOCKER_HOST etc.)."""
    parallelism: int = Field(default=32, ge=1)
    """Most task containers running at once, over all DAGs."""
    instance_name: str = Field(default="orch", pattern=r"^[a-z0-9][a-z0-9-]{0,20}$")
    """Prefix of container names and the value of the `orch.instance` label: one engine may
    serve several orchestrator installations without them touching each other's containers."""
    extra_labels: dict[str, str] = Field(default_factory=dict)
    """Labels added to every container, volume and network the orchestrator creates."""
    dag_file_timeout: float = Field(default=30.0, gt=0)
    """Seconds a DAG file may take to import before it is recorded as an import error."""
    dag_reparse_interval: float = Field(default=30.0, gt=0)
    """Seconds between full re-parses of the DAG folder by the scheduler (a safety net: changed
    files are noticed sooner, see `dag_watch_interval`)."""
    dag_watch_interval: float = Field(default=1.0, gt=0)
    """Seconds between scans of the DAG folder for new, changed or deleted files (by their
    modification time, size and inode); only changed files are parsed again."""
    stop_grace_period: float = Field(default=10.0, ge=0)
    """Seconds between SIGTERM and SIGKILL when a task times out or is stopped."""
    max_output_bytes: int = Field(default=1024 * 1024, gt=0)
    """Largest output file a task may write."""
    docker_workers: int = Field(default=16, ge=1)
    """Threads making blocking Docker API calls (create, start, inspect, remove)."""
    reconcile_interval: float = Field(default=60.0, gt=0)
    """Seconds between reconciliations of the store with the container engine (adopting,
    harvesting, removing orphans, failing lost attempts); one always runs at start-up."""
    trigger_poll_interval: float = Field(default=1.0, gt=0)
    """Seconds between checks for runs queued by other processes (`dags trigger`)."""
    max_map_length: int = Field(default=1024, ge=1)
    """Most instances one mapped task may expand into; more fail the task."""
    allow_command_notifiers: bool = True
    """Whether `Command` notifiers may run programs on the scheduler's host (as its user). Turn
    off where DAG authors should not run code there; such notifications are then refused."""
    notification_workers: int = Field(default=4, ge=1)
    """Threads delivering notifications (webhooks, commands, container hooks)."""
    dags_are_paused_at_creation: bool = False
    """Whether a DAG seen for the first time starts paused (no scheduled runs until
    `orchestrator dags unpause`), as Airflow's setting of the same name."""
    max_runs_created_per_pass: int = Field(default=100, ge=1)
    """Most scheduled runs one scheduler pass creates per DAG: a long catch-up (years of
    hourly runs) is spread over successive passes instead of blocking one."""

    @field_validator("home", "dags_folder", mode="after")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @property
    def resolved_dags_folder(self) -> Path:
        return self.dags_folder if self.dags_folder is not None else self.home / "dags"

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.home / 'orchestrator.db'}"

    @property
    def logs_folder(self) -> Path:
        return self.home / "logs"

    @property
    def outputs_folder(self) -> Path:
        return self.home / "outputs"
