"""Trigger rules: what a task waiting on its upstream tasks does next, Airflow's way.

A pure function of the direct upstream tasks' states. Skips propagate as in Airflow: under
`all_success` a skipped parent skips the child; `none_failed` and
`none_failed_min_one_success` treat skips as fine (the rule to give a join after a branch).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from orchestrator.models.specs import TriggerRule
from orchestrator.models.states import FINISHED_TASK_STATES, TaskState


class Verdict(Enum):
    """What a task in state `none` does now."""

    WAIT = "wait"  # not decidable yet
    RUN = "run"  # schedule it
    SKIP = "skip"  # it will never run, and that is not a failure
    UPSTREAM_FAILED = "upstream_failed"  # it will never run because something failed


@dataclass(frozen=True)
class UpstreamCounts:
    """The direct upstream tasks' states, counted."""

    total: int
    success: int = 0
    skipped: int = 0
    failed: int = 0  # failed or upstream_failed
    done: int = 0  # in a finished state (removed counts as done and as nothing else)

    @classmethod
    def of(cls, states: Iterable[TaskState]) -> UpstreamCounts:
        total = success = skipped = failed = done = 0
        for state in states:  # one pass: readiness counts the parents of every candidate
            total += 1
            if state in FINISHED_TASK_STATES:
                done += 1
                if state == TaskState.SUCCESS:
                    success += 1
                elif state == TaskState.SKIPPED:
                    skipped += 1
                elif state in (TaskState.FAILED, TaskState.UPSTREAM_FAILED):
                    failed += 1
        return cls(total=total, success=success, skipped=skipped, failed=failed, done=done)


def verdict(rule: TriggerRule, up: UpstreamCounts) -> Verdict:
    """Decide, under `rule`, what a not-yet-started task does given its upstream counts."""
    all_done = up.done == up.total
    if rule == TriggerRule.ALWAYS or up.total == 0:
        return Verdict.RUN
    if rule == TriggerRule.ALL_SUCCESS:
        if up.failed:
            return Verdict.UPSTREAM_FAILED
        if up.skipped:
            return Verdict.SKIP
        return Verdict.RUN if up.success == up.total else Verdict.WAIT
    if rule == TriggerRule.ALL_FAILED:
        if up.success or up.skipped:
            return Verdict.SKIP
        return Verdict.RUN if up.failed == up.total else Verdict.WAIT
    if rule == TriggerRule.ALL_DONE:
        return Verdict.RUN if all_done else Verdict.WAIT
    if rule == TriggerRule.ONE_SUCCESS:
        if up.success:
            return Verdict.RUN
        if not all_done:
            return Verdict.WAIT
        return Verdict.SKIP if up.skipped == up.total else Verdict.UPSTREAM_FAILED
    if rule == TriggerRule.ONE_FAILED:
        if up.failed:
            return Verdict.RUN
        return Verdict.SKIP if all_done else Verdict.WAIT
    if rule in (TriggerRule.NONE_FAILED, TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS):
        if up.failed:
            return Verdict.UPSTREAM_FAILED
        if not all_done:
            return Verdict.WAIT
        if rule == TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS and not up.success:
            return Verdict.SKIP
        return Verdict.RUN
    if rule == TriggerRule.NONE_SKIPPED:
        if up.skipped:
            return Verdict.SKIP
        return Verdict.RUN if all_done else Verdict.WAIT
    raise AssertionError(f"unknown trigger rule {rule!r}")
