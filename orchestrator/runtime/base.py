"""The ContainerRuntime interface: everything the scheduler needs from a container engine.

Adapters: `DockerRuntime` (the docker SDK, local engine) and `FakeRuntime` (scripted, in memory,
for the unit tier). Calls block; the scheduler runs them in a bounded worker pool.
"""

from __future__ import annotations

import abc
from collections.abc import Callable

from orchestrator.models.launch import ContainerExit, ContainerInfo, LaunchRequest
from orchestrator.models.specs import PullPolicy

LogSink = Callable[[bytes], None]
ExitCallback = Callable[[str], None]


class Subscription(abc.ABC):
    """A background subscription that can be cancelled."""

    @abc.abstractmethod
    def close(self) -> None:
        """Stop delivering events; idempotent."""


class ContainerRuntime(abc.ABC):
    """A container engine, as the scheduler sees it."""

    @abc.abstractmethod
    def ensure_image(self, image: str, policy: PullPolicy, log: LogSink) -> None:
        """Make `image` available per `policy`, writing pull progress and errors to `log`.

        Raises ImageUnavailable (with the engine's message) when the image is missing and the
        policy forbids pulling, or the pull failed.
        """

    @abc.abstractmethod
    def ensure_volume(self, name: str, labels: dict[str, str]) -> None:
        """Create a named volume with these labels unless it exists."""

    @abc.abstractmethod
    def create(self, request: LaunchRequest) -> str:
        """Create (not start) the container; return its id.

        If a container with `request.name` already exists (a retry after a crash between create
        and persisting its id), return that container's id instead of failing.
        """

    @abc.abstractmethod
    def start(self, container_id: str) -> None:
        """Start a created container."""

    @abc.abstractmethod
    def follow_logs(self, container_id: str, sink: LogSink, *, started: bool = False) -> None:
        """Send stdout and stderr to `sink` as they come; return once the container stopped and
        every line was delivered. `started=True` promises the container was started before
        this call, which lets an adapter trust the end of its stream once `finish_logs` said
        the container exited."""

    @abc.abstractmethod
    def exit_status(self, container_id: str) -> ContainerExit | None:
        """How the container ended, or None while it is still created or running."""

    @abc.abstractmethod
    def stop(self, container_id: str, grace_seconds: float) -> None:
        """SIGTERM, then SIGKILL after `grace_seconds`. A stopped or missing container is fine."""

    @abc.abstractmethod
    def remove(self, container_id: str) -> None:
        """Remove the container (forcefully). A missing container is fine."""

    @abc.abstractmethod
    def list_containers(self, labels: dict[str, str]) -> list[ContainerInfo]:
        """Every container (running or not) carrying all of these labels."""

    @abc.abstractmethod
    def watch_exits(self, labels: dict[str, str], on_exit: ExitCallback) -> Subscription:
        """Call `on_exit(container_id)` from a background thread whenever a container carrying
        all of these labels stops, until the subscription is closed. Must be subscribed before
        the first container is started so no exit is missed."""

    def finish_logs(self, container_id: str) -> bool:
        """The caller saw this container's exit: block until the `follow_logs` running on it
        has delivered the whole log (cutting a stream that will not end short). True if that
        follower's sink received everything and gets nothing more; False (the default) if
        the caller must wait for `follow_logs` to return itself."""
        return False

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections and threads."""
