"""Attempts in the store: a new one rendered and recorded before its container is created,
and how one ended recorded and acted on (the scheduler's loop thread only)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from orchestrator.errors import PolicyViolation, TemplateError
from orchestrator.models.run_info import RunInfo
from orchestrator.models.specs import DagSpec, TaskSpec
from orchestrator.models.states import ACTIVE_TASK_STATES, TaskState
from orchestrator.scheduling.attempts import AttemptEnd, Outcome, outcome
from orchestrator.scheduling.sensors import poke_outcome
from orchestrator.services import integrity
from orchestrator.services.attempt_worker import LaunchJob
from orchestrator.services.clearing import requested_end
from orchestrator.services.containers import (
    AttemptKey,
    build_launch_request,
    container_name,
    log_path,
    output_dir,
    remove_attempt_output,
)
from orchestrator.services.control_tasks import branch_outcome
from orchestrator.services.logs import LogFile
from orchestrator.services.mapping import render_attempt
from orchestrator.services.policy import OperatorPolicy
from orchestrator.services.scheduler_view import StoreView
from orchestrator.services.secrets import secret_source
from orchestrator.services.set_state import SetState, SkipTasks
from orchestrator.settings import Settings
from orchestrator.store import sensor_pokes
from orchestrator.store import task_instances as ti_store
from orchestrator.store.tables import TaskInstanceRow
from orchestrator.store.updates import assign


class AttemptRecords:
    """Writes attempts for the scheduler: its state setter, its view of the store, how it
    skips tasks, how it forgets a container it stopped on request and where file work runs
    once the pass committed."""

    def __init__(
        self,
        settings: Settings,
        view: StoreView,
        set_state: SetState,
        skip_tasks: SkipTasks,
        release_stop: Callable[[str], None],
        background: Callable[[Callable[[], object]], object],
    ) -> None:
        self._settings = settings
        self._view = view
        self._set_state = set_state
        self._skip_tasks = skip_tasks
        self._release_stop = release_stop
        self._background = background  # file work after the commit, off the loop
        self._policy = OperatorPolicy.from_settings(settings)

    def prepare(
        self,
        session: Session,
        spec: DagSpec,
        task: TaskSpec,
        ti: TaskInstanceRow,
        info: RunInfo,
        outputs: Mapping[str, Any],
        now: datetime,
    ) -> LaunchJob | None:
        """Render and persist a new attempt (name, rendered fields, log path) before launch;
        None when it failed at once (a template error or a policy refusal: no retry).

        A sensor's next poke after "not yet" continues its try: same try number, same attempt
        row and log file, a new container (`-p<poke>` in its name) and a new poke row. In poke
        mode the task instance stays `running` (its slot held) while the poke is launched.
        """
        holding_slot = ti.state == TaskState.RUNNING.value
        continuing = task.sensor is not None and (
            holding_slot or sensor_pokes.continues_try(session, ti)
        )
        if not continuing:
            ti.try_number += 1
        poke = sensor_pokes.next_poke_number(session, ti.id, ti.try_number) if task.sensor else 0
        key = AttemptKey(ti.dag_id, ti.run_id, ti.task_id, ti.map_index, ti.try_number, poke)
        path = log_path(self._settings, key)
        name = container_name(self._settings.instance_name, key)
        if poke:
            sensor_pokes.begin_poke(session, ti.id, ti.try_number, poke, name, now)
            LogFile(path).write_line(f"[orchestrator] poke {poke} of try {ti.try_number}: {name}")
        host_output = output_dir(self._settings, key)
        try:
            secrets = secret_source(self._settings, session)
            rendered = render_attempt(spec, task, info, ti, outputs, secrets)
            request = build_launch_request(
                self._settings, task, rendered, key, info, host_output, self._policy
            )
        except (TemplateError, PolicyViolation) as exc:
            message = str(exc)
            what = "template error" if isinstance(exc, TemplateError) else "refused by policy"
            self._record(
                session,
                ti,
                continuing,
                state=TaskState.FAILED.value,
                rendered={},
                container_name=name,
                detail=message,
                log_path=str(path),
                queued_at=now,
                end_date=now,
            )
            LogFile(path).write_line(f"[orchestrator] {what}: {message}")
            _stamp_try(ti, now, name, end_date=now)
            if not holding_slot:
                self._set_state(session, ti, TaskState.QUEUED, now)
            self._set_state(session, ti, TaskState.FAILED, now, f"{what}: {message}")
            return None
        self._record(
            session,
            ti,
            continuing,
            state=TaskState.RUNNING.value if holding_slot else TaskState.QUEUED.value,
            rendered=rendered.model_dump(mode="json"),
            container_name=request.name,
            container_id=None,
            exit_code=None,
            detail=None,
            output_json=None,
            end_date=None,
            log_path=str(path),
            queued_at=now,
        )
        # a poke-mode sensor's next poke counts its execution_timeout from now
        start_date = now if holding_slot else None
        _stamp_try(ti, now, request.name, end_date=None, start_date=start_date, stop_reason=None)
        if not holding_slot:
            self._set_state(session, ti, TaskState.QUEUED, now)
        return LaunchJob(ti.id, key, request, path, host_output)

    def _record(
        self, session: Session, ti: TaskInstanceRow, continuing: bool, **values: Any
    ) -> None:
        """Add the attempt row of a new try, or update it for the next poke of the same try
        (keeping when the try was first queued)."""
        attempt = self._view.attempt(session, ti.id, ti.try_number) if continuing else None
        if attempt is None:
            ti_store.add_attempt(session, ti_id=ti.id, try_number=ti.try_number, **values)
            return
        values.pop("queued_at", None)
        for column, value in values.items():
            setattr(attempt, column, value)

    def finish(
        self,
        session: Session,
        ti_id: int,
        try_number: int,
        end: AttemptEnd,
        output_json: str | None,
        now: datetime,
        after_commit: list[Callable[[], object]],
    ) -> bool:
        """Record how an attempt ended and move its task instance on (retry, success, a
        sensor's next poke, a branch's skips, a requested clear or mark); False if the
        attempt is no longer the task instance's current one."""
        ti = self._view.ti(session, ti_id)
        if ti is None or ti.try_number != try_number:
            return False
        if TaskState(ti.state) not in ACTIVE_TASK_STATES:
            return False
        spec = self._view.spec(session, ti.dag_id)
        dag_active = self._view.integrity_target(session, ti.dag_id) != integrity.NO_SPEC
        if spec is None or not spec.has_task(ti.task_id) or not dag_active:
            attempt = self._view.attempt(session, ti.id, try_number)
            integrity.finish_removed_attempt(
                session,
                ti,
                attempt,
                end,
                output_json,
                dag_active=dag_active,
                now=now,
                set_state=self._set_state,
            )
            key = AttemptKey(ti.dag_id, ti.run_id, ti.task_id, ti.map_index, ti.try_number)
            after_commit.append(lambda: self._remove_output(key))
            return True
        task = spec.task(ti.task_id)
        if ti.stop_reason == "timeout":
            end = AttemptEnd(
                exit_code=end.exit_code,
                timed_out=True,
                timeout=task.execution_timeout,
            )
        result = (
            self._poke_outcome(session, ti, task, end, now)
            if task.sensor is not None
            else outcome(task, end, try_number, now, ti.max_tries)
        )
        result, not_chosen = branch_outcome(spec, task, result, output_json)
        attempt_result = result  # how the attempt itself ended
        requested = requested_end(ti)
        if requested is not None:  # cleared or marked while running: the request wins
            result, not_chosen = Outcome(requested[0], requested[1]), ()
            self._release_stop(ti.container_id or "")
            ti.stop_reason = None
        waiting = result.state in (TaskState.RUNNING, TaskState.UP_FOR_RESCHEDULE)
        key = AttemptKey(ti.dag_id, ti.run_id, ti.task_id, ti.map_index, ti.try_number)
        if waiting:
            LogFile(log_path(self._settings, key)).write_line(f"[orchestrator] {result.detail}")
        elif result.state != TaskState.SUCCESS:
            line = f"[orchestrator] {result.state.value}: {result.detail}"
            LogFile(log_path(self._settings, key)).write_line(line)
        if ti.state == TaskState.QUEUED.value and end.launch_error is None:
            ti.start_date = ti.start_date or now
            self._set_state(session, ti, TaskState.RUNNING, now)
        assign(
            ti,
            exit_code=end.exit_code,
            output_json=output_json if result.state == TaskState.SUCCESS else None,
            end_date=None if result.state in (TaskState.RUNNING, TaskState.NONE) else now,
            next_try_at=result.next_try_at,
        )
        if result.state == TaskState.RUNNING:  # a poke-mode sensor between pokes
            ti.container_id, ti.state_detail = None, result.detail
        detail = attempt_result.detail
        if requested is not None:
            detail += f"; {result.detail}"
        ti_store.update_attempt(
            session,
            ti.id,
            try_number,
            state=attempt_result.state.value,
            exit_code=end.exit_code,
            oom_killed=end.oom_killed,
            timed_out=end.timed_out,
            detail=detail,
            output_json=output_json,
            end_date=now,
        )
        self._set_state(session, ti, result.state, now, result.detail)
        self._skip_tasks(session, ti.dag_run_id, not_chosen, f"skipped by branch {ti.task_id}", now)
        after_commit.append(lambda: self._remove_output(key))
        return True

    def _remove_output(self, key: AttemptKey) -> None:
        """Remove the try's output folder (read by now) in the background."""
        self._background(lambda: remove_attempt_output(self._settings, key))

    def _poke_outcome(
        self, session: Session, ti: TaskInstanceRow, task: TaskSpec, end: AttemptEnd, now: datetime
    ) -> Outcome:
        """Decide what follows a sensor's poke, and record the poke's end."""
        done = sensor_pokes.pokes(session, ti.id, ti.try_number)
        first_poke_at = done[0].queued_at if done else now
        poke_number = done[-1].poke_number if done else 1
        result = poke_outcome(task, end, ti.try_number, poke_number, first_poke_at, now)
        if done:
            last = done[-1]
            last.state, last.exit_code = result.state.value, end.exit_code
            last.detail, last.end_date = result.detail, now
        return result


def _stamp_try(
    ti: TaskInstanceRow, now: datetime, name: str, *, end_date: datetime | None, **more: Any
) -> None:
    """Stamp a task instance with the try just recorded: queued now, in container `name`
    (not created yet), with nothing of an earlier try's ending left."""
    assign(
        ti,
        queued_at=now,
        end_date=end_date,
        container_name=name,
        container_id=None,
        exit_code=None,
        output_json=None,
        next_try_at=None,
        **more,
    )
