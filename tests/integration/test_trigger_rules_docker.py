"""Trigger rules on real containers: a failing parent, a succeeding one, a child per rule."""

from __future__ import annotations

import pytest

from orchestrator.models.specs import TriggerRule
from tests.integration.harness import Env, sh

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("test_images")]

# states of a child of [ok, bad] under each rule once both parents finished
UNDER_BOTH = {
    TriggerRule.ALL_SUCCESS: "upstream_failed",
    TriggerRule.ALL_FAILED: "skipped",
    TriggerRule.ALL_DONE: "success",
    TriggerRule.ONE_SUCCESS: "success",
    TriggerRule.ONE_FAILED: "success",
    TriggerRule.NONE_FAILED: "upstream_failed",
    TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS: "upstream_failed",
    TriggerRule.NONE_SKIPPED: "success",
    TriggerRule.ALWAYS: "success",
}


def test_each_rule_under_a_failing_parent(env: Env) -> None:
    children = [
        sh(f"after_both_{rule.value}", "true", "ok", "bad", trigger_rule=rule)
        for rule in TriggerRule
    ]
    tis = env.run(
        sh("ok", "true"),
        sh("bad", "echo failing; exit 1"),
        *children,
        sh("after_bad_all_failed", "true", "bad", trigger_rule=TriggerRule.ALL_FAILED),
        sh("after_bad_one_success", "true", "bad", trigger_rule=TriggerRule.ONE_SUCCESS),
    )
    got = {rule: tis[f"after_both_{rule.value}"].state for rule in TriggerRule}
    assert got == UNDER_BOTH
    assert tis["after_bad_all_failed"].state == "success"
    assert tis["after_bad_one_success"].state == "upstream_failed"
    assert env.run_state == "failed"  # leaves failed to run


def test_a_clean_up_task_handles_the_failure(env: Env) -> None:
    """The leaves decide the run: an all_done clean-up that succeeds makes it a success."""
    tis = env.run(
        sh("work", "exit 3"),
        sh("cleanup", "echo cleaning up", "work", trigger_rule=TriggerRule.ALL_DONE),
    )
    assert (tis["work"].state, tis["cleanup"].state) == ("failed", "success")
    assert env.run_state == "success"


def test_one_failed_alerts_without_waiting_for_slow_siblings(env: Env) -> None:
    tis = env.run(
        sh("slow", "sleep 3"),
        sh("bad", "exit 1"),
        sh("alert", "echo alert", "slow", "bad", trigger_rule=TriggerRule.ONE_FAILED),
    )
    assert tis["alert"].state == "success"
    assert tis["alert"].start_date < tis["slow"].end_date  # fired before the slow one ended
