"""Notifiers: where the scheduler reports task and run events (success, failure, retry, SLA).

The scheduler never runs DAG code, so a notifier is data, stored in the serialized spec:

- `Webhook(url)`: an HTTP POST of the event as a JSON object.
- `Command([...])`: a process on the scheduler's host, the event as JSON on stdin and in the
  environment variable `ORCH_NOTIFICATION`. It runs with the scheduler's rights, so operators
  can forbid it (`ORCH_ALLOW_COMMAND_NOTIFIERS=false`).
- `ContainerHook(image, ...)`: a container run through the container runtime, the event in
  `ORCH_NOTIFICATION`, labelled like task containers and removed afterwards.

Each takes its arguments positionally as the SDK documents (`Webhook("https://...")`) and
round-trips through JSON unchanged (`kind` tells them apart).
"""

from __future__ import annotations

import shlex
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: The environment variable holding the event (JSON) for command and container notifiers.
NOTIFICATION_ENV = "ORCH_NOTIFICATION"


class NotifyEvent(StrEnum):
    """What happened, as named in DAG files and in every payload."""

    ON_SUCCESS = "on_success"  # a task succeeded, or a run finished successfully
    ON_FAILURE = "on_failure"  # a task failed for good (retries used up), or a run failed
    ON_RETRY = "on_retry"  # a task failed and will be retried (up_for_retry)
    ON_SLA_MISS = "on_sla_miss"  # a task had not succeeded by its SLA deadline


class _NotifierSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Webhook(_NotifierSpec):
    """POST the event as JSON to `url`, with extra `headers`, giving up after `timeout` seconds.

    A connection error, a timeout or a 5xx/429 answer is retried twice (1 s, then 4 s later);
    other 4xx answers are not (the request would not change).
    """

    kind: Literal["webhook"] = "webhook"
    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    timeout: float = Field(default=10.0, gt=0)

    def __init__(
        self,
        url: str | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 10.0,
        **data: Any,
    ) -> None:
        if url is not None:
            data["url"] = url
        data.setdefault("headers", headers or {})
        data.setdefault("timeout", timeout)
        super().__init__(**data)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"webhook url {value!r} must be an http:// or https:// URL")
        return value

    def describe(self) -> str:
        """The URL without credentials or query string (which often hold tokens)."""
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        query = "..." if parts.query else ""
        return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


class Command(_NotifierSpec):
    """Run `argv` (no shell) on the scheduler's host; stopped after `timeout` seconds.

    A non-zero exit status counts as a failed delivery.
    """

    kind: Literal["command"] = "command"
    argv: tuple[str, ...]
    timeout: float = Field(default=60.0, gt=0)

    def __init__(
        self,
        argv: str | list[str] | tuple[str, ...] | None = None,
        timeout: float = 60.0,
        **data: Any,
    ) -> None:
        if argv is not None:
            data["argv"] = shlex.split(argv) if isinstance(argv, str) else argv
        data.setdefault("timeout", timeout)
        super().__init__(**data)

    @field_validator("argv")
    @classmethod
    def _not_empty(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("a command notifier needs a program to run, e.g. Command(['notify'])")
        return value

    def describe(self) -> str:
        return f"command {self.argv[0]}"


class ContainerHook(_NotifierSpec):
    """Run `image` (with `command`, `environment` and `mounts` in Docker's `src:dst[:ro]`
    form) as a container; stopped after `timeout` seconds, removed afterwards.

    A non-zero exit code counts as a failed delivery.
    """

    kind: Literal["container"] = "container"
    image: str
    command: str | tuple[str, ...] | None = None
    environment: dict[str, str] = Field(default_factory=dict)
    mounts: tuple[str, ...] = ()
    timeout: float = Field(default=300.0, gt=0)

    def __init__(self, image: str | None = None, **data: Any) -> None:
        if image is not None:
            data["image"] = image
        super().__init__(**data)

    @field_validator("image")
    @classmethod
    def _image_given(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("a container hook needs an image")
        return value

    @field_validator("mounts")
    @classmethod
    def _mounts_parse(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        from orchestrator.models.specs import Mount  # specs imports this module

        for text in value:
            mount = Mount.parse(text)
            if mount.type == "bind" and not (mount.source or "").startswith("/"):
                raise ValueError(
                    f"container hook mount {text!r}: a host path must be absolute here"
                )
        return value

    def describe(self) -> str:
        return f"container {self.image}"


Notifier = Annotated[Webhook | Command | ContainerHook, Field(discriminator="kind")]


def notifier_tuple(value: Any) -> Any:
    """Accept one notifier where a list is expected (`on_failure=Webhook(...)`)."""
    if value is None:
        return ()
    if isinstance(value, (BaseModel, dict)):
        return (value,)
    return value


class NotificationPayload(BaseModel):
    """The JSON object every notifier receives. Task fields are None for run events."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event: NotifyEvent
    dag_id: str
    run_id: str
    run_type: str
    task_id: str | None = None
    map_index: int | None = None
    try_number: int | None = None
    state: str
    state_detail: str | None = None
    exit_code: int | None = None
    logical_date: datetime
    data_interval_start: datetime
    data_interval_end: datetime
    log_path: str | None = None
    #: Where the UI will show the log; None until there is a UI.
    log_url: str | None = None
    #: For `on_sla_miss`: when the task should have succeeded.
    sla_deadline: datetime | None = None
    sla: timedelta | None = None
    at: datetime
