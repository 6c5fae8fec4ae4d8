"""Following the log of an attempt that is still running: the stream ends with the attempt."""

from __future__ import annotations

import threading
import time

from orchestrator.models.launch import LaunchRequest
from orchestrator.models.specs import DagSpec
from orchestrator.runtime.fake import FakeBehavior
from orchestrator.services.users import Role
from tests.unit.services.test_scheduler import t
from tests.unit.web.conftest import Web


def test_follow_streams_a_running_attempt_until_it_ends(web: Web) -> None:
    def slow(request: LaunchRequest) -> FakeBehavior:
        return FakeBehavior(logs=b"started\n", hang=True)

    web.harness.runtime.script = slow
    run_id = web.harness.trigger(DagSpec(dag_id="s", fileloc="/dags/s.py", tasks=(t("slow"),)))
    web.harness.tick(3)
    assert web.harness.tis(run_id, "s")["slow"].state == "running"

    path = f"/api/v1/dags/s/runs/{run_id}/tasks/slow/logs?follow=true"
    received: list[bytes] = []
    ended = threading.Event()

    def read() -> None:
        with web.client.stream("GET", path, headers=web.auth(Role.VIEWER)) as response:
            for chunk in response.iter_bytes():
                received.append(chunk)
        ended.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = time.monotonic() + 10
    while b"started" not in b"".join(received) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert b"started" in b"".join(received)
    assert not ended.is_set()  # still running: the stream stays open

    (container_id,) = web.harness.runtime.started[-1:]
    web.harness.runtime.finish(container_id, 0, logs=b"done\n")
    web.harness.tick(3)
    assert ended.wait(10)
    text = b"".join(received).decode()
    assert "started\n" in text and text.rstrip().endswith("done")
