"""Applying integrity decisions to a run in the store (the decisions are in
`scheduling.integrity`).

A run records, in `dag_runs.spec_hash`, the hash of the spec its task instances were last
checked against; the scheduler re-checks a running run only when its DAG's stored hash differs
(the file changed) or the DAG became inactive (`NO_SPEC`), so an unchanged DAG costs one string
comparison per run and pass.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from orchestrator.models.specs import DagSpec
from orchestrator.models.states import TaskState
from orchestrator.scheduling.attempts import AttemptEnd, describe_failure
from orchestrator.scheduling.integrity import IntegrityDecisions, verify_integrity
from orchestrator.services.set_state import SetState
from orchestrator.store.tables import DagRow, DagRunRow, TaskAttemptRow, TaskInstanceRow

#: The `spec_hash` of a run whose DAG is gone or inactive (no spec has an empty hash).
NO_SPEC = ""


def target_hash(dag: DagRow | None) -> str:
    """The hash a run of this DAG must be checked against: its spec's, or NO_SPEC when the DAG
    is gone or inactive."""
    if dag is None or not dag.is_active:
        return NO_SPEC
    return dag.spec_hash


def removal_reason(dag_active: bool) -> str:
    if dag_active:
        return "the task was removed from the DAG"
    return "the DAG was removed (its file is gone or no longer defines it)"


def sync_run(
    session: Session,
    run: DagRunRow,
    spec: DagSpec | None,
    tis: list[TaskInstanceRow],
    now: datetime,
    set_state: SetState,
) -> IntegrityDecisions:
    """Bring one unfinished run's task instances in line with `spec` (None: the DAG is gone
    or inactive). The caller records the hash it checked against in `run.spec_hash`."""
    decisions = verify_integrity(
        spec.task_ids if spec is not None else None,
        {(ti.task_id, ti.map_index): TaskState(ti.state) for ti in tis},
    )
    by_key = {(ti.task_id, ti.map_index): ti for ti in tis}
    reason = removal_reason(spec is not None)
    for key in decisions.remove:
        ti = by_key[key]
        ti.end_date = now
        set_state(session, ti, TaskState.REMOVED, now, reason)
    for task_id in decisions.restore:
        ti = by_key[(task_id, -1)]
        ti.end_date = None
        set_state(session, ti, TaskState.NONE, now, "the task is back in the DAG")
    if spec is not None:
        for task_id in decisions.add:
            session.add(
                TaskInstanceRow(
                    dag_run_id=run.id,
                    dag_id=run.dag_id,
                    run_id=run.run_id,
                    task_id=task_id,
                    map_index=-1,
                    state=TaskState.NONE.value,
                    try_number=0,
                    max_tries=spec.task(task_id).retries,
                    updated_at=now,
                )
            )
    session.flush()
    return decisions


def finish_removed_attempt(
    session: Session,
    ti: TaskInstanceRow,
    attempt: TaskAttemptRow | None,
    end: AttemptEnd,
    output_json: str | None,
    *,
    dag_active: bool,
    now: datetime,
    set_state: SetState,
) -> str:
    """Record the end of an attempt whose task left the DAG while its container ran.

    The attempt keeps what happened (exit code, output, its own success or failure, without
    retries or skip codes: the task that defined them is gone); the instance becomes `removed`.
    Returns the state detail written."""
    failure = describe_failure(end)
    detail = failure or "exited 0"
    message = f"{removal_reason(dag_active)} while its container ran ({detail})"
    ti.exit_code = end.exit_code
    ti.end_date = now
    ti.next_try_at = None
    if attempt is not None:
        attempt.exit_code = end.exit_code
        attempt.oom_killed = end.oom_killed
        attempt.timed_out = end.timed_out
        attempt.detail = detail
        attempt.output_json = output_json
        attempt.end_date = now
        attempt.state = (TaskState.FAILED if failure else TaskState.SUCCESS).value
    set_state(session, ti, TaskState.REMOVED, now, message)
    return message
