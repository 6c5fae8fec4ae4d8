"""`/api/v1/dags/{dag_id}/runs`: list, show, trigger, clear and mark runs."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, status

from orchestrator.models.states import TaskState
from orchestrator.services.users import Role
from orchestrator.store import dags as dag_store
from orchestrator.store import runs as run_store
from orchestrator.web import actions
from orchestrator.web.auth import Principal, api_user
from orchestrator.web.schemas import (
    ChangesOut,
    ClearIn,
    MarkIn,
    RunOut,
    RunPage,
    TriggerIn,
    changes_out,
    run_out,
)
from orchestrator.web.state import WebState, web_state

router = APIRouter(tags=["runs"])
RUN = "/dags/{dag_id}/runs/{run_id}"


@router.get("/dags/{dag_id}/runs", response_model=RunPage)
def list_runs(
    dag_id: str,
    limit: int = Query(25, ge=1, le=500),
    offset: int = Query(0, ge=0),
    state: WebState = Depends(web_state),
    _user: Principal = Depends(api_user()),
) -> RunPage:
    """A page of the DAG's runs, newest logical date first."""
    with state.sessions() as session:
        dag_store.get_dag_row(session, dag_id)
        runs = run_store.list_runs(session, dag_id, limit, offset)
        total = run_store.count_runs(session, dag_id)
    return RunPage(runs=[run_out(r) for r in runs], total=total, limit=limit, offset=offset)


@router.post("/dags/{dag_id}/runs", response_model=RunOut, status_code=status.HTTP_201_CREATED)
def trigger(
    dag_id: str,
    body: TriggerIn,
    state: WebState = Depends(web_state),
    user: Principal = Depends(api_user(Role.OPERATOR)),
) -> RunOut:
    """Queue a manual run; its conf is validated against the DAG's params (422 if it does not
    fit). A running scheduler executes it. A DAG whose file is gone cannot be triggered (400)."""
    return actions.trigger(
        state, user, dag_id, body.conf, logical_date=body.logical_date, run_id=body.run_id
    )


@router.get(RUN, response_model=RunOut)
def get_run(
    dag_id: str,
    run_id: str,
    state: WebState = Depends(web_state),
    _user: Principal = Depends(api_user()),
) -> RunOut:
    with state.sessions() as session:
        return run_out(run_store.get_run(session, dag_id, run_id))


@router.patch(RUN, response_model=ChangesOut)
def set_run_state(
    dag_id: str,
    run_id: str,
    body: MarkIn,
    state: WebState = Depends(web_state),
    user: Principal = Depends(api_user(Role.OPERATOR)),
) -> ChangesOut:
    """Mark a run success (its unfinished tasks succeed) or failed (they fail or skip)."""
    changes = actions.mark_dag_run(state, user, dag_id, run_id, TaskState(body.state))
    return changes_out(changes)


@router.post(RUN + "/clear", response_model=ChangesOut)
def clear_run(
    dag_id: str,
    run_id: str,
    body: ClearIn,
    state: WebState = Depends(web_state),
    user: Principal = Depends(api_user(Role.OPERATOR)),
) -> ChangesOut:
    """Clear tasks of a run (all, or `task_ids`, plus `downstream`; `failed_only`) so they
    run again."""
    changes = actions.clear_tasks(
        state,
        user,
        dag_id,
        run_id,
        body.task_ids,
        downstream=body.downstream,
        failed_only=body.failed_only,
    )
    return changes_out(changes)
