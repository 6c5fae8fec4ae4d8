"""Mapping notification and SLA-miss rows to the plain dicts the CLI prints."""

from __future__ import annotations

from typing import Any

from orchestrator.store.tables import NotificationRow, SlaMissRow


def sla_miss_row(row: SlaMissRow) -> dict[str, Any]:
    return {
        "dag_id": row.dag_id,
        "run_id": row.run_id,
        "task_id": row.task_id,
        "map_index": row.map_index,
        "deadline": row.deadline.isoformat(),
        "detected_at": row.detected_at.isoformat(),
        "state": row.state,
        "notified": row.notified,
    }


def notification_row(row: NotificationRow) -> dict[str, Any]:
    return {
        "run_id": row.run_id,
        "event": row.event,
        "task_id": row.task_id,
        "map_index": row.map_index,
        "try_number": row.try_number,
        "notifier": row.notifier,
        "target": row.target,
        "status": row.status,
        "attempts": row.attempts,
        "error": row.error,
        "at": row.created_at.isoformat(),
    }
