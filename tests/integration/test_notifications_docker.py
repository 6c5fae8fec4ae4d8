"""Notifications on real containers: a failing task's webhook, and a container hook that
receives the payload and is removed afterwards."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.models.notifiers import ContainerHook, Webhook
from tests.integration.harness import BUSYBOX, Env, sh, wait_removed
from tests.webhook_receiver import Receiver

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("test_images")]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def test_a_failing_task_sends_exactly_one_on_failure_with_its_exit_code(
    env: Env, receiver: Receiver
) -> None:
    hook = Webhook(receiver.url())
    tis = env.run(
        sh("ok", "echo fine", on_failure=hook),
        sh("bad", "echo broken; exit 7", on_failure=hook, on_success=hook),
        sh("after", "true", "bad", on_failure=hook),
        timeout=180,
    )
    assert (tis["bad"].state, tis["bad"].exit_code) == ("failed", 7)
    env.scheduler.close()  # lets queued deliveries finish
    [body] = receiver.received
    assert (body["event"], body["task_id"], body["exit_code"]) == ("on_failure", "bad", 7)
    assert (body["dag_id"], body["run_id"], body["try_number"]) == ("it", env.run_id, 1)
    assert "broken" in Path(body["log_path"]).read_text()
    assert "notification on_failure to " + receiver.url() + " delivered" in env.log(tis["bad"])


def test_a_container_hook_gets_the_payload_and_is_removed(env: Env, tmp_path: Path) -> None:
    out = tmp_path / "hook-out"
    out.mkdir()
    out.chmod(0o777)
    hook = ContainerHook(
        BUSYBOX,
        command=["sh", "-c", 'printf "%s" "$ORCH_NOTIFICATION" > /out/payload.json'],
        mounts=[f"{out}:/out"],
    )
    tis = env.run(sh("done", "echo done", on_success=hook), timeout=180)
    assert tis["done"].state == "success"
    env.scheduler.close()
    body = json.loads((out / "payload.json").read_text())
    assert (body["event"], body["task_id"], body["state"]) == ("on_success", "done", "success")
    assert wait_removed(env, timeout=30) == []  # the hook's container too
    assert "notification on_success to container orchestrator/busybox:latest delivered" in (
        env.log(tis["done"])
    )
