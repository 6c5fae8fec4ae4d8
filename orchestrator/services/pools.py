"""Pools as operators manage them: create or resize, list with their use, delete.

A pool is a named number of slots; a task instance takes its task's `pool_slots` of its
task's `pool` while it is queued or running. `default_pool` (128 slots) always exists: it is
created by the first migration and again whenever it is found missing, and cannot be deleted.
A pool with queued or running task instances cannot be deleted either (wait for them, or
resize it to 0 slots to let nothing new start). Instances of tasks naming a pool that does not
exist stay scheduled, with a state detail saying so, until the pool is created.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from orchestrator.errors import PoolError, PoolNotFound
from orchestrator.models.specs import DEFAULT_POOL, DagSpec, check_pool_name
from orchestrator.models.states import TaskState
from orchestrator.store import pools as pool_store


@dataclass(frozen=True)
class PoolUse:
    """A pool and the slots its task instances hold now."""

    name: str
    slots: int
    running: int  # slots held by running task instances
    queued: int  # slots held by queued ones (container being created)
    description: str | None

    @property
    def open(self) -> int:
        """Slots free for new task instances (never below 0, even after shrinking a pool)."""
        return max(self.slots - self.running - self.queued, 0)


def list_pools(session: Session) -> list[PoolUse]:
    """Every pool, by name, with the slots in use."""
    pool_store.ensure_default_pool(session)
    running: dict[str, int] = {}
    queued: dict[str, int] = {}
    for group in pool_store.active_groups(session):
        held = running if group.state == TaskState.RUNNING.value else queued
        held[group.pool] = held.get(group.pool, 0) + group.slots
    return [
        PoolUse(
            name=row.name,
            slots=row.slots,
            running=running.get(row.name, 0),
            queued=queued.get(row.name, 0),
            description=row.description,
        )
        for row in pool_store.list_pools(session)
    ]


def set_pool(session: Session, name: str, slots: int, description: str | None = None) -> PoolUse:
    """Create the pool, or change its number of slots (and description, if given)."""
    try:
        check_pool_name(name)
    except ValueError as exc:
        raise PoolError(str(exc)) from None
    if slots < 0:
        raise PoolError(
            f"pool '{name}': slots must be 0 or more, got {slots} (0 lets no new task start)"
        )
    pool_store.upsert_pool(session, name, slots, description)
    return next(p for p in list_pools(session) if p.name == name)


def delete_pool(session: Session, name: str) -> None:
    """Delete a pool that no task instance is using."""
    if name == DEFAULT_POOL:
        raise PoolError(f"'{DEFAULT_POOL}' cannot be deleted; resize it with `pools set` instead")
    row = pool_store.get_pool(session, name)
    if row is None:
        known = ", ".join(p.name for p in list_pools(session))
        raise PoolNotFound(f"no pool '{name}' exists (pools: {known})")
    in_use = [p for p in list_pools(session) if p.name == name and p.running + p.queued]
    if in_use:
        use = in_use[0]
        raise PoolError(
            f"pool '{name}' is in use ({use.running} running and {use.queued} queued slots);"
            " delete it once its task instances finished"
        )
    pool_store.delete_pool(session, row)


def check_dag_pools(session: Session, spec: DagSpec) -> None:
    """Raise PoolError if a task of the DAG names a missing pool or needs more slots than its
    pool has: for runs executed in the foreground (`dags test`), which would otherwise wait
    for an operator forever."""
    sizes = {p.name: p.slots for p in list_pools(session)}
    problems = []
    for task in spec.tasks:
        size = sizes.get(task.pool)
        if size is None:
            problems.append(
                f"task '{task.task_id}' uses pool '{task.pool}', which does not exist: create it"
                f" with `orchestrator pools set {task.pool} SLOTS`"
            )
        elif task.pool_slots > size:
            problems.append(
                f"task '{task.task_id}' needs {task.pool_slots} slots of pool '{task.pool}',"
                f" which has only {size}"
            )
    if problems:
        raise PoolError(f"DAG '{spec.dag_id}': " + "; ".join(problems))
