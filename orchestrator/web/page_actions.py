"""The forms of the pages that change things: pause, trigger, clear and mark. Each calls the
same action as the REST API (`actions`: the service plus its audit record), needs an operator,
and answers with a redirect back and a one-time message. Every form must carry the session's
CSRF token (checked before anything else: see `csrf`); the session cookie is also
`SameSite=lax`."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from orchestrator.errors import OrchestratorError, UserError
from orchestrator.models.states import TaskState
from orchestrator.services.clearing import Changes
from orchestrator.services.runs import parse_conf
from orchestrator.services.users import Role
from orchestrator.web import actions
from orchestrator.web.auth import Principal, page_user
from orchestrator.web.csrf import require_form_token
from orchestrator.web.dag_pages import grid_page, run_path, ti_path
from orchestrator.web.pages import flash, safe_next
from orchestrator.web.state import WebState, web_state

router = APIRouter(include_in_schema=False, dependencies=[Depends(require_form_token)])
Operator = Depends(page_user(Role.OPERATOR))


def _back(target: str) -> Response:
    return RedirectResponse(target, status_code=303)


def _summary(changes: Changes) -> str:
    moved = ", ".join(f"{c.task_id} {c.from_state} → {c.to_state}" for c in changes.tasks)
    return f"run {changes.run_state_before} → {changes.run_state}; " + (moved or "no task changed")


def _markable(value: str) -> TaskState:
    if value not in (TaskState.SUCCESS.value, TaskState.FAILED.value):
        raise UserError(f"a run or task can be marked success or failed, not {value!r}")
    return TaskState(value)


@router.post("/dags/{dag_id}/pause")
def pause(
    request: Request,
    dag_id: str,
    paused: bool = Form(...),
    next: str = Form("/"),
    state: WebState = Depends(web_state),
    user: Principal = Operator,
) -> Response:
    actions.pause(state, user, dag_id, paused)
    flash(request, f"{dag_id} is {'paused' if paused else 'active'}.")
    return _back(safe_next(next))


@router.post("/dags/{dag_id}/trigger")
def trigger(
    request: Request,
    dag_id: str,
    conf: str = Form(""),
    state: WebState = Depends(web_state),
    user: Principal = Operator,
) -> Response:
    """Queue a manual run. A conf that is not JSON or does not fit the DAG's params draws the
    grid again with the message and the text as typed (422); no run is created."""
    try:
        run = actions.trigger(state, user, dag_id, parse_conf(conf, where="conf"))
    except OrchestratorError as exc:
        return grid_page(
            request,
            state,
            user,
            dag_id,
            25,
            status_code=422,
            trigger_error=str(exc),
            conf_text=conf,
        )
    flash(request, f"Triggered {run.run_id}.")
    return _back(f"/dags/{dag_id}")


@router.post("/dags/{dag_id}/runs/{run_id}/clear")
def clear(
    request: Request,
    dag_id: str,
    run_id: str,
    task_id: str | None = Form(None),
    downstream: bool = Form(False),
    failed_only: bool = Form(False),
    state: WebState = Depends(web_state),
    user: Principal = Operator,
) -> Response:
    """Clear the whole run, its failed tasks, or one task (with its downstream tasks)."""
    task_ids = [task_id] if task_id else None
    try:
        changes = actions.clear_tasks(
            state, user, dag_id, run_id, task_ids, downstream=downstream, failed_only=failed_only
        )
        flash(request, "Cleared: " + _summary(changes))
    except OrchestratorError as exc:
        flash(request, f"Not cleared: {exc}")
    return _back(ti_path(dag_id, run_id, task_id) if task_id else run_path(dag_id, run_id))


@router.post("/dags/{dag_id}/runs/{run_id}/mark")
def mark_run(
    request: Request,
    dag_id: str,
    run_id: str,
    state_name: str = Form(..., alias="state"),
    state: WebState = Depends(web_state),
    user: Principal = Operator,
) -> Response:
    try:
        changes = actions.mark_dag_run(state, user, dag_id, run_id, _markable(state_name))
        flash(request, "Marked: " + _summary(changes))
    except OrchestratorError as exc:
        flash(request, f"Not marked: {exc}")
    return _back(run_path(dag_id, run_id))


@router.post("/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/mark")
def mark_task(
    request: Request,
    dag_id: str,
    run_id: str,
    task_id: str,
    state_name: str = Form(..., alias="state"),
    map_index: int = Form(-1),
    state: WebState = Depends(web_state),
    user: Principal = Operator,
) -> Response:
    try:
        to = _markable(state_name)
        changes = actions.mark_task_instance(state, user, dag_id, run_id, task_id, to, map_index)
        flash(request, "Marked: " + _summary(changes))
    except OrchestratorError as exc:
        flash(request, f"Not marked: {exc}")
    return _back(ti_path(dag_id, run_id, task_id, map_index))
