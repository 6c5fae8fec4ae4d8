"""SLA deadlines with a fixed clock: scheduled, manual and backfill runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from orchestrator.models.specs import DagSpec, TaskSpec
from orchestrator.models.states import TaskState
from orchestrator.scheduling.sla import SlaRun, SlaTaskView, check_slas

DUE = datetime(2026, 3, 14, tzinfo=UTC)  # the end of the data interval
QUEUED = datetime(2026, 3, 14, 9, tzinfo=UTC)
SCHEDULED = SlaRun("scheduled", data_interval_end=DUE, queued_at=DUE + timedelta(seconds=2))
MANUAL = SlaRun("manual", data_interval_end=DUE, queued_at=QUEUED)


def dag(**slas: timedelta | None) -> DagSpec:
    return DagSpec(
        dag_id="d", tasks=tuple(TaskSpec(task_id=t, image="i", sla=s) for t, s in slas.items())
    )


def view(
    task_id: str, state: TaskState, end: datetime | None = None, index: int = -1
) -> SlaTaskView:
    return SlaTaskView(task_id, index, state, end)


def test_scheduled_run_is_measured_from_the_end_of_its_interval() -> None:
    spec = dag(load=timedelta(hours=1))
    tis = [view("load", TaskState.RUNNING)]
    before = check_slas(spec, SCHEDULED, tis, DUE + timedelta(minutes=59))
    assert before.misses == []
    assert before.next_deadline == DUE + timedelta(hours=1)
    at = check_slas(spec, SCHEDULED, tis, DUE + timedelta(hours=1))
    assert [(m.task_id, m.deadline, m.state) for m in at.misses] == [
        ("load", DUE + timedelta(hours=1), TaskState.RUNNING)
    ]
    assert at.next_deadline is None


def test_manual_run_is_measured_from_when_it_was_queued() -> None:
    spec = dag(load=timedelta(minutes=30))
    tis = [view("load", TaskState.NONE)]
    # the interval ended hours ago, but a manual run's clock starts at its trigger
    assert check_slas(spec, MANUAL, tis, QUEUED + timedelta(minutes=29)).misses == []
    check = check_slas(spec, MANUAL, tis, QUEUED + timedelta(minutes=30))
    assert [m.deadline for m in check.misses] == [QUEUED + timedelta(minutes=30)]


def test_backfill_runs_are_not_checked() -> None:
    backfill = SlaRun("backfill", data_interval_end=DUE, queued_at=QUEUED)
    check = check_slas(
        dag(load=timedelta(minutes=1)),
        backfill,
        [view("load", TaskState.NONE)],
        QUEUED + timedelta(days=3),
    )
    assert check.misses == [] and check.next_deadline is None


def test_success_in_time_meets_it_and_late_success_misses_it() -> None:
    spec = dag(fast=timedelta(hours=1), slow=timedelta(hours=1), skipped=timedelta(hours=1))
    tis = [
        view("fast", TaskState.SUCCESS, DUE + timedelta(minutes=10)),
        view("slow", TaskState.SUCCESS, DUE + timedelta(minutes=70)),  # nobody looked at 1h
        view("skipped", TaskState.SKIPPED, DUE + timedelta(minutes=5)),
    ]
    check = check_slas(spec, SCHEDULED, tis, DUE + timedelta(hours=2))
    assert [m.task_id for m in check.misses] == ["slow"]


def test_failed_task_misses_its_sla_once_the_deadline_passes() -> None:
    spec = dag(load=timedelta(hours=1))
    tis = [view("load", TaskState.FAILED, DUE + timedelta(minutes=5))]
    assert check_slas(spec, SCHEDULED, tis, DUE + timedelta(minutes=30)).misses == []
    assert len(check_slas(spec, SCHEDULED, tis, DUE + timedelta(hours=1)).misses) == 1


def test_recorded_misses_are_not_reported_again_and_tasks_without_sla_never() -> None:
    spec = dag(a=timedelta(minutes=5), b=None, c=timedelta(minutes=5))
    tis = [
        view("a", TaskState.RUNNING),
        view("b", TaskState.RUNNING),
        view("c", TaskState.RUNNING, index=0),
        view("c", TaskState.RUNNING, index=1),
    ]
    check = check_slas(
        spec, SCHEDULED, tis, DUE + timedelta(hours=1), recorded={("a", -1), ("c", 0)}
    )
    assert [(m.task_id, m.map_index) for m in check.misses] == [("c", 1)]


def test_next_deadline_is_the_earliest_pending_one_across_month_end() -> None:
    month_end = SlaRun(
        "scheduled", datetime(2026, 1, 31, 23, tzinfo=UTC), datetime(2026, 1, 31, 23, tzinfo=UTC)
    )
    spec = dag(a=timedelta(hours=3), b=timedelta(hours=2), done=timedelta(minutes=1))
    tis = [
        view("a", TaskState.NONE),
        view("b", TaskState.RUNNING),
        view("done", TaskState.SUCCESS, datetime(2026, 1, 31, 23, tzinfo=UTC)),
    ]
    check = check_slas(spec, month_end, tis, datetime(2026, 1, 31, 23, 30, tzinfo=UTC))
    assert check.misses == []
    assert check.next_deadline == datetime(2026, 2, 1, 1, tzinfo=UTC)


def test_removed_task_instances_are_ignored() -> None:
    check = check_slas(
        dag(a=timedelta(minutes=1)),
        SCHEDULED,
        [view("a", TaskState.REMOVED)],
        DUE + timedelta(hours=1),
    )
    assert check.misses == [] and check.next_deadline is None
