"""`/api/v1/dags/{dag_id}/runs/{run_id}/tasks`: task instances, marking, and their logs."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query
from fastapi.responses import PlainTextResponse, Response, StreamingResponse

from orchestrator.models.states import TaskState
from orchestrator.services.logs import attempt_log, follow, follow_attempt
from orchestrator.services.users import Role
from orchestrator.store import runs as run_store
from orchestrator.store import task_instances as ti_store
from orchestrator.web import actions
from orchestrator.web.auth import Principal, api_user
from orchestrator.web.schemas import ChangesOut, MarkIn, TaskInstanceOut, changes_out, ti_out
from orchestrator.web.state import WebState, web_state

router = APIRouter(tags=["task instances"])
TASKS = "/dags/{dag_id}/runs/{run_id}/tasks"
TASK = TASKS + "/{task_id}"
MapIndex = Query(-1, ge=-1, description="a mapped instance (-1: the task itself)")


@router.get(TASKS, response_model=list[TaskInstanceOut])
def list_task_instances(
    dag_id: str,
    run_id: str,
    state: WebState = Depends(web_state),
    _user: Principal = Depends(api_user()),
) -> list[TaskInstanceOut]:
    """The run's task instances (mapped instances too), in creation order."""
    with state.sessions() as session:
        run = run_store.get_run(session, dag_id, run_id)
        return [ti_out(ti) for ti in run_store.task_instances(session, run.id)]


@router.get(TASK, response_model=TaskInstanceOut)
def get_task_instance(
    dag_id: str,
    run_id: str,
    task_id: str,
    map_index: int = MapIndex,
    state: WebState = Depends(web_state),
    _user: Principal = Depends(api_user()),
) -> TaskInstanceOut:
    with state.sessions() as session:
        run_store.get_run(session, dag_id, run_id)
        return ti_out(ti_store.get_ti(session, dag_id, run_id, task_id, map_index))


@router.patch(TASK, response_model=ChangesOut)
def set_task_state(
    dag_id: str,
    run_id: str,
    task_id: str,
    body: MarkIn,
    map_index: int = MapIndex,
    state: WebState = Depends(web_state),
    user: Principal = Depends(api_user(Role.OPERATOR)),
) -> ChangesOut:
    """Mark one task instance success or failed; its downstream tasks follow their rules."""
    changes = actions.mark_task_instance(
        state, user, dag_id, run_id, task_id, TaskState(body.state), map_index
    )
    return changes_out(changes)


@router.get(
    TASK + "/logs",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {}}}},
)
def get_logs(
    dag_id: str,
    run_id: str,
    task_id: str,
    map_index: int = MapIndex,
    try_number: int | None = Query(None, ge=1, description="default: the latest attempt"),
    follow_log: bool = Query(False, alias="follow", description="stream until the attempt ends"),
    state: WebState = Depends(web_state),
    _user: Principal = Depends(api_user()),
) -> Response:
    """An attempt's log as text (secrets were masked when it was written). With
    `follow=true` the response streams what the attempt writes until it ends."""
    with state.sessions() as session:
        log = attempt_log(
            session, dag_id, run_id, task_id, map_index=map_index, try_number=try_number
        )
    media = "text/plain; charset=utf-8"
    if follow_log:
        return StreamingResponse(follow_attempt(state.sessions, log), media_type=media)
    content = b"".join(follow(log.path, finished=lambda: True))
    return Response(content, media_type=media)
