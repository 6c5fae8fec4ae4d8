"""Sharing runs among schedulers (high availability): which schedulers are dead, and how many
runs a live one claims or gives back.

Pure functions of what the store says, the time and what is known of local processes; the
services gather the inputs (`services.claims`). The rules:

- A scheduler is dead when its latest heartbeat is older than the health timeout (Airflow's
  `scheduler_health_check_threshold`), or at once when it ran on this machine and its process
  is gone (`gone_pids`: the caller checked the process table). Its runs go to the others.
- Runs are shared fairly: with `active` queued or running runs and `live` schedulers, each
  one's share is `ceil(active / live)`. A scheduler below its share claims unclaimed runs
  (those of nobody, or of a dead scheduler) up to its share; one more than a run above it
  gives back queued runs it has not started, down to its share (one run is not worth moving:
  shares shift by one whenever a run ends). A running run stays with its scheduler while that
  one lives: its containers are followed by that process.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Peer:
    """A registered scheduler as the store records it."""

    id: str
    machine: str  # the process table its pid belongs to
    pid: int
    heartbeat_at: datetime


def is_dead(
    peer: Peer, *, now: datetime, timeout: timedelta, machine: str, gone_pids: Collection[int]
) -> bool:
    """Whether `peer` is dead, seen from a scheduler on `machine` at `now`."""
    if peer.machine == machine and peer.pid in gone_pids:
        return True
    return now - peer.heartbeat_at > timeout


def fair_share(active: int, live: int) -> int:
    """How many of `active` runs each of `live` schedulers executes at most."""
    return math.ceil(active / max(live, 1))


def runs_to_claim(*, active: int, live: int, mine: int, unclaimed: int) -> int:
    """How many unclaimed runs to claim now."""
    return max(0, min(fair_share(active, live) - mine, unclaimed))


def runs_to_release(*, active: int, live: int, mine: int, mine_queued: int) -> int:
    """How many of its queued (not started) runs a scheduler above its share gives back."""
    surplus = mine - fair_share(active, live)
    return min(surplus, mine_queued) if surplus > 1 else 0
