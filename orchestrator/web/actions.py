"""What users change through the web server, shared by the REST API and the pages: each
action calls the same service as the CLI and writes its audit record in the same transaction."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from orchestrator.models.states import TaskState
from orchestrator.services.clearing import Changes, clear, mark_run, mark_task
from orchestrator.services.run_planner import set_paused
from orchestrator.services.runs import trigger_run, triggerable_spec
from orchestrator.store import users as user_store
from orchestrator.web.auth import Principal
from orchestrator.web.schemas import RunOut, run_out
from orchestrator.web.state import WebState


def _by(user: Principal) -> str:
    return f"the web API by {user.username}"


def pause(state: WebState, user: Principal, dag_id: str, paused: bool) -> None:
    """Pause (no new scheduled runs; queued runs wait) or unpause a DAG."""
    now = state.clock.now()
    with state.sessions.begin() as session:
        set_paused(session, dag_id, paused)
        user_store.record_audit(
            session,
            at=now,
            username=user.username,
            action="pause" if paused else "unpause",
            dag_id=dag_id,
        )


def trigger(
    state: WebState,
    user: Principal,
    dag_id: str,
    conf: dict[str, Any],
    *,
    logical_date: datetime | None = None,
    run_id: str | None = None,
) -> RunOut:
    """Queue a manual run; raises InvalidConf when `conf` does not fit the DAG's params."""
    now = state.clock.now()
    with state.sessions.begin() as session:
        spec = triggerable_spec(session, dag_id)
        run = trigger_run(
            session, spec, now=now, conf=conf, logical_date=logical_date, run_id=run_id
        )
        user_store.record_audit(
            session,
            at=now,
            username=user.username,
            action="trigger",
            dag_id=dag_id,
            run_id=run.run_id,
            detail=json.dumps(conf) if conf else None,
        )
        return run_out(run)


def clear_tasks(
    state: WebState,
    user: Principal,
    dag_id: str,
    run_id: str,
    task_ids: list[str] | None,
    *,
    downstream: bool = False,
    failed_only: bool = False,
) -> Changes:
    """Clear tasks of a run (all, or `task_ids` plus their downstream) so they run again."""
    now = state.clock.now()
    with state.sessions.begin() as session:
        changes = clear(
            session,
            dag_id,
            run_id,
            task_ids,
            downstream=downstream,
            failed_only=failed_only,
            now=now,
            by=_by(user),
        )
        detail = {"task_ids": task_ids, "downstream": downstream, "failed_only": failed_only}
        user_store.record_audit(
            session,
            at=now,
            username=user.username,
            action="clear",
            dag_id=dag_id,
            run_id=run_id,
            detail=json.dumps(detail),
        )
    return changes


def mark_dag_run(
    state: WebState, user: Principal, dag_id: str, run_id: str, to: TaskState
) -> Changes:
    """Mark a run success (its unfinished tasks succeed) or failed (they fail or skip)."""
    now = state.clock.now()
    with state.sessions.begin() as session:
        changes = mark_run(session, dag_id, run_id, to, now=now, by=_by(user))
        user_store.record_audit(
            session,
            at=now,
            username=user.username,
            action="mark",
            dag_id=dag_id,
            run_id=run_id,
            detail=f"run {to.value}",
        )
    return changes


def mark_task_instance(
    state: WebState,
    user: Principal,
    dag_id: str,
    run_id: str,
    task_id: str,
    to: TaskState,
    map_index: int = -1,
) -> Changes:
    """Mark one task instance success or failed; its downstream tasks follow their rules."""
    now = state.clock.now()
    with state.sessions.begin() as session:
        changes = mark_task(
            session, dag_id, run_id, task_id, to, now=now, by=_by(user), map_index=map_index
        )
        user_store.record_audit(
            session,
            at=now,
            username=user.username,
            action="mark",
            dag_id=dag_id,
            run_id=run_id,
            detail=f"task {task_id}[{map_index}] {to.value}",
        )
    return changes
