"""Dependencies between tasks and task groups: `>>`, `<<`, `set_upstream`, `chain`.

`a >> b` makes `a` upstream of `b` and returns `b`, so `a >> b >> c` reads left to right; a
list on either side fans out or in (`a >> [b, c]`, `[a, b] >> c`). A task group stands for its
roots when it is downstream and for its leaves when it is upstream.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Self, TypeVar, Union

from orchestrator.errors import DagDefinitionError

if TYPE_CHECKING:
    from orchestrator.sdk.task import ContainerTask

Node = Union["DependencyMixin", Sequence["DependencyMixin"]]
NodeT = TypeVar("NodeT", bound=Node)


class DependencyMixin:
    """What tasks and task groups share: they can be put upstream or downstream of others."""

    def roots(self) -> list[ContainerTask]:
        """The tasks that an upstream dependency of this node attaches to."""
        raise NotImplementedError

    def leaves(self) -> list[ContainerTask]:
        """The tasks that a downstream dependency of this node attaches from."""
        raise NotImplementedError

    def set_downstream(self, other: Node) -> None:
        """Make `other` (a task, group or list of them) run after this node."""
        for item in _nodes(other):
            for upstream in self.leaves():
                for downstream in item.roots():
                    upstream.add_edge_to(downstream)

    def set_upstream(self, other: Node) -> None:
        """Make `other` (a task, group or list of them) run before this node."""
        for item in _nodes(other):
            item.set_downstream(self)

    def __rshift__(self, other: NodeT) -> NodeT:
        self.set_downstream(other)
        return other

    def __lshift__(self, other: NodeT) -> NodeT:
        self.set_upstream(other)
        return other

    def __rrshift__(self, other: Sequence[DependencyMixin]) -> Self:
        """`[a, b] >> self`."""
        self.set_upstream(other)
        return self

    def __rlshift__(self, other: Sequence[DependencyMixin]) -> Self:
        """`[a, b] << self`."""
        self.set_downstream(other)
        return self


def _nodes(value: object) -> list[DependencyMixin]:
    if isinstance(value, DependencyMixin):
        return [value]
    if isinstance(value, list | tuple | set | frozenset):
        items = list(value)
        for item in items:
            if not isinstance(item, DependencyMixin):
                raise DagDefinitionError(
                    f"cannot make a dependency on {item!r} ({type(item).__name__}) inside a "
                    "list: lists may hold only tasks and task groups"
                )
        return items
    raise DagDefinitionError(
        f"cannot make a dependency on {value!r} ({type(value).__name__}): use a task, a task "
        "group or a list of them"
    )


def chain(*nodes: Node) -> None:
    """Run each argument after the one before it: `chain(a, b, [c, d], e)`.

    A task or group next to a list fans out or in; two adjacent lists must have the same
    length and are connected pairwise (`chain([a, b], [c, d])` means `a >> c`, `b >> d`), as in
    Airflow.
    """
    for upstream, downstream in itertools.pairwise(nodes):
        up_is_list = not isinstance(upstream, DependencyMixin)
        down_is_list = not isinstance(downstream, DependencyMixin)
        if up_is_list and down_is_list:
            ups, downs = _nodes(upstream), _nodes(downstream)
            if len(ups) != len(downs):
                raise DagDefinitionError(
                    "chain: adjacent lists must have the same length to be connected pairwise, "
                    f"got {len(ups)} and {len(downs)}"
                )
            for up, down in zip(ups, downs, strict=True):
                up.set_downstream(down)
        elif up_is_list:
            for up in _nodes(upstream):
                up.set_downstream(downstream)
        else:
            _nodes(upstream)[0].set_downstream(downstream)
