"""Where the SDK keeps the DAG and task group being declared, and the DAG collectors.

The current DAG and group live in context variables (`with DAG(...)` in one thread or task
does not leak into another). The collectors are process-wide on purpose: the DAG file loader
must see every DAG created while a file is imported, including DAGs built by helper modules or
in threads, not only those left in module globals.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from orchestrator.sdk.dag import DAG
    from orchestrator.sdk.group import TaskGroup

_dag_stack: ContextVar[tuple[DAG, ...]] = ContextVar("orchestrator_dag_stack", default=())
_group_stack: ContextVar[tuple[TaskGroup, ...]] = ContextVar("orchestrator_group_stack", default=())
_collectors: list[list[DAG]] = []
_collectors_lock = threading.Lock()
_SDK_DIR = os.path.dirname(os.path.abspath(__file__))


def current_dag() -> DAG | None:
    """The innermost DAG whose `with` block is running, if any."""
    stack = _dag_stack.get()
    return stack[-1] if stack else None


def push_dag(dag: DAG) -> None:
    _dag_stack.set((*_dag_stack.get(), dag))


def pop_dag(dag: DAG) -> None:
    stack = _dag_stack.get()
    if stack and stack[-1] is dag:
        _dag_stack.set(stack[:-1])


def current_group() -> TaskGroup | None:
    """The innermost task group whose `with` block is running, if any."""
    stack = _group_stack.get()
    return stack[-1] if stack else None


def push_group(group: TaskGroup) -> None:
    _group_stack.set((*_group_stack.get(), group))


def pop_group(group: TaskGroup) -> None:
    stack = _group_stack.get()
    if stack and stack[-1] is group:
        _group_stack.set(stack[:-1])


def register_dag(dag: DAG) -> None:
    """Tell every active collector about a newly created DAG."""
    with _collectors_lock:
        for collector in _collectors:
            collector.append(dag)


@contextmanager
def collecting() -> Iterator[list[DAG]]:
    """Collect, in creation order, every DAG created while the block runs."""
    collected: list[DAG] = []
    with _collectors_lock:
        _collectors.append(collected)
    try:
        yield collected
    finally:
        with _collectors_lock:
            _collectors[:] = [c for c in _collectors if c is not collected]


def caller_location() -> str:
    """`file:line` of the innermost frame outside the SDK: where the user declared something."""
    frame = sys._getframe(1)
    while frame.f_back is not None and os.path.dirname(frame.f_code.co_filename) == _SDK_DIR:
        frame = frame.f_back
    return f"{frame.f_code.co_filename}:{frame.f_lineno}"
