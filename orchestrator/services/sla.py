"""Watching SLA deadlines from the scheduler's pass: misses recorded once and notified.

The decision is `scheduling.sla.check_slas`; this keeps it cheap to ask on every pass. A miss
can only appear once a deadline passed, so a run is checked again only when its earliest
pending deadline is due (or, with none pending, at most every `RECHECK` seconds, for task
instances that appear later). DAGs without any `sla` cost a dictionary lookup per run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from orchestrator.models.notifiers import NotifyEvent
from orchestrator.models.specs import DagSpec
from orchestrator.models.states import TaskState
from orchestrator.scheduling.notifications import run_notifiers
from orchestrator.scheduling.sla import SlaRun, SlaTaskView, check_slas, has_slas
from orchestrator.services.notifications import Notice, attempt_log, build_payload
from orchestrator.settings import Settings
from orchestrator.store import notifications as notification_store
from orchestrator.store.tables import DagRunRow, TaskInstanceRow

log = logging.getLogger(__name__)

#: With no deadline pending, a run is looked at again after this long.
RECHECK = timedelta(seconds=60)


class SlaMonitor:
    """Remembers, per run, when its SLAs next need a look."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._next_check: dict[int, datetime] = {}
        self._has_slas: dict[str, tuple[DagSpec, bool]] = {}

    def check(
        self,
        session: Session,
        runs: Iterable[tuple[DagSpec, DagRunRow]],
        tis_of: Callable[[int], Sequence[TaskInstanceRow]],
        now: datetime,
    ) -> tuple[list[Notice], datetime | None]:
        """Record the misses due at `now` in these running runs and build their notices;
        return them with the next moment a deadline falls due."""
        notices: list[Notice] = []
        next_deadline: datetime | None = None
        seen: dict[int, datetime] = {}
        for spec, run in runs:
            if not self._spec_has_slas(spec):
                continue
            due = self._next_check.get(run.id)
            if due is None or now >= due:
                due = self._check_run(session, spec, run, tis_of(run.id), now, notices)
            seen[run.id] = due
            next_deadline = due if next_deadline is None else min(next_deadline, due)
        self._next_check = seen  # finished runs drop out
        return notices, next_deadline

    def _spec_has_slas(self, spec: DagSpec) -> bool:
        cached = self._has_slas.get(spec.dag_id)
        if cached is None or cached[0] is not spec:
            cached = self._has_slas[spec.dag_id] = (spec, has_slas(spec))
        return cached[1]

    def _check_run(
        self,
        session: Session,
        spec: DagSpec,
        run: DagRunRow,
        tis: Sequence[TaskInstanceRow],
        now: datetime,
        notices: list[Notice],
    ) -> datetime:
        sla_run = SlaRun(run.run_type, run.data_interval_end, run.queued_at)
        views = [SlaTaskView(t.task_id, t.map_index, TaskState(t.state), t.end_date) for t in tis]
        result = check_slas(spec, sla_run, views, now)
        if result.misses:
            recorded = notification_store.recorded_sla_misses(session, run.dag_id, run.run_id)
            by_key = {(t.task_id, t.map_index): t for t in tis}
            for miss in result.misses:
                if (miss.task_id, miss.map_index) in recorded:
                    continue
                row = notification_store.add_sla_miss(
                    session,
                    dag_id=run.dag_id,
                    run_id=run.run_id,
                    task_id=miss.task_id,
                    map_index=miss.map_index,
                    deadline=miss.deadline,
                    detected_at=now,
                    state=miss.state.value,
                )
                log.warning(
                    "SLA miss: DAG %r, run %r, task %r had not succeeded by %s (state %s)",
                    run.dag_id,
                    run.run_id,
                    miss.task_id,
                    miss.deadline.isoformat(),
                    miss.state.value,
                )
                ti = by_key[(miss.task_id, miss.map_index)]
                path = attempt_log(self._settings, ti)
                payload = build_payload(
                    NotifyEvent.ON_SLA_MISS,
                    run,
                    now,
                    ti=ti,
                    log=path,
                    sla=(miss.sla, miss.deadline),
                )
                notices.extend(
                    Notice(notifier, payload, path, row.id)
                    for notifier in run_notifiers(spec, NotifyEvent.ON_SLA_MISS)
                )
        return result.next_deadline or now + RECHECK
