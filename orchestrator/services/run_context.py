"""What a task's templates see in a run: the run's dates and conf, and upstream outputs."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, cast

from sqlalchemy.orm import Session

from orchestrator.models.run_info import RunInfo, RunType
from orchestrator.models.specs import DagSpec, TaskSpec
from orchestrator.scheduling.mapping import ordered_outputs
from orchestrator.scheduling.timetables import next_logical_date, prev_logical_date
from orchestrator.store import runs as run_store
from orchestrator.store.tables import DagRunRow, TaskInstanceRow
from orchestrator.templating import RenderedTask, SecretSource, render_task


def run_info(spec: DagSpec, run: DagRunRow) -> RunInfo:
    """What templates know about a run."""
    scheduled = spec.schedule is not None
    run_type: RunType = "manual" if run.run_type == "test" else cast(RunType, run.run_type)
    return RunInfo(
        run_id=run.run_id,
        run_type=run_type,
        logical_date=run.logical_date,
        data_interval_start=run.data_interval_start,
        data_interval_end=run.data_interval_end,
        conf=dict(run.conf or {}),
        prev_logical_date=(
            prev_logical_date(spec.schedule, spec.timezone, run.logical_date) if scheduled else None
        ),
        next_logical_date=(
            next_logical_date(spec.schedule, spec.timezone, run.logical_date) if scheduled else None
        ),
    )


def run_outputs(session: Session, run: DagRunRow) -> dict[str, Any]:
    """Outputs of the run's finished tasks, by task id."""
    return outputs_of(run_store.task_instances(session, run.id))


class RunOutputs(Mapping[str, Any]):
    """`outputs_of` these task instances, worked out when first read (most templates read
    no output, and a large run's instances take a while to go through)."""

    def __init__(self, tis: Iterable[TaskInstanceRow]) -> None:
        self._tis: Iterable[TaskInstanceRow] | None = tis
        self._outputs: dict[str, Any] = {}

    def _all(self) -> dict[str, Any]:
        if self._tis is not None:
            self._outputs, self._tis = outputs_of(self._tis), None
        return self._outputs

    def __getitem__(self, task_id: str) -> Any:
        return self._all()[task_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())


def outputs_of(tis: Iterable[TaskInstanceRow]) -> dict[str, Any]:
    """Outputs of these task instances that have one, by task id.

    A mapped task's output is the list of its instances' outputs in map-index order, with
    None for an instance that wrote none (yet).
    """
    outputs: dict[str, Any] = {}
    mapped: dict[str, list[tuple[int, Any]]] = {}
    counts: dict[str, int] = {}
    for ti in tis:
        if ti.map_index >= 0:
            counts[ti.task_id] = max(counts.get(ti.task_id, 0), ti.map_index + 1)
            if ti.output_json is not None:
                mapped.setdefault(ti.task_id, []).append((ti.map_index, json.loads(ti.output_json)))
        elif ti.output_json is not None:
            outputs[ti.task_id] = json.loads(ti.output_json)
    for task_id, count in counts.items():
        outputs[task_id] = ordered_outputs(mapped.get(task_id, []), count)
    return outputs


def render_preview(
    spec: DagSpec,
    task: TaskSpec,
    info: RunInfo,
    outputs: dict[str, Any],
    secrets: SecretSource | None = None,
) -> RenderedTask:
    """Render a task's first attempt without launching or storing anything. Its serialized
    form (what to show) has secret values masked."""
    return render_task(spec, task, info, try_number=1, outputs=outputs, secrets=secrets)
