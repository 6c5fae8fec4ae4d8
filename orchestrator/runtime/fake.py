"""An in-memory, scripted ContainerRuntime for the fast unit tier: no Docker, no sleeping.

A *script* decides what each container does: `script(request) -> FakeBehavior` is called once
per created container. By default a container "runs" the moment it is started: its logs are
written, its output file (if any) is written to the host side of the output mount, it exits,
and exit callbacks fire **synchronously, inside `start()`**, after the fake's own lock is
released, so a test sees the whole lifecycle deterministically without waiting. Pass
`exit_delivery="thread"` to deliver callbacks from a background thread instead (as Docker
does); `settle()` then waits until every queued callback ran. In synchronous mode an exception
raised by a callback propagates out of the call that ended the container, so a broken callback
fails the test loudly; from the thread it is logged, as DockerRuntime does.

Containers with `hang=True` run until `stop()` (exit 143, or 137 if they ignore SIGTERM),
`remove()` (137) or `finish()`. Every call is recorded in `calls`, in order, so tests can
assert e.g. that the id was persisted before `start`, or that `remove` came after the logs.

Engine behaviours mirrored from `DockerRuntime`: idempotent `create` by name, a bind source
that does not exist is refused, a failed start raises UserError and leaves the container
"created" with exit code 127, a vanished container reports exit code -1, removing a running
container kills it (an exit event fires), and `never` refuses a missing image.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from orchestrator.errors import ImageUnavailable, UserError
from orchestrator.models.launch import (
    OUTPUT_DIR_IN_CONTAINER,
    OUTPUT_FILE_NAME,
    ContainerExit,
    ContainerInfo,
    LaunchRequest,
    check_same_attempt,
)
from orchestrator.models.specs import PullPolicy
from orchestrator.runtime.base import ContainerRuntime, ExitCallback, LogSink, Subscription

#: Exit codes a stopped container reports: it handled SIGTERM, or was SIGKILLed.
EXIT_SIGTERM: Final = 143
EXIT_SIGKILL: Final = 137
#: Exit code the engine records for a container whose command could not be started.
EXIT_START_FAILED: Final = 127
#: Exit code reported for a container that no longer exists (as DockerRuntime does).
EXIT_MISSING: Final = -1

logger = logging.getLogger(__name__)


class _Unset:
    """Marker: the container writes no output file."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset()


@dataclass(frozen=True)
class FakeBehavior:
    """What one fake container does when started."""

    exit_code: int = 0
    logs: bytes = b""
    #: A JSON value written to the output file; UNSET writes no file.
    output: Any = UNSET
    #: Bytes written to the output file verbatim (wins over `output`), e.g. to test bad JSON.
    raw_output: bytes | None = None
    #: Killed for exceeding its memory limit: reported with exit code 137.
    oom_killed: bool = False
    #: Runs until stop(), remove() or finish() instead of exiting at once.
    hang: bool = False
    #: On stop(), ignore SIGTERM and be killed after the grace period (137 instead of 143).
    ignores_sigterm: bool = False
    #: The engine cannot start the command: start() raises UserError with this message.
    start_error: str | None = None


Script = Callable[[LaunchRequest], FakeBehavior]
ContainerStatus = Literal["created", "running", "exited"]


def _default_script(_request: LaunchRequest) -> FakeBehavior:
    return FakeBehavior()


@dataclass
class FakeContainer:
    """One fake container and everything that happened to it."""

    id: str
    request: LaunchRequest
    behavior: FakeBehavior
    status: ContainerStatus = "created"
    exit: ContainerExit | None = None
    log_chunks: list[bytes] = field(default_factory=list)
    start_error: str | None = None

    @property
    def name(self) -> str:
        return self.request.name

    @property
    def logs(self) -> bytes:
        return b"".join(self.log_chunks)


class _FakeSubscription(Subscription):
    def __init__(self, labels: dict[str, str], on_exit: ExitCallback) -> None:
        self.labels = dict(labels)
        self.on_exit = on_exit
        self.closed = False

    def matches(self, labels: dict[str, str]) -> bool:
        return not self.closed and all(labels.get(k) == v for k, v in self.labels.items())

    def close(self) -> None:
        self.closed = True


class FakeRuntime(ContainerRuntime):
    """A scripted, in-memory container engine.

    `images`: images present on the "engine" (None: every image is present).
    `registry`: images a pull can fetch (None: any image; empty: pulls fail, as offline).
    """

    def __init__(
        self,
        script: Script | None = None,
        *,
        images: Iterable[str] | None = None,
        registry: Iterable[str] | None = None,
        exit_delivery: Literal["sync", "thread"] = "sync",
    ) -> None:
        self.script: Script = script or _default_script
        self.images: set[str] | None = None if images is None else set(images)
        self.registry: set[str] | None = None if registry is None else set(registry)
        self.exit_delivery = exit_delivery
        #: Every call, in order: ("create", name), ("start", id), ("remove", id), ...
        self.calls: list[tuple[str, ...]] = []
        self.created: list[LaunchRequest] = []
        self.started: list[str] = []
        self.stopped: list[tuple[str, float]] = []
        self.removed: list[str] = []
        self.pulled: list[str] = []
        self.volumes: dict[str, dict[str, str]] = {}
        self.containers: dict[str, FakeContainer] = {}  # live (not removed) containers by id
        self._by_name: dict[str, str] = {}
        self._subscriptions: list[_FakeSubscription] = []
        self._cond = threading.Condition(threading.RLock())
        self._closed = False
        self._counter = 0
        self._queue: queue.Queue[tuple[ExitCallback, str] | None] = queue.Queue()
        self._dispatcher: threading.Thread | None = None

    # ---------------------------------------------------------------- inspection helpers

    def container(self, name_or_id: str) -> FakeContainer:
        """A live container by id or name (KeyError if none)."""
        with self._cond:
            container_id = self._by_name.get(name_or_id, name_or_id)
            return self.containers[container_id]

    def call_names(self) -> list[str]:
        """Just the method names of `calls`, in order."""
        return [call[0] for call in self.calls]

    # ---------------------------------------------------------------- images and volumes

    def ensure_image(self, image: str, policy: PullPolicy, log: LogSink) -> None:
        with self._cond:
            self.calls.append(("ensure_image", image, policy.value))
            present = self.images is None or image in self.images
        if policy is PullPolicy.NEVER and not present:
            raise ImageUnavailable(
                f"image {image!r} is not present and pull_policy is 'never'; build it or "
                f"load it on the engine (docker build -t {image} ... / docker load), "
                "or set pull_policy to 'if_not_present'"
            )
        if policy is PullPolicy.ALWAYS or not present:
            self._pull(image, log)

    def _pull(self, image: str, log: LogSink) -> None:
        with self._cond:
            self.calls.append(("pull", image))
            self.pulled.append(image)
            pullable = self.registry is None or image in self.registry
            if pullable and self.images is not None:
                self.images.add(image)
        log(f"pulling image {image}\n".encode())
        if not pullable:
            message = (
                f"pull access denied for {image.split(':')[0]}, repository does not exist "
                "or may require 'docker login'"
            )
            log(f"pull of {image} failed: {message}\n".encode())
            raise ImageUnavailable(f"could not pull image {image!r}: {message}")
        log(f"Status: Downloaded newer image for {image}\n".encode())

    def ensure_volume(self, name: str, labels: dict[str, str]) -> None:
        with self._cond:
            self.calls.append(("ensure_volume", name))
            self.volumes.setdefault(name, dict(labels))

    # ---------------------------------------------------------------- container lifecycle

    def create(self, request: LaunchRequest) -> str:
        with self._cond:
            self.calls.append(("create", request.name))
            existing = self._by_name.get(request.name)
            if existing is not None:
                return self._existing(request, self.containers[existing])
            if self.images is not None and request.image not in self.images:
                raise ImageUnavailable(f"no such image: {request.image}")
            for mount in request.mounts:
                if mount.type == "bind" and mount.source and not os.path.exists(mount.source):
                    raise UserError(
                        f"the engine refused to create container {request.name!r} (image "
                        f'{request.image!r}): invalid mount config for type "bind": bind '
                        f"source path does not exist: {mount.source}"
                    )
            for mount in request.mounts:
                if mount.type == "volume" and mount.source:
                    self.ensure_volume(mount.source, request.labels)
            self._counter += 1
            container_id = hashlib.sha256(f"{request.name}/{self._counter}".encode()).hexdigest()
            behavior = self.script(request)
            self.containers[container_id] = FakeContainer(container_id, request, behavior)
            self._by_name[request.name] = container_id
            self.created.append(request)
            return container_id

    def _existing(self, request: LaunchRequest, container: FakeContainer) -> str:
        labels = container.request.labels
        check_same_attempt(request, labels)
        return container.id

    def start(self, container_id: str) -> None:
        """Start the container; unless it hangs it runs to completion before this returns."""
        with self._cond:
            self.calls.append(("start", container_id))
            container = self.containers.get(container_id)
            if container is None:
                raise UserError(f"container {container_id[:12]} could not start: No such container")
            if container.status == "running":
                return
            self.started.append(container_id)
            behavior = container.behavior
            if behavior.start_error is not None:
                container.start_error = behavior.start_error
                container.exit = ContainerExit(
                    exit_code=EXIT_START_FAILED, error=behavior.start_error
                )
                raise UserError(
                    f"container {container_id[:12]} could not start: {behavior.start_error}. "
                    "Check the task's image, command, entrypoint, user and mounts"
                )
            container.status = "running"
            container.exit = None
            if behavior.logs:
                container.log_chunks.append(behavior.logs)
            self._cond.notify_all()
            if behavior.hang:
                return
            exit_code = self._write_output(container, behavior.output, behavior.raw_output)
            if exit_code == 0:
                exit_code = behavior.exit_code
            callbacks = self._exit(container, exit_code, oom_killed=behavior.oom_killed)
        self._deliver(callbacks)

    def finish(
        self,
        container_id: str,
        exit_code: int | None = None,
        *,
        logs: bytes = b"",
        output: Any = UNSET,
        raw_output: bytes | None = None,
        oom_killed: bool | None = None,
    ) -> None:
        """Make a running (hanging) container exit now. Unset arguments come from its behavior;
        exit callbacks fire as they would from `start`."""
        with self._cond:
            self.calls.append(("finish", container_id))
            container = self.containers[container_id]
            if container.status != "running":
                raise ValueError(f"container {container_id[:12]} is {container.status}")
            behavior = container.behavior
            if logs:
                container.log_chunks.append(logs)
            if output is UNSET and raw_output is None:
                output, raw_output = behavior.output, behavior.raw_output
            code = self._write_output(container, output, raw_output)
            if code == 0:
                code = behavior.exit_code if exit_code is None else exit_code
            oom = behavior.oom_killed if oom_killed is None else oom_killed
            callbacks = self._exit(container, code, oom_killed=oom)
        self._deliver(callbacks)

    def emit(self, container_id: str, data: bytes) -> None:
        """A running container prints `data` (delivered to followers at once)."""
        with self._cond:
            container = self.containers[container_id]
            if container.status != "running":
                raise ValueError(f"container {container_id[:12]} is {container.status}")
            container.log_chunks.append(data)
            self._cond.notify_all()

    def stop(self, container_id: str, grace_seconds: float) -> None:
        """A running container exits at once (no real waiting): 143, or 137 if it ignores
        SIGTERM. Created, exited or missing containers are left alone."""
        with self._cond:
            self.calls.append(("stop", container_id))
            self.stopped.append((container_id, grace_seconds))
            container = self.containers.get(container_id)
            if container is None or container.status != "running":
                return
            code = EXIT_SIGKILL if container.behavior.ignores_sigterm else EXIT_SIGTERM
            callbacks = self._exit(container, code, oom_killed=False)
        self._deliver(callbacks)

    def remove(self, container_id: str) -> None:
        """Forget the container; a running one is killed first (its exit event fires)."""
        callbacks: list[tuple[ExitCallback, str]] = []
        with self._cond:
            self.calls.append(("remove", container_id))
            container = self.containers.pop(container_id, None)
            if container is None:
                return
            self.removed.append(container_id)
            self._by_name.pop(container.name, None)
            if container.status == "running":
                callbacks = self._exit(container, EXIT_SIGKILL, oom_killed=False)
            self._cond.notify_all()
        self._deliver(callbacks)

    def exit_status(self, container_id: str) -> ContainerExit | None:
        with self._cond:
            self.calls.append(("exit_status", container_id))
            container = self.containers.get(container_id)
            if container is None:
                return ContainerExit(
                    exit_code=EXIT_MISSING,
                    error=f"container {container_id[:12]} no longer exists "
                    "(removed outside the orchestrator?)",
                )
            return container.exit

    def list_containers(self, labels: dict[str, str]) -> list[ContainerInfo]:
        with self._cond:
            self.calls.append(("list_containers",))
            return [
                ContainerInfo(
                    id=c.id,
                    name=c.name,
                    labels=dict(c.request.labels),
                    status=c.status,
                    exit=c.exit,
                )
                for c in self.containers.values()
                if all(c.request.labels.get(k) == v for k, v in labels.items())
            ]

    # ---------------------------------------------------------------- logs and events

    def follow_logs(self, container_id: str, sink: LogSink, *, started: bool = False) -> None:
        """Deliver the container's logs, blocking (like Docker) until it exited, was removed,
        or the runtime closed. A created container is waited for."""
        with self._cond:
            self.calls.append(("follow_logs", container_id))
        delivered = 0
        while True:
            with self._cond:
                while True:
                    container = self.containers.get(container_id)
                    if container is None or self._closed:
                        return
                    if delivered < len(container.log_chunks) or container.exit is not None:
                        break
                    self._cond.wait()
                chunks = container.log_chunks[delivered:]
                delivered += len(chunks)
                ended = container.exit is not None
            for chunk in chunks:
                sink(chunk)
            if ended:
                with self._cond:
                    self.calls.append(("logs_done", container_id))
                return

    def watch_exits(self, labels: dict[str, str], on_exit: ExitCallback) -> Subscription:
        with self._cond:
            self.calls.append(("watch_exits",))
            subscription = _FakeSubscription(labels, on_exit)
            self._subscriptions.append(subscription)
            return subscription

    def settle(self, timeout: float | None = None) -> None:
        """With `exit_delivery="thread"`: wait until every queued exit callback has run."""
        if self.exit_delivery == "thread":
            done = threading.Event()
            self._queue.put((lambda _id: done.set(), ""))
            self._ensure_dispatcher()
            if not done.wait(timeout):
                raise TimeoutError("exit callbacks did not settle")

    def close(self) -> None:
        """Wake every blocked follower and stop the callback thread."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._dispatcher is not None:
            self._queue.put(None)
            self._dispatcher.join(timeout=5)

    # ---------------------------------------------------------------- internals

    def _write_output(self, container: FakeContainer, output: Any, raw: bytes | None) -> int:
        """Write the output file as the task would; 1 if it cannot (no output mount)."""
        if output is UNSET and raw is None:
            return 0
        mount = next(
            (
                m
                for m in container.request.mounts
                if m.type == "bind" and m.target.rstrip("/") == OUTPUT_DIR_IN_CONTAINER
            ),
            None,
        )
        if mount is None or mount.source is None:
            container.log_chunks.append(
                f"fake: cannot write the output: nothing is mounted at "
                f"{OUTPUT_DIR_IN_CONTAINER}\n".encode()
            )
            return 1
        in_container = container.request.environment.get("ORCH_OUTPUT_PATH", "")
        prefix = OUTPUT_DIR_IN_CONTAINER + "/"
        relative = in_container[len(prefix) :] if in_container.startswith(prefix) else ""
        path = os.path.join(mount.source, relative or OUTPUT_FILE_NAME)
        data = raw if raw is not None else json.dumps(output).encode()
        with open(path, "wb") as handle:
            handle.write(data)
        return 0

    def _exit(
        self, container: FakeContainer, exit_code: int, *, oom_killed: bool
    ) -> list[tuple[ExitCallback, str]]:
        """Record the exit (caller holds the lock); return the callbacks to run."""
        container.status = "exited"
        container.exit = ContainerExit(
            exit_code=EXIT_SIGKILL if oom_killed else exit_code, oom_killed=oom_killed
        )
        self._cond.notify_all()
        labels = container.request.labels
        return [(s.on_exit, container.id) for s in self._subscriptions if s.matches(labels)]

    def _deliver(self, callbacks: list[tuple[ExitCallback, str]]) -> None:
        if self.exit_delivery == "sync":
            for callback, container_id in callbacks:
                callback(container_id)
            return
        for item in callbacks:
            self._queue.put(item)
        if callbacks:
            self._ensure_dispatcher()

    def _ensure_dispatcher(self) -> None:
        with self._cond:
            if self._dispatcher is None:
                self._dispatcher = threading.Thread(
                    target=self._dispatch, name="fake-runtime-exits", daemon=True
                )
                self._dispatcher.start()

    def _dispatch(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            callback, container_id = item
            try:
                callback(container_id)
            except Exception:  # as DockerRuntime: a failing callback does not stop delivery
                logger.exception("exit callback failed for container %s", container_id)
