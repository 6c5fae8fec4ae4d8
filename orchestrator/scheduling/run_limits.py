"""Which queued runs may start, and when a running run has outlived its `dagrun_timeout`.

Decisions:
- `max_active_runs` caps a DAG's runs in state RUNNING (every run type: scheduled, manual,
  backfill). Queued runs start oldest logical date first (ties: oldest queued first) while
  the DAG is under its cap; the others wait queued.
- A paused DAG's queued runs are not started (its running ones finish), except backfill runs:
  a backfill is an explicit request and works on paused DAGs too (as in Airflow). `test`
  runs (from `dags test`) are started regardless of pause and cap: they run in the
  foreground of the command that made them.
- A run times out once `now >= start_date + dagrun_timeout` (measured from when it started
  running, not from when it was queued: time spent waiting behind `max_active_runs` does not
  count).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

#: Run types neither a pause nor `max_active_runs` holds back.
UNLIMITED_RUN_TYPES = frozenset({"test"})
#: Run types a pause does not hold back (they still count towards `max_active_runs`).
PAUSE_EXEMPT_RUN_TYPES = frozenset({"test", "backfill"})


@dataclass(frozen=True)
class RunKey:
    """What the choice needs to know of a run."""

    pk: int
    dag_id: str
    run_type: str
    logical_date: datetime


def runs_to_start(
    queued: Iterable[RunKey],
    running: Iterable[RunKey],
    max_active_runs: Callable[[str], int],
    paused: Collection[str],
) -> list[int]:
    """The primary keys of the queued runs to start now, in the order to start them."""
    active = Counter(run.dag_id for run in running)
    chosen: list[int] = []
    for run in sorted(queued, key=lambda r: (r.logical_date, r.pk)):
        if run.run_type in UNLIMITED_RUN_TYPES:
            chosen.append(run.pk)
            continue
        held = run.dag_id in paused and run.run_type not in PAUSE_EXEMPT_RUN_TYPES
        if held or active[run.dag_id] >= max_active_runs(run.dag_id):
            continue
        active[run.dag_id] += 1
        chosen.append(run.pk)
    return chosen


def timeout_due(start_date: datetime | None, timeout: timedelta | None) -> datetime | None:
    """When a running run times out; None if it has no timeout (or has not started)."""
    if start_date is None or timeout is None:
        return None
    return start_date + timeout
