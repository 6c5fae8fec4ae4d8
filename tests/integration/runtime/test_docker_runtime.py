"""DockerRuntime against a real engine, with the static busybox test image.

Every container and volume made here carries the session's `orch.test` label (as the rest of
the suite does) and a per-test `orch.test.case` label; a fixture removes everything carrying
the test's case label after each test, even when it failed, so tests never see each other's
containers (and the session fixture sweeps up anything left).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from orchestrator.errors import ImageUnavailable, RuntimeUnavailable, UserError
from orchestrator.models.launch import (
    LABEL_DAG,
    LABEL_INSTANCE,
    LABEL_MANAGED,
    LABEL_RUN,
    LABEL_TASK,
    LABEL_TRY,
    ContainerExit,
    LaunchRequest,
)
from orchestrator.models.specs import Mount, PullPolicy
from orchestrator.runtime.docker import DockerRuntime
from tests.support import TEST_SESSION_LABEL

pytestmark = pytest.mark.docker

IMAGE = "orchestrator/busybox:latest"
CASE_LABEL = "orch.test.case"


@pytest.fixture(scope="module")
def runtime(docker_client: Any) -> Iterator[DockerRuntime]:
    # `docker_client` fails the session under CI when no engine answers (skips elsewhere).
    runtime = DockerRuntime.from_url(None)
    yield runtime
    runtime.close()


@dataclass
class Case:
    """One test's namespace on the engine: a unique label value and name prefix."""

    runtime: DockerRuntime
    id: str

    @property
    def labels(self) -> dict[str, str]:
        return {
            "orch.test": TEST_SESSION_LABEL,
            CASE_LABEL: self.id,
            LABEL_MANAGED: "1",
            LABEL_INSTANCE: f"it-{self.id}",
            LABEL_DAG: "dag",
            LABEL_RUN: "run",
            LABEL_TASK: "task",
            LABEL_TRY: "1",
        }

    def request(self, name: str, *command: str, **fields: Any) -> LaunchRequest:
        labels = {**self.labels, **fields.pop("labels", {})}
        return LaunchRequest(
            name=f"orchtest-{self.id}-{name}",
            image=IMAGE,
            command=command or None,
            labels=labels,
            **fields,
        )

    def volume(self, name: str) -> str:
        return f"orchtest-{self.id}-{name}"

    def run(self, request: LaunchRequest, timeout: float = 30) -> tuple[ContainerExit, bytes]:
        """Create, follow (before start, as the scheduler does), start; wait for the exit."""
        container_id = self.runtime.create(request)
        chunks: list[bytes] = []
        follower = threading.Thread(
            target=self.runtime.follow_logs, args=(container_id, chunks.append), daemon=True
        )
        follower.start()
        self.runtime.start(container_id)
        follower.join(timeout)
        assert not follower.is_alive(), "follow_logs did not return after the container exited"
        status = self.runtime.exit_status(container_id)
        assert status is not None
        return status, b"".join(chunks)


@pytest.fixture
def case(runtime: DockerRuntime) -> Iterator[Case]:
    case = Case(runtime, uuid.uuid4().hex[:10])
    yield case
    api = runtime._api
    selector = {"label": [f"{CASE_LABEL}={case.id}"]}
    for row in api.containers(all=True, filters=selector):
        api.remove_container(row["Id"], force=True, v=True)
    for volume in api.volumes(filters=selector).get("Volumes") or []:
        api.remove_volume(volume["Name"], force=True)


def wait_for(predicate: Callable[[], bool], timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


# ------------------------------------------------------------------------ connecting


def test_an_unreachable_engine_raises_runtime_unavailable(tmp_path: Path) -> None:
    with pytest.raises(RuntimeUnavailable, match="cannot reach the Docker engine"):
        DockerRuntime.from_url(f"unix://{tmp_path}/no-docker.sock")


# ------------------------------------------------------------------------ exits and logs


def test_success_reports_exit_zero_and_both_streams(case: Case) -> None:
    status, logs = case.run(case.request("ok", "sh", "-c", "echo out; echo err >&2"))
    assert (status.exit_code, status.oom_killed, status.error) == (0, False, None)
    assert status.finished_at is not None
    assert sorted(logs.splitlines()) == [b"err", b"out"]


def test_non_zero_exit_is_reported(case: Case) -> None:
    status, _ = case.run(case.request("fail", "sh", "-c", "exit 3"))
    assert (status.exit_code, status.oom_killed) == (3, False)


def test_exceeding_the_memory_limit_is_an_oom_kill(case: Case) -> None:
    # dd's 100 MiB block buffer is filled from /dev/zero: far above the 32 MiB limit.
    request = case.request(
        "oom", "dd", "if=/dev/zero", "of=/dev/null", "bs=100M", "count=1", mem_limit=32 * 2**20
    )
    status, _ = case.run(request)
    assert (status.exit_code, status.oom_killed) == (137, True)


def test_a_command_that_cannot_start_raises_and_stays_inspectable(case: Case) -> None:
    container_id = case.runtime.create(case.request("nocmd", "no-such-command"))
    with pytest.raises(UserError, match="no-such-command"):
        case.runtime.start(container_id)
    status = case.runtime.exit_status(container_id)
    assert status is not None and status.exit_code == 127
    assert status.error is not None and "no-such-command" in status.error


def test_a_removed_container_reports_a_lost_attempt(case: Case) -> None:
    container_id = case.runtime.create(case.request("gone", "true"))
    case.runtime.remove(container_id)
    case.runtime.remove(container_id)  # missing is fine
    case.runtime.stop(container_id, 1)  # so is stopping it
    status = case.runtime.exit_status(container_id)
    assert status is not None and status.exit_code == -1
    assert status.error is not None and "no longer exists" in status.error


def test_follow_logs_gets_every_line_of_fast_containers(case: Case) -> None:
    script = "i=0; while [ $i -lt 100 ]; do echo line$i; i=$((i+1)); done"
    expected = b"".join(b"line%d\n" % i for i in range(100))
    for attempt in range(20):
        _, logs = case.run(case.request(f"fast{attempt}", "sh", "-c", script))
        assert logs == expected, f"attempt {attempt}"
    for attempt in range(5):  # the shortest possible container, followed before start
        _, logs = case.run(case.request(f"echo{attempt}", "echo", "hi"))
        assert logs == b"hi\n"


def test_finish_logs_on_exit_delivers_every_line_once(case: Case) -> None:
    """What the scheduler does: follow after start, and on the exit event finish the log at
    once instead of waiting for the engine to close the stream."""
    loop = "i=0; while [ $i -lt 2000 ]; do echo line$i; i=$((i+1)); done"
    expected = b"".join(b"line%d\n" % i for i in range(2000))
    for attempt in range(6):
        script = loop if attempt % 2 else f"{loop}; sleep 0.2"  # exit at the last line, or after
        exited = threading.Event()
        subscription = case.runtime.watch_exits(
            {CASE_LABEL: case.id}, lambda _cid, exited=exited: exited.set()
        )
        try:
            container_id = case.runtime.create(case.request(f"chatty{attempt}", "sh", "-c", script))
            chunks: list[bytes] = []
            case.runtime.start(container_id)
            follower = threading.Thread(
                target=case.runtime.follow_logs,
                args=(container_id, chunks.append),
                kwargs={"started": attempt < 3},  # the scheduler's way, and the general one
                daemon=True,
            )
            follower.start()
            assert exited.wait(30)
            assert case.runtime.finish_logs(container_id) is True
            assert b"".join(chunks) == expected, f"attempt {attempt}"
            follower.join(10)
            assert not follower.is_alive()
            assert b"".join(chunks) == expected  # nothing more arrived afterwards
        finally:
            subscription.close()


def test_finish_logs_without_a_follower_says_so(case: Case) -> None:
    container_id = case.runtime.create(case.request("unfollowed", "true"))
    assert case.runtime.finish_logs(container_id) is False


def test_follow_logs_after_the_exit_gets_the_whole_log(case: Case) -> None:
    container_id = case.runtime.create(case.request("late", "sh", "-c", "echo a; echo b"))
    case.runtime.start(container_id)
    assert wait_for(lambda: case.runtime.exit_status(container_id) is not None)
    chunks: list[bytes] = []
    case.runtime.follow_logs(container_id, chunks.append)
    assert b"".join(chunks) == b"a\nb\n"


@pytest.mark.parametrize("harvested", [False, True], ids=["alone", "finish_logs"])
def test_follow_logs_gets_the_last_lines_of_a_stream_the_engine_ended_early(
    case: Case, harvested: bool
) -> None:
    """Docker 20.10 (json-file) sends a follow stream what the log held when the request
    came, then ends it if the container stopped meanwhile, without what was written after
    the request. A slow reader makes that window as long as it likes: here the sink holds the
    stream up until the container, stopped, has printed its last line. (Under CPU load the
    same happens, rarely, to a container that exits within milliseconds of its start.)"""
    lines = 5000
    script = (
        "trap 'echo last; exit 0' TERM; "
        f"i=0; while [ $i -lt {lines} ]; do echo line$i; i=$((i+1)); done; "
        "while true; do usleep 10000; done"
    )
    exited = threading.Event()
    subscription = case.runtime.watch_exits({CASE_LABEL: case.id}, lambda _cid: exited.set())
    try:
        container_id = case.runtime.create(case.request("late-last", "sh", "-c", script))
        case.runtime.start(container_id)
        api = case.runtime._api
        assert wait_for(lambda: api.logs(container_id, tail=1) == b"line%d\n" % (lines - 1), 60)
        chunks: list[bytes] = []

        def sink(chunk: bytes) -> None:
            if not chunks:  # the engine is sending the backlog: stop the container meanwhile
                case.runtime.stop(container_id, 10)
            chunks.append(chunk)

        follower = threading.Thread(
            target=case.runtime.follow_logs,
            args=(container_id, sink),
            kwargs={"started": True},
            daemon=True,
        )
        follower.start()
        if harvested:  # the scheduler's way: finish the log on the exit event
            assert exited.wait(60)
            assert case.runtime.finish_logs(container_id) is True
        follower.join(60)
        assert not follower.is_alive()
        expected = b"".join(b"line%d\n" % i for i in range(lines)) + b"last\n"
        assert b"".join(chunks) == expected
    finally:
        subscription.close()


def test_follow_logs_resumes_a_broken_stream_without_loss_or_repeats(
    case: Case, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = "i=0; while [ $i -lt 30 ]; do echo line$i; i=$((i+1)); sleep 0.02; done"
    container_id = case.runtime.create(case.request("resume", "sh", "-c", script))
    real_logs = case.runtime._logs
    opened: list[int] = []

    class Broken:
        """The first stream dies after 5 lines, as if the connection dropped."""

        def __init__(self, stream: Any) -> None:
            self._stream, self._left = stream, 5

        def __iter__(self) -> Iterator[bytes]:
            for frame in self._stream:
                if self._left == 0:
                    return
                self._left -= 1
                yield frame

        def close(self) -> None:
            self._stream.close()

    def logs(*args: Any, **kwargs: Any) -> Any:
        opened.append(1)
        stream = real_logs(*args, **kwargs)
        return Broken(stream) if len(opened) == 1 else stream

    monkeypatch.setattr(case.runtime, "_logs", logs)
    case.runtime.start(container_id)
    chunks: list[bytes] = []
    case.runtime.follow_logs(container_id, chunks.append)
    assert len(opened) >= 2
    assert b"".join(chunks) == b"".join(b"line%d\n" % i for i in range(30))


# ------------------------------------------------------------------------ stopping


def _start_and_wait_until_ready(case: Case, request: LaunchRequest) -> tuple[str, list[bytes]]:
    container_id = case.runtime.create(request)
    chunks: list[bytes] = []
    threading.Thread(
        target=case.runtime.follow_logs, args=(container_id, chunks.append), daemon=True
    ).start()
    case.runtime.start(container_id)
    assert wait_for(lambda: b"ready" in b"".join(chunks))
    return container_id, chunks


def test_stop_lets_a_container_that_handles_sigterm_finish(case: Case) -> None:
    script = "trap 'echo got TERM; exit 0' TERM; echo ready; while true; do sleep 0.1; done"
    container_id, chunks = _start_and_wait_until_ready(
        case, case.request("term", "sh", "-c", script)
    )
    started = time.monotonic()
    case.runtime.stop(container_id, 10)
    assert time.monotonic() - started < 5  # it did not wait for the grace period
    status = case.runtime.exit_status(container_id)
    assert status is not None and status.exit_code == 0
    assert wait_for(lambda: b"got TERM" in b"".join(chunks))


def test_stop_kills_a_container_ignoring_sigterm_after_the_grace_period(case: Case) -> None:
    script = "trap '' TERM; echo ready; while true; do sleep 0.1; done"
    container_id, _ = _start_and_wait_until_ready(
        case, case.request("stubborn", "sh", "-c", script)
    )
    started = time.monotonic()
    case.runtime.stop(container_id, 1)
    assert time.monotonic() - started >= 0.9
    status = case.runtime.exit_status(container_id)
    assert status is not None and (status.exit_code, status.oom_killed) == (137, False)
    case.runtime.stop(container_id, 1)  # already stopped: fine


# ------------------------------------------------------------------------ images


def test_never_refuses_a_missing_image_and_names_it(case: Case) -> None:
    image = f"orchestrator/missing-{case.id}:latest"
    with pytest.raises(ImageUnavailable, match=rf"{image}.*'never'"):
        case.runtime.ensure_image(image, PullPolicy.NEVER, lambda _b: None)


def test_a_failed_pull_is_logged_and_raised(case: Case) -> None:
    image = f"orchestrator/missing-{case.id}:latest"
    log: list[bytes] = []
    with pytest.raises(ImageUnavailable, match=f"could not pull image '{image}'"):
        case.runtime.ensure_image(image, PullPolicy.IF_NOT_PRESENT, log.append)
    assert f"pull of {image} failed:".encode() in b"".join(log)


def test_a_present_image_passes_every_policy_but_always(case: Case) -> None:
    for policy in (PullPolicy.NEVER, PullPolicy.IF_NOT_PRESENT):
        case.runtime.ensure_image(IMAGE, policy, lambda _b: None)


# ------------------------------------------------------------------------ create


def test_create_is_idempotent_by_name(case: Case) -> None:
    request = case.request("same", "true")
    first = case.runtime.create(request)
    assert case.runtime.create(request) == first


def test_create_refuses_a_name_held_by_another_attempt(case: Case) -> None:
    case.runtime.create(case.request("taken", "true"))
    with pytest.raises(UserError, match="already exists"):
        case.runtime.create(case.request("taken", "true", labels={LABEL_TRY: "2"}))


def test_limits_reach_the_container(case: Case) -> None:
    request = case.request(
        "limits", "true", nano_cpus=500_000_000, mem_limit=64 * 2**20, shm_size=8 * 2**20
    )
    container_id = case.runtime.create(request)
    host = case.runtime._api.inspect_container(container_id)["HostConfig"]
    assert host["NanoCpus"] == 500_000_000
    assert host["Memory"] == host["MemorySwap"] == 64 * 2**20
    assert host["ShmSize"] == 8 * 2**20
    assert host["AutoRemove"] is False


def test_environment_working_dir_user_and_entrypoint(case: Case) -> None:
    request = case.request(
        "env",
        'echo "$GREETING"; pwd; busybox id -u',
        entrypoint=("sh", "-c"),
        environment={"GREETING": "hello world"},
        working_dir="/srv/app",
        user="1234",
    )
    status, logs = case.run(request)
    assert status.exit_code == 0
    assert logs == b"hello world\n/srv/app\n1234\n"


# ------------------------------------------------------------------------ mounts


def test_read_only_bind_mounts_are_enforced(case: Case, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("data\n")
    mount = Mount(type="bind", source=str(tmp_path), target="/data", read_only=True)
    script = "cat /data/in.txt; echo x > /data/new.txt"
    status, logs = case.run(case.request("ro", "sh", "-c", script, mounts=(mount,)))
    assert status.exit_code != 0
    assert b"data\n" in logs and b"Read-only file system" in logs
    assert not (tmp_path / "new.txt").exists()


def test_writable_bind_mounts_reach_the_host(case: Case, tmp_path: Path) -> None:
    mount = Mount(type="bind", source=str(tmp_path), target="/out")
    status, _ = case.run(
        case.request("rw", "sh", "-c", "echo 42 > /out/output.json", mounts=(mount,))
    )
    assert status.exit_code == 0
    assert (tmp_path / "output.json").read_text() == "42\n"


def test_a_missing_bind_source_is_refused(case: Case, tmp_path: Path) -> None:
    mount = Mount(type="bind", source=str(tmp_path / "nope"), target="/data")
    with pytest.raises(UserError, match="bind source path does not exist"):
        case.runtime.create(case.request("nobind", "true", mounts=(mount,)))


def test_named_volumes_are_created_with_labels_and_keep_data(case: Case) -> None:
    name = case.volume("cache")
    mount = Mount(type="volume", source=name, target="/cache")
    write, _ = case.run(case.request("w", "sh", "-c", "echo kept > /cache/f", mounts=(mount,)))
    read, logs = case.run(case.request("r", "cat", "/cache/f", mounts=(mount,)))
    assert (write.exit_code, read.exit_code, logs) == (0, 0, b"kept\n")
    labels = case.runtime._api.inspect_volume(name)["Labels"]
    assert labels[CASE_LABEL] == case.id and labels[LABEL_MANAGED] == "1"


def test_tmpfs_mounts(case: Case) -> None:
    mount = Mount(type="tmpfs", target="/scratch")
    status, logs = case.run(case.request("tmpfs", "cat", "/proc/mounts", mounts=(mount,)))
    assert status.exit_code == 0
    assert any(line.split()[1:3] == [b"/scratch", b"tmpfs"] for line in logs.splitlines()), logs


# ------------------------------------------------------------------------ listing


def test_list_containers_by_labels(case: Case) -> None:
    done = case.runtime.create(case.request("r1", "sh", "-c", "exit 5", labels={LABEL_RUN: "r1"}))
    case.runtime.start(done)
    idle = case.runtime.create(case.request("r2", "true", labels={LABEL_RUN: "r2"}))
    assert wait_for(lambda: case.runtime.exit_status(done) is not None)

    everything = case.runtime.list_containers({CASE_LABEL: case.id})
    assert {info.id for info in everything} == {done, idle}
    [info] = case.runtime.list_containers({CASE_LABEL: case.id, LABEL_RUN: "r1"})
    assert (info.id, info.name, info.status) == (done, f"orchtest-{case.id}-r1", "exited")
    assert info.exit is not None and info.exit.exit_code == 5
    assert info.labels[LABEL_RUN] == "r1"
    [info] = case.runtime.list_containers({CASE_LABEL: case.id, LABEL_RUN: "r2"})
    assert (info.status, info.exit) == ("created", None)


# ------------------------------------------------------------------------ exit events


def test_watch_exits_reports_our_containers_only(case: Case) -> None:
    seen: list[str] = []
    subscription = case.runtime.watch_exits({LABEL_INSTANCE: f"it-{case.id}"}, seen.append)
    try:
        ours = case.runtime.create(case.request("ours", "true"))
        stranger = case.runtime.create(
            LaunchRequest(
                name=f"orchtest-{case.id}-stranger",
                image=IMAGE,
                command=("true",),
                labels={"orch.test": TEST_SESSION_LABEL, CASE_LABEL: case.id},
            )
        )
        case.runtime.start(stranger)
        case.runtime.start(ours)
        assert wait_for(lambda: ours in seen)
        assert wait_for(lambda: case.runtime.exit_status(stranger) is not None)
        time.sleep(0.3)
        assert seen == [ours]
    finally:
        subscription.close()


def test_watch_exits_survives_a_broken_event_stream(case: Case) -> None:
    seen: list[str] = []
    subscription = case.runtime.watch_exits({LABEL_INSTANCE: f"it-{case.id}"}, seen.append)
    try:
        first = case.runtime.create(case.request("before", "true"))
        case.runtime.start(first)
        assert wait_for(lambda: first in seen)
        subscription._stream.close()  # type: ignore[attr-defined]  # the connection drops
        second = case.runtime.create(case.request("after", "true"))
        case.runtime.start(second)  # may exit before the watcher has reconnected
        assert wait_for(lambda: second in seen)
        time.sleep(0.3)
        assert seen == [first, second]  # replayed events are not delivered twice
    finally:
        subscription.close()


def test_closing_a_subscription_is_prompt_and_final(case: Case) -> None:
    seen: list[str] = []
    subscription = case.runtime.watch_exits({LABEL_INSTANCE: f"it-{case.id}"}, seen.append)
    thread = subscription._thread  # type: ignore[attr-defined]
    started = time.monotonic()
    subscription.close()
    subscription.close()  # idempotent
    assert time.monotonic() - started < 1
    assert not thread.is_alive()
    late = case.runtime.create(case.request("late", "true"))
    case.runtime.start(late)
    assert wait_for(lambda: case.runtime.exit_status(late) is not None)
    time.sleep(0.3)
    assert seen == []


def test_concurrent_launches_from_a_worker_pool(case: Case) -> None:
    seen: set[str] = set()
    lock = threading.Lock()

    def on_exit(container_id: str) -> None:
        with lock:
            seen.add(container_id)

    subscription = case.runtime.watch_exits({LABEL_INSTANCE: f"it-{case.id}"}, on_exit)
    ids: list[str] = []

    def launch(index: int) -> None:
        case.runtime.ensure_image(IMAGE, PullPolicy.IF_NOT_PRESENT, lambda _b: None)
        container_id = case.runtime.create(case.request(f"pool{index}", "echo", str(index)))
        case.runtime.start(container_id)
        with lock:
            ids.append(container_id)

    try:
        threads = [threading.Thread(target=launch, args=(i,)) for i in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert len(ids) == 16
        assert wait_for(lambda: seen == set(ids), timeout=30)
    finally:
        subscription.close()
