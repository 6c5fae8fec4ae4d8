"""Mapping store rows to the plain dicts the CLI prints (its API schema)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from orchestrator.store.tables import DagRow, DagRunRow, ImportErrorRow, TaskInstanceRow


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def dag_row(row: DagRow, next_run: tuple[datetime, datetime] | None = None) -> dict[str, Any]:
    """A DAG's listing; `next_run` is the data interval of its next scheduled run."""
    spec = json.loads(row.spec_json)
    schedule = spec.get("schedule")
    if schedule is not None:
        schedule = schedule.get("expression") or schedule.get("every")
    return {
        "dag_id": row.dag_id,
        "fileloc": row.fileloc,
        "paused": row.is_paused,
        "active": row.is_active,
        "schedule": schedule,
        "tags": spec.get("tags", []),
        "tasks": len(spec.get("tasks", [])),
        "next_run": _iso(next_run[0]) if next_run else None,
        "next_data_interval_end": _iso(next_run[1]) if next_run else None,
    }


def import_error_row(row: ImportErrorRow) -> dict[str, Any]:
    return {"fileloc": row.fileloc, "error": row.error, "timestamp": _iso(row.timestamp)}


def run_row(run: DagRunRow) -> dict[str, Any]:
    return {
        "dag_id": run.dag_id,
        "run_id": run.run_id,
        "run_type": run.run_type,
        "state": run.state,
        "logical_date": _iso(run.logical_date),
        "data_interval_start": _iso(run.data_interval_start),
        "data_interval_end": _iso(run.data_interval_end),
        "conf": run.conf,
        "queued_at": _iso(run.queued_at),
        "start_date": _iso(run.start_date),
        "end_date": _iso(run.end_date),
        "state_detail": run.state_detail,
    }


def ti_row(ti: TaskInstanceRow) -> dict[str, Any]:
    return {
        "task_id": ti.task_id,
        "map_index": ti.map_index,
        "map_values": ti.map_values,
        "state": ti.state,
        "try_number": ti.try_number,
        "exit_code": ti.exit_code,
        "output": json.loads(ti.output_json) if ti.output_json is not None else None,
        "state_detail": ti.state_detail,
        "container_name": ti.container_name,
        "start_date": _iso(ti.start_date),
        "end_date": _iso(ti.end_date),
    }
