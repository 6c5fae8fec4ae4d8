"""`/api/v1/dags`: list DAGs, show one with its tasks, pause and unpause."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from orchestrator.models.specs import DagSpec
from orchestrator.services.dag_views import dag_summaries
from orchestrator.services.run_planner import upcoming_run
from orchestrator.services.users import Role
from orchestrator.store import dags as dag_store
from orchestrator.store import runs as run_store
from orchestrator.web import actions
from orchestrator.web.auth import Principal, api_user
from orchestrator.web.schemas import DagDetail, DagList, PausedIn, dag_detail, dag_out
from orchestrator.web.state import WebState, web_state

router = APIRouter(tags=["dags"])


@router.get("/dags", response_model=DagList)
def list_dags(
    include_inactive: bool = False,
    state: WebState = Depends(web_state),
    _user: Principal = Depends(api_user()),
) -> DagList:
    """Every DAG (by id) with its paused flag, next scheduled run and latest run."""
    with state.sessions() as session:
        summaries = dag_summaries(session, state.clock.now(), include_inactive=include_inactive)
        dags = [dag_out(d.row, d.spec, d.upcoming, d.last_run) for d in summaries]
    return DagList(dags=dags, total=len(dags))


@router.get("/dags/{dag_id}", response_model=DagDetail)
def get_dag(
    dag_id: str, state: WebState = Depends(web_state), _user: Principal = Depends(api_user())
) -> DagDetail:
    """One DAG with its params and tasks (from its serialized spec)."""
    with state.sessions() as session:
        row = dag_store.get_dag_row(session, dag_id)
        spec = DagSpec.model_validate_json(row.spec_json)
        upcoming = upcoming_run(session, spec, state.clock.now())
        last = next(iter(run_store.list_runs(session, dag_id, 1)), None)
        return dag_detail(row, spec, upcoming, last)


@router.patch("/dags/{dag_id}", response_model=DagDetail)
def patch_dag(
    dag_id: str,
    body: PausedIn,
    state: WebState = Depends(web_state),
    user: Principal = Depends(api_user(Role.OPERATOR)),
) -> DagDetail:
    """Pause (no new scheduled runs; queued runs wait) or unpause a DAG."""
    actions.pause(state, user, dag_id, body.paused)
    return get_dag(dag_id, state, user)
