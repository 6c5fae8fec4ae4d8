"""Rendering a task's templated fields in a Jinja sandbox.

Templated fields: `image`, `command` and `entrypoint` (the string, or each element of a list),
`environment` values (not keys), each mount's `source` and `target`, and `working_dir`. Every
result is a string; use the `tojson` filter to put a JSON value (say an upstream output) in one.

Template files (Airflow's `template_ext`): a `command`/`entrypoint` element or `environment`
value that, stripped, ends in `.sql`, `.sh` or `.json` and names a file inside the DAG file's
folder is replaced by that file's content, rendered. A string naming no such file (absolute,
escaping the folder with `..`, or absent) is rendered as written. To pass such a name literally
while the file exists, write it as an expression: `{{ "run.sh" }}`. Image, mounts and
working_dir are paths and names, never loaded from files.

A bind mount whose rendered source is relative (`./data`) resolves against the DAG file's
folder; `~` expands to the scheduler user's home.

Rendering reads template files but writes nothing, and the same inputs give the same result.
"""

from __future__ import annotations

import functools
import json
import os
import types
from collections import ChainMap
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any

from jinja2 import (
    BaseLoader,
    DictLoader,
    FileSystemLoader,
    StrictUndefined,
    Template,
    TemplateNotFound,
    TemplateSyntaxError,
)
from jinja2 import TemplateError as JinjaTemplateError
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedEnvironment
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
)

from orchestrator.errors import TemplateError
from orchestrator.models.run_info import RunInfo
from orchestrator.models.secrets import mask_json, mask_text
from orchestrator.models.specs import DagSpec, Mount, TaskSpec
from orchestrator.templating.context import FILTERS, dag_folder
from orchestrator.templating.lazy import lazy_context
from orchestrator.templating.secrets import (
    NoSecrets,
    Revealed,
    SecretSource,
    resolve_secret_refs,
)

__all__ = [
    "MAX_POWER_BITS",
    "MAX_REPEAT_LENGTH",
    "TEMPLATE_EXTENSIONS",
    "RenderedTask",
    "make_environment",
    "render_string",
    "render_task",
    "to_json",
]

#: Suffixes that make a string name a template file next to the DAG.
TEMPLATE_EXTENSIONS = (".sql", ".sh", ".json")
#: Longest string or list a template may build with `*` (guards the scheduler's memory).
MAX_REPEAT_LENGTH = 1_000_000
#: Largest integer (in bits) a template may build with `**`.
MAX_POWER_BITS = 100_000

_MARKUP = ("{{", "{%", "{#")
_INLINE = "<template>"


class RenderedTask(BaseModel):
    """A task's templated fields after rendering; `model_dump(mode="json")` is persisted.

    The fields hold the real values, for the launch; `secret_env` holds the values of the
    task's `secrets` (for the launch only), and `secrets` what each refers to. Serialized (and
    in a repr), every value in `sensitive` (connection passwords and secret values the
    rendering handed out) is replaced by `***`, and `secret_env` and `sensitive` are left out:
    what is stored and shown never holds a secret.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    image: str
    command: str | tuple[str, ...] | None = None
    entrypoint: str | tuple[str, ...] | None = None
    environment: dict[str, str] = Field(default_factory=dict)
    mounts: tuple[Mount, ...] = ()
    working_dir: str | None = None
    #: The task's secret environment variables: name -> reference (`conn:my_db.password`).
    secrets: dict[str, str] = Field(default_factory=dict)
    secret_env: dict[str, str] = Field(default_factory=dict, exclude=True, repr=False)
    sensitive: frozenset[str] = Field(default_factory=frozenset, exclude=True, repr=False)

    @model_serializer(mode="wrap")
    def _masked(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        return mask_json(data, self.sensitive) if self.sensitive else data

    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            yield name, mask_json(value, self.sensitive) if self.sensitive else value


class _Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, also refusing `*` and `**` results big enough to exhaust memory."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            _check_repeat(left, right)
        elif operator == "**":
            _check_power(left, right)
        return super().call_binop(context, operator, left, right)


def _check_repeat(left: Any, right: Any) -> None:
    for sequence, times in ((left, right), (right, left)):
        if (
            isinstance(sequence, (str, list, tuple))
            and isinstance(times, int)
            and len(sequence) * times > MAX_REPEAT_LENGTH
        ):
            raise SecurityError(f"'*' would build a result longer than {MAX_REPEAT_LENGTH}")


def _check_power(base: Any, exponent: Any) -> None:
    if (
        isinstance(base, int)
        and isinstance(exponent, int)
        and exponent > 0
        and abs(base) > 1
        and abs(base).bit_length() * exponent > MAX_POWER_BITS
    ):
        raise SecurityError(f"'**' would build an integer of more than {MAX_POWER_BITS} bits")


def to_json(value: Any, indent: int | None = None) -> str:
    """The `tojson` filter: plain JSON (keys in their order, no HTML escaping).

    Jinja's own filter escapes `<`, `>`, `&` and `'` for HTML; commands and environment values
    want the JSON the task wrote. Dates become ISO 8601 strings, durations seconds.
    """
    return json.dumps(value, indent=indent, ensure_ascii=False, default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, (tuple, set, frozenset)):
        return list(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def make_environment(folder: str | Path | None = None) -> SandboxedEnvironment:
    """The sandboxed Jinja environment: strict about undefined names, files from `folder`.

    Without a folder, `{% include %}` and file templates find nothing.
    """
    loader: BaseLoader = FileSystemLoader(str(folder)) if folder else DictLoader({})
    env = _Sandbox(
        loader=loader,
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
        auto_reload=True,  # a changed template file is compiled again (checked by mtime)
    )
    env.filters.update(FILTERS)
    env.filters["tojson"] = to_json
    return env


@functools.lru_cache(maxsize=64)
def _shared_environment(folder: Path | None) -> SandboxedEnvironment:
    """One environment per DAG folder, kept: environments hold no per-render state, and
    keeping one keeps its compiled templates (see `_compiled`)."""
    return make_environment(folder)


@functools.lru_cache(maxsize=4096)
def _compiled(env: SandboxedEnvironment, template: str) -> Template:
    """A template string compiled once per environment (compiling costs far more than
    rendering); the sandbox checks run at render time, so sharing is safe."""
    return env.from_string(template)


def render_string(
    template: str,
    context: Mapping[str, Any],
    *,
    env: SandboxedEnvironment | None = None,
) -> str:
    """Render one template string; any failure is a `TemplateError` saying what went wrong."""
    environment = env or make_environment()
    try:
        return _render(environment, template, context)
    except Exception as exc:
        folder = _loader_folder(environment)
        raise TemplateError(f"cannot render {_failure(template, None, exc, folder)}") from exc


def render_task(
    dag: DagSpec,
    task: TaskSpec,
    run: RunInfo,
    *,
    try_number: int,
    map_index: int = -1,
    outputs: Mapping[str, Any],
    mapped: Mapping[str, Any] | None = None,
    secrets: SecretSource | None = None,
) -> RenderedTask:
    """Render every templated field of one attempt of `task`, and resolve its `secrets`.

    Raises `TemplateError` naming the DAG, the task, the field (`command[2]`,
    `environment['SUMMARY']`, `mounts[0].source`), the template file and line when the
    template came from a file, and the underlying message; or naming the secret that could not
    be resolved. `secrets` looks up connections and variables (`conn`, `var` and the task's
    `secrets`); without it they cannot be used. Secret values never appear in the message.
    """
    revealed = Revealed()
    try:
        return _render_task(
            dag, task, run, try_number, map_index, outputs, mapped, secrets, revealed
        )
    except TemplateError as exc:
        if not revealed.values:
            raise
        raise TemplateError(mask_text(str(exc), revealed.values)) from None


def _render_task(
    dag: DagSpec,
    task: TaskSpec,
    run: RunInfo,
    try_number: int,
    map_index: int,
    outputs: Mapping[str, Any],
    mapped: Mapping[str, Any] | None,
    secrets: SecretSource | None,
    revealed: Revealed,
) -> RenderedTask:
    context = lazy_context(
        dag,
        task,
        run,
        try_number=try_number,
        map_index=map_index,
        outputs=outputs,
        mapped=mapped,
        secrets=secrets,
        revealed=revealed,
    )
    renderer = _TaskRenderer(dag, task, map_index, context)
    image = renderer.text("image", task.image, from_file=False)
    command = renderer.sequence("command", task.command)
    entrypoint = renderer.sequence("entrypoint", task.entrypoint)
    environment = {
        name: renderer.text(f"environment[{name!r}]", value, from_file=True)
        for name, value in task.environment.items()
    }
    mounts = tuple(renderer.mount(index, mount) for index, mount in enumerate(task.mounts))
    working_dir = (
        renderer.text("working_dir", task.working_dir, from_file=False)
        if task.working_dir is not None
        else None
    )
    source: SecretSource = secrets if secrets is not None else NoSecrets()
    secret_env = resolve_secret_refs(task.secrets, source, revealed, renderer.prefix)
    return RenderedTask(
        image=image,
        command=command,
        entrypoint=entrypoint,
        environment=environment,
        mounts=mounts,
        working_dir=working_dir,
        secrets={name: ref.describe() for name, ref in task.secrets.items()},
        secret_env=secret_env,
        sensitive=revealed.values,
    )


class _TaskRenderer:
    """Renders the fields of one task with one context, and words its errors."""

    def __init__(
        self, dag: DagSpec, task: TaskSpec, map_index: int, context: Mapping[str, Any]
    ) -> None:
        self.folder = dag_folder(dag)
        self.env = _shared_environment(self.folder)
        self.context = context
        mapped = f" (map index {map_index})" if map_index >= 0 else ""
        self.prefix = f"DAG {dag.dag_id!r}, task {task.task_id!r}{mapped}"

    def sequence(
        self, field: str, value: str | tuple[str, ...] | None
    ) -> str | tuple[str, ...] | None:
        if value is None:
            return None
        if isinstance(value, str):
            return self.text(field, value, from_file=True)
        return tuple(
            self.text(f"{field}[{index}]", item, from_file=True) for index, item in enumerate(value)
        )

    def text(self, field: str, template: str, *, from_file: bool) -> str:
        file_name = self._template_file(template) if from_file else None
        try:
            if file_name is not None:
                return _render_template(self.env.get_template(file_name), self.context)
            return _render(self.env, template, self.context)
        except Exception as exc:
            raise TemplateError(self._message(field, template, file_name, exc)) from exc

    def mount(self, index: int, mount: Mount) -> Mount:
        field = f"mounts[{index}]"
        source = mount.source
        if source is not None:
            source = self.text(f"{field}.source", source, from_file=False)
            if mount.type == "bind":
                source = self._host_path(f"{field}.source", source)
        target = self.text(f"{field}.target", mount.target, from_file=False)
        try:
            return Mount(type=mount.type, source=source, target=target, read_only=mount.read_only)
        except ValidationError as exc:
            problems = "; ".join(error["msg"] for error in exc.errors())
            raise TemplateError(
                f"{self.prefix}: {field} is invalid once rendered "
                f"(source {source!r}, target {target!r}): {problems}"
            ) from exc

    def _host_path(self, field: str, source: str) -> str:
        expanded = os.path.expanduser(source)
        if not expanded or os.path.isabs(expanded):
            return expanded
        if self.folder is None:
            raise TemplateError(
                f"{self.prefix}: {field} {source!r} is relative, but the DAG has no file "
                "location to resolve it against; use an absolute host path"
            )
        return os.path.normpath(self.folder / expanded)

    def _template_file(self, template: str) -> str | None:
        """The name (relative to the DAG folder) of the file `template` names, if any."""
        name = template.strip()
        if self.folder is None or not name.endswith(TEMPLATE_EXTENSIONS):
            return None
        path = PurePosixPath(name)
        if path.is_absolute() or ".." in path.parts or name.startswith("~"):
            return None
        candidate = self.folder.joinpath(*path.parts)
        try:
            if not candidate.is_file():
                return None
            if not candidate.resolve().is_relative_to(self.folder.resolve()):
                return None
        except (OSError, ValueError):
            return None
        return path.as_posix()

    def _message(self, field: str, template: str, file_name: str | None, exc: Exception) -> str:
        failure = _failure(template, file_name, exc, self.folder)
        return f"{self.prefix}: cannot render {field} {failure}"


def _render(env: SandboxedEnvironment, template: str, context: Mapping[str, Any]) -> str:
    if "{" not in template or not any(marker in template for marker in _MARKUP):
        return template  # plain text renders to itself; skip compiling it
    return _render_template(_compiled(env, template), context)


class _Names(ChainMap[str, Any]):
    """The names a template resolves: the context's first, then the template's globals."""

    def copy(self) -> dict[str, Any]:  # type: ignore[override]
        # Jinja copies the names to show them as locals in an error's traceback
        return dict(self)


def _render_template(template: Template, context: Mapping[str, Any]) -> str:
    """`template.render(context)`, without its copy of the context into a dict: a copy reads
    every value, and a lazy context (`lazy_context`) computes only the values read. Names
    resolve as in `render`: the context's first, then the template's globals."""
    environment = template.environment
    names = _Names(context, template.globals)  # type: ignore[arg-type]
    jinja_context = template.new_context(names, shared=True)  # type: ignore[arg-type]
    try:
        return environment.concat(template.root_render_func(jinja_context))
    except Exception:
        environment.handle_exception()


def _failure(template: str, file_name: str | None, exc: BaseException, folder: Path | None) -> str:
    """`<what failed>[ where]: <why>`, for the tail of an error message."""
    where, line = _error_location(exc, folder)
    if file_name is not None:
        what = f"from template file {file_name!r}"
        if where == file_name and line:
            what += f" line {line}"
    else:
        lines = template.splitlines()
        if where is None and line and len(lines) > 1 and line <= len(lines):
            what = f"line {line} {_excerpt(lines[line - 1])!r}"
        else:
            what = repr(_excerpt(template))
    if where is not None and where != file_name:
        what += f" (in template file {where!r}" + (f" line {line})" if line else ")")
    return f"{what}: {_describe(exc, folder)}"


def _loader_folder(env: SandboxedEnvironment) -> Path | None:
    if isinstance(env.loader, FileSystemLoader) and env.loader.searchpath:
        return Path(os.path.abspath(env.loader.searchpath[0]))
    return None


def _error_location(exc: BaseException, folder: Path | None) -> tuple[str | None, int | None]:
    """Which template file (None: the inline string) and line an error happened on."""
    if isinstance(exc, TemplateSyntaxError):
        return exc.name, exc.lineno
    where: str | None = None
    line: int | None = None
    traceback: types.TracebackType | None = exc.__traceback__
    while traceback is not None:
        filename = traceback.tb_frame.f_code.co_filename
        if filename == _INLINE:
            where, line = None, traceback.tb_lineno
        elif folder is not None and filename.startswith(str(folder) + os.sep):
            where, line = Path(filename).relative_to(folder).as_posix(), traceback.tb_lineno
        traceback = traceback.tb_next
    return where, line


def _describe(exc: BaseException, folder: Path | None) -> str:
    if isinstance(exc, TemplateSyntaxError):
        return f"syntax error: {exc.message}"
    if isinstance(exc, TemplateNotFound):
        if folder is None:
            return f"template file {exc.name!r} not found: the DAG has no file location"
        return f"template file {exc.name!r} not found in {str(folder)!r}"
    if isinstance(exc, SecurityError):
        return f"not allowed in the template sandbox: {exc}"
    if isinstance(exc, (JinjaTemplateError, TemplateError)):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _excerpt(template: str, limit: int = 80) -> str:
    text = template.strip()
    first_line = text.splitlines()[0] if text else text
    if len(first_line) > limit or first_line != text:
        return first_line[: limit - 3].rstrip() + "..."
    return first_line
