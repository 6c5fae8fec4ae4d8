"""`/metrics`: Prometheus text format, read from the store at scrape time.

Nothing is counted in the web process: each scrape runs a few grouped queries (task instances
and runs by state, runs by type, import errors) and one bounded read of the most recent
finished attempts (`RECENT_ATTEMPTS`), whose durations, queue and pull times are reported as
summaries (quantiles, count and sum over that window) and whose results are counted. The
scheduler's heartbeat age, how long its loop's passes take and whether it last reached the
container engine come from `$ORCH_HOME/scheduler-status.json`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from orchestrator.models.states import RunState, TaskState
from orchestrator.services.health import scheduler_status
from orchestrator.store import stats
from orchestrator.web.state import WebState

RECENT_ATTEMPTS = 10_000
QUANTILES = (0.5, 0.9, 0.99)
#: How a finished attempt ended, as `orchestrator_task_attempt_results` counts it.
RESULTS = ("success", "failed", "oom", "timeout", "error", "skipped", "up_for_reschedule")


def attempt_result(attempt: stats.AttemptTimes) -> str:
    """`oom` or `timeout` when the container was killed for it; `error` when it never gave an
    exit code (it could not start, or was lost); else how the attempt ended (`failed` for a
    failure that is retried too)."""
    if attempt.oom_killed:
        return "oom"
    if attempt.timed_out:
        return "timeout"
    if attempt.state in ("success", "skipped", "up_for_reschedule"):
        return attempt.state
    return "failed" if attempt.exit_code is not None else "error"


class StoreCollector(Collector):
    """Collects the orchestrator's metrics from the store on every scrape."""

    def __init__(self, state: WebState) -> None:
        self._state = state

    def collect(self) -> Iterator[Metric]:
        with self._state.sessions() as session:
            tis = stats.task_instances_by_state(session)
            runs = stats.runs_by_state(session)
            created = stats.runs_by_type(session)
            errors = stats.import_error_count(session)
            attempts = stats.recent_attempt_times(session, RECENT_ATTEMPTS)

        ti_family = GaugeMetricFamily(
            "orchestrator_task_instances", "Task instances by state.", labels=["state"]
        )
        for task_state in TaskState:
            ti_family.add_metric([task_state.value], tis.get(task_state.value, 0))
        yield ti_family

        run_family = GaugeMetricFamily(
            "orchestrator_dag_runs", "DAG runs by state.", labels=["state"]
        )
        for run_state in RunState:
            run_family.add_metric([run_state.value], runs.get(run_state.value, 0))
        yield run_family

        created_family = CounterMetricFamily(
            "orchestrator_dag_runs_created",
            "DAG runs created, by run type (scheduled, manual, backfill, ...).",
            labels=["run_type"],
        )
        for run_type, count in sorted(created.items()):
            created_family.add_metric([run_type], count)
        yield created_family

        yield from self._attempt_metrics(attempts)
        yield GaugeMetricFamily(
            "orchestrator_import_errors", "DAG files that failed to load.", value=errors
        )
        yield from self._scheduler_metrics()

    def _attempt_metrics(self, attempts: Sequence[stats.AttemptTimes]) -> Iterator[Metric]:
        window = f"of the latest {RECENT_ATTEMPTS} finished attempts"
        results = GaugeMetricFamily(
            "orchestrator_task_attempt_results",
            f"How the latest {RECENT_ATTEMPTS} finished attempts ended: success, failed"
            " (a non-zero exit), oom, timeout, error (no exit code: not started or lost),"
            " skipped, up_for_reschedule (a sensor to poke again).",
            labels=["result"],
        )
        counted = dict.fromkeys(RESULTS, 0)
        for attempt in attempts:
            result = attempt_result(attempt)
            counted[result] = counted.get(result, 0) + 1
        for result, count in counted.items():
            results.add_metric([result], count)
        yield results
        yield _summary(
            "orchestrator_task_duration_seconds",
            f"Container run time (start to end) {window}.",
            [
                (a.end_date - a.start_date).total_seconds()
                for a in attempts
                if a.start_date and a.end_date
            ],
        )
        yield _summary(
            "orchestrator_task_queue_seconds",
            f"Time from queued (ready to run) to the container's start {window}.",
            [(a.start_date - a.queued_at).total_seconds() for a in attempts if a.start_date],
        )
        yield _summary(
            "orchestrator_task_pull_seconds",
            f"Time to make the image ready (pulled if missing) {window}.",
            [
                (a.image_ready_at - a.launch_started_at).total_seconds()
                for a in attempts
                if a.image_ready_at and a.launch_started_at
            ],
        )

    def _scheduler_metrics(self) -> Iterator[Metric]:
        status = scheduler_status(self._state.settings, self._state.clock.now())
        if status.heartbeat_age is not None:
            yield GaugeMetricFamily(
                "orchestrator_scheduler_heartbeat_age_seconds",
                "Seconds since the scheduler loop last completed a pass.",
                value=status.heartbeat_age,
            )
        if status.loop is not None:
            name = "orchestrator_scheduler_loop_seconds"
            loop = Metric(
                name,
                "How long the scheduler loop's passes take: quantiles over its latest 1000"
                " passes, count and sum since the scheduler started.",
                "summary",
            )
            for quantile, seconds in sorted(status.loop.quantiles.items()):
                loop.add_sample(name, {"quantile": quantile}, seconds)
            loop.add_sample(name + "_count", {}, status.loop.count)
            loop.add_sample(name + "_sum", {}, status.loop.sum_seconds)
            yield loop
        if status.engine_up is not None:
            yield GaugeMetricFamily(
                "orchestrator_docker_engine_up",
                "1 if the container engine answered at the scheduler's last check, else 0.",
                value=1 if status.engine_up else 0,
            )


def _summary(name: str, documentation: str, values: Sequence[float]) -> Metric:
    metric = Metric(name, documentation, "summary")
    ordered = sorted(values)
    for quantile in QUANTILES:
        if ordered:
            index = min(int(quantile * len(ordered)), len(ordered) - 1)
            metric.add_sample(name, {"quantile": str(quantile)}, ordered[index])
        else:
            metric.add_sample(name, {"quantile": str(quantile)}, float("nan"))
    metric.add_sample(name + "_count", {}, len(ordered))
    metric.add_sample(name + "_sum", {}, sum(ordered))
    return metric


def make_registry(state: WebState) -> CollectorRegistry:
    """A registry of its own (not the process-wide default), so apps never share one."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(state))
    return registry
