"""`TaskGroup`: a named, nestable set of tasks, shown together and connected as one."""

from __future__ import annotations

import re
from types import TracebackType
from typing import TYPE_CHECKING

from orchestrator.errors import DagDefinitionError
from orchestrator.models.specs import ID_PATTERN
from orchestrator.sdk import context
from orchestrator.sdk.deps import DependencyMixin

if TYPE_CHECKING:
    from orchestrator.sdk.dag import DAG
    from orchestrator.sdk.task import ContainerTask


class TaskGroup(DependencyMixin):
    """Tasks created inside `with TaskGroup("load"):` get ids `load.<task_id>`; nested groups
    prefix theirs in turn (`load.tables.<task_id>`).

    In a dependency a group stands for its roots when downstream (`extract >> group`: every
    task of the group with no upstream inside it) and for its leaves when upstream
    (`group >> report`: every task with no downstream inside it). Connect a group after its
    tasks are declared: roots and leaves are taken when `>>` runs.
    """

    def __init__(self, group_id: str, *, dag: DAG | None = None) -> None:
        parent = context.current_group()
        dag = dag or context.current_dag() or (parent.dag if parent is not None else None)
        if dag is None:
            raise DagDefinitionError(
                f"task group '{group_id}' is not in a DAG: create it inside `with DAG(...):` "
                "or pass dag="
            )
        if parent is not None and parent.dag is not dag:
            parent = None
        if not isinstance(group_id, str) or not re.match(ID_PATTERN, group_id):
            raise DagDefinitionError(
                f"DAG '{dag.dag_id}': task group id {group_id!r} may contain only letters, "
                "digits, '_', '.' and '-', and must not start with '.' or '-'"
            )
        self.dag: DAG = dag
        self.parent: TaskGroup | None = parent
        self.label: str = group_id
        self.group_id: str = f"{parent.group_id}.{group_id}" if parent is not None else group_id
        self.declared_at = context.caller_location()
        self._tasks: list[ContainerTask] = []
        dag.add_group(self)

    @property
    def tasks(self) -> list[ContainerTask]:
        """Tasks of this group and of groups nested in it, in declaration order."""
        return list(self._tasks)

    def add_task(self, task: ContainerTask) -> None:
        """Record a task as a member of this group and of every enclosing group."""
        group: TaskGroup | None = self
        while group is not None:
            group._tasks.append(task)
            group = group.parent

    def child_id(self, task_id: str) -> str:
        """The DAG-wide id of a task declared in this group."""
        return f"{self.group_id}.{task_id}"

    def roots(self) -> list[ContainerTask]:
        members = {task.task_id for task in self._tasks}
        return self._non_empty([t for t in self._tasks if not t.upstream_task_ids & members])

    def leaves(self) -> list[ContainerTask]:
        members = {task.task_id for task in self._tasks}
        return self._non_empty([t for t in self._tasks if not t.downstream_task_ids & members])

    def _non_empty(self, tasks: list[ContainerTask]) -> list[ContainerTask]:
        if not tasks:
            raise DagDefinitionError(
                f"DAG '{self.dag.dag_id}': task group '{self.group_id}' has no tasks to connect; "
                "declare its tasks before setting dependencies on the group"
            )
        return tasks

    def __enter__(self) -> TaskGroup:
        context.push_group(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        context.pop_group(self)

    def __repr__(self) -> str:
        return f"<TaskGroup {self.group_id!r}: {len(self._tasks)} tasks>"
