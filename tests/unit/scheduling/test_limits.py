"""Limits and priority: which scheduled instances take a slot, and effective weights."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from orchestrator.models.specs import DagSpec, TaskSpec, WeightRule
from orchestrator.scheduling.limits import (
    Active,
    Candidate,
    Occupancy,
    WeightCache,
    effective_weights,
    select_launches,
)

DAY = datetime(2026, 3, 14, tzinfo=UTC)
POOLS = {"default_pool": 128}
_ids = iter(range(1, 1_000_000))


def cand(task_id: str, priority: int = 1, **kw: Any) -> Candidate:
    kw.setdefault("ti_id", next(_ids))
    kw.setdefault("dag_id", "d")
    kw.setdefault("run_id", "r1")
    kw.setdefault("map_index", -1)
    kw.setdefault("logical_date", DAY)
    kw.setdefault("queued_at", DAY)
    kw.setdefault("pool", "default_pool")
    return Candidate(task_id=task_id, priority=priority, **kw)


def chosen(
    candidates: list[Candidate],
    held: Occupancy | None = None,
    *,
    parallelism: int = 32,
    pools: dict[str, int] | None = None,
) -> list[str]:
    selection = select_launches(
        candidates, held or Occupancy(), parallelism=parallelism, pools=pools or POOLS
    )
    return [
        c.task_id if c.map_index < 0 else f"{c.task_id}[{c.map_index}]" for c in selection.launch
    ]


# ----------------------------------------------------------------- order


def test_higher_priority_goes_first_when_slots_are_short() -> None:
    got = chosen([cand("low", 1), cand("high", 10), cand("mid", 5)], parallelism=2)
    assert got == ["high", "mid"]


def test_ties_go_to_the_earlier_run_then_task_id_then_map_index() -> None:
    later = DAY + timedelta(days=1)
    candidates = [
        cand("b", run_id="r2", logical_date=later),
        cand("m", map_index=1),
        cand("b"),
        cand("a", run_id="r2", logical_date=later),
        cand("m", map_index=0),
        cand("a"),
    ]
    assert chosen(candidates) == ["a", "b", "m[0]", "m[1]", "a", "b"]
    assert chosen(list(reversed(candidates))) == chosen(candidates)  # input order is irrelevant


def test_same_logical_date_earlier_queued_run_first() -> None:
    candidates = [
        cand("x", run_id="late", queued_at=DAY + timedelta(minutes=5)),
        cand("y", run_id="early", queued_at=DAY),
    ]
    assert chosen(candidates, parallelism=1) == ["y"]


# ----------------------------------------------------------------- each limit


def test_parallelism_counts_what_already_runs() -> None:
    held = Occupancy.of([Active("other", "t", "default_pool", count=30, slots=30)])
    got = chosen([cand(f"t{i}") for i in range(5)], held, parallelism=32)
    assert got == ["t0", "t1"]


def test_nothing_launches_when_parallelism_is_reached() -> None:
    held = Occupancy.of([Active("other", "t", "default_pool", count=32, slots=32)])
    assert chosen([cand("t")], held, parallelism=32) == []


def test_max_active_tasks_caps_a_dag_over_all_its_runs() -> None:
    held = Occupancy.of([Active("d", "old", "default_pool", count=2, slots=2)])
    candidates = [
        *(cand(f"a{i}", max_active_tasks=3, run_id="r1") for i in range(3)),
        *(cand(f"b{i}", max_active_tasks=3, run_id="r2") for i in range(3)),
        cand("other", dag_id="e"),
    ]
    assert chosen(candidates, held) == ["a0", "other"]


def test_max_active_tis_per_dag_caps_one_task_across_runs() -> None:
    candidates = [
        cand("t", run_id=f"r{i}", logical_date=DAY + timedelta(days=i), max_active_tis_per_dag=2)
        for i in range(4)
    ]
    candidates.append(cand("u", run_id="r0"))
    selection = select_launches(candidates, Occupancy(), parallelism=32, pools=POOLS)
    assert [(c.task_id, c.run_id) for c in selection.launch] == [
        ("t", "r0"),
        ("u", "r0"),
        ("t", "r1"),
    ]
    held = Occupancy.of([Active("d", "t", "default_pool", count=2, slots=2)])
    assert chosen(candidates, held) == ["u"]


def test_a_pool_smaller_than_the_demand_admits_only_its_slots() -> None:
    held = Occupancy.of([Active("x", "y", "db", count=1, slots=1)])
    got = chosen([cand(f"t{i}", pool="db") for i in range(5)], held, pools={"db": 3})
    assert got == ["t0", "t1"]


def test_multi_slot_task_that_does_not_fit_lets_smaller_ones_through() -> None:
    held = Occupancy.of([Active("x", "y", "db", count=1, slots=1)])
    candidates = [
        cand("big", 10, pool="db", pool_slots=3),
        cand("small", 5, pool="db"),
        cand("tiny", 1, pool="db"),
        cand("last", 0, pool="db"),
    ]
    assert chosen(candidates, held, pools={"db": 3}) == ["small", "tiny"]
    # once the pool is free the big one goes first and takes it whole
    assert chosen(candidates, pools={"db": 3}) == ["big"]


def test_multi_slot_tasks_pack_into_the_open_slots() -> None:
    candidates = [
        cand("two_a", 9, pool="p", pool_slots=2),
        cand("three", 8, pool="p", pool_slots=3),
        cand("two_b", 7, pool="p", pool_slots=2),
        cand("one", 6, pool="p"),
    ]
    assert chosen(candidates, pools={"p": 5}) == ["two_a", "three"]
    assert chosen(candidates, pools={"p": 6}) == ["two_a", "three", "one"]


def test_pools_are_independent() -> None:
    candidates = [cand("a", pool="p"), cand("b", pool="p"), cand("c", pool="q")]
    assert chosen(candidates, pools={"p": 1, "q": 1}) == ["a", "c"]


def test_an_unknown_pool_or_a_too_small_pool_blocks_with_a_reason() -> None:
    lost = cand("lost", 100, pool="nope")
    huge = cand("huge", 100, pool="p", pool_slots=4)
    fine = cand("fine", 1, pool="p")
    selection = select_launches(
        [lost, huge, fine], Occupancy(), parallelism=32, pools={"default_pool": 128, "p": 2}
    )
    assert [c.task_id for c in selection.launch] == ["fine"]
    assert "pool 'nope' does not exist" in selection.blocked[lost.ti_id]
    assert "orchestrator pools set nope" in selection.blocked[lost.ti_id]
    assert "needs 4 slots of pool 'p', which has only 2" in selection.blocked[huge.ti_id]
    assert fine.ti_id not in selection.blocked


def test_blocked_reasons_are_reported_even_when_no_slot_is_free() -> None:
    held = Occupancy.of([Active("x", "y", "default_pool", count=1, slots=1)])
    lost = cand("lost", pool="nope")
    selection = select_launches([cand("t"), lost], held, parallelism=1, pools=POOLS)
    assert selection.launch == []
    assert list(selection.blocked) == [lost.ti_id]


# ----------------------------------------------------------------- effective weights


def graph(rule: WeightRule, **edges: tuple[str, ...]) -> DagSpec:
    weights = {"a": 1, "b": 2, "c": 3, "d": 4, "e": 5}
    return DagSpec(
        dag_id="g",
        tasks=tuple(
            TaskSpec(
                task_id=t,
                image="img",
                upstream_task_ids=up,
                priority_weight=weights[t],
                weight_rule=rule,
            )
            for t, up in edges.items()
        ),
    )


DIAMOND: dict[str, tuple[str, ...]] = {"a": (), "b": ("a",), "c": ("a",), "d": ("b", "c"), "e": ()}


def test_downstream_rule_adds_every_downstream_weight_once() -> None:
    weights = effective_weights(graph(WeightRule.DOWNSTREAM, **DIAMOND))
    assert weights == {"a": 1 + 2 + 3 + 4, "b": 2 + 4, "c": 3 + 4, "d": 4, "e": 5}


def test_upstream_rule_adds_every_upstream_weight_once() -> None:
    weights = effective_weights(graph(WeightRule.UPSTREAM, **DIAMOND))
    assert weights == {"a": 1, "b": 2 + 1, "c": 3 + 1, "d": 4 + 1 + 2 + 3, "e": 5}


def test_absolute_rule_keeps_the_own_weight() -> None:
    weights = effective_weights(graph(WeightRule.ABSOLUTE, **DIAMOND))
    assert weights == {"a": 1, "b": 2, "c": 3, "d": 4, "e": 5}


def test_default_weights_favour_the_longest_remaining_work() -> None:
    spec = DagSpec(
        dag_id="g",
        tasks=(
            TaskSpec(task_id="head", image="img"),
            TaskSpec(task_id="mid", image="img", upstream_task_ids=("head",)),
            TaskSpec(task_id="tail", image="img", upstream_task_ids=("mid",)),
            TaskSpec(task_id="alone", image="img"),
        ),
    )
    assert effective_weights(spec) == {"head": 3, "mid": 2, "tail": 1, "alone": 1}


def test_rules_may_differ_per_task() -> None:
    spec = DagSpec(
        dag_id="g",
        tasks=(
            TaskSpec(task_id="a", image="img", priority_weight=1),
            TaskSpec(
                task_id="b",
                image="img",
                upstream_task_ids=("a",),
                priority_weight=10,
                weight_rule="upstream",
            ),
            TaskSpec(
                task_id="c",
                image="img",
                upstream_task_ids=("b",),
                priority_weight=100,
                weight_rule="absolute",
            ),
        ),
    )
    assert effective_weights(spec) == {"a": 111, "b": 11, "c": 100}


def _brute_force(spec: DagSpec) -> dict[str, int]:
    ups = {t.task_id: set(t.upstream_task_ids) for t in spec.tasks}
    downs: dict[str, set[str]] = {t: set() for t in ups}
    for child, parents in ups.items():
        for parent in parents:
            downs[parent].add(child)

    def reach(start: str, edges: dict[str, set[str]]) -> set[str]:
        seen: set[str] = set()
        stack = list(edges[start])
        while stack:
            node = stack.pop()
            if node not in seen:
                seen.add(node)
                stack.extend(edges[node])
        return seen

    weight = {t.task_id: t.priority_weight for t in spec.tasks}
    result = {}
    for task in spec.tasks:
        if task.weight_rule == WeightRule.ABSOLUTE:
            others: set[str] = set()
        elif task.weight_rule == WeightRule.DOWNSTREAM:
            others = reach(task.task_id, downs)
        else:
            others = reach(task.task_id, ups)
        result[task.task_id] = weight[task.task_id] + sum(weight[o] for o in others)
    return result


@pytest.mark.parametrize(
    ("seed", "weights"),
    [(1, [1]), (2, [1, 2, 5]), (3, list(range(-50, 400))), (4, [0, -3, 7])],
)
def test_weights_match_a_brute_force_count_on_random_graphs(seed: int, weights: list[int]) -> None:
    rng = random.Random(seed)
    tasks = []
    for i in range(120):
        parents = tuple(f"t{p}" for p in rng.sample(range(i), k=min(i, rng.randint(0, 3))))
        tasks.append(
            TaskSpec(
                task_id=f"t{i}",
                image="img",
                upstream_task_ids=parents,
                priority_weight=rng.choice(weights),
                weight_rule=rng.choice(list(WeightRule)),
            )
        )
    spec = DagSpec(dag_id="r", tasks=tuple(tasks))
    assert effective_weights(spec) == _brute_force(spec)


def test_weight_cache_recomputes_only_for_a_new_version() -> None:
    cache = WeightCache()
    first = graph(WeightRule.DOWNSTREAM, **DIAMOND)
    weights = cache.weights(first, "v1")
    assert cache.weights(first, "v1") is weights
    changed = graph(WeightRule.ABSOLUTE, **DIAMOND)
    assert cache.weights(changed, "v2")["a"] == 1
