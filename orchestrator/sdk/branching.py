"""The join-after-branch rule: joins that would be silently skipped get a rule that runs them.

Under Airflow's default `all_success`, a task joining two paths out of a branch task is always
skipped, because the branch skips one of the paths. Here such a join gets
`none_failed_min_one_success` (run when no upstream task failed and at least one succeeded)
unless its trigger rule was set, on the task or in the DAG's `default_args`: an explicit rule is
always kept.
"""

from __future__ import annotations

from collections.abc import Set

from orchestrator.models.graph import branch_joins
from orchestrator.models.specs import DagSpec, TriggerRule

#: The rule a join after a branch gets when its author set none.
JOIN_RULE = TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS


def with_join_rules(spec: DagSpec, explicit_rule: Set[str]) -> DagSpec:
    """`spec` with `JOIN_RULE` on every join after a branch whose id is not in `explicit_rule`."""
    joins = branch_joins(spec)
    if not joins.keys() - explicit_rule:
        return spec
    tasks = tuple(
        task.model_copy(update={"trigger_rule": JOIN_RULE})
        if task.task_id in joins and task.task_id not in explicit_rule
        else task
        for task in spec.tasks
    )
    return spec.model_copy(update={"tasks": tasks})
