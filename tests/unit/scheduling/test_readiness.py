from datetime import UTC, datetime, timedelta

from orchestrator.models.specs import DagSpec, TaskSpec
from orchestrator.models.states import RunState, TaskState
from orchestrator.scheduling.readiness import TaskView, decide, run_outcome

NOW = datetime(2026, 3, 14, 12, tzinfo=UTC)
S = TaskState


def dag(edges: dict[str, tuple[str, ...]]) -> DagSpec:
    return DagSpec(
        dag_id="d",
        tasks=tuple(
            TaskSpec(task_id=t, image="img", upstream_task_ids=up) for t, up in edges.items()
        ),
    )


DIAMOND = dag({"a": (), "b": ("a",), "c": ("a",), "d": ("b", "c")})


def views(**states: TaskState) -> dict[str, TaskView]:
    return {k: TaskView(v) for k, v in states.items()}


def test_roots_are_scheduled_first() -> None:
    d = decide(DIAMOND, views(a=S.NONE, b=S.NONE, c=S.NONE, d=S.NONE), NOW)
    assert d.schedule == ["a"]
    assert d.upstream_failed == [] and d.skip == []


def test_join_waits_for_every_parent() -> None:
    d = decide(DIAMOND, views(a=S.SUCCESS, b=S.SUCCESS, c=S.RUNNING, d=S.NONE), NOW)
    assert d.schedule == []


def test_join_runs_when_all_parents_succeeded() -> None:
    d = decide(DIAMOND, views(a=S.SUCCESS, b=S.SUCCESS, c=S.SUCCESS, d=S.NONE), NOW)
    assert d.schedule == ["d"]


def test_failure_propagates_as_upstream_failed_without_waiting() -> None:
    d = decide(DIAMOND, views(a=S.SUCCESS, b=S.FAILED, c=S.RUNNING, d=S.NONE), NOW)
    assert d.upstream_failed == ["d"]
    d2 = decide(DIAMOND, views(a=S.FAILED, b=S.NONE, c=S.NONE, d=S.NONE), NOW)
    assert d2.upstream_failed == ["b", "c"]


def test_skip_propagates() -> None:
    d = decide(DIAMOND, views(a=S.SKIPPED, b=S.NONE, c=S.NONE, d=S.NONE), NOW)
    assert d.skip == ["b", "c"]


def test_retry_waits_for_its_delay() -> None:
    later = NOW + timedelta(seconds=30)
    tis = {"a": TaskView(S.UP_FOR_RETRY, later), "b": TaskView(S.NONE)}
    spec = dag({"a": (), "b": ("a",)})
    assert decide(spec, tis, NOW).schedule == []
    assert decide(spec, tis, later).schedule == ["a"]


def test_run_outcome() -> None:
    pair = dag({"a": (), "b": ()})
    assert run_outcome(pair, views(a=S.SUCCESS, b=S.RUNNING)) is None
    assert run_outcome(pair, views(a=S.SUCCESS, b=S.SKIPPED)) == RunState.SUCCESS
    assert run_outcome(pair, views(a=S.FAILED, b=S.UPSTREAM_FAILED)) == RunState.FAILED
    assert run_outcome(pair, views(a=S.SUCCESS, b=S.UP_FOR_RETRY)) is None


def test_the_leaves_decide_the_run() -> None:
    """A failure handled downstream (an all_done clean-up that succeeded) does not fail the
    run; a failed leaf does."""
    spec = dag({"work": (), "cleanup": ("work",)})
    assert run_outcome(spec, views(work=S.FAILED, cleanup=S.SUCCESS)) == RunState.SUCCESS
    assert run_outcome(spec, views(work=S.SUCCESS, cleanup=S.FAILED)) == RunState.FAILED
    assert run_outcome(None, views(work=S.FAILED, cleanup=S.SUCCESS)) == RunState.FAILED


def test_removed_parent_never_blocks_its_child() -> None:
    d = decide(DIAMOND, views(a=S.SUCCESS, b=S.SUCCESS, c=S.REMOVED, d=S.NONE), NOW)
    assert d.schedule == ["d"]
    only_removed = decide(DIAMOND, views(a=S.SUCCESS, b=S.REMOVED, c=S.REMOVED, d=S.NONE), NOW)
    assert only_removed.schedule == ["d"]  # as if the edges were gone


def test_removed_instances_neither_block_nor_fail_the_run() -> None:
    assert run_outcome(DIAMOND, views(a=S.SUCCESS, b=S.SUCCESS, c=S.REMOVED, d=S.REMOVED)) == (
        RunState.SUCCESS
    )
    assert run_outcome(None, views(a=S.SUCCESS, gone=S.REMOVED)) == RunState.SUCCESS


def test_only_limits_the_decision_to_the_named_tasks() -> None:
    spec = dag({"a": (), "b": ("a",), "c": ("a",)})
    states = views(a=TaskState.SUCCESS, b=TaskState.NONE, c=TaskState.NONE)
    assert decide(spec, states, NOW, only={"b"}).schedule == ["b"]
    assert decide(spec, states, NOW).schedule == ["b", "c"]


def test_downstream_map_lists_children_in_task_order() -> None:
    spec = dag({"a": (), "b": ("a",), "c": ("a", "b")})
    assert spec.downstream_map == {"a": ("b", "c"), "b": ("c",)}
    assert spec.downstream_ids("a") == ["b", "c"]
