"""Pure decisions for branching and the tasks the scheduler runs itself, with fixed times."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.errors import OutputError
from orchestrator.models.specs import (
    CronSchedule,
    DagSpec,
    DeltaSchedule,
    TaskKind,
    TaskSpec,
    WaitForRunSpec,
)
from orchestrator.models.states import RunState, TaskState
from orchestrator.scheduling.control_tasks import (
    branch_choice,
    is_latest_run,
    latest_only_step,
    trigger_wait_step,
    wait_step,
    wait_target_date,
)

NOW = datetime(2026, 3, 14, 12, tzinfo=UTC)
DAILY = CronSchedule(expression="@daily")


def t(task_id: str, *upstream: str, **kw: object) -> TaskSpec:
    kw.setdefault("image", "img")
    return TaskSpec(task_id=task_id, upstream_task_ids=upstream, **kw)  # type: ignore[arg-type]


BRANCHY = DagSpec(
    dag_id="d",
    tasks=(
        t("choose", branch=True),
        t("a", "choose"),
        t("b", "choose"),
        t("g.c", "choose", group_id="g"),
        t("after_a", "a"),
    ),
)


def choose(output: object) -> tuple[tuple[str, ...], tuple[str, ...]]:
    choice = branch_choice(BRANCHY, BRANCHY.task("choose"), json.dumps(output))
    return choice.follow, choice.skip


# ------------------------------------------------------------------ branching
def test_a_branch_follows_one_child_and_skips_the_other_direct_children() -> None:
    assert choose("b") == (("b",), ("a", "g.c"))


def test_a_branch_may_follow_several_children_or_none() -> None:
    assert choose(["a", "b", "a"]) == (("a", "b"), ("g.c",))
    assert choose([]) == ((), ("a", "b", "g.c"))
    assert choose(None) == ((), ("a", "b", "g.c"))


def test_a_child_in_a_group_is_named_by_its_full_id_or_its_id_in_the_group() -> None:
    assert choose("g.c") == (("g.c",), ("a", "b"))
    assert choose("c") == (("g.c",), ("a", "b"))


def test_a_short_id_two_children_share_is_ambiguous() -> None:
    dag = DagSpec(
        dag_id="d",
        tasks=(
            t("choose", branch=True),
            t("x.load", "choose", group_id="x"),
            t("y.load", "choose", group_id="y"),
        ),
    )
    with pytest.raises(OutputError, match=r"'load', which is ambiguous .*'x.load' or 'y.load'"):
        branch_choice(dag, dag.task("choose"), '"load"')


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("after_a", "'after_a', which is not a direct downstream task of the branch task"),
        ("nope", "'nope', which is not a direct downstream task"),
        (3, "output 3 is not a task id or a list of task ids"),
        (["a", 1], 'output \\["a", 1\\] is not a task id or a list'),
        ({"task": "a"}, "is not a task id or a list of task ids"),
    ],
)
def test_a_bad_branch_output_names_the_value_and_the_choices(output: object, message: str) -> None:
    with pytest.raises(OutputError, match=message) as caught:
        choose(output)
    text = str(caught.value)
    assert text.startswith("DAG 'd', branch task 'choose': ")
    assert text.endswith("Choices: 'a', 'b', 'g.c'")


def test_a_branch_without_output_is_told_what_to_write() -> None:
    with pytest.raises(OutputError, match=r"wrote no output.*ORCH_OUTPUT_PATH.*\[\] to skip"):
        branch_choice(BRANCHY, BRANCHY.task("choose"), None)


# ------------------------------------------------------------------ latest only
@pytest.mark.parametrize(
    ("interval_end", "now", "latest"),
    [
        (datetime(2026, 3, 14, tzinfo=UTC), NOW, True),  # [13th, 14th) at noon on the 14th
        (datetime(2026, 3, 13, tzinfo=UTC), NOW, False),  # a catch-up run of an older day
        (datetime(2026, 3, 14, tzinfo=UTC), datetime(2026, 3, 15, tzinfo=UTC), True),  # edge
        (datetime(2026, 3, 14, tzinfo=UTC), datetime(2026, 3, 15, 0, 1, tzinfo=UTC), False),
    ],
)
def test_latest_only_on_a_daily_schedule(
    interval_end: datetime, now: datetime, latest: bool
) -> None:
    assert is_latest_run("scheduled", interval_end, DAILY, "UTC", now) is latest
    assert is_latest_run("backfill", interval_end, DAILY, "UTC", now) is latest


def test_manual_runs_and_once_schedules_are_always_latest() -> None:
    old = datetime(2020, 1, 1, tzinfo=UTC)
    assert is_latest_run("manual", old, DAILY, "UTC", NOW)
    assert is_latest_run("scheduled", old, CronSchedule(expression="@once"), "UTC", NOW)


def test_latest_only_follows_local_days_across_a_dst_change() -> None:
    # Amsterdam's 2026-03-29 has 23 hours: its interval ends at 2026-03-29T22:00Z, not 23:00Z
    end = datetime(2026, 3, 28, 23, tzinfo=UTC)  # local midnight of the 29th (still CET)
    tz = "Europe/Amsterdam"
    assert is_latest_run("scheduled", end, DAILY, tz, datetime(2026, 3, 29, 21, 59, tzinfo=UTC))
    assert is_latest_run("scheduled", end, DAILY, tz, datetime(2026, 3, 29, 22, tzinfo=UTC))
    assert not is_latest_run("scheduled", end, DAILY, tz, datetime(2026, 3, 29, 22, 1, tzinfo=UTC))


def test_latest_only_on_a_delta_schedule_skips_its_direct_children_when_old() -> None:
    dag = DagSpec(
        dag_id="d",
        schedule=DeltaSchedule(every=timedelta(hours=6)),
        tasks=(
            TaskSpec(task_id="latest", kind=TaskKind.LATEST_ONLY),
            t("report", "latest"),
            t("mail", "report"),
        ),
    )
    old = (NOW - timedelta(hours=18), NOW - timedelta(hours=12))
    step = latest_only_step(dag, dag.task("latest"), "scheduled", old, NOW)
    assert step.state == TaskState.SUCCESS
    assert step.skip == ("report",)
    assert "not the latest run" in step.detail
    fresh = (NOW - timedelta(hours=7), NOW - timedelta(hours=1))
    assert latest_only_step(dag, dag.task("latest"), "scheduled", fresh, NOW).skip == ()


# ------------------------------------------------------------------ waiting for runs
def wait(**kw: object) -> WaitForRunSpec:
    kw.setdefault("dag_id", "up")
    kw.setdefault("task_id", "load")
    return WaitForRunSpec(**kw)  # type: ignore[arg-type]


def test_the_target_date_is_the_logical_date_minus_the_delta() -> None:
    assert wait_target_date(NOW, wait(), None) == NOW
    assert wait_target_date(NOW, wait(execution_delta=timedelta(hours=1)), None) == NOW - timedelta(
        hours=1
    )


def test_the_target_date_from_a_rendered_template() -> None:
    settings = wait(execution_date="{{ ... }}")
    assert wait_target_date(NOW, settings, "2026-03-13T06:00:00+01:00") == datetime(
        2026, 3, 13, 5, tzinfo=UTC
    )
    assert wait_target_date(NOW, settings, "2026-03-13T06:00:00") == datetime(
        2026, 3, 13, 6, tzinfo=UTC
    )  # no zone: UTC
    assert wait_target_date(NOW, settings, "2026-03-13") == datetime(2026, 3, 13, tzinfo=UTC)
    with pytest.raises(ValueError, match="execution_date 'yesterday' is not an ISO 8601 date"):
        wait_target_date(NOW, settings, "yesterday")


def test_wait_succeeds_once_any_matching_instance_is_allowed() -> None:
    step = wait_step(wait(), NOW, ["failed", "success"], NOW, NOW)
    assert step.state == TaskState.SUCCESS
    assert step.detail == f"DAG 'up', task 'load' at {NOW.isoformat()} is success"


def test_wait_fails_when_every_matching_instance_failed() -> None:
    step = wait_step(wait(), NOW, ["failed", "upstream_failed"], NOW, NOW)
    assert step.state == TaskState.FAILED
    assert "is failed" in step.detail
    running = wait_step(wait(), NOW, ["failed", "running"], NOW, NOW)
    assert running.state == TaskState.UP_FOR_RESCHEDULE


def test_wait_checks_again_after_the_poke_interval_and_times_out() -> None:
    settings = wait(poke_interval=30, timeout=100)
    start = NOW
    step = wait_step(settings, NOW, [], start, start + timedelta(seconds=10))
    assert step.state == TaskState.UP_FOR_RESCHEDULE
    assert step.next_check_at == start + timedelta(seconds=40)
    assert "has no run yet" in step.detail
    near_end = wait_step(settings, NOW, ["running"], start, start + timedelta(seconds=90))
    assert near_end.next_check_at == start + timedelta(seconds=100)  # not past the timeout
    late = wait_step(settings, NOW, ["running"], start, start + timedelta(seconds=100))
    assert late.state == TaskState.FAILED
    assert late.detail.startswith("timed out after 100s waiting for DAG 'up', task 'load'")


def test_wait_for_a_whole_run_uses_run_states() -> None:
    settings = wait(task_id=None)
    assert wait_step(settings, NOW, ["success"], NOW, NOW).state == TaskState.SUCCESS
    assert wait_step(settings, NOW, ["failed"], NOW, NOW).state == TaskState.FAILED
    assert "(whole run)" in wait_step(settings, NOW, ["running"], NOW, NOW).detail
    with pytest.raises(ValueError, match="'skipped' is not a run state"):
        wait(task_id=None, failed_states=("skipped",))


def test_trigger_wait_follows_the_triggered_run() -> None:
    poke = timedelta(seconds=5)

    def step(state: RunState | None, now: datetime = NOW) -> tuple[TaskState, str]:
        result = trigger_wait_step(
            "other", "manual__x", state, poke, NOW, timedelta(minutes=1), now
        )
        return result.state, result.detail

    assert step(RunState.SUCCESS) == (
        TaskState.SUCCESS,
        "triggered run 'manual__x' of DAG 'other' succeeded",
    )
    assert step(RunState.FAILED)[0] == TaskState.FAILED
    assert step(None) == (
        TaskState.FAILED,
        "triggered run 'manual__x' of DAG 'other' no longer exists",
    )
    assert step(RunState.RUNNING)[0] == TaskState.UP_FOR_RESCHEDULE
    late = step(RunState.RUNNING, NOW + timedelta(minutes=1))
    assert late[0] == TaskState.FAILED and "execution_timeout" in late[1]
