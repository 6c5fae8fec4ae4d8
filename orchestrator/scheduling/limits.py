"""Which scheduled task instances take a slot now: parallelism, per-DAG and per-task limits,
pools, and priority.

Pure functions of (candidates, what is already running, limits): no database, no Docker, no
clock. The rules, as in Airflow 2:

- Candidates are considered in priority order: higher effective priority first; ties go to
  the run with the earlier logical date (then the earlier queued run), then by DAG id, run id,
  task id and map index, so the order never depends on the database's row order.
- A candidate launches if one more instance fits every limit: the global `parallelism`, its
  DAG's `max_active_tasks`, its task's `max_active_tis_per_dag`, and `pool_slots` open slots
  in its pool. Everything already queued or running counts against the limits.
- A candidate that does not fit is passed over, and lower-priority candidates that do fit still
  launch (a task needing 2 slots of a pool with 1 open does not hold back 1-slot tasks). A
  large task can therefore wait while small ones keep a pool busy; give it a higher priority
  or its own pool if that matters.
- A candidate whose pool does not exist, or that needs more slots than its pool has at all,
  cannot launch; it is reported in `Selection.blocked` with a reason the user can act on, and
  stays scheduled, so it starts once the pool is created or enlarged (Airflow keeps such tasks
  scheduled too).

Effective priority (`effective_weights`) follows Airflow's `weight_rule`: `downstream` (the
default) adds the weights of every task downstream of the task, each counted once;
`upstream` those of every task upstream; `absolute` takes the task's own weight only. The
sums are made over the whole graph at once with bit sets, so a 10,000-task DAG costs
milliseconds, and `WeightCache` keeps them per spec version.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from orchestrator.models.graph import topological_order
from orchestrator.models.specs import DagSpec, WeightRule


class Candidate(NamedTuple):
    """A scheduled task instance waiting for a slot, with what the limits need to know (a
    named tuple: the scheduler makes one per scheduled instance per pass, so it is cheap)."""

    ti_id: int
    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    logical_date: datetime
    queued_at: datetime
    priority: int  # effective priority weight
    pool: str
    pool_slots: int = 1
    max_active_tasks: int = 16  # of its DAG
    max_active_tis_per_dag: int | None = None  # of its task; None: unlimited

    @property
    def order(self) -> tuple[int, datetime, datetime, str, str, str, int]:
        """Sort key: higher priority first, then the earlier run, then ids."""
        return (
            -self.priority,
            self.logical_date,
            self.queued_at,
            self.dag_id,
            self.run_id,
            self.task_id,
            self.map_index,
        )


@dataclass(frozen=True)
class Active:
    """Task instances holding a slot (queued or running) in one (DAG, task, pool) group."""

    dag_id: str
    task_id: str
    pool: str
    count: int
    slots: int


@dataclass
class Occupancy:
    """What is already queued or running: instance counts and pool slots in use."""

    total: int = 0
    per_dag: Counter[str] = field(default_factory=Counter)
    per_task: Counter[tuple[str, str]] = field(default_factory=Counter)
    pool_slots: Counter[str] = field(default_factory=Counter)

    @classmethod
    def of(cls, groups: Iterable[Active]) -> Occupancy:
        occupancy = cls()
        for group in groups:
            occupancy.total += group.count
            occupancy.per_dag[group.dag_id] += group.count
            occupancy.per_task[(group.dag_id, group.task_id)] += group.count
            occupancy.pool_slots[group.pool] += group.slots
        return occupancy


@dataclass
class Selection:
    """The candidates to launch now, in priority order, and those that cannot launch at all
    until an operator acts (ti id → reason)."""

    launch: list[Candidate] = field(default_factory=list)
    blocked: dict[int, str] = field(default_factory=dict)


def select_launches(
    candidates: Sequence[Candidate],
    occupancy: Occupancy,
    *,
    parallelism: int,
    pools: Mapping[str, int],
    ordered: bool = False,
) -> Selection:
    """Choose the candidates to launch now within every limit (see the module docstring).

    `pools` maps each existing pool's name to its number of slots; `ordered`: the
    candidates are in `Candidate.order` already.
    """
    selection = Selection()
    free = parallelism - occupancy.total
    per_dag = Counter(occupancy.per_dag)
    per_task = Counter(occupancy.per_task)
    pool_used = Counter(occupancy.pool_slots)
    full_dags: set[str] = set()
    # whether any candidate cannot launch at all (then every one is looked at, to report it)
    blockable = any(
        pool not in pools or slots > pools[pool]
        for pool, slots in {(c.pool, c.pool_slots) for c in candidates}
    )
    for candidate in candidates if ordered else sorted(candidates, key=lambda c: c.order):
        if free <= 0 and not blockable:
            break
        size = pools.get(candidate.pool)
        if size is None:
            selection.blocked[candidate.ti_id] = (
                f"pool '{candidate.pool}' does not exist: create it with "
                f"`orchestrator pools set {candidate.pool} SLOTS`"
            )
            continue
        if candidate.pool_slots > size:
            selection.blocked[candidate.ti_id] = (
                f"needs {candidate.pool_slots} slots of pool '{candidate.pool}', which has only "
                f"{size}: enlarge it with `orchestrator pools set {candidate.pool} "
                f"{candidate.pool_slots}` or lower the task's pool_slots"
            )
            continue
        if free <= 0:
            continue  # keep going: later candidates may still be blocked for good
        if candidate.dag_id in full_dags:
            continue
        if per_dag[candidate.dag_id] >= candidate.max_active_tasks:
            full_dags.add(candidate.dag_id)
            continue
        task_key = (candidate.dag_id, candidate.task_id)
        task_limit = candidate.max_active_tis_per_dag
        if task_limit is not None and per_task[task_key] >= task_limit:
            continue
        if pool_used[candidate.pool] + candidate.pool_slots > size:
            continue
        selection.launch.append(candidate)
        free -= 1
        per_dag[candidate.dag_id] += 1
        per_task[task_key] += 1
        pool_used[candidate.pool] += candidate.pool_slots
    return selection


def effective_weights(spec: DagSpec) -> dict[str, int]:
    """Each task's effective priority under its `weight_rule` (see the module docstring)."""
    order = _upstream_first(spec)
    position = {task_id: i for i, task_id in enumerate(order)}
    tasks = {task.task_id: task for task in spec.tasks}
    weights = [tasks[task_id].priority_weight for task_id in order]
    rules = {task.weight_rule for task in spec.tasks}
    parents = [[position[u] for u in tasks[task_id].upstream_task_ids] for task_id in order]

    below: list[int] = []
    if WeightRule.DOWNSTREAM in rules:
        children: list[list[int]] = [[] for _ in order]
        for child, ups in enumerate(parents):
            for parent in ups:
                children[parent].append(child)
        below = [0] * len(order)
        for node in reversed(range(len(order))):
            bits = 0
            for child in children[node]:
                bits |= below[child] | (1 << child)
            below[node] = bits
    above: list[int] = []
    if WeightRule.UPSTREAM in rules:
        above = [0] * len(order)
        for node in range(len(order)):
            bits = 0
            for parent in parents[node]:
                bits |= above[parent] | (1 << parent)
            above[node] = bits

    total = _WeightedCount(weights)
    result: dict[str, int] = {}
    for node, task_id in enumerate(order):
        rule = tasks[task_id].weight_rule
        own = weights[node]
        if rule == WeightRule.DOWNSTREAM:
            result[task_id] = own + total.sum(below[node])
        elif rule == WeightRule.UPSTREAM:
            result[task_id] = own + total.sum(above[node])
        else:
            result[task_id] = own
    return result


def _upstream_first(spec: DagSpec) -> list[str]:
    """Task ids, upstream tasks first: the stored order when it already is (specs from the SDK
    are stored sorted), else a topological sort."""
    seen: set[str] = set()
    for task in spec.tasks:
        if task.task_id in seen or not seen.issuperset(task.upstream_task_ids):
            return topological_order(spec)
        seen.add(task.task_id)
    return [task.task_id for task in spec.tasks]


class _WeightedCount:
    """Sums the weights of the tasks in a bit set (bit i: the task at topological position i).

    Tasks are grouped by weight when few distinct weights exist (the usual case: one popcount
    per group); otherwise the weights, shifted to be non-negative, are split into binary
    planes, one popcount per plane.
    """

    def __init__(self, weights: Sequence[int]) -> None:
        self._groups: list[tuple[int, int]] = []
        self._offset = 0
        if not weights:
            return
        masks: dict[int, int] = defaultdict(int)
        for i, weight in enumerate(weights):
            masks[weight] |= 1 << i
        low = min(weights)
        planes = (max(weights) - low).bit_length()
        if len(masks) <= planes + 1:
            self._groups = [(weight, mask) for weight, mask in masks.items() if weight]
            return
        self._offset = low
        plane_masks = [0] * planes
        for i, weight in enumerate(weights):
            shifted = weight - low
            for bit in range(planes):
                if shifted >> bit & 1:
                    plane_masks[bit] |= 1 << i
        self._groups = [(1 << bit, mask) for bit, mask in enumerate(plane_masks)]

    def sum(self, bits: int) -> int:
        if not bits:
            return 0
        total = sum(weight * (bits & mask).bit_count() for weight, mask in self._groups)
        if self._offset:
            total += self._offset * bits.bit_count()
        return total


class WeightCache:
    """Effective weights per DAG, computed once per spec version (keyed by its hash)."""

    def __init__(self) -> None:
        self._by_dag: dict[str, tuple[str, dict[str, int]]] = {}

    def weights(self, spec: DagSpec, version: str) -> dict[str, int]:
        cached = self._by_dag.get(spec.dag_id)
        if cached is not None and cached[0] == version:
            return cached[1]
        weights = effective_weights(spec)
        self._by_dag[spec.dag_id] = (version, weights)
        return weights
