"""Pages of one DAG: its grid of runs, its graph, task durations, a run's Gantt chart and a
task instance with its attempts and log. Read through the same read models as the API
(`services.dag_views`); the charts are SVG drawn here (`svg`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response

from orchestrator.errors import TaskNotFound
from orchestrator.models.specs import DagSpec
from orchestrator.models.states import RunState, TaskState
from orchestrator.services import dag_views
from orchestrator.services.logs import attempt_log, follow
from orchestrator.store import dags as dag_store
from orchestrator.store import runs as run_store
from orchestrator.store import task_instances as ti_store
from orchestrator.store.tables import DagRunRow, TaskAttemptRow, TaskInstanceRow
from orchestrator.web.auth import Principal, page_user
from orchestrator.web.pages import may_act, render
from orchestrator.web.schemas import dag_out
from orchestrator.web.state import WebState, web_state
from orchestrator.web.svg import GanttRow, Span, durations_svg, gantt_svg, graph_svg

router = APIRouter(include_in_schema=False)
RunCount = Query(25, ge=1, le=500, description="how many of the latest runs to show")
MAX_LOG_BYTES = 2 * 1024 * 1024  # a page shows at most the last 2 MiB of a log


def q(value: object) -> str:
    return quote(str(value), safe="")


def run_path(dag_id: str, run_id: str) -> str:
    return f"/dags/{q(dag_id)}/runs/{q(run_id)}"


def ti_path(dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> str:
    path = f"{run_path(dag_id, run_id)}/tasks/{q(task_id)}"
    return path if map_index < 0 else f"{path}?map_index={map_index}"


def _unfinished(runs: list[DagRunRow]) -> bool:
    return any(not RunState(r.state).is_finished for r in runs)


def _dag_context(state: WebState, user: Principal, dag_id: str, tab: str) -> dict[str, Any]:
    """What every page of a DAG shows at the top: its summary, tabs and actions."""
    with state.sessions() as session:
        row = dag_store.get_dag_row(session, dag_id)
        spec = DagSpec.model_validate_json(row.spec_json)
        last = next(iter(run_store.list_runs(session, dag_id, 1)), None)
        summary = dag_out(row, spec, None, last)
    return {
        "user": user,
        "dag": summary,
        "spec": spec,
        "tab": tab,
        "may_act": may_act(user),
        "conf_text": json.dumps({k: p.default for k, p in spec.params.items()}, indent=2),
        "trigger_error": None,
    }


#: Rows a mapped task opens into at most (a run's page lists every instance).
MAX_INSTANCE_ROWS = 100


@dataclass(frozen=True)
class GridRow:
    """A row of the grid: a group header, a task, a mapped task's instance, or the note that
    more instances exist than are drawn. Group headers and mapped tasks open and close the
    rows inside them (`toggle`: the key their button and those rows' `groups` share)."""

    label: str
    kind: str  # "group", "task", "instance" or "more"
    task_id: str | None  # None for a group header
    quoted: str  # the task id as a URL path segment
    group: str | None  # the group this header opens, or the task's innermost group
    groups: tuple[str, ...]  # every enclosing toggle (groups, a mapped task), outermost first
    depth: int
    map_index: int = -1
    toggle: str | None = None  # a group's id, or `map:<task id>` for a mapped task
    collapsed: bool = False  # closed when the page is first drawn (a mapped task's instances)


def grid_rows(spec: DagSpec, map_width: dict[str, int] | None = None) -> list[GridRow]:
    """Tasks in DAG order, each group announced by a header row before its first task, and
    each mapped task (by `map_width`: its most instances in the runs shown) followed by a
    row per map index (closed at first)."""
    widths = map_width or {}
    rows: list[GridRow] = []
    opened: set[str] = set()
    for task in spec.tasks:
        chain = dag_views.group_chain(task.group_id)
        for depth, group in enumerate(chain):
            if group not in opened:
                opened.add(group)
                rows.append(
                    GridRow(
                        group, "group", None, "", group, tuple(chain[:depth]), depth, toggle=group
                    )
                )
        quoted, depth = q(task.task_id), len(chain)
        width = widths.get(task.task_id, 0)
        toggle = f"map:{task.task_id}" if width else None
        rows.append(
            GridRow(
                task.task_id,
                "task",
                task.task_id,
                quoted,
                task.group_id,
                tuple(chain),
                depth,
                toggle=toggle,
                collapsed=toggle is not None,
            )
        )
        inside = (*chain, f"map:{task.task_id}")
        for index in range(min(width, MAX_INSTANCE_ROWS)):
            rows.append(
                GridRow(
                    f"[{index}]",
                    "instance",
                    task.task_id,
                    quoted,
                    task.group_id,
                    inside,
                    depth + 1,
                    map_index=index,
                )
            )
        if width > MAX_INSTANCE_ROWS:
            more = f"{width - MAX_INSTANCE_ROWS} more instances: a run's page lists them all"
            rows.append(
                GridRow(more, "more", task.task_id, quoted, task.group_id, inside, depth + 1)
            )
    return rows


def grid_page(
    request: Request,
    state: WebState,
    user: Principal,
    dag_id: str,
    runs: int,
    *,
    status_code: int = 200,
    **overrides: Any,
) -> HTMLResponse:
    """The grid (also drawn again, with an error, when a trigger form was refused)."""
    context = _dag_context(state, user, dag_id, "grid")
    with state.sessions() as session:
        grid = dag_views.grid(session, context["spec"], runs)
    context.update(
        grid=grid,
        run_hrefs={run.id: run_path(dag_id, run.run_id) for run in grid.runs},
        rows=grid_rows(context["spec"], grid.map_width),
        runs=runs,
        live=_unfinished(grid.runs),
        **overrides,
    )
    return render(request, "grid.html", context, status_code=status_code)


@router.get("/dags/{dag_id}", response_class=HTMLResponse)
def dag_grid(
    request: Request,
    dag_id: str,
    runs: int = RunCount,
    state: WebState = Depends(web_state),
    user: Principal = Depends(page_user()),
) -> Response:
    """Runs as columns (oldest left), tasks as rows, each cell a task instance by state; a
    group's row sums up its tasks, a mapped task's its instances (it opens into a row per
    map index)."""
    return grid_page(request, state, user, dag_id, runs)


@router.get("/dags/{dag_id}/graph", response_class=HTMLResponse)
def dag_graph(
    request: Request,
    dag_id: str,
    run_id: str | None = None,
    state: WebState = Depends(web_state),
    user: Principal = Depends(page_user()),
) -> Response:
    """The DAG laid out in layers, coloured by the states of a chosen run (default: the
    latest)."""
    context = _dag_context(state, user, dag_id, "graph")
    spec: DagSpec = context["spec"]
    with state.sessions() as session:
        choices = run_store.list_runs(session, dag_id, 25)
        run = run_store.get_run(session, dag_id, run_id) if run_id else next(iter(choices), None)
        states = (
            {k: v.value for k, v in run_store.task_states(session, run.id).items()} if run else {}
        )
    tasks = {t.task_id: t.upstream_task_ids for t in spec.tasks}
    link = (lambda task_id: ti_path(dag_id, run.run_id, task_id)) if run else (lambda _t: None)
    context.update(
        svg=graph_svg(tasks, states, link),
        run=run,
        choices=choices,
        live=run is not None and not RunState(run.state).is_finished,
    )
    return render(request, "graph.html", context)


@router.get("/dags/{dag_id}/durations", response_class=HTMLResponse)
def dag_durations(
    request: Request,
    dag_id: str,
    runs: int = RunCount,
    state: WebState = Depends(web_state),
    user: Principal = Depends(page_user()),
) -> Response:
    """How long each task ran over the latest runs (a line per task)."""
    context = _dag_context(state, user, dag_id, "durations")
    with state.sessions() as session:
        found = dag_views.durations(session, context["spec"], runs)
    labels = [r.run_id for r in found.runs]
    context.update(svg=durations_svg(labels, found.seconds), runs=runs, shown=len(found.runs))
    return render(request, "durations.html", context)


def gantt_rows(detail: dag_views.RunDetail, now: datetime) -> list[GanttRow]:
    """A row per task instance that was queued: each attempt's spans (see `attempt_spans`)."""
    rows = []
    for ti in detail.task_instances:
        spans = [s for a in detail.attempts.get(ti.id, []) for s in _attempt_spans(a, now)]
        if not spans and ti.queued_at is not None:  # no attempt rows (e.g. a control task)
            spans = attempt_spans(
                ti.queued_at, ti.start_date, ti.end_date, ti.state, ti.try_number, now
            )
        if spans:
            label = ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"
            href = ti_path(ti.dag_id, ti.run_id, ti.task_id, ti.map_index)
            rows.append(GanttRow(label=label, spans=spans, href=href))
    return rows


def _attempt_spans(attempt: TaskAttemptRow, now: datetime) -> list[Span]:
    return attempt_spans(
        attempt.queued_at,
        attempt.start_date,
        attempt.end_date,
        attempt.state,
        attempt.try_number,
        now,
        launch_started=attempt.launch_started_at,
        image_ready=attempt.image_ready_at,
    )


def attempt_spans(
    queued: datetime,
    start: datetime | None,
    end: datetime | None,
    state: str,
    try_number: int,
    now: datetime,
    *,
    launch_started: datetime | None = None,
    image_ready: datetime | None = None,
) -> list[Span]:
    """An attempt's time: queued (until a worker takes it up), pulling (making its image
    ready: pulled if missing), starting (the container created and started) and running
    (until it ended, or now). Without the launch's times (a container started after a
    restart, or an attempt before they were recorded) queued lasts until the start."""
    finish = end or now
    tag = f"try {try_number}"
    spans: list[Span] = []
    if launch_started is not None and image_ready is not None:
        spans.append(Span("queued", queued, launch_started, state, f"{tag}: queued"))
        spans.append(
            Span("pulling", launch_started, image_ready, state, f"{tag}: pulling the image")
        )
        if start is not None:
            label = f"{tag}: creating and starting the container"
            spans.append(Span("starting", image_ready, start, state, label))
    elif start is not None:
        spans.append(Span("queued", queued, start, state, f"{tag}: queued"))
    if start is None:
        waiting_since = image_ready if image_ready is not None else queued
        kind = "starting" if image_ready is not None else "queued"
        spans.append(Span(kind, waiting_since, finish, state, f"{tag}: {kind}, {state}"))
        return spans
    spans.append(Span("running", start, finish, state, f"{tag}: {state}"))
    return spans


@router.get("/dags/{dag_id}/runs/{run_id}", response_class=HTMLResponse)
def run_page(
    request: Request,
    dag_id: str,
    run_id: str,
    state: WebState = Depends(web_state),
    user: Principal = Depends(page_user()),
) -> Response:
    """A run: its task instances, their Gantt chart, and the run's actions."""
    context = _dag_context(state, user, dag_id, "run")
    with state.sessions() as session:
        detail = dag_views.run_detail(session, dag_id, run_id)
    context.update(
        run=detail.run,
        task_instances=detail.task_instances,
        svg=gantt_svg(gantt_rows(detail, state.clock.now())),
        live=not RunState(detail.run.state).is_finished,
        run_path=run_path(dag_id, run_id),
    )
    return render(request, "run.html", context)


@dataclass(frozen=True)
class LogView:
    try_number: int
    text: str
    truncated: bool
    live: bool  # the attempt is still queued or running
    follow_url: str


def _log_view(
    state: WebState, ti: TaskInstanceRow, attempts: list[TaskAttemptRow]
) -> LogView | None:
    if not attempts:
        return None
    latest = attempts[-1]
    with state.sessions() as session:
        try:
            log = attempt_log(session, ti.dag_id, ti.run_id, ti.task_id, map_index=ti.map_index)
        except TaskNotFound:
            return None
    data = b"".join(follow(log.path, finished=lambda: True)) if log.path.exists() else b""
    truncated = len(data) > MAX_LOG_BYTES
    if truncated:
        data = data[-MAX_LOG_BYTES:]
    api = f"/api/v1{ti_path(ti.dag_id, ti.run_id, ti.task_id)}/logs"
    return LogView(
        try_number=latest.try_number,
        text=data.decode("utf-8", errors="replace"),
        truncated=truncated,
        live=TaskState(latest.state) in (TaskState.QUEUED, TaskState.RUNNING),
        follow_url=f"{api}?follow=true&map_index={ti.map_index}&try_number={latest.try_number}",
    )


@router.get("/dags/{dag_id}/runs/{run_id}/tasks/{task_id}", response_class=HTMLResponse)
def task_instance_page(
    request: Request,
    dag_id: str,
    run_id: str,
    task_id: str,
    map_index: int = Query(-1, ge=-1),
    state: WebState = Depends(web_state),
    user: Principal = Depends(page_user()),
) -> Response:
    """A task instance: its attempts (exit code, OOM, timeout, lost), the fields rendered for
    its latest attempt (secrets were masked when they were stored), its output, and its log
    (followed while the attempt runs)."""
    context = _dag_context(state, user, dag_id, "task")
    with state.sessions() as session:
        run = run_store.get_run(session, dag_id, run_id)
        ti = ti_store.get_ti(session, dag_id, run_id, task_id, map_index)
        attempts = ti_store.attempts(session, ti.id)
    latest = attempts[-1] if attempts else None
    log = _log_view(state, ti, attempts)
    output = json.loads(ti.output_json) if ti.output_json is not None else None
    context.update(
        run=run,
        ti=ti,
        attempts=attempts,
        rendered=latest.rendered if latest else None,
        output=json.dumps(output, indent=2) if ti.output_json is not None else None,
        log=log,
        live=not TaskState(ti.state).is_finished and (log is None or not log.live),
        run_path=run_path(dag_id, run_id),
        pretty=lambda value: json.dumps(value, indent=2, default=str),
    )
    return render(request, "task_instance.html", context)
