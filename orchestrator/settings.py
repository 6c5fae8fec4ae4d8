"""The one settings model. Loaded once at an entry point and passed down; nothing reads the
environment at import time."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from orchestrator.models.specs import capability_name, parse_size


def _list_setting(value: Any) -> Any:
    """A list from the environment: JSON (`["a", "b"]`) or comma-separated (`a,b`)."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        return json.loads(text)
    return [item.strip() for item in text.split(",") if item.strip()]


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
    fernet_key: SecretStr | None = None
    """Key encrypting stored connections and variables (`orchestrator secrets generate-key`
    makes one). Several keys separated by commas: the first encrypts, any of them decrypts
    (for rotating keys)."""

    allowed_mount_roots: Annotated[list[Path] | None, NoDecode] = None
    """Host folders whose contents tasks may bind-mount (JSON list or comma-separated); a
    bind source must resolve (after `..` and symlinks) to one of them or below. Unset: `home`
    and the folder holding the DAGs folder. Named volumes and tmpfs are always allowed."""
    allow_privileged: bool = False
    """Whether a task may run a privileged container (`privileged=True`)."""
    allow_host_network: bool = False
    """Whether a task may use the host's network stack (`network="host"`)."""
    allowed_capabilities: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Linux capabilities a task may add with `cap_add` (JSON list or comma-separated)."""
    allow_docker_socket: bool = False
    """Whether a task may bind-mount the Docker socket (or a folder holding it): that gives
    the container control of the engine, and so of the host."""
    default_memory: int | None = 2 * 1024**3
    """Memory limit of a task that sets no `memory` (bytes, or `512m`, `2g`; `0` or `none`:
    no limit). Swap is capped at the same value."""
    default_cpus: float | None = 1.0
    """CPU limit of a task that sets no `cpus` (`0` or `none`: no limit)."""
    default_pids_limit: int | None = 1024
    """Most processes a task's container may hold when the task sets no `pids_limit` (`0` or
    `none`: no limit); stops a fork bomb from exhausting the host."""

    web_host: str = "127.0.0.1"
    """Address `orchestrator web` listens on (`--host` overrides it)."""
    web_port: int = Field(default=8080, ge=1, le=65535)
    """Port `orchestrator web` listens on (`--port` overrides it)."""
    web_auth: bool = True
    """Whether the web server asks who you are. `off` lets anyone who reaches it do anything
    (every page then says so); meant for a server bound to localhost on a one-person machine."""
    web_secret_key: SecretStr | None = None
    """Key signing the web server's session cookies. Unset: one is generated on first start
    and kept in `<home>/web-secret-key`, so restarts keep sessions."""
    scheduler_stale_after: float = Field(default=180.0, gt=0)
    """Seconds without a scheduler heartbeat after which `/health` reports it unhealthy and
    `orchestrator scheduler status` not running."""
    scheduler_health_timeout: float = Field(default=30.0, ge=2)
    """Seconds without a heartbeat in the database after which a scheduler sharing a
    PostgreSQL store with others counts as dead: the others take its runs over (adopting its
    containers). A scheduler on the same machine sees at once that its process is gone.
    Airflow's `scheduler_health_check_threshold`."""

    @field_validator("allowed_mount_roots", mode="before")
    @classmethod
    def _roots_list(cls, value: Any) -> Any:
        return _list_setting(value)

    @field_validator("allowed_mount_roots", mode="after")
    @classmethod
    def _roots_absolute(cls, value: list[Path] | None) -> list[Path] | None:
        if value is None:
            return None
        roots = [root.expanduser() for root in value]
        for root in roots:
            if not root.is_absolute():
                raise ValueError(f"mount root {str(root)!r} must be an absolute path")
        return roots

    @field_validator("allowed_capabilities", mode="before")
    @classmethod
    def _capabilities_list(cls, value: Any) -> Any:
        return _list_setting(value)

    @field_validator("allowed_capabilities", mode="after")
    @classmethod
    def _capability_names(cls, value: list[str]) -> list[str]:
        return [capability_name(name) for name in value]

    @field_validator("default_memory", "default_cpus", "default_pids_limit", mode="before")
    @classmethod
    def _no_limit(cls, value: Any, info: ValidationInfo) -> Any:
        """`0`, `none` or empty: no limit; a memory size may be written as `512m`, `2g`."""
        if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none")):
            return None
        if isinstance(value, (int, float, str)) and not isinstance(value, bool):
            try:
                if float(value) == 0:
                    return None
            except ValueError:
                pass
        if info.field_name == "default_memory":
            return parse_size(value, "ORCH_DEFAULT_MEMORY")
        return value

    @field_validator("default_cpus", "default_pids_limit", mode="after")
    @classmethod
    def _positive_limit(cls, value: float | None) -> float | None:
        if value is not None and value <= 0:
            raise ValueError(f"must be positive (or 0/none: no limit), got {value}")
        return value

    @field_validator("home", "dags_folder", mode="after")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @property
    def resolved_dags_folder(self) -> Path:
        return self.dags_folder if self.dags_folder is not None else self.home / "dags"

    @property
    def resolved_mount_roots(self) -> list[Path]:
        """The folders bind sources must lie in: the setting, or `home` and the DAGs folder's
        parent."""
        if self.allowed_mount_roots is not None:
            return list(self.allowed_mount_roots)
        return [self.home, self.resolved_dags_folder.parent]

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
