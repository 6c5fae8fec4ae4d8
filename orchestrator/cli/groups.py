"""Task groups in listings: a group shown as one line with a summary, unless expanded.

Tasks collapse into their outermost group (`load.tables.orders` into `load`), at the place of
the group's first task. A group's line counts its tasks (and, for a run, their states), e.g.
`extract (3 tasks: 2 success, 1 running)`. Upstream ids that point into a collapsed group are
shown as the group. JSON output never collapses: it carries the full list plus `groups`.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from orchestrator.models.specs import DagSpec
from orchestrator.models.states import TaskState

#: Order of states in a group's summary: what went well, what is going on, what went wrong.
_SUMMARY_ORDER = [
    TaskState.SUCCESS,
    TaskState.RUNNING,
    TaskState.QUEUED,
    TaskState.SCHEDULED,
    TaskState.UP_FOR_RETRY,
    TaskState.UP_FOR_RESCHEDULE,
    TaskState.FAILED,
    TaskState.UPSTREAM_FAILED,
    TaskState.SKIPPED,
    TaskState.REMOVED,
    TaskState.NONE,
]


def outermost_groups(group_ids: Iterable[str | None]) -> dict[str, str]:
    """Each group id mapped to its outermost enclosing group among `group_ids` (nested groups
    have ids `outer.inner`; a group whose own name holds a dot has no parent unless one
    exists)."""
    known = {g for g in group_ids if g}
    return {g: min((p for p in known if g == p or g.startswith(p + ".")), key=len) for g in known}


def task_groups(spec: DagSpec | None) -> dict[str, str]:
    """Task id → outermost group id, for the DAG's grouped tasks."""
    if spec is None:
        return {}
    top = outermost_groups(t.group_id for t in spec.tasks)
    return {t.task_id: top[t.group_id] for t in spec.tasks if t.group_id}


def groups_json(spec: DagSpec | None, states: Mapping[str, Sequence[str]] | None = None) -> Any:
    """Every group (nested ones too) with the tasks in it or nested in it, and, given the
    run's states by task id, the count of each state."""
    if spec is None:
        return []
    out = []
    group_ids = sorted({t.group_id for t in spec.tasks if t.group_id})
    top = outermost_groups(group_ids)
    for group_id in group_ids:
        members = [
            t.task_id
            for t in spec.tasks
            if t.group_id and (t.group_id == group_id or t.group_id.startswith(group_id + "."))
        ]
        entry: dict[str, Any] = {
            "group_id": group_id,
            "outermost": top[group_id],
            "task_ids": members,
        }
        if states is not None:
            counts = Counter(s for m in members for s in states.get(m, ()))
            entry["states"] = dict(sorted(counts.items()))
        out.append(entry)
    return out


def summarize(states: Iterable[str]) -> str:
    """`2 success, 1 running` in a fixed order of states."""
    counts = Counter(states)
    order = [s.value for s in _SUMMARY_ORDER] + sorted(set(counts) - {s.value for s in TaskState})
    return ", ".join(f"{counts[s]} {s}" for s in order if counts[s])


def collapse(
    rows: Sequence[dict[str, Any]],
    groups: Mapping[str, str],
    *,
    state_key: str | None = None,
    upstream_key: str | None = None,
    shared_keys: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """Replace each group's rows by one line (at its first row's place) whose `task_id` reads
    `group (N tasks[: state summary])`; other rows keep their place. `upstream_key` names a
    column of comma-separated upstream ids to show with groups collapsed; `shared_keys` are
    columns a group's line shows when all its rows agree on them."""
    members: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        group = groups.get(row["task_id"])
        if group is not None:
            members.setdefault(group, []).append(row)
    out: list[dict[str, Any]] = []
    for row in rows:
        group = groups.get(row["task_id"])
        if group is None:
            if upstream_key is not None and row.get(upstream_key):
                shown = _ordered(groups.get(u, u) for u in _split(row[upstream_key]))
                row = {**row, upstream_key: ", ".join(shown)}
            out.append(row)
            continue
        if members[group][0] is not row:
            continue
        grouped = members[group]
        count = len({r["task_id"] for r in grouped})
        label = f"{group} ({count} task{'s' if count != 1 else ''}"
        if state_key is not None:
            label += f": {summarize(r[state_key] for r in grouped)}"
        line: dict[str, Any] = {"task_id": label + ")"}
        for key in shared_keys:
            values = {json.dumps(r.get(key), sort_keys=True, default=str) for r in grouped}
            if len(values) == 1:
                line[key] = grouped[0].get(key)
        if upstream_key is not None:
            outside = _ordered(
                up for r in grouped for up in _split(r.get(upstream_key)) if groups.get(up) != group
            )
            line[upstream_key] = ", ".join(_ordered(groups.get(u, u) for u in outside))
        out.append(line)
    return out


def _split(text: Any) -> list[str]:
    return [part.strip() for part in str(text or "").split(",") if part.strip()]


def _ordered(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))
