"""Every exception the orchestrator raises on purpose.

    OrchestratorError                 root: catch this to catch everything we raise
    ├── UserError                     the user's input or the user's containers were wrong
    │   ├── DagDefinitionError        a DAG file builds an invalid DAG (cycle, duplicate id, ...)
    │   ├── DagImportError            a DAG file could not be imported (syntax, exception, timeout)
    │   ├── DagNotFound               no DAG with that id is known to the store
    │   ├── RunNotFound / TaskNotFound
    │   ├── RunAlreadyExists          a run id that is taken
    │   ├── InvalidConf               run conf is not a JSON object, or fails params validation
    │   ├── TemplateError             a templated field failed to render (names task and field)
    │   ├── PolicyViolation           a task asks for more than the operator allows (mounts, ...)
    │   ├── ImageUnavailable          the image is missing and may not (or could not) be pulled
    │   ├── OutputError               the task's output file is not JSON or is too large
    │   ├── PoolError                 a pool command was invalid (unknown pool, bad size, in use)
    │   │   └── PoolNotFound          no pool of that name
    │   ├── SecretError               a connection/variable cannot be stored or read (no key,
    │   │   │                         wrong key, bad URI)
    │   │   └── SecretNotFound        no connection/variable/environment variable of that name
    │   ├── ImageBuildError           making a base image or building a task image failed
    │   ├── AccountError              a web user cannot be created, found or changed as asked
    │   │   └── UserNotFound          no web user of that name
    │   └── SchedulerConflict         a second scheduler on a store that allows only one
    └── InternalError                 our bug or our environment; never the user's fault
        ├── RuntimeUnavailable        the container engine cannot be reached
        ├── StoreUnavailable          the database cannot be reached
        ├── SchedulerReplaced         other schedulers declared this one dead and took its runs
        └── IllegalTransition         a state change the transition table forbids

User errors carry a message saying what was wrong, where, and what to do; they become recorded,
visible errors (task state detail, import errors) and never stop a long-running process.
"""

from __future__ import annotations


class OrchestratorError(Exception):
    """Root of every exception the orchestrator raises on purpose."""


class UserError(OrchestratorError):
    """The user's DAG, template, input or container was wrong."""


class DagDefinitionError(UserError):
    """A DAG is invalid as written: a cycle, a duplicate task id, a missing image, ..."""


class DagImportError(UserError):
    """A DAG file could not be imported: syntax error, exception, or timeout."""


class DagNotFound(UserError):
    """No DAG with this id is known."""


class RunNotFound(UserError):
    """No run with this id exists for the DAG."""


class RunAlreadyExists(UserError):
    """A run with this id already exists for the DAG."""


class TaskNotFound(UserError):
    """No task with this id exists in the DAG."""


class InvalidConf(UserError):
    """Run conf is not a JSON object, or does not satisfy the DAG's params."""


class TemplateError(UserError):
    """A templated field failed to render."""


class PolicyViolation(UserError):
    """A task asks for more than the operator's policy allows: a host path outside the
    allowed mount roots, the Docker socket, a privileged container, the host network, or a
    capability not allowed."""


class ImageUnavailable(UserError):
    """The task's image is not present and could not (or may not) be pulled."""


class OutputError(UserError):
    """A task's output file is not a single JSON value, or is too large."""


class PoolError(UserError):
    """A pool cannot be created, changed or deleted as asked."""


class PoolNotFound(PoolError):
    """No pool of this name exists."""


class SecretError(UserError):
    """A connection or variable cannot be stored or read: no key, the wrong key, bad input."""


class SecretNotFound(SecretError):
    """No connection, variable or environment variable of that name is defined."""


class ImageBuildError(UserError):
    """Making a local base image or building a task image failed."""


class AccountError(UserError):
    """A web user cannot be created, found or changed as asked (unknown user, bad role, a
    username that is taken, an empty password)."""


class UserNotFound(AccountError):
    """No web user of this name exists."""


class SchedulerConflict(UserError):
    """A second scheduler was started against a store that serves only one (SQLite)."""


class InternalError(OrchestratorError):
    """A fault of the orchestrator or its environment, not of the user's input."""


class RuntimeUnavailable(InternalError):
    """The container engine could not be reached."""


class StoreUnavailable(InternalError):
    """The database could not be reached or opened."""


class SchedulerReplaced(InternalError):
    """Other schedulers found no heartbeat of this one for longer than the health timeout,
    declared it dead and took its runs over: it must stop before it does anything twice."""


class IllegalTransition(InternalError):
    """A state change that the transition table does not allow."""
