"""Pydantic specs and records, and the state enums with their allowed transitions."""

from orchestrator.models.launch import ContainerExit, ContainerInfo, LaunchRequest
from orchestrator.models.specs import (
    CronSchedule,
    DagSpec,
    DeltaSchedule,
    Mount,
    ParamSpec,
    PullPolicy,
    TaskSpec,
    TriggerRule,
)
from orchestrator.models.states import RunState, TaskState

__all__ = [
    "ContainerExit",
    "ContainerInfo",
    "CronSchedule",
    "DagSpec",
    "DeltaSchedule",
    "LaunchRequest",
    "Mount",
    "ParamSpec",
    "PullPolicy",
    "RunState",
    "TaskSpec",
    "TaskState",
    "TriggerRule",
]
