"""Pure checks and orderings of a DAG's task graph.

The SDK validates a DAG with these functions before it is serialized, and the scheduler can
re-validate a stored `DagSpec` with them without importing the SDK or any DAG code. Edges point
from an upstream task to its downstream task (`a >> b`: `a` is upstream of `b`).
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence

from orchestrator.errors import DagDefinitionError
from orchestrator.models.specs import DagSpec


def validate_dag(spec: DagSpec) -> None:
    """Raise DagDefinitionError unless task ids are unique, every upstream id names a task of
    the DAG and the graph has no cycle."""
    topological_order(spec)


def topological_order(spec: DagSpec) -> list[str]:
    """Task ids, every task after all of its upstream tasks; ties keep the order of
    `spec.tasks`. Raises DagDefinitionError on a duplicate id, an unknown upstream or a cycle."""
    seen: set[str] = set()
    for task in spec.tasks:
        if task.task_id in seen:
            raise DagDefinitionError(f"DAG '{spec.dag_id}' has two tasks with id '{task.task_id}'")
        seen.add(task.task_id)
    return sort_upstream_map(spec.dag_id, {t.task_id: t.upstream_task_ids for t in spec.tasks})


def sort_upstream_map(dag_id: str, upstream: Mapping[str, Sequence[str]]) -> list[str]:
    """Topological order of `{task_id: upstream ids}`; ties keep the mapping's order."""
    position = {task_id: i for i, task_id in enumerate(upstream)}
    downstream: dict[str, list[str]] = {task_id: [] for task_id in upstream}
    waiting_on: dict[str, int] = {}
    for task_id, upstream_ids in upstream.items():
        unique = sorted(set(upstream_ids), key=lambda u: position.get(u, -1))
        for upstream_id in unique:
            if upstream_id not in position:
                raise DagDefinitionError(
                    f"DAG '{dag_id}': task '{task_id}' depends on '{upstream_id}', "
                    "which is not a task of this DAG"
                )
            downstream[upstream_id].append(task_id)
        waiting_on[task_id] = len(unique)

    ready = [(position[t], t) for t, count in waiting_on.items() if count == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        _, task_id = heapq.heappop(ready)
        order.append(task_id)
        for child in downstream[task_id]:
            waiting_on[child] -= 1
            if waiting_on[child] == 0:
                heapq.heappush(ready, (position[child], child))

    if len(order) < len(upstream):
        stuck = [t for t in upstream if waiting_on[t] > 0]
        cycle = _find_cycle(stuck, downstream)
        path = " >> ".join(cycle)
        raise DagDefinitionError(
            f"DAG '{dag_id}' has a cycle: {path} (edge {cycle[-2]} >> {cycle[-1]} closes it)"
        )
    return order


def _find_cycle(nodes: list[str], downstream: Mapping[str, list[str]]) -> list[str]:
    """A cycle among `nodes` as a path whose last id repeats an earlier one, found by a
    depth-first search started from the nodes in their given order."""
    candidates = set(nodes)
    done: set[str] = set()
    for start in nodes:
        if start in done:
            continue
        path: list[str] = [start]
        on_path = {start}
        branches = [iter(downstream[start])]
        while branches:
            child = next((c for c in branches[-1] if c in candidates and c not in done), None)
            if child is None:
                finished = path.pop()
                on_path.discard(finished)
                done.add(finished)
                branches.pop()
                continue
            if child in on_path:
                return [*path[path.index(child) :], child]
            path.append(child)
            on_path.add(child)
            branches.append(iter(downstream[child]))
    raise AssertionError("no cycle among nodes that a topological sort could not order")


def branch_joins(spec: DagSpec) -> dict[str, str]:
    """Joins after branches: `{task id: branch task id}`.

    A join after branch task B is a task with two or more direct upstream tasks on different
    paths out of B (B itself counts as one path: `B >> [a, join]`, `a >> join`). Under the
    default `all_success` rule such a join would always be skipped, since B skips one path.
    """
    children: dict[str, list[str]] = {t.task_id: [] for t in spec.tasks}
    for task in spec.tasks:
        for upstream_id in task.upstream_task_ids:
            children.setdefault(upstream_id, []).append(task.task_id)
    joins: dict[str, str] = {}
    for branch in (t for t in spec.tasks if t.branch):
        entries: dict[str, set[str]] = {branch.task_id: {branch.task_id}}
        for child in children[branch.task_id]:
            for reached in _descendants_or_self(child, children):
                entries.setdefault(reached, set()).add(child)
        for task in spec.tasks:
            if task.task_id == branch.task_id or task.task_id in joins:
                continue
            paths = [entries[u] for u in task.upstream_task_ids if u in entries]
            if len(paths) >= 2 and len(set().union(*paths)) >= 2:
                joins[task.task_id] = branch.task_id
    return joins


def _descendants_or_self(task_id: str, children: Mapping[str, list[str]]) -> set[str]:
    seen = {task_id}
    pending = [task_id]
    while pending:
        for child in children.get(pending.pop(), ()):
            if child not in seen:
                seen.add(child)
                pending.append(child)
    return seen
