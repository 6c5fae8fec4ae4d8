"""Reconciling the store with the container engine: at scheduler start-up (before the first
pass launches anything) and periodically (`reconcile_interval`).

The decisions are `scheduling.reconcile`'s; this module gathers their inputs (active attempts
from the store, containers of this installation from the engine) and carries them out through
the scheduler's worker and inbox, so every task state change is still made by the loop:

- ADOPT / HARVEST: `AttemptWorker.adopt` stores a missing id, follows the log on from where
  the file stopped and posts `Exited` when the container stopped; the usual harvest follows.
- START: `AttemptWorker.start_created` starts the created container (its id stored first).
- RELAUNCH: the attempt is launched again from its stored rendered fields, same try number.
- LOST: a `Lost` message fails the attempt (retried if retries remain).
- REMOVE: the container is stopped and removed.

An unreachable engine is not fatal: the scheduler is told the engine is down (it launches
nothing meanwhile), the check is retried with a doubling backoff, and the first successful
reconciliation after the outage handles what did not survive it.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from orchestrator.errors import PolicyViolation, RuntimeUnavailable, TemplateError
from orchestrator.models.launch import ContainerInfo
from orchestrator.models.run_info import RunInfo
from orchestrator.models.specs import DagSpec, TaskSpec
from orchestrator.models.states import TaskState
from orchestrator.runtime.base import ContainerRuntime
from orchestrator.scheduling.reconcile import (
    LOST_DETAIL,
    Action,
    ActiveAttempt,
    Decision,
    SeenContainer,
    reconcile,
)
from orchestrator.services.attempt_worker import AttemptWorker, LaunchJob, Lost
from orchestrator.services.containers import (
    AttemptKey,
    build_launch_request,
    instance_labels,
    log_path,
    output_dir,
)
from orchestrator.services.mapping import render_attempt
from orchestrator.services.run_context import outputs_of, run_info
from orchestrator.services.secrets import secret_source
from orchestrator.settings import Settings
from orchestrator.store import runs as run_store
from orchestrator.store import sensor_pokes
from orchestrator.store import task_instances as ti_store
from orchestrator.store.tables import DagRow, DagRunRow, TaskInstanceRow
from orchestrator.templating import RenderedTask

log = logging.getLogger("orchestrator.reconcile")

#: The scheduler's status in ORCH_HOME: its heartbeat and the engine's (`write_heartbeat`,
#: `write_engine_status`; read by `services.health`).
STATUS_FILE = "scheduler-status.json"

#: Backoff between checks of an unreachable engine (doubling, capped).
ENGINE_BACKOFF = (1.0, 30.0)


@dataclass
class ReconcileReport:
    """What one reconciliation did (counts by action), or that the engine was down."""

    actions: dict[Action, int] = field(default_factory=dict)
    engine_error: str | None = None

    def count(self, action: Action) -> int:
        return self.actions.get(action, 0)


@dataclass(frozen=True)
class _Attempt:
    """An active attempt with what carrying out a decision about it needs."""

    view: ActiveAttempt
    key: AttemptKey
    log_offset: int | None


def update_status_file(home: Path, fields: dict[str, Any]) -> None:
    """Merge `fields` into `$ORCH_HOME/scheduler-status.json` (atomically; never fatal)."""
    path = home / STATUS_FILE
    try:
        status = read_status_file(home)
        status.update(fields)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".tmp")
        partial.write_text(json.dumps(status, indent=2) + "\n")
        partial.replace(path)
    except OSError as exc:
        log.warning("could not write %s: %s", path, exc)


def read_status_file(home: Path) -> dict[str, Any]:
    """The scheduler's status file, or `{}` if it is missing or unreadable."""
    try:
        status = json.loads((home / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return status if isinstance(status, dict) else {}


def write_heartbeat(home: Path, now: datetime, loop: dict[str, Any] | None = None) -> None:
    """Stamp `heartbeat_at` in the status file: the scheduler loop is alive (every pass);
    `loop`: how long its passes take (see `health.LoopTimes`)."""
    fields: dict[str, Any] = {
        "pid": os.getpid(),
        "heartbeat_at": now.isoformat(),
        "stopped_at": None,
    }
    if loop is not None:
        fields["loop"] = loop
    update_status_file(home, fields)


def write_stopped(home: Path, now: datetime) -> None:
    """Stamp `stopped_at` in the status file: the scheduler stopped on a signal (SIGTERM,
    Ctrl-C), so its heartbeat will not come back until the next start."""
    update_status_file(home, {"pid": os.getpid(), "stopped_at": now.isoformat()})


def write_engine_status(
    home: Path,
    now: datetime,
    *,
    error: str | None,
    down_since: datetime | None,
    next_check_at: datetime | None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Record in the status file whether the engine answered the check made `now`, since
    when it does not, and when the next check is due (for operators and `orchestrator
    scheduler status`; written atomically, never fatal). An error also stays in
    `last_engine_error` after the engine is back (`last_outage` then says from when to when)."""
    status: dict[str, Any] = {
        "pid": os.getpid(),
        "checked_at": now.isoformat(),
        "engine": "down" if error else "up",
        "engine_error": error,
        "engine_down_since": down_since.isoformat() if error and down_since else None,
        "next_check_at": next_check_at.isoformat() if next_check_at else None,
    }
    if error:
        status["last_engine_error"] = error
    update_status_file(home, {**status, **(extra or {})})


class Reconciler:
    """Brings the store and the engine in line (see the module docstring)."""

    def __init__(
        self,
        *,
        settings: Settings,
        sessions: sessionmaker[Session],
        runtime: ContainerRuntime,
        worker: AttemptWorker,
        launch: Callable[[LaunchJob], None],
        post: Callable[[object], None],
        owns: Callable[[DagRunRow], bool],
        busy_containers: Callable[[], set[str]],
        background: Callable[[Callable[[], None]], object],
    ) -> None:
        self._settings = settings
        self._sessions = sessions
        self._runtime = runtime
        self._worker = worker
        self._launch = launch
        self._post = post
        self._owns = owns
        self._busy_containers = busy_containers
        self._background = background  # blocking engine calls (stop, remove, start)
        self.engine_up = True
        self._next_at: datetime | None = None  # None: due now
        self._backoff = ENGINE_BACKOFF[0]
        self._down_since: datetime | None = None  # the first failed check of this outage

    def next_at(self) -> datetime | None:
        """When the next reconciliation is due (None: now)."""
        return self._next_at

    def run_if_due(self, now: datetime) -> ReconcileReport | None:
        if self._next_at is not None and now < self._next_at:
            return None
        return self.run(now)

    def run(self, now: datetime, *, startup: bool = False) -> ReconcileReport:
        """Reconcile once. At start-up nothing of this process is under way yet; later,
        attempts and containers this process already handles are left alone."""
        try:
            report = self._reconcile(now, startup=startup)
        except RuntimeUnavailable as exc:
            if self.engine_up:
                log.error("container engine unreachable: %s; retrying with backoff", exc)
            self._engine_down(now)
            self._next_at = now + timedelta(seconds=self._backoff)
            self._backoff = min(self._backoff * 2, ENGINE_BACKOFF[1])
            self._write_status(now, str(exc))
            return ReconcileReport(engine_error=str(exc))
        outage: dict[str, Any] = {}
        if not self.engine_up:
            log.warning("container engine reachable again: reconciled %s", _describe(report))
            since = self._down_since or now
            outage = {"last_outage": {"from": since.isoformat(), "to": now.isoformat()}}
        elif report.actions:
            log.info("reconciled with the container engine: %s", _describe(report))
        self.engine_up = True
        self._down_since = None
        self._backoff = ENGINE_BACKOFF[0]
        self._next_at = now + timedelta(seconds=self._settings.reconcile_interval)
        self._write_status(now, None, outage)
        return report

    def _engine_down(self, now: datetime) -> None:
        if self.engine_up or self._down_since is None:
            self._down_since = now
        self.engine_up = False

    def engine_unreachable(self, now: datetime, error: str) -> None:
        """A worker could not reach the engine: launch nothing more, and reconcile now (then
        with backoff) until the engine answers; that reconciliation finishes the attempts
        whose launch it interrupted."""
        if not self.engine_up:
            return
        log.error("container engine unreachable: %s; retrying with backoff", error)
        self._engine_down(now)
        self._next_at = now
        self._write_status(now, error)

    def _write_status(
        self, now: datetime, engine_error: str | None, extra: dict[str, Any] | None = None
    ) -> None:
        write_engine_status(
            self._settings.home,
            now,
            error=engine_error,
            down_since=self._down_since,
            next_check_at=self._next_at,
            extra=extra,
        )

    # ----------------------------------------------------------------- gathering
    def _reconcile(self, now: datetime, *, startup: bool) -> ReconcileReport:
        labels = instance_labels(self._settings)
        # list first, then read the store: a container listed here whose attempt is not
        # active in the store below has no live attempt (its attempt was recorded first)
        containers = self._runtime.list_containers(labels)
        busy_attempts, followed = self._worker.busy()
        busy = followed | self._busy_containers()
        attempts = self._active_attempts()
        busy_attempts |= self._worker.busy()[0]
        decisions = reconcile(
            [a.view for a in attempts],
            [_seen(c) for c in containers],
            now,
            busy_attempts=busy_attempts,
            busy_containers=busy,
        )
        if not startup and any(d.action == Action.LOST for d in decisions):
            # created after the listing? then it is there now (a lost one stays gone)
            present = {c.id for c in self._runtime.list_containers(labels)}
            decisions = [
                d
                for d in decisions
                if d.action != Action.LOST
                or d.attempt is None
                or d.attempt.container_id not in present
            ]
        by_key = {(a.view.ti_id, a.view.try_number): a for a in attempts}
        report = ReconcileReport()
        for decision in decisions:
            attempt = decision.attempt
            found = by_key.get((attempt.ti_id, attempt.try_number)) if attempt else None
            self._carry_out(decision, found)
            report.actions[decision.action] = report.count(decision.action) + 1
        return report

    def _active_attempts(self) -> list[_Attempt]:
        with self._sessions() as session:
            tis = ti_store.tis_in_states(session, [TaskState.QUEUED, TaskState.RUNNING])
            rows = ti_store.attempts_by_keys(session, [(ti.id, ti.try_number) for ti in tis])
            found = []
            for ti in tis:
                row = rows.get((ti.id, ti.try_number))
                if row is None:
                    continue
                poke = _poke_of(session, ti)
                owned = self._owns(ti_store.get_run_of(session, ti))
                view = ActiveAttempt(
                    ti_id=ti.id,
                    try_number=ti.try_number,
                    state=TaskState(ti.state),
                    container_name=ti.container_name or row.container_name,
                    container_id=ti.container_id,
                    queued_at=row.queued_at,
                    owned=owned,
                    sleeping=ti.container_id is None and ti.next_try_at is not None,
                )
                key = AttemptKey(
                    ti.dag_id, ti.run_id, ti.task_id, ti.map_index, ti.try_number, poke
                )
                found.append(_Attempt(view, key, row.log_offset))
            return found

    # ----------------------------------------------------------------- acting
    def _carry_out(self, decision: Decision, attempt: _Attempt | None) -> None:
        container = decision.container
        if decision.action == Action.REMOVE and container is not None:
            log.info("removing container %s: no live attempt wants it", container.name)
            cid = container.id

            def stop_and_remove() -> None:
                self._worker.stop(cid)
                self._worker.remove(cid)

            self._background(stop_and_remove)
            return
        if attempt is None:
            return
        view, key = attempt.view, attempt.key
        if decision.action in (Action.ADOPT, Action.HARVEST) and container is not None:
            log.info("adopting container %s (%s)", container.name, container.status)
            offset = attempt.log_offset if attempt.log_offset is not None else 0
            self._worker.adopt(
                view.ti_id,
                key,
                container.id,
                id_stored=view.container_id == container.id,
                log_offset=offset,
                sensitive=self._sensitive(view.ti_id, key),
            )
        elif decision.action == Action.START and container is not None:
            log.info(
                "starting container %s: created before a restart, never started", container.name
            )
            cid, ti_id = container.id, view.ti_id
            sensitive = self._sensitive(ti_id, key)
            self._background(lambda: self._worker.start_created(ti_id, key, cid, sensitive))
        elif decision.action == Action.LOST:
            log.warning("attempt %s is lost: its container is gone", key.slug())
            self._post(Lost(view.ti_id, view.try_number, view.container_id, LOST_DETAIL))
        elif decision.action == Action.RELAUNCH:
            job = self._relaunch_job(view.ti_id, key)
            if isinstance(job, str):
                detail = f"lost: it was never launched, and {job}"
                self._post(Lost(view.ti_id, view.try_number, None, detail))
                return
            log.info("launching %s again: it was recorded but never created", key.slug())
            self._launch(job)

    def _relaunch_job(self, ti_id: int, key: AttemptKey) -> LaunchJob | str:
        """The launch of a recorded attempt, rendered again; or why it cannot be."""
        with self._sessions() as session:
            ti = session.get(TaskInstanceRow, ti_id)
            if ti is None or ti.try_number != key.try_number:
                return "its task instance has moved on"
            try:
                found = self._render_again(session, ti)
            except (TemplateError, PolicyViolation) as exc:
                return f"it cannot be rendered again: {exc}"
        if found is None:
            return "its DAG or task is gone"
        task, info, rendered = found
        host_output = output_dir(self._settings, key)
        try:
            request = build_launch_request(self._settings, task, rendered, key, info, host_output)
        except PolicyViolation as exc:
            return f"it is refused by policy: {exc}"
        return LaunchJob(ti_id, key, request, log_path(self._settings, key), host_output)

    def _sensitive(self, ti_id: int, key: AttemptKey) -> frozenset[str]:
        """The secret values an adopted container may print (masked in its log), found by
        rendering its attempt again: the store keeps the rendered fields only masked."""
        try:
            with self._sessions() as session:
                ti = session.get(TaskInstanceRow, ti_id)
                found = self._render_again(session, ti) if ti is not None else None
        except Exception as exc:  # adopting matters more than masking: say so and go on
            log.warning("%s: its secrets cannot be resolved again to mask its log: %s", key, exc)
            return frozenset()
        return found[2].sensitive if found is not None else frozenset()

    def _render_again(
        self, session: Session, ti: TaskInstanceRow
    ) -> tuple[TaskSpec, RunInfo, RenderedTask] | None:
        """The attempt's fields as its launch had them, secrets resolved: rendering is
        deterministic (same run, upstream outputs, try and map index). None if the DAG or
        the task is gone. Raises TemplateError when a template or secret no longer resolves."""
        dag = session.get(DagRow, ti.dag_id)
        if dag is None:
            return None
        spec = DagSpec.model_validate_json(dag.spec_json)
        if not spec.has_task(ti.task_id):
            return None
        task = spec.task(ti.task_id)
        run = ti_store.get_run_of(session, ti)
        info = run_info(spec, run)
        outputs = outputs_of(run_store.task_instances(session, run.id))
        secrets = secret_source(self._settings, session)
        return task, info, render_attempt(spec, task, info, ti, outputs, secrets)


def _poke_of(session: Session, ti: TaskInstanceRow) -> int:
    """The poke number of a sensor's current container (0 for other tasks)."""
    pokes = sensor_pokes.pokes(session, ti.id, ti.try_number)
    return pokes[-1].poke_number if pokes else 0


def _seen(container: ContainerInfo) -> SeenContainer:
    return SeenContainer(
        id=container.id,
        name=container.name,
        status=container.status,
        exited=container.exit is not None,
    )


def _describe(report: ReconcileReport) -> str:
    return ", ".join(f"{n} {a.value}" for a, n in report.actions.items()) or "nothing to do"
