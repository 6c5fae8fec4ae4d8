"""Reconciliation: what to do with each container of ours and each active attempt after a
restart (or periodically), so that no task runs twice and none is waited for forever.

The scheduler persists an attempt (its deterministic container name, its rendered fields)
before creating the container, and the container id before starting it. A crash can strike
between any two of those steps; the engine and the store then disagree, and `reconcile`
decides, from both sides and the current time only, how to bring them in line:

| the attempt (queued/running)        | its container on the engine | decision  |
|-------------------------------------|-----------------------------|-----------|
| handled by this process already     | any                         | none      |
| any                                 | running                     | ADOPT     |
| any                                 | created, never started      | START     |
| any                                 | exited (or failed to start) | HARVEST   |
| container id recorded               | gone                        | LOST      |
| no container id (never created)     | gone                        | RELAUNCH  |
| a poke-mode sensor between pokes    | gone                        | none      |
| none (finished, cleared, unknown)   | any                         | REMOVE    |

A created-but-never-started container is started rather than removed and created again: the
attempt was recorded and rendered, and nothing of the task ran yet, so starting it runs the
task exactly once and keeps the container the attempt names.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from orchestrator.models.states import TaskState

#: The state detail of an attempt whose container disappeared.
LOST_DETAIL = (
    "lost: the container is gone (removed outside the orchestrator, or the engine lost it)"
)


class Action(enum.StrEnum):
    """What reconciliation does about one attempt or container."""

    ADOPT = "adopt"  # running: record its id if missing, follow its log on, harvest its exit
    START = "start"  # created but never started (crash before start): start it now
    HARVEST = "harvest"  # exited while nobody watched: copy the rest of its log, harvest it
    REMOVE = "remove"  # no live attempt wants it: stop and remove it
    LOST = "lost"  # the attempt's container is gone: fail it (retried if retries remain)
    RELAUNCH = "relaunch"  # never created (crash before create): launch it, same try number


@dataclass(frozen=True)
class ActiveAttempt:
    """A queued or running attempt as the store records it."""

    ti_id: int
    try_number: int
    state: TaskState
    container_name: str | None  # the attempt's (or current poke's) deterministic name
    container_id: str | None  # stored after create, before start
    queued_at: datetime
    owned: bool = True  # False: another scheduler (e.g. `dags test`) runs it; hands off
    sleeping: bool = False  # a poke-mode sensor between pokes: no container expected


@dataclass(frozen=True)
class SeenContainer:
    """A container of this installation as the engine lists it."""

    id: str
    name: str
    status: Literal["created", "running", "exited", "other"]
    exited: bool  # the engine reports an exit (also for a start that failed)


@dataclass(frozen=True)
class Decision:
    action: Action
    attempt: ActiveAttempt | None
    container: SeenContainer | None


def reconcile(
    attempts: Iterable[ActiveAttempt],
    containers: Iterable[SeenContainer],
    now: datetime,
    *,
    busy_attempts: Collection[tuple[int, int]] = (),
    busy_containers: Collection[str] = (),
    settle: timedelta = timedelta(0),
) -> list[Decision]:
    """Decide what to do with every active attempt and every container of ours.

    `busy_attempts` (ti id, try number) and `busy_containers` are already handled by this
    process (a launch under way, a log being followed, a harvest running): they are left
    alone, and their containers are never removed. An attempt without a container id that was
    queued less than `settle` ago is left alone too (its launch may still be on its way).
    """
    by_id: dict[str, SeenContainer] = {}
    by_name: dict[str, SeenContainer] = {}
    for container in containers:
        by_id[container.id] = container
        by_name[container.name] = container
    claimed: set[str] = set()
    decisions: list[Decision] = []
    for attempt in attempts:
        found = None
        if attempt.container_id is not None:
            found = by_id.get(attempt.container_id)
        if found is None and attempt.container_name:
            found = by_name.get(attempt.container_name)
        if found is not None:
            claimed.add(found.id)
        if not attempt.owned or (attempt.ti_id, attempt.try_number) in busy_attempts:
            continue
        if found is not None:
            if found.id not in busy_containers:
                decisions.append(Decision(_container_action(found), attempt, found))
            continue
        if attempt.container_id is not None and attempt.container_id in busy_containers:
            continue
        if attempt.sleeping:
            continue
        if attempt.container_id is not None:
            decisions.append(Decision(Action.LOST, attempt, None))
        elif now - attempt.queued_at >= settle:
            decisions.append(Decision(Action.RELAUNCH, attempt, None))
    for container in by_id.values():
        if container.id not in claimed and container.id not in busy_containers:
            decisions.append(Decision(Action.REMOVE, None, container))
    return decisions


def _container_action(container: SeenContainer) -> Action:
    if container.exited:
        return Action.HARVEST
    if container.status == "created":
        return Action.START
    return Action.ADOPT


def container_bytes_logged(log_tail: bytes) -> int:
    """How many bytes of the container's own output a log file holds, given the file's content
    from where the container's output began: every line but the orchestrator's own notes
    (`[orchestrator] ...`). Resuming the container's log stream skips that many bytes, so no
    line is written twice and none is missed."""
    marker = b"[orchestrator] "
    total = 0
    for line in log_tail.splitlines(keepends=True):
        if not line.startswith(marker):
            total += len(line)
    return total
