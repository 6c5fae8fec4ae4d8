"""The authoring API that DAG files import: DAG, ContainerTask, TaskGroup, Param, chain, and
the tasks without a container (EmptyTask, LatestOnly, TriggerRun, WaitForRun), `Secret` (secret
environment variables), and the notifiers Webhook, Command and ContainerHook.

Users import these from `orchestrator` directly; this package may import only
`orchestrator.models`, `orchestrator.errors`, the standard library, pydantic and pendulum.
"""

from orchestrator.models.notifiers import Command, ContainerHook, Webhook
from orchestrator.models.specs import Mount
from orchestrator.sdk.control import EmptyTask, LatestOnly, TriggerRun, WaitForRun
from orchestrator.sdk.convert import Param
from orchestrator.sdk.dag import DAG
from orchestrator.sdk.deps import chain
from orchestrator.sdk.group import TaskGroup
from orchestrator.sdk.secrets import Secret
from orchestrator.sdk.task import ContainerTask, DockerOperator

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
