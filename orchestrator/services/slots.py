"""Choosing which scheduled task instances take a slot in this pass, for the scheduler.

Reads what the limits need with two small queries per pass (pool sizes; queued and running
instances grouped by DAG, task and pool), leaves the decision to
`scheduling.limits.select_launches`, and records the outcome on the rows: a chosen instance
remembers the pool and slots it takes; one that cannot start until an operator acts (unknown
pool, pool too small) shows why in its state detail and stays scheduled.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from operator import itemgetter
from typing import Any, NamedTuple

from sqlalchemy.orm import Session

from orchestrator.models.specs import DEFAULT_POOL, DagSpec, TaskKind, TaskSpec
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


class _Entry(NamedTuple):
    """A waiting instance as the planner keeps it between passes."""

    order: tuple[Any, ...]  # `Candidate.order`
    candidate: Candidate
    item: Waiting
    version: str  # of the spec it was made from


class SlotPlanner:
    """Applies the limits for the scheduler; keeps effective priorities per spec version, and
    what it made of each instance waiting for a slot while it waits."""

    def __init__(
        self, parallelism: int, occupancy_of: Callable[[Session], Occupancy] = occupancy
    ) -> None:
        self._parallelism = parallelism
        self._occupancy_of = occupancy_of
        self._weights = WeightCache()
        self._entries: dict[int, _Entry] = {}  # by task instance id

    def choose(
        self,
        session: Session,
        scheduled: Iterable[TaskInstanceRow],
        spec_of: Callable[[str], tuple[DagSpec | None, str]],
        run_of: Callable[[TaskInstanceRow], DagRunRow],
        executes: Callable[[DagRunRow], bool],
        held: Occupancy,
    ) -> list[Waiting]:
        """The `scheduled` instances to launch now, highest priority first.

        `spec_of(dag_id)`: the DAG's spec this pass (None if gone) and its version (hash),
        which effective priorities and kept entries are valid for; `run_of(ti)`: the
        instance's run; `executes(run)`: whether this scheduler executes it (asked every
        pass). Instances of tasks that need no container are left out (they were run before
        the slot count).

        On PostgreSQL the choice is made under a lock every scheduler takes (held until the
        pass commits), with `held` read again under it: what other schedulers queued counts,
        so pools and per-DAG and per-task limits hold across them."""
        entries = self._waiting(scheduled, spec_of, run_of, executes)
        if not entries:
            return []
        if pool_store.lock_slots(session):  # PostgreSQL: count again, alone among schedulers
            held = self._occupancy_of(session)
        with session.no_autoflush:  # pending task instance changes cannot change pools
            pools = pool_store.pool_sizes(session)
        if DEFAULT_POOL not in pools:
            pools[DEFAULT_POOL] = pool_store.ensure_default_pool(session).slots
        entries.sort(key=itemgetter(0))
        selection = select_launches(
            [entry.candidate for entry in entries],
            held,
            parallelism=self._parallelism,
            pools=pools,
            ordered=True,
        )
        for ti_id, reason in selection.blocked.items():
            ti = self._entries[ti_id].item.ti
            detail = WAITING_PREFIX + reason
            if ti.state_detail != detail:
                log.warning(
                    "DAG '%s', run '%s', task '%s': %s", ti.dag_id, ti.run_id, ti.task_id, detail
                )
                ti.state_detail = detail
        chosen = []
        for candidate in selection.launch:
            item = self._entries[candidate.ti_id].item
            item.ti.pool, item.ti.pool_slots = candidate.pool, candidate.pool_slots
            if item.ti.state_detail and item.ti.state_detail.startswith(WAITING_PREFIX):
                item.ti.state_detail = None
            chosen.append(item)
        return chosen

    def _waiting(
        self,
        scheduled: Iterable[TaskInstanceRow],
        spec_of: Callable[[str], tuple[DagSpec | None, str]],
        run_of: Callable[[TaskInstanceRow], DagRunRow],
        executes: Callable[[DagRunRow], bool],
    ) -> list[_Entry]:
        """An entry per instance that waits for a slot: kept from an earlier pass while its
        spec version is the same, else made (and kept)."""
        specs: dict[str, tuple[DagSpec | None, str]] = {}
        executed: dict[int, bool] = {}  # by id() of a run: whether this scheduler executes it
        entries = []
        known, self._entries = self._entries, {}
        for ti in scheduled:
            ti_id = ti.id
            entry = known.get(ti_id)
            if entry is not None and entry.item.ti is ti:  # waiting since an earlier pass
                dag_id = entry.candidate.dag_id
                if dag_id not in specs:
                    specs[dag_id] = spec_of(dag_id)
                spec, version = specs[dag_id]
                if spec is not entry.item.spec or version != entry.version:
                    entry = self._entry(ti, specs, spec_of, run_of)  # the spec changed
            else:
                entry = self._entry(ti, specs, spec_of, run_of)
            if entry is None:
                continue
            run = entry.item.run
            if id(run) not in executed:
                executed[id(run)] = executes(run)
            if executed[id(run)]:
                self._entries[ti_id] = entry
                entries.append(entry)
        return entries

    def _entry(
        self,
        ti: TaskInstanceRow,
        specs: dict[str, tuple[DagSpec | None, str]],
        spec_of: Callable[[str], tuple[DagSpec | None, str]],
        run_of: Callable[[TaskInstanceRow], DagRunRow],
    ) -> _Entry | None:
        dag_id = ti.dag_id
        if dag_id not in specs:
            specs[dag_id] = spec_of(dag_id)
        spec, version = specs[dag_id]
        task = spec.task_index.get(ti.task_id) if spec is not None else None
        if spec is None or task is None or task.kind != TaskKind.CONTAINER:
            return None
        run = run_of(ti)
        weights = self._weights.weights(spec, version)
        candidate = Candidate(
            ti_id=ti.id,
            dag_id=dag_id,
            run_id=run.run_id,
            task_id=task.task_id,
            map_index=ti.map_index,
            logical_date=run.logical_date,
            queued_at=run.queued_at,
            priority=weights.get(task.task_id, task.priority_weight),
            pool=task.pool,
            pool_slots=task.pool_slots,
            max_active_tasks=spec.max_active_tasks,
            max_active_tis_per_dag=task.max_active_tis_per_dag,
        )
        return _Entry(candidate.order, candidate, Waiting(ti, run, spec, task), version)
