"""What users change through the web server, shared by the REST API and the pages: each
action calls the same service as the CLI and writes its audit record in the same transaction."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

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


@dataclass
class Audit:
    """The transaction of one action and what its audit record says (set `run_id` and
    `detail` inside the block when they are known only then)."""

    session: Session
    now: datetime
    run_id: str | None = None
    detail: str | None = None


@contextmanager
def audited(
    state: WebState,
    user: Principal,
    action: str,
    dag_id: str | None = None,
    *,
    run_id: str | None = None,
    detail: str | None = None,
) -> Iterator[Audit]:
    """One transaction for the action and its audit record (written if the action went
    through: a failure rolls both back)."""
    now = state.clock.now()
    with state.sessions.begin() as session:
        audit = Audit(session, now, run_id, detail)
        yield audit
        user_store.record_audit(
            session,
            at=now,
            username=user.username,
            action=action,
            dag_id=dag_id,
            run_id=audit.run_id,
            detail=audit.detail,
        )


def pause(state: WebState, user: Principal, dag_id: str, paused: bool) -> None:
    """Pause (no new scheduled runs; queued runs wait) or unpause a DAG."""
    with audited(state, user, "pause" if paused else "unpause", dag_id) as audit:
        set_paused(audit.session, dag_id, paused)


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
    detail = json.dumps(conf) if conf else None
    with audited(state, user, "trigger", dag_id, detail=detail) as audit:
        spec = triggerable_spec(audit.session, dag_id)
        run = trigger_run(
            audit.session,
            spec,
            now=audit.now,
            conf=conf,
            logical_date=logical_date,
            run_id=run_id,
        )
        audit.run_id = run.run_id
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
    options = {"task_ids": task_ids, "downstream": downstream, "failed_only": failed_only}
    with audited(state, user, "clear", dag_id, run_id=run_id, detail=json.dumps(options)) as audit:
        return clear(
            audit.session,
            dag_id,
            run_id,
            task_ids,
            downstream=downstream,
            failed_only=failed_only,
            now=audit.now,
            by=_by(user),
        )


def mark_dag_run(
    state: WebState, user: Principal, dag_id: str, run_id: str, to: TaskState
) -> Changes:
    """Mark a run success (its unfinished tasks succeed) or failed (they fail or skip)."""
    with audited(state, user, "mark", dag_id, run_id=run_id, detail=f"run {to.value}") as audit:
        return mark_run(audit.session, dag_id, run_id, to, now=audit.now, by=_by(user))


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
    detail = f"task {task_id}[{map_index}] {to.value}"
    with audited(state, user, "mark", dag_id, run_id=run_id, detail=detail) as audit:
        return mark_task(
            audit.session,
            dag_id,
            run_id,
            task_id,
            to,
            now=audit.now,
            by=_by(user),
            map_index=map_index,
        )
