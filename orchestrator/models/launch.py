"""What the scheduler asks a container runtime to run, and what it hears back."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.models.secrets import mask_json
from orchestrator.models.specs import Mount, PullPolicy

#: Labels put on every container the orchestrator makes.
LABEL_MANAGED = "orch.managed"
LABEL_INSTANCE = "orch.instance"
LABEL_DAG = "orch.dag_id"
LABEL_RUN = "orch.run_id"
LABEL_TASK = "orch.task_id"
LABEL_MAP_INDEX = "orch.map_index"
LABEL_TRY = "orch.try_number"
LABEL_POKE = "orch.poke"  # sensors only: which poke of the try

#: Labels that say which attempt a container runs.
IDENTITY_LABELS = (LABEL_DAG, LABEL_RUN, LABEL_TASK, LABEL_MAP_INDEX, LABEL_TRY, LABEL_POKE)

#: Where the per-attempt output directory is mounted inside every task container.
OUTPUT_DIR_IN_CONTAINER = "/orch/output"
OUTPUT_FILE_NAME = "output.json"


class LaunchRequest(BaseModel):
    """A fully rendered container to create: nothing left to template.

    The runtime adds `no-new-privileges` to every container; `privileged` and `cap_add` are
    only set once the operator's policy allowed them (see `services.policy`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    image: str
    command: str | tuple[str, ...] | None = None
    entrypoint: str | tuple[str, ...] | None = None
    environment: dict[str, str] = {}
    mounts: tuple[Mount, ...] = ()
    working_dir: str | None = None
    user: str | None = None
    network: str | None = None
    nano_cpus: int | None = None
    mem_limit: int | None = None
    shm_size: int | None = None
    pids_limit: int | None = None
    privileged: bool = False
    cap_add: tuple[str, ...] = ()
    labels: dict[str, str] = {}
    pull_policy: PullPolicy = PullPolicy.IF_NOT_PRESENT
    #: Secret values in `environment` (or anywhere else): masked in the attempt's log. Never
    #: serialized.
    sensitive: frozenset[str] = Field(default_factory=frozenset, exclude=True, repr=False)

    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            yield name, mask_json(value, self.sensitive) if self.sensitive else value


class ContainerExit(BaseModel):
    """How a container ended."""

    model_config = ConfigDict(frozen=True)

    exit_code: int
    oom_killed: bool = False
    error: str | None = None  # the engine's own error (e.g. the command could not be started)
    finished_at: datetime | None = None


class ContainerInfo(BaseModel):
    """A container of ours as the engine reports it (used to reconcile after a restart)."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    labels: dict[str, str]
    status: Literal["created", "running", "exited", "other"]
    exit: ContainerExit | None = None


def check_same_attempt(request: LaunchRequest, existing_labels: dict[str, str]) -> None:
    """Raise UserError unless a container found under `request.name` runs the same attempt
    (an idempotent create after a crash); a stranger with that name is not adopted."""
    from orchestrator.errors import UserError

    mismatched = {
        key: existing_labels.get(key)
        for key in IDENTITY_LABELS
        if key in request.labels and existing_labels.get(key) != request.labels[key]
    }
    if mismatched:
        raise UserError(
            f"a container named {request.name!r} already exists but belongs to something "
            f"else (labels {mismatched}); remove it (docker rm -f {request.name})"
        )
