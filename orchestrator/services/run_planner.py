"""Creating scheduled runs, pausing, and what a DAG's next run is (see `scheduling.planning`).

Each scheduler pass asks the store only for the DAGs whose planning is due
(`dags.next_dagrun_create_after` unset or passed), so an idle pass costs one small query.
After planning a DAG, the time its next run becomes due is stored there; a new, changed,
re-activated or unpaused DAG has it reset, so it is planned at the next pass.

Decisions:
- Scheduled runs are `scheduled__<logical date, ISO>` with run type `scheduled`, created in
  state queued with an empty conf (params take their defaults).
- The schedule continues after the DAG's latest scheduled run. An interval that already has a
  run of another type at its logical date (a backfill, a manual run at that exact date) gets
  no second run; the schedule steps over it.
- Pausing stops the creation of runs (and the start of queued ones, see `run_limits`). On
  unpause the missed intervals get runs as catch-up dictates: all of them with
  `catchup=True`, only the latest with `catchup=False` (Airflow's behaviour).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from orchestrator.models.specs import DagSpec
from orchestrator.scheduling.planning import (
    DataInterval,
    is_scheduled,
    next_interval,
    next_run,
    runs_to_create,
)
from orchestrator.store import dags as dag_store
from orchestrator.store import runs as run_store
from orchestrator.store.tables import DagRow, DagRunRow

#: `next_dagrun_create_after` of a DAG that will never need planning (unscheduled, ended).
NEVER = datetime(9999, 12, 31, tzinfo=UTC)
SCHEDULED = "scheduled"


def scheduled_run_id(logical_date: datetime) -> str:
    return f"{SCHEDULED}__{logical_date.isoformat()}"


def _interval(run: DagRunRow | None) -> DataInterval | None:
    if run is None:
        return None
    return DataInterval(run.data_interval_start, run.data_interval_end)


def create_due_runs(
    session: Session, spec: DagSpec, now: datetime, *, limit: int
) -> tuple[list[DagRunRow], datetime | None]:
    """Create the DAG's scheduled runs due at `now` (at most `limit`); return them and when
    the DAG needs planning again (None: never)."""
    last = _interval(run_store.latest_run_of_type(session, spec.dag_id, SCHEDULED))
    taken = run_store.logical_dates(session, spec.dag_id, after=last.start if last else None)
    created = [
        run_store.create_run(
            session,
            spec,
            run_id=scheduled_run_id(interval.start),
            run_type=SCHEDULED,
            logical_date=interval.start,
            data_interval=interval,
            conf={},
            now=now,
        )
        for interval in runs_to_create(spec, last, now, limit=limit, taken=taken)
    ]
    if len(created) >= limit:
        return created, now  # more to catch up with: the next pass goes on
    cursor = _interval(created[-1]) if created else last
    following = next_interval(spec, cursor)
    while following is not None and following.start in taken:
        following = next_interval(spec, following)
    due = following.end if following is not None else None
    if due is not None and due <= now:
        return created, None  # not made although due: end_date passed with catchup=False
    return created, due


@dataclass
class PlanReport:
    """What planning did in one pass."""

    created: list[DagRunRow]
    next_at: datetime | None  # when some DAG needs planning next


class RunPlanner:
    """Creates due scheduled runs of active, unpaused DAGs, once per scheduler pass."""

    def __init__(self, limit_per_dag: int) -> None:
        self._limit = limit_per_dag
        self._next_at: datetime | None = None
        self._known = False

    @property
    def next_at(self) -> datetime | None:
        """When a DAG needs planning next, as last read."""
        return self._next_at

    def due(self, now: datetime) -> bool:
        """Whether a DAG's planning is known to be due (or nothing is known yet)."""
        return not self._known or (self._next_at is not None and self._next_at <= now)

    def plan(
        self, session: Session, now: datetime, spec_of: Callable[[str], DagSpec | None]
    ) -> PlanReport:
        created: list[DagRunRow] = []
        rows = dag_store.dags_to_plan(session, now)
        for row in rows:
            spec = spec_of(row.dag_id)
            if spec is None or not is_scheduled(spec):
                row.next_dagrun_create_after = NEVER
                continue
            made, due = create_due_runs(session, spec, now, limit=self._limit)
            created += made
            row.next_dagrun_create_after = due or NEVER
        # read again when something was planned, and when the time known has passed (another
        # scheduler sharing the store may have planned that DAG)
        stale = self._next_at is not None and self._next_at <= now
        if rows or not self._known or stale:
            session.flush()
            found = dag_store.next_planning_time(session)
            self._next_at = found if found is not None and found < NEVER else None
            self._known = True
        return PlanReport(created, self._next_at)


def set_paused(session: Session, dag_id: str, paused: bool) -> DagRow:
    """Pause or unpause a DAG (raises DagNotFound). A paused DAG gets no scheduled runs and
    its queued runs wait; running runs finish."""
    return dag_store.set_paused(session, dag_id, paused)


def upcoming_run(session: Session, spec: DagSpec, now: datetime) -> DataInterval | None:
    """The data interval of the DAG's next scheduled run: the one due now if any, else the
    next one to come; None if it has none."""
    if not is_scheduled(spec):
        return None
    last = _interval(run_store.latest_run_of_type(session, spec.dag_id, SCHEDULED))
    return next_run(spec, last, now) or next_interval(spec, last)


def upcoming_runs(
    session: Session, rows: Sequence[DagRow], now: datetime
) -> dict[str, DataInterval | None]:
    """`upcoming_run` of each of these stored DAGs, by DAG id."""
    return {
        row.dag_id: upcoming_run(session, DagSpec.model_validate_json(row.spec_json), now)
        for row in rows
    }
