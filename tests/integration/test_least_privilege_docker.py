"""Least privilege on a real engine: no-new-privileges, default limits, the image's user, and
privileges only when the operator's policy allows them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from orchestrator.models.run_info import RunInfo
from orchestrator.models.specs import TaskSpec
from orchestrator.services.containers import (
    AttemptKey,
    build_launch_request,
    output_dir,
    prepare_output_dir,
)
from orchestrator.settings import Settings
from orchestrator.templating import RenderedTask
from tests.integration.harness import BUSYBOX, Env, sh

pytestmark = pytest.mark.docker

PROBE = (
    'printf \'{"no_new_privs": %s, "uid": %s}\' '
    '"$(awk \'/^NoNewPrivs/ {print $2}\' /proc/self/status)" "$(id -u)" > $ORCH_OUTPUT_PATH'
)


def test_tasks_cannot_gain_privileges_and_run_as_the_image_user(env: Env) -> None:
    tis = env.run(sh("default", PROBE), sh("as_user", PROBE, user="1234"))
    for ti in tis.values():
        assert ti.state == "success", env.log(ti)
    assert json.loads(tis["default"].output_json) == {"no_new_privs": 1, "uid": 0}
    assert json.loads(tis["as_user"].output_json) == {"no_new_privs": 1, "uid": 1234}


def host_config(env: Env, settings: Settings, task: TaskSpec) -> dict[str, Any]:
    """Create (not start) the container the scheduler would for `task`; its HostConfig."""
    key = AttemptKey("it", "inspect", task.task_id, -1, 1)
    when = datetime(2026, 1, 1, tzinfo=UTC)
    info = RunInfo(
        run_id="inspect",
        run_type="manual",
        logical_date=when,
        data_interval_start=when,
        data_interval_end=when,
    )
    host_output = output_dir(settings, key)
    prepare_output_dir(host_output)
    rendered = RenderedTask(image=task.image, command=task.command)
    request = build_launch_request(settings, task, rendered, key, info, host_output)
    container_id = env.runtime.create(request)
    try:
        attrs: dict[str, Any] = env.client.api.inspect_container(container_id)
    finally:
        env.client.api.remove_container(container_id, force=True)
    assert attrs["Config"]["User"] == (task.user or "")
    host: dict[str, Any] = attrs["HostConfig"]
    return host


def test_launched_containers_get_least_privilege_and_default_limits(env: Env) -> None:
    host = host_config(env, env.settings, TaskSpec(task_id="plain", image=BUSYBOX))
    assert "no-new-privileges" in host["SecurityOpt"]
    assert host["Privileged"] is False
    assert not host["CapAdd"]
    assert host["Memory"] == 2 * 1024**3 and host["MemorySwap"] == 2 * 1024**3
    assert host["NanoCpus"] == 10**9
    assert host["PidsLimit"] == 1024

    own = TaskSpec(task_id="own", image=BUSYBOX, memory="64m", cpus=0.5, pids_limit=50)
    host = host_config(env, env.settings, own)
    assert (host["Memory"], host["NanoCpus"], host["PidsLimit"]) == (64 * 1024**2, 5 * 10**8, 50)


def test_privileges_the_policy_allows_reach_the_container(env: Env) -> None:
    settings = env.settings.model_copy(
        update={"allow_privileged": True, "allowed_capabilities": ["NET_ADMIN"]}
    )
    task = TaskSpec(task_id="net", image=BUSYBOX, cap_add=["net_admin"])
    host = host_config(env, settings, task)
    assert [cap.removeprefix("CAP_") for cap in host["CapAdd"]] == ["NET_ADMIN"]
    assert host["Privileged"] is False and "no-new-privileges" in host["SecurityOpt"]

    host = host_config(env, settings, TaskSpec(task_id="priv", image=BUSYBOX, privileged=True))
    assert host["Privileged"] is True
