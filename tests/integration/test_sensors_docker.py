"""Sensors on real containers: a reschedule-mode sensor waits for a file another task makes,
and sensors whose condition never holds time out (failed, or skipped with soft_fail)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from orchestrator.models.sensors import SensorSpec
from orchestrator.store import sensor_pokes
from orchestrator.store import task_instances as ti_store
from tests.integration.harness import Env, sh, wait_removed

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("test_images")]

CHECK = 'echo "poke $ORCH_POKE_NUMBER: looking"; test -f /data/ready || exit 75; echo found'


def shared_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    folder.chmod(0o777)  # whichever user the container runs as may write here
    return folder


def test_reschedule_sensor_waits_for_a_file_made_by_another_task(env: Env, tmp_path: Path) -> None:
    data = shared_dir(tmp_path)
    mount = (f"{data}:/data",)
    sensor = SensorSpec(poke_interval=1, timeout=120, mode="reschedule")
    tis = env.run(
        sh("wait_for_file", CHECK, mounts=mount, sensor=sensor),
        sh("make_file", "sleep 4; touch /data/ready", mounts=mount),
        sh("use_file", "ls /data/ready", "wait_for_file", mounts=mount),
        timeout=180,
    )
    wait = tis["wait_for_file"]
    assert wait.state == "success", env.log(wait)
    assert wait.try_number == 1  # pokes do not use up tries
    assert tis["use_file"].state == "success" and env.run_state == "success"
    log = env.log(wait)
    pokes = re.findall(r"^poke (\d+): looking$", log, flags=re.MULTILINE)
    assert len(pokes) >= 3 and pokes == [str(n) for n in range(1, len(pokes) + 1)], log
    assert log.count("not yet (exit 75)") == len(pokes) - 1
    assert log.rstrip().endswith("found")
    with env.sessions() as session:
        rows = sensor_pokes.pokes(session, wait.id)
        changes = [c.to_state for c in ti_store.state_changes(session, wait.id)]
    assert [r.exit_code for r in rows] == [75] * (len(rows) - 1) + [0]
    assert len({r.container_name for r in rows}) == len(rows)  # one container per poke
    assert changes.count("up_for_reschedule") == len(rows) - 1
    # the sensor never waited with a slot: each wait is up_for_reschedule, not running
    assert wait_removed(env) == []


def test_sensors_that_never_see_their_condition_time_out(env: Env, tmp_path: Path) -> None:
    data = shared_dir(tmp_path)
    mount = (f"{data}:/data",)
    tis = env.run(
        sh(
            "wait_hard",
            CHECK,
            mounts=mount,
            retries=2,
            sensor=SensorSpec(poke_interval=1, timeout=3, mode="reschedule"),
        ),
        sh(
            "wait_soft",
            CHECK,
            mounts=mount,
            sensor=SensorSpec(poke_interval=1, timeout=3, soft_fail=True),
        ),
        sh("after_hard", "true", "wait_hard"),
        sh("after_soft", "true", "wait_soft"),
        timeout=120,
    )
    hard, soft = tis["wait_hard"], tis["wait_soft"]
    assert (hard.state, hard.try_number) == ("failed", 1), env.log(hard)  # no retry
    assert hard.state_detail.startswith("sensor timed out after 3s")
    assert soft.state == "skipped" and "soft_fail" in soft.state_detail
    assert (tis["after_hard"].state, tis["after_soft"].state) == ("upstream_failed", "skipped")
    assert env.run_state == "failed"
    for ti in (hard, soft):
        assert env.log(ti).count(": looking") >= 2
        assert f"[orchestrator] {ti.state}: sensor timed out" in env.log(ti)
    assert wait_removed(env) == []
