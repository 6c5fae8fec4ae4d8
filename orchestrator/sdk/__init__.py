"""The authoring API that DAG files import: DAG, ContainerTask, TaskGroup, Param, chain.

Users import these from `orchestrator` directly; this package may import only
`orchestrator.models`, `orchestrator.errors`, the standard library, pydantic and pendulum.
"""

from orchestrator.models.specs import Mount
from orchestrator.sdk.convert import Param
from orchestrator.sdk.dag import DAG
from orchestrator.sdk.deps import chain
from orchestrator.sdk.group import TaskGroup
from orchestrator.sdk.task import ContainerTask, DockerOperator

__all__ = ["DAG", "ContainerTask", "DockerOperator", "Mount", "Param", "TaskGroup", "chain"]
