"""Jinja sandbox, the typed template context, and rendering a task's templated fields.

    render_task(dag, task, run, try_number=..., map_index=..., outputs=...) -> RenderedTask
    build_context(dag, task, run, try_number=..., map_index=..., outputs=...) -> TemplateContext
    lazy_context(...) -> LazyContext: the same values, each computed when a template reads it
    render_string(template, context) -> str

Every rendering failure is an `orchestrator.errors.TemplateError` naming the DAG, task and field.
"""

from orchestrator.models.run_info import RunInfo
from orchestrator.templating.context import (
    FILTERS,
    RETURN_VALUE_KEY,
    DagRunView,
    DagView,
    Macros,
    Outputs,
    TaskInstanceView,
    TaskView,
    TemplateContext,
    dag_folder,
)
from orchestrator.templating.lazy import (
    LazyContext,
    build_context,
    lazy_context,
    resolve_params,
)
from orchestrator.templating.render import (
    TEMPLATE_EXTENSIONS,
    RenderedTask,
    make_environment,
    render_string,
    render_task,
    to_json,
)
from orchestrator.templating.secrets import (
    Connections,
    NoSecrets,
    Revealed,
    SecretSource,
    Variables,
)

__all__ = [
    "FILTERS",
    "RETURN_VALUE_KEY",
    "TEMPLATE_EXTENSIONS",
    "Connections",
    "DagRunView",
    "DagView",
    "LazyContext",
    "Macros",
    "NoSecrets",
    "Outputs",
    "RenderedTask",
    "Revealed",
    "RunInfo",
    "SecretSource",
    "TaskInstanceView",
    "TaskView",
    "TemplateContext",
    "Variables",
    "build_context",
    "dag_folder",
    "lazy_context",
    "make_environment",
    "render_string",
    "render_task",
    "resolve_params",
    "to_json",
]
