"""The scheduler on the real Docker engine: success with outputs, and every failure path."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from orchestrator.models.specs import TaskSpec
from tests.integration.harness import PYTHON, Env, sh, wait_removed

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("test_images")]


def test_outputs_flow_and_logs_outlive_the_containers(env: Env) -> None:
    tis = env.run(
        sh("make", 'echo "making"; echo \'{"n": 3, "city": "Oslo"}\' > "$ORCH_OUTPUT_PATH"'),
        sh(
            "use",
            'echo "got $N in $CITY for $ORCH_DAG_ID/$ORCH_TASK_ID try $ORCH_TRY_NUMBER"',
            "make",
            environment={"N": "{{ outputs.make.n }}", "CITY": "{{ outputs.make.city }}"},
        ),
    )
    assert env.run_state == "success"
    assert json.loads(tis["make"].output_json) == {"n": 3, "city": "Oslo"}
    assert "got 3 in Oslo for it/use try 1" in env.log(tis["use"])
    assert "making" in env.log(tis["make"])
    assert wait_removed(env) == []


def test_non_zero_exit_fails_and_blocks_downstream(env: Env) -> None:
    tis = env.run(sh("bad", "echo oops >&2; exit 7"), sh("after", "true", "bad"))
    assert (tis["bad"].state, tis["bad"].exit_code) == ("failed", 7)
    assert tis["after"].state == "upstream_failed"
    assert env.run_state == "failed"
    assert "oops" in env.log(tis["bad"])


def test_retry_runs_a_second_container(env: Env) -> None:
    tis = env.run(sh("flaky", '[ "$ORCH_TRY_NUMBER" -ge 2 ] || exit 1', retries=1, retry_delay=0))
    assert (tis["flaky"].state, tis["flaky"].try_number) == ("success", 2)


def test_oom_kill_is_reported(env: Env) -> None:
    tis = env.run(
        TaskSpec(
            task_id="hog",
            image=PYTHON,
            pull_policy="never",
            memory="48m",
            command=("python3", "-c", "x = bytearray(400 * 1024 * 1024); print(len(x))"),
        )
    )
    ti = tis["hog"]
    assert ti.state == "failed" and ti.exit_code == 137
    assert "out of memory" in ti.state_detail
    assert "out of memory" in env.log(ti)


def test_execution_timeout_stops_then_kills(env: Env) -> None:
    started = time.monotonic()
    tis = env.run(sh("slow", "trap '' TERM; echo sleeping; sleep 60", execution_timeout=1))
    elapsed = time.monotonic() - started
    ti = tis["slow"]
    assert ti.state == "failed" and "timed out after 1s" in ti.state_detail
    assert elapsed < 30
    log = env.log(ti)
    assert "sleeping" in log and "execution_timeout of 1s reached" in log


def test_missing_image_with_pull_never(env: Env) -> None:
    tis = env.run(sh("ghost", "true", image="orchestrator/does-not-exist:1"))
    ti = tis["ghost"]
    assert ti.state == "failed"
    assert "orchestrator/does-not-exist:1" in ti.state_detail
    assert "orchestrator/does-not-exist:1" in env.log(ti)


def test_bad_template_fails_with_field_and_message(env: Env) -> None:
    tis = env.run(sh("tpl", "echo {{ params.missing }}"))
    ti = tis["tpl"]
    assert ti.state == "failed"
    assert "command[2]" in ti.state_detail and "missing" in ti.state_detail
    assert env.leftover_containers() == []


def test_bad_output_json_fails(env: Env) -> None:
    tis = env.run(sh("junk", 'echo "{nope" > "$ORCH_OUTPUT_PATH"'))
    ti = tis["junk"]
    assert ti.state == "failed" and "not a single JSON value" in ti.state_detail


def test_skip_exit_code(env: Env) -> None:
    tis = env.run(sh("maybe", "exit 42", skip_exit_codes=(42,)), sh("then", "true", "maybe"))
    assert (tis["maybe"].state, tis["then"].state) == ("skipped", "skipped")
    assert env.run_state == "success"


def test_mounts_volume_bind_and_tmpfs(env: Env, tmp_path: Path) -> None:
    host = tmp_path / "in"
    host.mkdir()
    (host / "hello.txt").write_text("hi from host\n")
    vol = f"{env.settings.instance_name}-vol"
    tis = env.run(
        sh(
            "write",
            "echo data > /vol/f && cat /in/hello.txt && ! touch /in/x && echo t > /scratch/t",
            mounts=(f"{vol}:/vol", f"{host}:/in:ro", "tmpfs:/scratch"),
        ),
        sh(
            "read",
            'printf "\\"%s\\"" "$(cat /vol/f)" > "$ORCH_OUTPUT_PATH"',
            "write",
            mounts=(f"{vol}:/vol",),
        ),
    )
    assert tis["write"].state == "success", env.log(tis["write"])
    assert json.loads(tis["read"].output_json) == "data"
    volume = env.client.volumes.get(vol)
    assert volume.attrs["Labels"].get("orch.test")  # created labelled, so cleanup finds it
