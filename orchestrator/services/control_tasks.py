"""Running the tasks without a container inside the scheduler's pass, and applying branches.

`EmptyTask`, `LatestOnly`, `TriggerRun` and `WaitForRun` never reach the container runtime and
take no slot: the scheduler hands each due one to `ControlTasks.run`, which gathers the facts
(rendered templates, the other DAG's runs), asks `scheduling.control_tasks` what to do and
applies it in the pass's transaction. A task that must wait (`TriggerRun(wait=True)`,
`WaitForRun`) goes `up_for_reschedule` with `next_try_at` set to its next check.

A control task's try is recorded like a container's (an attempt row without a container, and a
log file saying what was decided), so `runs show` and `tasks logs` work for it too.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from orchestrator.errors import OutputError, TemplateError, UserError
from orchestrator.models.specs import DagSpec, TaskKind, TaskSpec, TriggerRunSpec, WaitForRunSpec
from orchestrator.models.states import RunState, TaskState
from orchestrator.scheduling.attempts import Outcome
from orchestrator.scheduling.control_tasks import (
    Step,
    branch_choice,
    latest_only_step,
    parse_rendered_date,
    trigger_wait_step,
    wait_step,
    wait_target_date,
)
from orchestrator.services.containers import AttemptKey, log_path
from orchestrator.services.logs import LogFile
from orchestrator.services.run_context import outputs_of, run_info
from orchestrator.services.runs import trigger_run, triggerable_spec
from orchestrator.services.set_state import SetState, SkipTasks
from orchestrator.settings import Settings
from orchestrator.store import dags as dag_store
from orchestrator.store import runs as run_store
from orchestrator.store import task_instances as ti_store
from orchestrator.store.tables import DagRunRow, TaskAttemptRow, TaskInstanceRow
from orchestrator.templating import build_context, render_string


def branch_outcome(
    spec: DagSpec, task: TaskSpec, result: Outcome, output_json: str | None
) -> tuple[Outcome, tuple[str, ...]]:
    """A finished attempt's outcome once its branch choice is read, and the children to skip.

    A task that is not a branch, or did not succeed, is unchanged. An output that names no
    valid direct child fails the task for good (running it again would choose the same).
    """
    if not task.branch or result.state != TaskState.SUCCESS:
        return result, ()
    try:
        choice = branch_choice(spec, task, output_json)
    except OutputError as exc:
        return Outcome(TaskState.FAILED, str(exc)), ()
    followed = ", ".join(choice.follow) or "no task"
    return Outcome(TaskState.SUCCESS, f"{result.detail}; branch follows {followed}"), choice.skip


class ControlTasks:
    """Decides and applies the outcome of tasks the scheduler runs itself."""

    def __init__(self, settings: Settings, set_state: SetState, skip: SkipTasks) -> None:
        self._settings = settings
        self._set_state = set_state
        self._skip = skip

    def run(
        self,
        session: Session,
        spec: DagSpec,
        task: TaskSpec,
        run: DagRunRow,
        ti: TaskInstanceRow,
        tis: list[TaskInstanceRow],
        now: datetime,
    ) -> Step:
        """Start (from `scheduled`) or re-check (from `up_for_reschedule`) one task; return the
        step taken. Bad input (a template, an unknown DAG) fails the task, never the pass."""
        attempt = self._start(session, ti, now) if ti.state == TaskState.SCHEDULED.value else None
        if attempt is None:
            with session.no_autoflush:  # the attempt row of a waiting task is already stored
                attempt = ti_store.get_attempt(session, ti.id, ti.try_number)
        key = AttemptKey(ti.dag_id, ti.run_id, ti.task_id, ti.map_index, ti.try_number)
        where = f"DAG '{spec.dag_id}', task '{task.task_id}'"
        try:
            step = self._decide(session, spec, task, run, ti, tis, now)
        except (UserError, ValueError) as exc:
            step = Step(TaskState.FAILED, f"{where}: {exc}")
        self._apply(session, ti, attempt, key, step, now)
        return step

    # ------------------------------------------------------------------ deciding
    def _decide(
        self,
        session: Session,
        spec: DagSpec,
        task: TaskSpec,
        run: DagRunRow,
        ti: TaskInstanceRow,
        tis: list[TaskInstanceRow],
        now: datetime,
    ) -> Step:
        if task.kind == TaskKind.EMPTY:
            return Step(TaskState.SUCCESS, "empty task: nothing to run")
        if task.kind == TaskKind.LATEST_ONLY:
            run_type = "manual" if run.run_type == "test" else run.run_type
            interval = (run.data_interval_start, run.data_interval_end)
            return latest_only_step(spec, task, run_type, interval, now)
        waiting_since = ti.start_date or now
        if task.kind == TaskKind.TRIGGER_RUN and task.trigger_run is not None:
            recorded = json.loads(ti.output_json) if ti.output_json else None
            if isinstance(recorded, dict):  # created earlier: follow it
                return self._follow(session, task, task.trigger_run, recorded, waiting_since, now)
            return self._trigger(session, spec, task, task.trigger_run, run, ti, tis, now)
        if task.kind == TaskKind.WAIT_FOR_RUN and task.wait_for_run is not None:
            return self._wait(session, spec, task, task.wait_for_run, run, ti, tis, now)
        raise AssertionError(f"task kind {task.kind!r} is not run by the scheduler")

    def _trigger(
        self,
        session: Session,
        spec: DagSpec,
        task: TaskSpec,
        settings: TriggerRunSpec,
        run: DagRunRow,
        ti: TaskInstanceRow,
        tis: list[TaskInstanceRow],
        now: datetime,
    ) -> Step:
        render = self._renderer(spec, task, run, ti, tis)
        conf = _render_values(settings.conf, render, "conf")
        if not isinstance(conf, dict):
            raise AssertionError("rendered conf stays a dict")
        run_id = render("run_id", settings.run_id) if settings.run_id else None
        logical_date = None
        if settings.logical_date:
            text = render("logical_date", settings.logical_date)
            logical_date = parse_rendered_date("logical_date", text)
        target = triggerable_spec(session, settings.dag_id)
        with ti_store.begin_savepoint(session):
            created = trigger_run(
                session, target, now=now, conf=conf, logical_date=logical_date, run_id=run_id
            )
        record = {
            "dag_id": created.dag_id,
            "run_id": created.run_id,
            "logical_date": created.logical_date.isoformat(),
        }
        what = f"triggered run '{created.run_id}' of DAG '{created.dag_id}'"
        if not settings.wait:
            return Step(TaskState.SUCCESS, what, output=record)
        step = trigger_wait_step(
            created.dag_id,
            created.run_id,
            RunState(created.state),
            settings.poke_interval,
            ti.start_date or now,
            task.execution_timeout,
            now,
        )
        return Step(step.state, f"{what}; {step.detail}", step.next_check_at, output=record)

    def _follow(
        self,
        session: Session,
        task: TaskSpec,
        settings: TriggerRunSpec,
        recorded: dict[str, Any],
        waiting_since: datetime,
        now: datetime,
    ) -> Step:
        dag_id, run_id = str(recorded.get("dag_id")), str(recorded.get("run_id"))
        other = run_store.find_run(session, dag_id, run_id)
        step = trigger_wait_step(
            dag_id,
            run_id,
            RunState(other.state) if other is not None else None,
            settings.poke_interval,
            waiting_since,
            task.execution_timeout,
            now,
        )
        return Step(step.state, step.detail, step.next_check_at, output=recorded)

    def _wait(
        self,
        session: Session,
        spec: DagSpec,
        task: TaskSpec,
        settings: WaitForRunSpec,
        run: DagRunRow,
        ti: TaskInstanceRow,
        tis: list[TaskInstanceRow],
        now: datetime,
    ) -> Step:
        rendered = None
        if settings.execution_date is not None:
            rendered = self._renderer(spec, task, run, ti, tis)(
                "execution_date", settings.execution_date
            )
        target = wait_target_date(run.logical_date, settings, rendered)
        other = dag_store.get_dag_row(session, settings.dag_id)
        if settings.task_id is not None:
            other_spec = DagSpec.model_validate_json(other.spec_json)
            if not other_spec.has_task(settings.task_id):
                raise UserError(
                    f"DAG '{settings.dag_id}' has no task '{settings.task_id}' to wait for"
                )
        states: list[str] = []
        for other_run in run_store.runs_at(session, settings.dag_id, target):
            if settings.task_id is None:
                states.append(other_run.state)
                continue
            states.extend(
                other_ti.state
                for other_ti in run_store.task_instances(session, other_run.id)
                if other_ti.task_id == settings.task_id and other_ti.map_index == -1
            )
        return wait_step(settings, target, states, ti.start_date or now, now)

    def _renderer(
        self,
        spec: DagSpec,
        task: TaskSpec,
        run: DagRunRow,
        ti: TaskInstanceRow,
        tis: list[TaskInstanceRow],
    ) -> Callable[[str, str], str]:
        context = build_context(
            spec, task, run_info(spec, run), try_number=ti.try_number, outputs=outputs_of(tis)
        )

        def render(field: str, template: str) -> str:
            try:
                return render_string(template, context)
            except TemplateError as exc:
                raise TemplateError(f"{field}: {exc}") from None

        return render

    # ------------------------------------------------------------------ applying
    def _start(self, session: Session, ti: TaskInstanceRow, now: datetime) -> TaskAttemptRow | None:
        """Begin a new try and return its attempt row, unless the task was only waiting (then
        its try and start stay, and None is returned)."""
        attempt = None
        if ti.next_try_at is None or ti.start_date is None:
            ti.try_number += 1
            ti.start_date, ti.output_json = now, None
            key = AttemptKey(ti.dag_id, ti.run_id, ti.task_id, ti.map_index, ti.try_number)
            attempt = TaskAttemptRow(
                ti_id=ti.id,
                try_number=ti.try_number,
                state=TaskState.RUNNING.value,
                rendered={},
                container_name="",
                log_path=str(log_path(self._settings, key)),
                queued_at=now,
                start_date=now,
            )
            session.add(attempt)
        ti.queued_at, ti.end_date, ti.exit_code = now, None, None
        ti.container_name, ti.container_id, ti.stop_reason = None, None, None
        self._set_state(session, ti, TaskState.QUEUED, now, None)
        self._set_state(session, ti, TaskState.RUNNING, now, None)
        return attempt

    def _apply(
        self,
        session: Session,
        ti: TaskInstanceRow,
        attempt: TaskAttemptRow | None,
        key: AttemptKey,
        step: Step,
        now: datetime,
    ) -> None:
        LogFile(log_path(self._settings, key)).write_line(
            f"[orchestrator] {step.state.value}: {step.detail}"
        )
        if step.output is not None:
            ti.output_json = json.dumps(step.output)
        if step.state == TaskState.UP_FOR_RESCHEDULE:
            ti.next_try_at = step.next_check_at
            ti.state_detail = step.detail
            self._set_state(session, ti, step.state, now, step.detail)
            if attempt is not None:
                attempt.detail = step.detail
            return
        ti.end_date, ti.next_try_at = now, None
        if step.state != TaskState.SUCCESS:
            ti.output_json = None
        self._set_state(session, ti, step.state, now, step.detail)
        if attempt is not None:
            attempt.state, attempt.detail, attempt.end_date = step.state.value, step.detail, now
            attempt.output_json = ti.output_json
        if step.skip:
            self._skip(
                session, ti.dag_run_id, step.skip, f"skipped by latest_only {ti.task_id}", now
            )


def _render_values(value: Any, render: Callable[[str, str], str], field: str) -> Any:
    """Render every string in a JSON value (keys stay as written)."""
    if isinstance(value, str):
        return render(field, value)
    if isinstance(value, dict):
        return {k: _render_values(v, render, f"{field}[{k!r}]") for k, v in value.items()}
    if isinstance(value, list):
        return [_render_values(v, render, f"{field}[{i}]") for i, v in enumerate(value)]
    return value
