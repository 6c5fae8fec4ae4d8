"""The container contract: names, labels, environment, the output mount and the output file."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.models.json_values import BadJson, loads_strict
from orchestrator.models.launch import (
    LABEL_DAG,
    LABEL_INSTANCE,
    LABEL_MANAGED,
    LABEL_MAP_INDEX,
    LABEL_POKE,
    LABEL_RUN,
    LABEL_TASK,
    LABEL_TRY,
    OUTPUT_DIR_IN_CONTAINER,
    OUTPUT_FILE_NAME,
    LaunchRequest,
)
from orchestrator.models.run_info import RunInfo
from orchestrator.models.specs import Mount, TaskSpec
from orchestrator.services.policy import OperatorPolicy
from orchestrator.settings import Settings
from orchestrator.templating import RenderedTask

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_MAX_NAME = 200
_NO_FILE = frozenset({errno.ENOENT, errno.ENOTDIR})  # no output file to read


@dataclass(frozen=True)
class AttemptKey:
    """Identifies one attempt of one task instance (and, for a sensor, one poke of it)."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    try_number: int
    poke: int = 0  # a sensor's poke within the try (1, 2, ...); 0 for other tasks

    def slug(self) -> str:
        """A filesystem- and Docker-safe rendering of the key (deterministic)."""
        parts = [self.dag_id, self.task_id, _UNSAFE.sub("_", self.run_id)]
        if self.map_index >= 0:
            parts.append(f"m{self.map_index}")
        parts.append(f"t{self.try_number}")
        if self.poke:
            parts.append(f"p{self.poke}")
        return "-".join(parts)


def container_name(instance: str, key: AttemptKey) -> str:
    """Deterministic per attempt: a restarted scheduler finds the same container again."""
    name = f"{instance}-{key.slug()}"
    if len(name) > _MAX_NAME:
        digest = hashlib.sha256(name.encode()).hexdigest()[:12]
        name = f"{name[: _MAX_NAME - 13]}-{digest}"
    return name


def instance_labels(settings: Settings) -> dict[str, str]:
    """Labels that mark a container as belonging to this orchestrator installation."""
    return {LABEL_MANAGED: "true", LABEL_INSTANCE: settings.instance_name}


def container_labels(settings: Settings, key: AttemptKey) -> dict[str, str]:
    poke = {LABEL_POKE: str(key.poke)} if key.poke else {}
    return {
        **settings.extra_labels,
        **instance_labels(settings),
        LABEL_DAG: key.dag_id,
        LABEL_RUN: key.run_id,
        LABEL_TASK: key.task_id,
        LABEL_MAP_INDEX: str(key.map_index),
        LABEL_TRY: str(key.try_number),
        **poke,
    }


def _attempt_dir(root: Path, key: AttemptKey) -> str:
    # one string, parsed into a Path once by the callers: joining part by part parses each
    run = _UNSAFE.sub("_", key.run_id)
    path = f"{root}/dag_id={key.dag_id}/run_id={run}/task_id={key.task_id}"
    if key.map_index >= 0:
        path += f"/map_index={key.map_index}"
    return path


def attempt_dir(root: Path, key: AttemptKey) -> Path:
    """Airflow-style per-attempt path under `root` (used for logs and outputs)."""
    return Path(_attempt_dir(root, key))


def log_path(settings: Settings, key: AttemptKey) -> Path:
    return Path(f"{_attempt_dir(settings.logs_folder, key)}/attempt={key.try_number}.log")


def output_dir(settings: Settings, key: AttemptKey) -> Path:
    """A try's output folder, directly under `outputs/` (a sensor's pokes share their try's):
    one `mkdir` to make and one `rmdir` to remove, with no per-task folders left behind. The
    name is readable and unique (a digest of the key: slugs of different keys may agree)."""
    exact = f"{key.dag_id}\0{key.run_id}\0{key.task_id}\0{key.map_index}\0{key.try_number}"
    digest = hashlib.sha256(exact.encode()).hexdigest()[:12]
    mapped = f"-m{key.map_index}" if key.map_index >= 0 else ""
    slug = f"{key.dag_id}-{key.task_id}-{_UNSAFE.sub('_', key.run_id)}{mapped}-t{key.try_number}"
    return Path(f"{settings.outputs_folder}/{slug[: _MAX_NAME - 13]}-{digest}")


def legacy_output_dir(settings: Settings, key: AttemptKey) -> Path:
    """Where attempts launched by versions before the flat layout (`output_dir`) have their
    output folder; read and removed for attempts still running across an upgrade."""
    return Path(f"{_attempt_dir(settings.outputs_folder, key)}/attempt={key.try_number}")


def contract_environment(key: AttemptKey, run: RunInfo) -> dict[str, str]:
    """The `ORCH_*` variables every task container sees (they win over the user's); a
    sensor's containers also see `ORCH_POKE_NUMBER`."""
    poke = {"ORCH_POKE_NUMBER": str(key.poke)} if key.poke else {}
    return {
        "ORCH_DAG_ID": key.dag_id,
        "ORCH_TASK_ID": key.task_id,
        "ORCH_RUN_ID": key.run_id,
        "ORCH_LOGICAL_DATE": run.logical_date.isoformat(),
        "ORCH_DATA_INTERVAL_START": run.data_interval_start.isoformat(),
        "ORCH_DATA_INTERVAL_END": run.data_interval_end.isoformat(),
        "ORCH_TRY_NUMBER": str(key.try_number),
        "ORCH_MAP_INDEX": str(key.map_index),
        "ORCH_OUTPUT_PATH": f"{OUTPUT_DIR_IN_CONTAINER}/{OUTPUT_FILE_NAME}",
        **poke,
    }


def prepare_output_dir(path: Path) -> None:
    """An empty directory any container user may write into."""
    try:
        os.mkdir(path)
    except FileNotFoundError:  # its parents are new too
        os.makedirs(path, exist_ok=True)
    except FileExistsError:  # an attempt launched again: its output must be its own
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(path, OUTPUT_FILE_NAME))
    os.chmod(path, 0o777)


def remove_attempt_output(settings: Settings, key: AttemptKey) -> None:
    """Remove a try's output folder once its output is read (or its folder in the layout
    before the flat one, for an attempt launched before an upgrade); never fails."""
    if not remove_output_dir(output_dir(settings, key)):
        remove_output_dir(legacy_output_dir(settings, key))


def remove_output_dir(path: Path) -> bool:
    """Remove an attempt's output directory once its output is read (whatever the task left
    in it too); never fails. False when there was none."""
    try:
        os.rmdir(path)  # mostly empty, or holding the output file only
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.unlink(os.path.join(path, OUTPUT_FILE_NAME))
            os.rmdir(path)
        except OSError:
            shutil.rmtree(path, ignore_errors=True)
    return True


def build_launch_request(
    settings: Settings,
    task: TaskSpec,
    rendered: RenderedTask,
    key: AttemptKey,
    run: RunInfo,
    host_output_dir: Path,
    policy: OperatorPolicy | None = None,
) -> LaunchRequest:
    """Everything Docker needs for one attempt, nothing left to template; the task's secret
    values included (and named in `sensitive`, to be masked in its log). `policy`: the
    operator's, as the settings describe it (a caller that launches many passes it in).

    Limits the task leaves unset take the operator's defaults (`ORCH_DEFAULT_MEMORY`,
    `ORCH_DEFAULT_CPUS`, `ORCH_DEFAULT_PIDS_LIMIT`); the user is the image's unless the task
    sets one. Raises PolicyViolation (naming the DAG and task) when the rendered request asks
    for more than the operator's policy allows, e.g. a templated mount source outside the
    allowed mount roots.
    """
    env = {**rendered.environment, **rendered.secret_env, **contract_environment(key, run)}
    output_mount = Mount(type="bind", source=str(host_output_dir), target=OUTPUT_DIR_IN_CONTAINER)
    mounts = (*rendered.mounts, output_mount)
    cpus = task.cpus if task.cpus is not None else settings.default_cpus
    request = LaunchRequest(
        name=container_name(settings.instance_name, key),
        image=rendered.image,
        command=rendered.command,
        entrypoint=rendered.entrypoint,
        environment=env,
        mounts=mounts,
        working_dir=rendered.working_dir,
        user=task.user,
        network=task.network,
        nano_cpus=int(cpus * 1e9) if cpus else None,
        mem_limit=task.memory if task.memory is not None else settings.default_memory,
        shm_size=task.shm_size,
        pids_limit=task.pids_limit if task.pids_limit is not None else settings.default_pids_limit,
        privileged=task.privileged,
        cap_add=task.cap_add,
        labels=container_labels(settings, key),
        pull_policy=task.pull_policy,
        sensitive=rendered.sensitive,
    )
    where = f"DAG '{key.dag_id}', task '{key.task_id}'"
    if key.map_index >= 0:
        where += f" (map index {key.map_index})"
    policy = policy or OperatorPolicy.from_settings(settings)
    policy.check_request(request, where, trusted=(output_mount,))
    return request


@dataclass(frozen=True)
class OutputRead:
    """The output file's content: `json_text` is None when the task wrote none."""

    json_text: str | None = None
    error: str | None = None

    def value(self) -> Any:
        return None if self.json_text is None else json.loads(self.json_text)


def read_output(directory: Path, max_bytes: int) -> OutputRead:
    """Read and check the output file a task may have written.

    A symbolic link is not followed: the task made it inside its container, but the
    scheduler would resolve it on the host, so it could point the scheduler at any host
    file it may read (an error names it instead)."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW  # a FIFO must not hang the harvest
    try:
        fd = os.open(os.path.join(directory, OUTPUT_FILE_NAME), flags)
    except OSError as exc:
        if exc.errno in _NO_FILE:
            return OutputRead()
        if exc.errno == errno.ELOOP:
            return OutputRead(
                error="output file is a symbolic link; it is not followed (write a regular file)"
            )
        raise
    try:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            return OutputRead()
        size = status.st_size
        if size > max_bytes:
            return OutputRead(
                error=f"output file is {size} bytes, over the {max_bytes}-byte limit"
                " (ORCH_MAX_OUTPUT_BYTES); pass large data through a volume and output its path"
            )
        with open(fd, "rb", closefd=False) as handle:
            raw = handle.read()
    finally:
        os.close(fd)
    if not raw.strip():
        return OutputRead()
    try:
        value = loads_strict(raw)
    except BadJson as exc:
        preview = raw[:80].decode("utf-8", "replace")
        return OutputRead(
            error=f"output file is not a single JSON value ({exc}); it starts with {preview!r}"
        )
    return OutputRead(json_text=json.dumps(value, separators=(",", ":"), sort_keys=False))


def read_attempt_output(settings: Settings, key: AttemptKey, legacy: bool = True) -> OutputRead:
    """The output a try wrote (see `read_output`). With `legacy` (see `prune_legacy_outputs`)
    it is looked for in the folder of the layout before the flat one too when the flat folder
    holds none (an attempt launched before an upgrade)."""
    found = read_output(output_dir(settings, key), settings.max_output_bytes)
    if legacy and found.json_text is None and found.error is None:
        return read_output(legacy_output_dir(settings, key), settings.max_output_bytes)
    return found


def prune_legacy_outputs(settings: Settings) -> bool:
    """Remove the empty folders left in `outputs/` by the layout before the flat one; True if
    attempt folders of that layout remain (attempts launched before an upgrade, harvested
    after it: their outputs must be looked for there)."""
    remain = False
    try:
        with os.scandir(settings.outputs_folder) as entries:
            roots = [entry.path for entry in entries if entry.name.startswith("dag_id=")]
    except FileNotFoundError:
        return False
    for root in roots:
        for folder, _, _ in os.walk(root, topdown=False):  # the deepest first
            if os.path.basename(folder).startswith("attempt="):
                remain = True  # kept even when empty: its container may still write to it
                continue
            with contextlib.suppress(OSError):  # not empty: it holds an attempt's folder
                os.rmdir(folder)
    return remain
