"""The Docker adapter: runs task containers on a local (or remote) Docker Engine.

Every call blocks and is safe to make from many threads at once: the scheduler runs them in a
bounded worker pool, and each `follow_logs` holds one connection for the container's lifetime,
so the client's connection pool is sized for that (`from_url(max_pool_size=...)`). The exit
event subscription lives in `docker_events`, the de-duplication of resumed log streams in
`docker_logs`.

Engine errors are translated at this boundary:

- the engine cannot be reached                  -> RuntimeUnavailable
- an image is missing / cannot be pulled        -> ImageUnavailable (the engine's message)
- the engine refuses a container (bad mount,
  command not found, name taken by a stranger)  -> UserError (the engine's message)
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any, Literal

import docker
import docker.errors
import docker.types
import requests.exceptions

from orchestrator.errors import ImageUnavailable, RuntimeUnavailable, UserError
from orchestrator.models.launch import (
    IDENTITY_LABELS,
    ContainerExit,
    ContainerInfo,
    LaunchRequest,
    check_same_attempt,
)
from orchestrator.models.specs import Mount, PullPolicy
from orchestrator.runtime.base import ContainerRuntime, ExitCallback, LogSink, Subscription
from orchestrator.runtime.docker_events import ExitWatcher
from orchestrator.runtime.docker_logs import DeliveredFrames

logger = logging.getLogger(__name__)

#: How long `finish_logs` waits for the follower to deliver the rest of the log after the exit.
_FINISH_WAIT_SECONDS = 2.0
#: How long a follower of a started container, its stream ended, waits for `finish_logs` to
#: say the container stopped before it asks the engine (an inspect).
_EXIT_WAIT_SECONDS = 0.5
#: Containers `finish_logs` was told about before their follower started (at most this many).
_REMEMBERED_STOPS = 1_000

#: Connections kept per engine: worker pool (~16) + one per followed log stream + events.
DEFAULT_MAX_POOL_SIZE = 128
#: How long a positive "image is present" answer is trusted.
DEFAULT_IMAGE_CACHE_SECONDS = 5.0
#: Exit code reported for a container that vanished before its exit was harvested.
MISSING_CONTAINER_EXIT_CODE = -1
#: Security option set on every container: no process in it can gain privileges (setuid).
NO_NEW_PRIVILEGES = "no-new-privileges"

_RECONNECT_BACKOFF = (0.05, 2.0)  # first and largest pause between log-stream resumes
_START_POLL_SECONDS = (0.01, 1.0)  # follow_logs polls a created container for its start


@contextlib.contextmanager
def _engine(action: str) -> Iterator[None]:
    """Turn "cannot talk to the engine" into RuntimeUnavailable, naming what we were doing."""
    try:
        yield
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
        raise RuntimeUnavailable(
            f"the Docker engine could not be reached while trying to {action}: {exc}"
        ) from exc


def _explain(exc: docker.errors.APIError) -> str:
    return str(exc.explanation or exc)


def _parse_time(value: str | None) -> datetime | None:
    if not value or value.startswith("0001-01-01"):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _exit_from_state(state: dict[str, Any]) -> ContainerExit | None:
    """The exit recorded in an inspect `State`, or None while the container may still run."""
    status = state.get("Status")
    error = state.get("Error") or None
    if status in ("exited", "dead", "removing") or (status == "created" and error):
        # A container whose start failed stays "created" with the engine's error and code 127.
        return ContainerExit(
            exit_code=int(state.get("ExitCode", 0)),
            oom_killed=bool(state.get("OOMKilled", False)),
            error=error,
            finished_at=_parse_time(state.get("FinishedAt")),
        )
    return None


def _info_status(status: str) -> Literal["created", "running", "exited", "other"]:
    if status == "created":
        return "created"
    if status == "running":
        return "running"
    if status in ("exited", "dead"):
        return "exited"
    return "other"


def _docker_mount(mount: Mount) -> docker.types.Mount:
    return docker.types.Mount(
        target=mount.target,
        source=mount.source,
        type=mount.type,
        read_only=mount.read_only,
    )


def _command(value: str | tuple[str, ...] | None) -> str | list[str] | None:
    """A string is split shell-style by the SDK (as docker-compose does); a tuple is exact.
    Empty means the image's default."""
    if not value:
        return None
    return list(value) if isinstance(value, tuple) else value


class _Follow:
    """One `follow_logs` in progress: what it delivered, and whether `finish_logs` ended it."""

    def __init__(self, sink: LogSink) -> None:
        self.sink = sink
        self.delivered = DeliveredFrames()
        self.lock = threading.Lock()
        self.finished = False  # the whole log was delivered: nothing more reaches the sink
        self.exited = threading.Event()  # finish_logs was called: the container has stopped
        self.cut = False  # finish_logs closed the stream and left the rest to the follower
        self.done = threading.Event()  # follow_logs has returned
        self.stream: Any = None

    def consume(self, stream: Any) -> bool:
        """Deliver `stream` until it ends; False if `finish_logs` took over (now or before).

        An end is not proof of a whole log: the engine also ends the stream when the
        connection drops (cleanly, as if it were done) and when `finish_logs` cut it."""
        with self.lock:
            if self.finished:
                _close_stream(stream)
                return False
            self.stream = stream
            self.cut = False
        try:
            for frame in stream:
                with self.lock:
                    if self.finished:
                        return False
                    payload = self.delivered.admit(frame)
                    if payload is not None:
                        self.sink(payload)
        except Exception:
            with self.lock:
                if self.finished:
                    return False  # the stream was closed under us by finish_logs
                if self.cut:
                    return True  # closed under us, the rest left to us: read on
            raise
        finally:
            with self.lock:
                self.stream = None
            _close_stream(stream)
        with self.lock:
            return not self.finished

    def close_stream(self) -> None:
        if self.stream is not None:
            _close_stream(self.stream)
            self.stream = None


def _close_stream(stream: Any) -> None:
    with contextlib.suppress(Exception):
        stream.close()


class DockerRuntime(ContainerRuntime):
    """Task containers on a Docker Engine, through the docker SDK's low-level API."""

    def __init__(
        self,
        client: docker.DockerClient,
        *,
        image_cache_seconds: float = DEFAULT_IMAGE_CACHE_SECONDS,
    ) -> None:
        self._client = client
        self._api = client.api
        self._image_cache_seconds = image_cache_seconds
        self._images_lock = threading.Lock()
        self._image_seen: dict[str, float] = {}  # image -> monotonic time it was last confirmed
        self._image_pull_started: dict[str, float] = {}  # last successful pull's start time
        self._image_locks: dict[str, threading.Lock] = {}
        self._subscriptions: list[ExitWatcher] = []
        self._subscriptions_lock = threading.Lock()
        #: Containers whose `die` event reported exit code 0 (spares an inspect per harvest).
        self._clean_exits: dict[str, bool] = {}
        #: The `follow_logs` calls in progress, by container id.
        self._follows_lock = threading.Lock()
        self._follows: dict[str, _Follow] = {}
        #: Containers `finish_logs` said had stopped while no follower was registered.
        self._stopped_unfollowed: set[str] = set()

    @classmethod
    def from_url(
        cls,
        url: str | None,
        *,
        max_pool_size: int = DEFAULT_MAX_POOL_SIZE,
        timeout: float = 60.0,
        image_cache_seconds: float = DEFAULT_IMAGE_CACHE_SECONDS,
    ) -> DockerRuntime:
        """Connect to the engine at `url` (`unix:///var/run/docker.sock`, `tcp://host:2375`)
        or, when None, where `DOCKER_HOST` / the default socket points.

        The API version is negotiated with the engine (works with old engines such as 20.10,
        API 1.41). Raises RuntimeUnavailable if the engine cannot be reached.
        """
        where = url or "DOCKER_HOST or the default socket"
        try:
            if url is None:
                client = docker.from_env(
                    version="auto", max_pool_size=max_pool_size, timeout=timeout
                )
            else:
                client = docker.DockerClient(
                    base_url=url, version="auto", max_pool_size=max_pool_size, timeout=timeout
                )
            client.api.ping()
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise RuntimeUnavailable(
                f"cannot reach the Docker engine at {where}: {exc}. Is dockerd running, and may "
                "this user open its socket (member of the 'docker' group)?"
            ) from exc
        return cls(client, image_cache_seconds=image_cache_seconds)

    # ---------------------------------------------------------------- images and volumes

    def ensure_image(self, image: str, policy: PullPolicy, log: LogSink) -> None:
        """Make `image` available per `policy`.

        Positive answers are cached for a few seconds and checks of one image are serialized,
        so a burst of launches of the same image costs one inspect (or one pull), not fifty.
        With `always`, a pull of the image that *started* after this call began counts as ours.
        """
        requested_at = time.monotonic()
        with self._image_lock(image):
            if policy is PullPolicy.ALWAYS:
                if self._image_pull_started.get(image, -math.inf) >= requested_at:
                    return
                self._pull(image, log)
                return
            if self._image_present(image):
                return
            if policy is PullPolicy.NEVER:
                raise ImageUnavailable(
                    f"image {image!r} is not present and pull_policy is 'never'; build it or "
                    f"load it on the engine (docker build -t {image} ... / docker load), "
                    "or set pull_policy to 'if_not_present'"
                )
            self._pull(image, log)

    def _image_lock(self, image: str) -> threading.Lock:
        with self._images_lock:
            return self._image_locks.setdefault(image, threading.Lock())

    def _image_present(self, image: str) -> bool:
        seen = self._image_seen.get(image)
        if seen is not None and time.monotonic() - seen < self._image_cache_seconds:
            return True
        with _engine(f"inspect image {image!r}"):
            try:
                self._api.inspect_image(image)
            except docker.errors.ImageNotFound:
                self._image_seen.pop(image, None)
                return False
        self._image_seen[image] = time.monotonic()
        return True

    def _pull(self, image: str, log: LogSink) -> None:
        started = time.monotonic()
        log(f"pulling image {image}\n".encode())
        last_status: dict[str, str] = {}
        try:
            with _engine(f"pull image {image!r}"):
                for event in self._api.pull(image, stream=True, decode=True):
                    if "error" in event:
                        raise docker.errors.APIError(event["error"], explanation=event["error"])
                    status = str(event.get("status", ""))
                    layer = str(event.get("id", ""))
                    if last_status.get(layer) != status:  # skip progress-bar ticks
                        last_status[layer] = status
                        log(f"{layer + ': ' if layer else ''}{status}\n".encode())
        except docker.errors.APIError as exc:
            message = _explain(exc)
            log(f"pull of {image} failed: {message}\n".encode())
            self._image_seen.pop(image, None)
            raise ImageUnavailable(
                f"could not pull image {image!r}: {message}. Check the image name and that the "
                "registry is reachable and logged in (docker login), or build/load the image on "
                "the engine and set pull_policy to 'never'"
            ) from exc
        self._image_pull_started[image] = started
        self._image_seen[image] = time.monotonic()

    def ensure_volume(self, name: str, labels: dict[str, str]) -> None:
        """Create the named volume with these labels unless it exists (labels of an existing
        volume are left alone)."""
        with _engine(f"create volume {name!r}"):
            try:
                self._api.inspect_volume(name)
                return
            except docker.errors.NotFound:
                pass
            try:
                self._api.create_volume(name=name, labels=labels)
            except docker.errors.APIError as exc:
                raise UserError(f"cannot create volume {name!r}: {_explain(exc)}") from exc

    # ---------------------------------------------------------------- container lifecycle

    def create(self, request: LaunchRequest) -> str:
        """Create the container without starting it; idempotent by `request.name`.

        Memory swap is capped at the memory limit so that exceeding it OOM-kills the task
        instead of swapping. The container is not auto-removed: `remove` runs after logs and
        output are harvested. Least privilege: `no-new-privileges` always (setuid binaries
        cannot gain privileges), privileged and added capabilities only when the request
        carries them (the operator's policy allowed them), the image's user unless the
        request names one.
        """
        volume_labels = {k: v for k, v in request.labels.items() if k not in IDENTITY_LABELS}
        for mount in request.mounts:
            if mount.type == "volume" and mount.source:
                self.ensure_volume(mount.source, volume_labels)
        with _engine(f"create container {request.name!r}"):
            host_config = self._api.create_host_config(
                mounts=[_docker_mount(m) for m in request.mounts],
                network_mode=request.network,
                nano_cpus=request.nano_cpus,
                mem_limit=request.mem_limit,
                memswap_limit=request.mem_limit,
                shm_size=request.shm_size,
                pids_limit=request.pids_limit,
                privileged=request.privileged,
                cap_add=list(request.cap_add) or None,
                security_opt=[NO_NEW_PRIVILEGES],
                auto_remove=False,
            )
            try:
                created = self._api.create_container(
                    image=request.image,
                    name=request.name,
                    command=_command(request.command),
                    entrypoint=_command(request.entrypoint),
                    environment=dict(request.environment),
                    labels=dict(request.labels),
                    working_dir=request.working_dir,
                    user=request.user or None,
                    host_config=host_config,
                )
            except docker.errors.ImageNotFound as exc:
                self._image_seen.pop(request.image, None)
                raise ImageUnavailable(
                    f"image {request.image!r} disappeared from the engine before container "
                    f"{request.name!r} could be created: {_explain(exc)}"
                ) from exc
            except docker.errors.APIError as exc:
                if exc.status_code == 409:
                    return self._existing(request)
                raise UserError(
                    f"the engine refused to create container {request.name!r} "
                    f"(image {request.image!r}): {_explain(exc)}"
                ) from exc
        return str(created["Id"])

    def _existing(self, request: LaunchRequest) -> str:
        """The id of the container already named `request.name`, if it is this attempt's."""
        try:
            found = self._api.inspect_container(request.name)
        except docker.errors.NotFound:  # removed since the conflict: create afresh
            return self.create(request)
        labels = found["Config"].get("Labels") or {}
        check_same_attempt(request, labels)
        return str(found["Id"])

    def start(self, container_id: str) -> None:
        """Start the container. Starting a running container is a no-op.

        If the engine cannot start it (command not found, bad user, ...) this raises UserError
        with the engine's message; no exit event follows, but `exit_status` then reports the
        failure (exit code 127 and the engine's error).
        """
        with _engine(f"start container {container_id[:12]}"):
            try:
                self._api.start(container_id)
            except docker.errors.APIError as exc:
                raise UserError(
                    f"container {container_id[:12]} could not start: {_explain(exc)}. "
                    "Check the task's image, command, entrypoint, user and mounts"
                ) from exc

    def stop(self, container_id: str, grace_seconds: float) -> None:
        """SIGTERM (or the image's STOPSIGNAL), SIGKILL after `grace_seconds` (rounded up to a
        whole second: the engine's unit)."""
        grace = max(0, math.ceil(grace_seconds))
        with _engine(f"stop container {container_id[:12]}"):
            try:
                self._api.stop(container_id, timeout=grace)
            except docker.errors.NotFound:
                return

    def remove(self, container_id: str) -> None:
        """Force-remove the container and its anonymous volumes; named volumes stay."""
        with _engine(f"remove container {container_id[:12]}"):
            try:
                self._api.remove_container(container_id, force=True, v=True)
            except docker.errors.NotFound:
                return
            except docker.errors.APIError as exc:
                if exc.status_code == 409 and "already in progress" in _explain(exc):
                    return
                raise

    def exit_status(self, container_id: str) -> ContainerExit | None:
        """How the container ended; None while it is created (and not failed) or running.

        A container that no longer exists is reported as ended with exit code -1 and an error
        saying so: its attempt is lost and must be failed (or retried), never waited for.
        """
        if self._clean_exits.pop(container_id, False):
            # its die event said exit code 0: nothing an inspect would add matters
            return ContainerExit(exit_code=0)
        with _engine(f"inspect container {container_id[:12]}"):
            try:
                state = self._api.inspect_container(container_id)["State"]
            except docker.errors.NotFound:
                return ContainerExit(
                    exit_code=MISSING_CONTAINER_EXIT_CODE,
                    error=f"container {container_id[:12]} no longer exists "
                    "(removed outside the orchestrator?)",
                )
        return _exit_from_state(state)

    def list_containers(self, labels: dict[str, str]) -> list[ContainerInfo]:
        """Every container carrying all of `labels`; containers that are not running are
        inspected to report their exit."""
        filters = {"label": [f"{key}={value}" for key, value in labels.items()]}
        infos: list[ContainerInfo] = []
        with _engine("list containers"):
            for row in self._api.containers(all=True, filters=filters):
                status = str(row.get("State", ""))
                exit_ = None
                if status not in ("running", "paused", "restarting"):
                    try:
                        state = self._api.inspect_container(row["Id"])["State"]
                    except docker.errors.NotFound:
                        continue
                    status = str(state.get("Status", status))
                    exit_ = _exit_from_state(state)
                names = row.get("Names") or [""]
                infos.append(
                    ContainerInfo(
                        id=row["Id"],
                        name=names[0].lstrip("/"),
                        labels=row.get("Labels") or {},
                        status=_info_status(status),
                        exit=exit_,
                    )
                )
        return infos

    # ---------------------------------------------------------------- logs

    def follow_logs(self, container_id: str, sink: LogSink, *, started: bool = False) -> None:
        """Stream stdout and stderr (interleaved, as written) to `sink` until the container has
        stopped and everything it printed was delivered (or `finish_logs` delivered the rest).

        Works right after `start` and on a container that already exited (all of its logs).
        Called on a created container it waits for the start, so following *before* starting
        cannot miss a line. If the stream breaks while the container still runs, or the engine
        cannot be reached for a while, it is resumed without repeating lines. A container that
        does not exist yields nothing. With `started=True`, once the stream ended the follower
        waits a moment for `finish_logs` to say the container stopped before asking the engine.
        """
        follow = _Follow(sink)
        with self._follows_lock:
            self._follows[container_id] = follow
            if container_id in self._stopped_unfollowed:
                self._stopped_unfollowed.discard(container_id)
                follow.exited.set()
        try:
            self._follow(container_id, follow, started)
        finally:
            follow.done.set()
            with self._follows_lock:
                if self._follows.get(container_id) is follow:
                    del self._follows[container_id]

    def _follow(self, container_id: str, follow: _Follow, started: bool) -> None:
        """Follow until the container is known to have stopped, then read what the stream
        may have left out.

        The end of a follow stream proves nothing on its own: the engine ends it, empty, when
        asked before the start; a dropped connection ends it cleanly; and the engine (seen on
        20.10 with json-file logs, under load) may end it when the container stops without
        its last lines. A stream asked for after the stop was known is whole (the engine
        reads the closed log file); otherwise, once the stop is known (from `finish_logs`,
        else an inspect), one plain read from the newest delivered line delivers the rest."""
        pause = _RECONNECT_BACKOFF[0]
        start_poll = _START_POLL_SECONDS[0]
        stopped = False  # an inspect found the container stopped
        while True:
            try:
                with _engine(f"read logs of container {container_id[:12]}"):
                    try:
                        asked_after_stop = stopped or follow.exited.is_set()
                        stream = self._logs(container_id, follow.delivered, follow=True)
                        if not follow.consume(stream):
                            return  # finish_logs delivered the rest
                        if asked_after_stop:
                            with follow.lock:
                                follow.finished = True
                            return
                        if started and follow.exited.wait(_EXIT_WAIT_SECONDS):
                            self._deliver_rest(container_id, follow)
                            return
                        state = self._api.inspect_container(container_id)["State"]
                        stopped = _exit_from_state(state) is not None
                        if stopped:
                            self._deliver_rest(container_id, follow)
                            return
                    except docker.errors.NotFound:
                        logger.warning("logs of container %s: it no longer exists", container_id)
                        return
            except RuntimeUnavailable:
                # the engine could not be reached (restarting, a dropped connection): resume
                # from the last delivered frame once it answers again
                time.sleep(pause)
                pause = min(pause * 2, _RECONNECT_BACKOFF[1])
                continue
            if state.get("Status") == "created" and not state.get("Error"):
                time.sleep(start_poll)  # not started yet: look again soon
                start_poll = min(start_poll * 1.5, _START_POLL_SECONDS[1])
                continue
            time.sleep(pause)  # the stream broke while the container runs: resume
            pause = min(pause * 2, _RECONNECT_BACKOFF[1])

    def _deliver_rest(self, container_id: str, follow: _Follow) -> None:
        """The container has stopped: deliver what the engine has after the newest line
        delivered (one plain read), unless `finish_logs` did."""
        with follow.lock:
            if follow.finished:
                return
            self._read_all(container_id, follow.delivered, follow.sink)
            follow.finished = True

    def finish_logs(self, container_id: str) -> bool:
        """The caller saw the exit: wait (briefly) for the follower of this container to
        deliver the rest of its log and return. If it does not, cut its stream and deliver the
        rest with one plain read from where the follower is (if the engine cannot be reached
        for that, the follower is left to do it once it answers, and this returns False)."""
        with self._follows_lock:
            follow = self._follows.get(container_id)
            if follow is None:  # a follower may be about to start: tell it
                if len(self._stopped_unfollowed) >= _REMEMBERED_STOPS:
                    self._stopped_unfollowed.clear()
                self._stopped_unfollowed.add(container_id)
                return False
        follow.exited.set()
        if follow.done.wait(_FINISH_WAIT_SECONDS):
            return True
        with follow.lock:
            if follow.finished:
                return True
            follow.cut = True
            follow.close_stream()
            try:
                self._read_all(container_id, follow.delivered, follow.sink)
            except RuntimeUnavailable:
                return False
            follow.finished = True
        return True

    def _logs(self, container_id: str, delivered: DeliveredFrames, *, follow: bool) -> Any:
        """A timestamped stdout+stderr stream, from where `delivered` stands.

        Asked of the engine directly: `APIClient.logs` first inspects the container to learn
        whether it has a TTY (ours never have one), an engine call per read that we spare.
        Raises docker.errors.NotFound for a container that does not exist."""
        params: dict[str, Any] = {
            "stdout": 1,
            "stderr": 1,
            "timestamps": 1,
            "follow": 1 if follow else 0,
            "tail": "all",
        }
        since = delivered.resume_point()
        if since is not None:
            params["since"] = since
        url = self._api._url("/containers/{0}/logs", container_id)
        response = self._api._get(url, params=params, stream=True)
        frames = self._api._get_result_tty(True, response, False)  # raises for the status
        return docker.types.CancellableStream(frames, response)

    def _read_all(self, container_id: str, delivered: DeliveredFrames, sink: LogSink) -> None:
        with _engine(f"read logs of container {container_id[:12]}"):
            try:
                stream = self._logs(container_id, delivered, follow=False)
            except docker.errors.NotFound:
                return
            try:
                for frame in stream:
                    payload = delivered.admit(frame)
                    if payload is not None:
                        sink(payload)
            finally:
                stream.close()

    # ---------------------------------------------------------------- events

    def watch_exits(self, labels: dict[str, str], on_exit: ExitCallback) -> Subscription:
        """Call `on_exit(container_id)` from a background thread for each `die` event of a
        container carrying all of `labels`.

        Returns once the engine has accepted the subscription. The subscription asks for
        events since the moment of the call, so an exit racing the subscription is still
        delivered (this assumes the engine's clock agrees with ours, as on a local engine).
        If the stream breaks, it reconnects with a short backoff and replays what happened
        meanwhile from the engine's in-memory event log, without repeating an event already
        delivered. (If the engine itself restarted, that log is gone: exits during the outage
        are found by reconciling with `list_containers`.) A callback that raises is logged and
        does not stop the subscription.
        """
        watcher = ExitWatcher(self._api, labels, on_exit, self._clean_exits)
        with _engine("subscribe to container events"):
            watcher.connect_first()
        with self._subscriptions_lock:
            self._subscriptions = [s for s in self._subscriptions if not s.closed]
            self._subscriptions.append(watcher)
        return watcher

    def close(self) -> None:
        """End every event subscription and release the engine's connections."""
        with self._subscriptions_lock:
            watchers, self._subscriptions = self._subscriptions, []
        for watcher in watchers:
            watcher.close()
        self._client.close()
