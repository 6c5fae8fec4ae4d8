"""Every trigger rule against the upstream situations that tell them apart."""

from __future__ import annotations

import pytest

from orchestrator.models.specs import TriggerRule
from orchestrator.models.states import TaskState
from orchestrator.scheduling.trigger_rules import UpstreamCounts, Verdict, verdict

S = TaskState
R = TriggerRule
RUN, WAIT, SKIP, UF = Verdict.RUN, Verdict.WAIT, Verdict.SKIP, Verdict.UPSTREAM_FAILED

# upstream situations: (name, states)
SITUATIONS = {
    "all_ok": (S.SUCCESS, S.SUCCESS),
    "one_ok_one_running": (S.SUCCESS, S.RUNNING),
    "one_failed_one_running": (S.FAILED, S.RUNNING),
    "one_ok_one_failed": (S.SUCCESS, S.FAILED),
    "all_failed": (S.FAILED, S.UPSTREAM_FAILED),
    "one_ok_one_skipped": (S.SUCCESS, S.SKIPPED),
    "all_skipped": (S.SKIPPED, S.SKIPPED),
    "retrying": (S.SUCCESS, S.UP_FOR_RETRY),
}

# the expected verdict of each rule in each situation, in SITUATIONS' order
EXPECTED = {
    R.ALL_SUCCESS: (RUN, WAIT, UF, UF, UF, SKIP, SKIP, WAIT),
    R.ALL_FAILED: (SKIP, SKIP, WAIT, SKIP, RUN, SKIP, SKIP, SKIP),
    R.ALL_DONE: (RUN, WAIT, WAIT, RUN, RUN, RUN, RUN, WAIT),
    R.ONE_SUCCESS: (RUN, RUN, WAIT, RUN, UF, RUN, SKIP, RUN),
    R.ONE_FAILED: (SKIP, WAIT, RUN, RUN, RUN, SKIP, SKIP, WAIT),
    R.NONE_FAILED: (RUN, WAIT, UF, UF, UF, RUN, RUN, WAIT),
    R.NONE_FAILED_MIN_ONE_SUCCESS: (RUN, WAIT, UF, UF, UF, RUN, SKIP, WAIT),
    R.NONE_SKIPPED: (RUN, WAIT, WAIT, RUN, RUN, SKIP, SKIP, WAIT),
    R.ALWAYS: (RUN, RUN, RUN, RUN, RUN, RUN, RUN, RUN),
}


@pytest.mark.parametrize("rule", list(TriggerRule))
def test_rule_table(rule: TriggerRule) -> None:
    got = tuple(verdict(rule, UpstreamCounts.of(states)) for states in SITUATIONS.values())
    assert dict(zip(SITUATIONS, got, strict=True)) == dict(
        zip(SITUATIONS, EXPECTED[rule], strict=True)
    )


def test_every_rule_is_in_the_table() -> None:
    assert set(EXPECTED) == set(TriggerRule)


@pytest.mark.parametrize("rule", list(TriggerRule))
def test_a_task_without_upstream_runs_under_any_rule(rule: TriggerRule) -> None:
    assert verdict(rule, UpstreamCounts.of([])) == RUN
