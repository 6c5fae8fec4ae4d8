"""Sharing runs among schedulers: who is dead, and each one's fair share."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.scheduling.claims import (
    Peer,
    fair_share,
    is_dead,
    runs_to_claim,
    runs_to_release,
)

NOW = datetime(2026, 3, 14, 12, tzinfo=UTC)
TIMEOUT = timedelta(seconds=30)


def peer(seconds_ago: float, machine: str = "other/boot", pid: int = 7) -> Peer:
    return Peer("p", machine, pid, NOW - timedelta(seconds=seconds_ago))


@pytest.mark.parametrize(
    ("seconds_ago", "dead"), [(0, False), (29.9, False), (30, False), (30.1, True), (3600, True)]
)
def test_a_scheduler_is_dead_once_its_heartbeat_is_older_than_the_timeout(
    seconds_ago: float, dead: bool
) -> None:
    found = is_dead(peer(seconds_ago), now=NOW, timeout=TIMEOUT, machine="me/boot", gone_pids=())
    assert found is dead


def test_a_scheduler_on_this_machine_whose_process_is_gone_is_dead_at_once() -> None:
    local = peer(0.5, machine="me/boot", pid=7)
    assert is_dead(local, now=NOW, timeout=TIMEOUT, machine="me/boot", gone_pids={7})
    assert not is_dead(local, now=NOW, timeout=TIMEOUT, machine="me/boot", gone_pids={8})
    # the same pid on another machine says nothing about it
    remote = peer(0.5, machine="other/boot", pid=7)
    assert not is_dead(remote, now=NOW, timeout=TIMEOUT, machine="me/boot", gone_pids={7})


@pytest.mark.parametrize(
    ("active", "live", "share"), [(0, 1, 0), (6, 2, 3), (7, 2, 4), (1, 3, 1), (5, 0, 5)]
)
def test_the_fair_share_rounds_up(active: int, live: int, share: int) -> None:
    assert fair_share(active, live) == share


def test_a_scheduler_claims_up_to_its_share_and_no_more_than_is_free() -> None:
    assert runs_to_claim(active=10, live=2, mine=0, unclaimed=10) == 5
    assert runs_to_claim(active=10, live=2, mine=3, unclaimed=10) == 2
    assert runs_to_claim(active=10, live=2, mine=0, unclaimed=1) == 1
    assert runs_to_claim(active=10, live=2, mine=6, unclaimed=4) == 0


def test_a_scheduler_gives_back_queued_runs_only_when_more_than_one_above_its_share() -> None:
    # a second scheduler joined: the first holds all ten runs, eight of them queued
    assert runs_to_release(active=10, live=2, mine=10, mine_queued=8) == 5
    # only queued runs move: running ones stay with the process following their containers
    assert runs_to_release(active=10, live=2, mine=10, mine_queued=2) == 2
    # one above its share: not worth moving (shares shift whenever a run ends)
    assert runs_to_release(active=5, live=2, mine=4, mine_queued=4) == 0
    assert runs_to_release(active=10, live=2, mine=5, mine_queued=5) == 0
