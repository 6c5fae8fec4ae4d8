"""`/metrics`: Prometheus text format, read from the store at scrape time.

Nothing is counted in the web process: each scrape runs a few grouped queries (task instances
and runs by state, import errors) and one bounded read of the most recent finished attempts
(`RECENT_ATTEMPTS`), whose durations and queue times are reported as summaries (quantiles,
count and sum over that window). The scheduler's heartbeat age and whether it last reached
the container engine come from `$ORCH_HOME/scheduler-status.json`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from orchestrator.models.states import RunState, TaskState
from orchestrator.services.health import scheduler_status
from orchestrator.store import stats
from orchestrator.web.state import WebState

RECENT_ATTEMPTS = 10_000
QUANTILES = (0.5, 0.9, 0.99)


class StoreCollector(Collector):
    """Collects the orchestrator's metrics from the store on every scrape."""

    def __init__(self, state: WebState) -> None:
        self._state = state

    def collect(self) -> Iterator[Metric]:
        with self._state.sessions() as session:
            tis = stats.task_instances_by_state(session)
            runs = stats.runs_by_state(session)
            errors = stats.import_error_count(session)
            times = stats.recent_attempt_times(session, RECENT_ATTEMPTS)

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

        durations = [(end - start).total_seconds() for _q, start, end in times if start and end]
        waits = [(start - queued).total_seconds() for queued, start, _e in times if start]
        yield _summary(
            "orchestrator_task_duration_seconds",
            f"Container run time of the latest {RECENT_ATTEMPTS} finished attempts.",
            durations,
        )
        yield _summary(
            "orchestrator_task_queue_seconds",
            f"Time from queued to started of the latest {RECENT_ATTEMPTS} finished attempts.",
            waits,
        )
        yield GaugeMetricFamily(
            "orchestrator_import_errors", "DAG files that failed to load.", value=errors
        )

        status = scheduler_status(self._state.settings, self._state.clock.now())
        if status.heartbeat_age is not None:
            yield GaugeMetricFamily(
                "orchestrator_scheduler_heartbeat_age_seconds",
                "Seconds since the scheduler loop last completed a pass.",
                value=status.heartbeat_age,
            )
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
