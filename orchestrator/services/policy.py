"""The operator's policy: what DAG authors' tasks may ask of the host.

DAG authors and operators are often different people. The operator decides, in settings
(`ORCH_ALLOWED_MOUNT_ROOTS`, `ORCH_ALLOW_PRIVILEGED`, `ORCH_ALLOW_HOST_NETWORK`,
`ORCH_ALLOWED_CAPABILITIES`, `ORCH_ALLOW_DOCKER_SOCKET`), which host folders tasks may
bind-mount and whether they may run privileged, on the host network, with added capabilities
or with the Docker socket. Everything is refused unless allowed; only named volumes, tmpfs
mounts and bind mounts inside `ORCH_HOME` and the folder holding the DAGs folder are allowed
by default.

The policy is applied twice:
- when a parsed DAG is accepted (`check_dag`, via `apply_to_results`): a DAG asking for more
  than allowed becomes an import error of its file, naming the DAG, the task, what was asked
  and the setting that would allow it. Mount sources holding templates are not known yet and
  are skipped here;
- when an attempt is launched (`check_request`), on the rendered request: templated mount
  sources are checked now, and so is everything else (the policy may have been tightened
  since the DAG was parsed). A refusal fails the attempt without retries.

Paths are compared after expanding `~`, resolving relative paths against the DAG file's
folder, and resolving `..` and symlinks, so `/allowed/../etc` or a symlink out of an allowed
folder is judged by where it leads. A bind of the Docker socket, or of a folder holding it,
counts as the socket.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from orchestrator.errors import PolicyViolation
from orchestrator.models.launch import LaunchRequest
from orchestrator.models.notifiers import ContainerHook, Notifier
from orchestrator.models.specs import DagSpec, Mount, TaskKind, TaskSpec
from orchestrator.services.dag_processing import FileResult
from orchestrator.settings import Settings

#: Where Docker engines put their socket (`/var/run` is usually a link to `/run`).
DOCKER_SOCKETS = ("/var/run/docker.sock", "/run/docker.sock")
_MARKUP = ("{{", "{%", "{#")


def _resolve(path: str | Path) -> Path:
    """The path with `~` expanded and `..` and symlinks resolved (it need not exist)."""
    return Path(os.path.realpath(os.path.expanduser(str(path))))


@dataclass(frozen=True)
class OperatorPolicy:
    """What tasks may ask of the host. `mount_roots` and `docker_sockets` are resolved paths."""

    mount_roots: tuple[Path, ...]
    allow_privileged: bool = False
    allow_host_network: bool = False
    allowed_capabilities: frozenset[str] = frozenset()
    allow_docker_socket: bool = False
    docker_sockets: tuple[Path, ...] = field(
        default_factory=lambda: tuple(dict.fromkeys(_resolve(p) for p in DOCKER_SOCKETS))
    )

    @classmethod
    def from_settings(cls, settings: Settings) -> OperatorPolicy:
        """The policy the settings describe. Kept per distinct settings, so launches do not
        resolve the roots again each time (a root's symlink is followed once per process)."""
        return _cached_policy(
            tuple(settings.resolved_mount_roots),
            settings.allow_privileged,
            settings.allow_host_network,
            frozenset(settings.allowed_capabilities),
            settings.allow_docker_socket,
            settings.docker_url,
        )

    # ------------------------------------------------------------------ single requests

    def bind_problem(self, source: str, base: Path | None = None) -> str | None:
        """Why a bind of host path `source` is refused, or None if it is allowed. A relative
        source resolves against `base` (the DAG file's folder)."""
        expanded = os.path.expanduser(source)
        if not os.path.isabs(expanded):
            if base is None:
                return (
                    f"bind mount source {source!r} is relative and the DAG has no file to "
                    "resolve it against; use an absolute host path"
                )
            expanded = str(base / expanded)
        real = _resolve(expanded)
        shown = repr(source) if str(real) == source else f"{source!r} (resolves to {str(real)!r})"
        if not self.allow_docker_socket:
            for socket in self.docker_sockets:
                if real == socket or socket.is_relative_to(real):
                    return (
                        f"bind mount {shown} exposes the Docker socket {str(socket)!r}, which "
                        "gives the container control of the engine and the host; set "
                        "ORCH_ALLOW_DOCKER_SOCKET=true to allow it"
                    )
        if not any(real.is_relative_to(root) for root in self.mount_roots):
            roots = ", ".join(repr(str(root)) for root in self.mount_roots) or "none"
            return (
                f"bind mount {shown} is outside the allowed mount roots ({roots}); add a folder "
                "holding it to ORCH_ALLOWED_MOUNT_ROOTS to allow it"
            )
        return None

    def container_problems(
        self, *, privileged: bool, network: str | None, cap_add: Iterable[str]
    ) -> list[str]:
        """Why a container's privileges are refused (empty: allowed)."""
        problems = []
        if privileged and not self.allow_privileged:
            problems.append(
                "privileged=True is not allowed; set ORCH_ALLOW_PRIVILEGED=true to allow "
                "privileged containers"
            )
        if network == "host" and not self.allow_host_network:
            problems.append(
                "network='host' is not allowed; set ORCH_ALLOW_HOST_NETWORK=true to allow the "
                "host network"
            )
        refused = sorted(set(cap_add) - self.allowed_capabilities)
        if refused:
            allowed = ", ".join(sorted(self.allowed_capabilities)) or "none"
            problems.append(
                f"cap_add {', '.join(refused)} is not allowed (allowed: {allowed}); add "
                f"{'it' if len(refused) == 1 else 'them'} to ORCH_ALLOWED_CAPABILITIES to allow"
                f" {'it' if len(refused) == 1 else 'them'}"
            )
        return problems

    # ------------------------------------------------------------------ at load

    def task_problems(self, task: TaskSpec, base: Path | None) -> list[str]:
        """What in a task (as declared) the policy refuses. Templated mount sources are
        skipped: they are checked once rendered, at launch."""
        problems: list[str] = []
        if task.kind == TaskKind.CONTAINER:
            problems += self.container_problems(
                privileged=task.privileged, network=task.network, cap_add=task.cap_add
            )
            problems += self._mount_problems(task.mounts, "mounts", base)
        for name in ("on_success", "on_failure", "on_retry"):
            problems += self._hook_problems(getattr(task, name), name, base)
        return problems

    def dag_problems(self, dag: DagSpec) -> list[str]:
        """Every refusal in a DAG, one line each, naming the task."""
        base = Path(dag.fileloc).parent if dag.fileloc else None
        problems = [
            f"task '{task.task_id}': {problem}"
            for task in dag.tasks
            for problem in self.task_problems(task, base)
        ]
        for name in ("on_success", "on_failure", "on_sla_miss"):
            problems += self._hook_problems(getattr(dag, name), name, base)
        return problems

    def check_dag(self, dag: DagSpec) -> None:
        """Raise PolicyViolation naming the DAG and every refused request in it."""
        problems = self.dag_problems(dag)
        if problems:
            where = f" ({dag.fileloc})" if dag.fileloc else ""
            lines = "\n".join(f"  {problem}" for problem in problems)
            raise PolicyViolation(
                f"DAG '{dag.dag_id}'{where} asks for more than this installation's policy "
                f"allows:\n{lines}"
            )

    def apply_to_results(self, results: list[FileResult]) -> list[FileResult]:
        """The results with every file holding a refused DAG turned into an import error
        (a file with an error contributes no DAGs)."""
        checked = []
        for result in results:
            errors = []
            for dag in result.dags:
                try:
                    self.check_dag(dag)
                except PolicyViolation as exc:
                    errors.append(str(exc))
            if errors:
                result = FileResult(result.fileloc, [], "\n".join(errors), result.duration)
            checked.append(result)
        return checked

    # ------------------------------------------------------------------ at launch

    def check_request(
        self, request: LaunchRequest, where: str, *, trusted: Iterable[Mount] = ()
    ) -> None:
        """Raise PolicyViolation (prefixed with `where`) if a rendered request asks for more
        than allowed. `trusted` mounts are the orchestrator's own (the output folder)."""
        own = set(trusted)
        problems = self.container_problems(
            privileged=request.privileged, network=request.network, cap_add=request.cap_add
        )
        for index, mount in enumerate(request.mounts):
            if mount in own or mount.type != "bind" or mount.source is None:
                continue
            problem = self.bind_problem(mount.source)
            if problem is not None:
                problems.append(f"mounts[{index}]: {problem}")
        if problems:
            raise PolicyViolation(f"{where}: " + "; ".join(problems))

    # ------------------------------------------------------------------ helpers

    def _mount_problems(self, mounts: Iterable[Mount], field: str, base: Path | None) -> list[str]:
        problems = []
        for index, mount in enumerate(mounts):
            source = mount.source
            if mount.type != "bind" or source is None or any(m in source for m in _MARKUP):
                continue
            problem = self.bind_problem(source, base)
            if problem is not None:
                problems.append(f"{field}[{index}]: {problem}")
        return problems

    def _hook_problems(
        self, notifiers: Iterable[Notifier], field: str, base: Path | None
    ) -> list[str]:
        problems = []
        for index, notifier in enumerate(notifiers):
            if isinstance(notifier, ContainerHook):
                mounts = [Mount.parse(text) for text in notifier.mounts]
                problems += self._mount_problems(mounts, f"{field}[{index}].mounts", base)
        return problems


@functools.lru_cache(maxsize=16)
def _cached_policy(
    roots: tuple[Path, ...],
    allow_privileged: bool,
    allow_host_network: bool,
    allowed_capabilities: frozenset[str],
    allow_docker_socket: bool,
    docker_url: str | None,
) -> OperatorPolicy:
    sockets = [*DOCKER_SOCKETS]
    url = urlparse(docker_url or "")
    if url.scheme in ("unix", "http+unix") and url.path:
        sockets.append(url.path)
    return OperatorPolicy(
        mount_roots=tuple(dict.fromkeys(_resolve(root) for root in roots)),
        allow_privileged=allow_privileged,
        allow_host_network=allow_host_network,
        allowed_capabilities=allowed_capabilities,
        allow_docker_socket=allow_docker_socket,
        docker_sockets=tuple(dict.fromkeys(_resolve(path) for path in sockets)),
    )
