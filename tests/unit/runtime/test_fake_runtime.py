"""The scripted in-memory runtime behaves like the Docker one, deterministically and fast."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from orchestrator.errors import ImageUnavailable, UserError
from orchestrator.models.launch import (
    LABEL_MANAGED,
    LABEL_TRY,
    OUTPUT_DIR_IN_CONTAINER,
    ContainerExit,
    LaunchRequest,
)
from orchestrator.models.specs import Mount, PullPolicy
from orchestrator.runtime.fake import FakeBehavior, FakeRuntime

LABELS = {LABEL_MANAGED: "1", LABEL_TRY: "1"}


def request(
    name: str = "c1",
    *,
    labels: dict[str, str] = LABELS,
    output_dir: Path | None = None,
    mounts: tuple[Mount, ...] = (),
    environment: dict[str, str] | None = None,
) -> LaunchRequest:
    env = dict(environment or {})
    if output_dir is not None:
        mounts = (
            *mounts,
            Mount(type="bind", source=str(output_dir), target=OUTPUT_DIR_IN_CONTAINER),
        )
        env.setdefault("ORCH_OUTPUT_PATH", f"{OUTPUT_DIR_IN_CONTAINER}/output.json")
    return LaunchRequest(name=name, image="img:1", labels=labels, mounts=mounts, environment=env)


def collect(runtime: FakeRuntime, container_id: str) -> bytes:
    chunks: list[bytes] = []
    runtime.follow_logs(container_id, chunks.append)
    return b"".join(chunks)


def test_a_started_container_runs_to_completion_and_reports_its_exit_synchronously() -> None:
    runtime = FakeRuntime(lambda r: FakeBehavior(exit_code=3, logs=b"hello\n"))
    exits: list[str] = []
    runtime.watch_exits({LABEL_MANAGED: "1"}, exits.append)
    container_id = runtime.create(request())
    assert runtime.exit_status(container_id) is None
    runtime.start(container_id)
    assert exits == [container_id]
    status = runtime.exit_status(container_id)
    assert status is not None
    assert (status.exit_code, status.oom_killed) == (3, False)
    assert collect(runtime, container_id) == b"hello\n"


def test_calls_are_recorded_in_order() -> None:
    runtime = FakeRuntime()
    runtime.ensure_image("img:1", PullPolicy.IF_NOT_PRESENT, lambda _b: None)
    container_id = runtime.create(request())
    runtime.start(container_id)
    collect(runtime, container_id)
    runtime.remove(container_id)
    assert runtime.calls == [
        ("ensure_image", "img:1", "if_not_present"),
        ("create", "c1"),
        ("start", container_id),
        ("follow_logs", container_id),
        ("logs_done", container_id),
        ("remove", container_id),
    ]
    assert runtime.created == [request()]
    assert runtime.started == [container_id]
    assert runtime.removed == [container_id]


def test_oom_killed_reports_137_and_the_flag() -> None:
    runtime = FakeRuntime(lambda r: FakeBehavior(oom_killed=True))
    container_id = runtime.create(request())
    runtime.start(container_id)
    assert runtime.exit_status(container_id) == ContainerExit(exit_code=137, oom_killed=True)


def test_output_is_written_to_the_host_side_of_the_output_mount(tmp_path: Path) -> None:
    runtime = FakeRuntime(lambda r: FakeBehavior(output={"rows": [1, 2]}))
    container_id = runtime.create(request(output_dir=tmp_path))
    runtime.start(container_id)
    assert json.loads((tmp_path / "output.json").read_text()) == {"rows": [1, 2]}


def test_output_follows_orch_output_path(tmp_path: Path) -> None:
    runtime = FakeRuntime(lambda r: FakeBehavior(output=None))
    env = {"ORCH_OUTPUT_PATH": f"{OUTPUT_DIR_IN_CONTAINER}/result.json"}
    container_id = runtime.create(request(output_dir=tmp_path, environment=env))
    runtime.start(container_id)
    assert (tmp_path / "result.json").read_text() == "null"


def test_raw_output_is_written_verbatim(tmp_path: Path) -> None:
    runtime = FakeRuntime(lambda r: FakeBehavior(raw_output=b"{not json", output=1))
    container_id = runtime.create(request(output_dir=tmp_path))
    runtime.start(container_id)
    assert (tmp_path / "output.json").read_bytes() == b"{not json"


def test_no_output_file_unless_the_behavior_sets_one(tmp_path: Path) -> None:
    runtime = FakeRuntime()
    container_id = runtime.create(request(output_dir=tmp_path))
    runtime.start(container_id)
    assert list(tmp_path.iterdir()) == []


def test_output_without_an_output_mount_fails_the_container_like_a_real_task() -> None:
    runtime = FakeRuntime(lambda r: FakeBehavior(output=1))
    container_id = runtime.create(request())
    runtime.start(container_id)
    status = runtime.exit_status(container_id)
    assert status is not None and status.exit_code == 1
    assert OUTPUT_DIR_IN_CONTAINER.encode() in collect(runtime, container_id)


def test_a_hanging_container_runs_until_stopped_with_sigterm() -> None:
    runtime = FakeRuntime(lambda r: FakeBehavior(hang=True, logs=b"working\n"))
    exits: list[str] = []
    runtime.watch_exits({}, exits.append)
    container_id = runtime.create(request())
    runtime.start(container_id)
    assert runtime.exit_status(container_id) is None
    assert runtime.list_containers({})[0].status == "running"
    assert exits == []
    runtime.stop(container_id, 2.5)
    assert runtime.stopped == [(container_id, 2.5)]
    assert exits == [container_id]
    assert runtime.exit_status(container_id) == ContainerExit(exit_code=143)


def test_a_container_ignoring_sigterm_is_killed() -> None:
    runtime = FakeRuntime(lambda r: FakeBehavior(hang=True, ignores_sigterm=True))
    container_id = runtime.create(request())
    runtime.start(container_id)
    runtime.stop(container_id, 1)
    assert runtime.exit_status(container_id) == ContainerExit(exit_code=137)


def test_stopping_a_finished_created_or_missing_container_changes_nothing() -> None:
    runtime = FakeRuntime(lambda r: FakeBehavior(exit_code=4))
    finished = runtime.create(request("done"))
    runtime.start(finished)
    created = runtime.create(request("idle"))
    runtime.stop(finished, 1)
    runtime.stop(created, 1)
    runtime.stop("nope", 1)
    assert runtime.exit_status(finished) == ContainerExit(exit_code=4)
    assert runtime.exit_status(created) is None


def test_follow_logs_streams_a_running_container_until_it_finishes(tmp_path: Path) -> None:
    runtime = FakeRuntime(lambda r: FakeBehavior(hang=True, logs=b"a\n"))
    container_id = runtime.create(request(output_dir=tmp_path))
    chunks: list[bytes] = []
    follower = threading.Thread(target=runtime.follow_logs, args=(container_id, chunks.append))
    follower.start()  # before start, as the scheduler does
    runtime.start(container_id)
    runtime.emit(container_id, b"b\n")
    runtime.finish(container_id, 0, logs=b"c\n", output=[1])
    follower.join(5)
    assert not follower.is_alive()
    assert b"".join(chunks) == b"a\nb\nc\n"
    assert (tmp_path / "output.json").read_text() == "[1]"
    assert runtime.exit_status(container_id) == ContainerExit(exit_code=0)


def test_close_releases_blocked_followers() -> None:
    runtime = FakeRuntime(lambda r: FakeBehavior(hang=True))
    container_id = runtime.create(request())
    runtime.start(container_id)
    follower = threading.Thread(target=runtime.follow_logs, args=(container_id, print))
    follower.start()
    runtime.close()
    follower.join(5)
    assert not follower.is_alive()


def test_removing_a_running_container_kills_it_and_reports_the_exit() -> None:
    runtime = FakeRuntime(lambda r: FakeBehavior(hang=True))
    exits: list[str] = []
    runtime.watch_exits({}, exits.append)
    container_id = runtime.create(request())
    runtime.start(container_id)
    runtime.remove(container_id)
    runtime.remove(container_id)  # missing is fine
    assert exits == [container_id]
    assert runtime.list_containers({}) == []
    status = runtime.exit_status(container_id)
    assert status is not None and status.exit_code == -1
    assert status.error is not None and "no longer exists" in status.error


def test_create_is_idempotent_by_name() -> None:
    runtime = FakeRuntime()
    first = runtime.create(request("same"))
    assert runtime.create(request("same")) == first
    assert len(runtime.containers) == 1


def test_create_refuses_a_name_taken_by_another_attempt() -> None:
    runtime = FakeRuntime()
    runtime.create(request("same"))
    with pytest.raises(UserError, match="already exists"):
        runtime.create(request("same", labels={**LABELS, LABEL_TRY: "2"}))


def test_create_refuses_a_missing_bind_source(tmp_path: Path) -> None:
    runtime = FakeRuntime()
    missing = Mount(type="bind", source=str(tmp_path / "nope"), target="/data")
    with pytest.raises(UserError, match="bind source path does not exist"):
        runtime.create(request(mounts=(missing,)))


def test_named_volumes_are_created_with_the_request_labels() -> None:
    runtime = FakeRuntime()
    runtime.create(request(mounts=(Mount(type="volume", source="cache", target="/cache"),)))
    assert runtime.volumes == {"cache": LABELS}


def test_never_refuses_a_missing_image_and_names_it() -> None:
    runtime = FakeRuntime(images={"present:1"})
    runtime.ensure_image("present:1", PullPolicy.NEVER, lambda _b: None)
    with pytest.raises(ImageUnavailable, match=r"'absent:1' is not present.*'never'"):
        runtime.ensure_image("absent:1", PullPolicy.NEVER, lambda _b: None)
    assert runtime.pulled == []


def test_if_not_present_pulls_only_missing_images() -> None:
    runtime = FakeRuntime(images={"present:1"}, registry={"remote:1"})
    log: list[bytes] = []
    runtime.ensure_image("present:1", PullPolicy.IF_NOT_PRESENT, log.append)
    runtime.ensure_image("remote:1", PullPolicy.IF_NOT_PRESENT, log.append)
    runtime.ensure_image("remote:1", PullPolicy.IF_NOT_PRESENT, log.append)
    assert runtime.pulled == ["remote:1"]
    assert b"remote:1" in b"".join(log)


def test_always_pulls_every_time() -> None:
    runtime = FakeRuntime()
    for _ in range(2):
        runtime.ensure_image("img:1", PullPolicy.ALWAYS, lambda _b: None)
    assert runtime.pulled == ["img:1", "img:1"]


def test_a_failed_pull_is_logged_and_raised() -> None:
    runtime = FakeRuntime(images=(), registry=())
    log: list[bytes] = []
    with pytest.raises(ImageUnavailable, match="could not pull image 'gone:1'"):
        runtime.ensure_image("gone:1", PullPolicy.IF_NOT_PRESENT, log.append)
    assert b"pull access denied" in b"".join(log)


def test_create_with_a_missing_image_fails() -> None:
    runtime = FakeRuntime(images=())
    with pytest.raises(ImageUnavailable):
        runtime.create(request())


def test_a_failed_start_raises_and_leaves_an_inspectable_failure() -> None:
    runtime = FakeRuntime(lambda r: FakeBehavior(start_error='exec: "nope": not found'))
    exits: list[str] = []
    runtime.watch_exits({}, exits.append)
    container_id = runtime.create(request())
    with pytest.raises(UserError, match="could not start"):
        runtime.start(container_id)
    assert exits == []  # like Docker: no die event for a container that never ran
    assert runtime.exit_status(container_id) == ContainerExit(
        exit_code=127, error='exec: "nope": not found'
    )
    assert runtime.list_containers({})[0].status == "created"


def test_watch_exits_filters_by_labels_and_stops_when_closed() -> None:
    runtime = FakeRuntime()
    ours: list[str] = []
    subscription = runtime.watch_exits({"orch.instance": "a"}, ours.append)
    mine = runtime.create(request("mine", labels={"orch.instance": "a"}))
    other = runtime.create(request("other", labels={"orch.instance": "b"}))
    runtime.start(mine)
    runtime.start(other)
    subscription.close()
    late = runtime.create(request("late", labels={"orch.instance": "a"}))
    runtime.start(late)
    assert ours == [mine]


def test_list_containers_by_labels() -> None:
    runtime = FakeRuntime(lambda r: FakeBehavior(exit_code=2))
    a = runtime.create(request("a", labels={"orch.run_id": "r1"}))
    runtime.create(request("b", labels={"orch.run_id": "r2"}))
    runtime.start(a)
    [info] = runtime.list_containers({"orch.run_id": "r1"})
    assert (info.id, info.name, info.status) == (a, "a", "exited")
    assert info.exit == ContainerExit(exit_code=2)


def test_exits_can_be_delivered_from_a_background_thread() -> None:
    runtime = FakeRuntime(exit_delivery="thread")
    threads: list[str] = []
    runtime.watch_exits({}, lambda _id: threads.append(threading.current_thread().name))
    container_id = runtime.create(request())
    runtime.start(container_id)
    runtime.settle(timeout=5)
    assert threads == ["fake-runtime-exits"]
    runtime.close()


def test_the_script_sees_each_request() -> None:
    seen: list[str] = []

    def script(r: LaunchRequest) -> FakeBehavior:
        seen.append(r.name)
        return FakeBehavior(exit_code=0 if r.labels[LABEL_TRY] == "2" else 1)

    runtime = FakeRuntime(script)
    first = runtime.create(request("t-1"))
    second = runtime.create(request("t-2", labels={**LABELS, LABEL_TRY: "2"}))
    runtime.start(first)
    runtime.start(second)
    assert seen == ["t-1", "t-2"]
    assert [runtime.container(n).exit for n in ("t-1", "t-2")] == [
        ContainerExit(exit_code=1),
        ContainerExit(exit_code=0),
    ]
