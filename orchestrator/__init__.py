"""A container-task orchestrator: Airflow's model of DAGs, schedules and retries, where every
task is a container.

DAG files use the authoring API exported here::

    from orchestrator import DAG, ContainerTask, TaskGroup, Param, Mount, chain

The names are loaded on first use (PEP 562), so `import orchestrator.errors` or the scheduler's
own imports do not pay for the SDK, and importing `orchestrator` never pulls in docker,
SQLAlchemy or jinja2.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orchestrator.sdk import (
        DAG,
        Command,
        ContainerHook,
        ContainerTask,
        DockerOperator,
        EmptyTask,
        LatestOnly,
        Mount,
        Param,
        Secret,
        TaskGroup,
        TriggerRun,
        WaitForRun,
        Webhook,
        chain,
    )

__all__ = [
    "DAG",
    "Command",
    "ContainerHook",
    "ContainerTask",
    "DockerOperator",
    "EmptyTask",
    "LatestOnly",
    "Mount",
    "Param",
    "Secret",
    "TaskGroup",
    "TriggerRun",
    "WaitForRun",
    "Webhook",
    "chain",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from orchestrator import sdk

        return getattr(sdk, name)
    raise AttributeError(f"module 'orchestrator' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
