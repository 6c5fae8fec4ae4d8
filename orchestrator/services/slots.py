"""Choosing which scheduled task instances take a slot in this pass, for the scheduler.

Reads what the limits need with two small queries per pass (pool sizes; queued and running
instances grouped by DAG, task and pool), leaves the decision to
`scheduling.limits.select_launches`, and records the outcome on the rows: a chosen instance
remembers the pool and slots it takes; one that cannot start until an operator acts (unknown
pool, pool too small) shows why in its state detail and stays scheduled.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from operator import itemgetter
from typing import Any, NamedTuple

from sqlalchemy.orm import Session

from orchestrator.models.specs import DEFAULT_POOL, DagSpec, TaskSpec
from orchestrator.scheduling.limits import (
    Active,
    Candidate,
    Occupancy,
    WeightCache,
    select_launches,
)
from orchestrator.store import pools as pool_store
from orchestrator.store.tables import DagRunRow, TaskInstanceRow

log = logging.getLogger(__name__)

#: Starts the state detail of an instance that waits for an operator to fix its pool.
WAITING_PREFIX = "waiting: "


class Waiting(NamedTuple):
    """A scheduled task instance with its run and its DAG's current spec (a named tuple:
    the scheduler makes one per scheduled instance per pass)."""

    ti: TaskInstanceRow
    run: DagRunRow
    spec: DagSpec
    task: TaskSpec


def occupancy(session: Session) -> Occupancy:
    """Queued and running task instances and the pool slots they hold (one query)."""
    return Occupancy.of(
        Active(g.dag_id, g.task_id, g.pool, g.count, g.slots)
        for g in pool_store.active_groups(session)
    )


def occupancy_of(tis: Iterable[TaskInstanceRow]) -> Occupancy:
    """What these queued and running task instances hold, counted as `occupancy` does."""
    return Occupancy.of(
        Active(ti.dag_id, ti.task_id, ti.pool or DEFAULT_POOL, 1, ti.pool_slots or 0) for ti in tis
    )


class SlotPlanner:
    """Applies the limits for the scheduler; keeps effective priorities per spec version."""

    def __init__(
        self, parallelism: int, occupancy_of: Callable[[Session], Occupancy] = occupancy
    ) -> None:
        self._parallelism = parallelism
        self._occupancy_of = occupancy_of
        self._weights = WeightCache()
        # by task instance: its spec version, and the candidate made for it while it waits
        # with its `order`
        self._candidates: dict[int, tuple[str, tuple[Any, ...], Candidate]] = {}

    def choose(
        self,
        session: Session,
        waiting: Sequence[Waiting],
        version_of: Callable[[str], str],
        held: Occupancy,
    ) -> list[Waiting]:
        """The instances to launch now, highest priority first; `version_of(dag_id)` names
        the spec version (its hash) that effective priorities are cached under.

        On PostgreSQL the choice is made under a lock every scheduler takes (held until the
        pass commits), with `held` read again under it: what other schedulers queued counts,
        so pools and per-DAG and per-task limits hold across them."""
        if not waiting:
            return []
        if pool_store.lock_slots(session):  # PostgreSQL: count again, alone among schedulers
            held = self._occupancy_of(session)
        with session.no_autoflush:  # pending task instance changes cannot change pools
            pools = pool_store.pool_sizes(session)
        if DEFAULT_POOL not in pools:
            pools[DEFAULT_POOL] = pool_store.ensure_default_pool(session).slots
        by_ti: dict[int, Waiting] = {}
        weights_of: dict[str, dict[str, int]] = {}
        versions: dict[str, str] = {}
        runs: dict[int, tuple[str, datetime, datetime]] = {}
        known, self._candidates = self._candidates, {}
        for item in waiting:
            ti, spec, task = item.ti, item.spec, item.task
            ti_id = ti.id
            by_ti[ti_id] = item
            version = versions.get(spec.dag_id)
            if version is None:
                version = versions[spec.dag_id] = version_of(spec.dag_id)
            kept = known.get(ti_id)
            if kept is not None and kept[0] == version:  # waiting since an earlier pass
                self._candidates[ti_id] = kept
                continue
            weights = weights_of.get(spec.dag_id)
            if weights is None:
                weights = weights_of[spec.dag_id] = self._weights.weights(spec, version)
            run = runs.get(id(item.run))
            if run is None:
                run = runs[id(item.run)] = (
                    item.run.run_id,
                    item.run.logical_date,
                    item.run.queued_at,
                )
            candidate = Candidate(
                ti_id=ti_id,
                dag_id=spec.dag_id,
                run_id=run[0],
                task_id=task.task_id,
                map_index=ti.map_index,
                logical_date=run[1],
                queued_at=run[2],
                priority=weights.get(task.task_id, task.priority_weight),
                pool=task.pool,
                pool_slots=task.pool_slots,
                max_active_tasks=spec.max_active_tasks,
                max_active_tis_per_dag=task.max_active_tis_per_dag,
            )
            self._candidates[ti_id] = (version, candidate.order, candidate)
        entries = sorted(self._candidates.values(), key=itemgetter(1))
        selection = select_launches(
            [entry[2] for entry in entries],
            held,
            parallelism=self._parallelism,
            pools=pools,
            ordered=True,
        )
        for ti_id, reason in selection.blocked.items():
            ti = by_ti[ti_id].ti
            detail = WAITING_PREFIX + reason
            if ti.state_detail != detail:
                log.warning(
                    "DAG '%s', run '%s', task '%s': %s", ti.dag_id, ti.run_id, ti.task_id, detail
                )
                ti.state_detail = detail
        chosen = []
        for candidate in selection.launch:
            item = by_ti[candidate.ti_id]
            item.ti.pool, item.ti.pool_slots = candidate.pool, candidate.pool_slots
            if item.ti.state_detail and item.ti.state_detail.startswith(WAITING_PREFIX):
                item.ti.state_detail = None
            chosen.append(item)
        return chosen
