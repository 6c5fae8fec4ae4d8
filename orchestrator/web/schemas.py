"""The REST API's request and response bodies, and the mappings from store rows to them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from orchestrator.models.secrets import MASK
from orchestrator.models.specs import DagSpec
from orchestrator.services.clearing import Changes
from orchestrator.services.pools import PoolUse
from orchestrator.services.secrets import ConnectionSummary, VariableSummary
from orchestrator.store.tables import DagRow, DagRunRow, ImportErrorRow, TaskInstanceRow


class Body(BaseModel):
    """A request body: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")


class RunSummary(BaseModel):
    run_id: str
    state: str
    logical_date: datetime


class DagOut(BaseModel):
    dag_id: str
    fileloc: str
    description: str | None
    schedule: str | None
    tags: list[str]
    paused: bool
    active: bool
    tasks: int
    next_run: datetime | None  # logical date of the next scheduled run
    next_data_interval_end: datetime | None
    last_run: RunSummary | None


class TaskOut(BaseModel):
    task_id: str
    kind: str
    image: str | None
    upstream_task_ids: list[str]
    trigger_rule: str
    retries: int
    pool: str


class DagDetail(DagOut):
    params: dict[str, Any]
    task_list: list[TaskOut]


class DagList(BaseModel):
    dags: list[DagOut]
    total: int


class RunOut(BaseModel):
    dag_id: str
    run_id: str
    run_type: str
    state: str
    logical_date: datetime
    data_interval_start: datetime
    data_interval_end: datetime
    conf: dict[str, Any]
    queued_at: datetime
    start_date: datetime | None
    end_date: datetime | None
    state_detail: str | None


class RunPage(BaseModel):
    runs: list[RunOut]
    total: int
    limit: int
    offset: int


class TaskInstanceOut(BaseModel):
    task_id: str
    map_index: int
    state: str
    try_number: int
    max_tries: int
    exit_code: int | None
    output: Any
    state_detail: str | None
    container_name: str | None
    pool: str | None
    queued_at: datetime | None
    start_date: datetime | None
    end_date: datetime | None


class ImportErrorOut(BaseModel):
    fileloc: str
    error: str
    timestamp: datetime


class PoolOut(BaseModel):
    name: str
    slots: int
    running: int
    queued: int
    open: int
    description: str | None


class ChangeOut(BaseModel):
    task_id: str
    map_index: int
    from_state: str
    to_state: str
    try_number: int
    stopping: bool  # the container is stopped first; the state follows once it exited


class ChangesOut(BaseModel):
    dag_id: str
    run_id: str
    run_state_before: str
    run_state: str
    tasks: list[ChangeOut]


class UserOut(BaseModel):
    username: str
    role: str
    created_at: datetime


class PausedIn(Body):
    paused: bool


class TriggerIn(Body):
    conf: dict[str, Any] = Field(default_factory=dict)
    run_id: str | None = Field(default=None, min_length=1, max_length=250)
    logical_date: datetime | None = None  # default: now; without an offset: UTC

    @field_validator("logical_date")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class ClearIn(Body):
    task_ids: list[str] | None = None  # None: every task of the run
    downstream: bool = False
    failed_only: bool = False


class MarkIn(Body):
    state: Literal["success", "failed"]


class PoolIn(Body):
    slots: int
    description: str | None = None


class UserIn(Body):
    username: str
    password: str = Field(min_length=1)
    role: Literal["viewer", "operator", "admin"]


class ConnectionIn(Body):
    """A connection: `uri` alone (`type://login:password@host:port/schema?key=value`), or
    `conn_type` with the other fields. Replacing a stored connection, a `password` or `extra`
    left out keeps the stored one (null removes it)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    uri: SecretStr | None = None
    conn_type: str | None = Field(
        default=None, min_length=1, max_length=100, pattern=r"^[A-Za-z][A-Za-z0-9+.\-_]*$"
    )
    host: str | None = Field(default=None, max_length=1000)
    port: int | None = Field(default=None, ge=1, le=65535)
    login: str | None = Field(default=None, max_length=1000)
    password: SecretStr | None = None
    schema_: str | None = Field(default=None, alias="schema", max_length=1000)
    extra: dict[str, Any] | None = None
    description: str | None = Field(default=None, max_length=5000)

    @model_validator(mode="after")
    def _uri_or_fields(self) -> ConnectionIn:
        fields = {"conn_type", "host", "port", "login", "password", "schema_", "extra"}
        if self.uri is not None and fields & self.model_fields_set:
            raise ValueError("give either uri or conn_type with the other fields, not both")
        if self.uri is None and self.conn_type is None:
            raise ValueError("give uri, or conn_type (with host, port, login, password, ...)")
        return self


class ConnectionOut(BaseModel):
    """A stored connection; its password and extra settings show as `***` when set."""

    model_config = ConfigDict(populate_by_name=True)

    conn_id: str
    conn_type: str
    host: str | None
    port: int | None
    login: str | None
    schema_: str | None = Field(alias="schema")
    password: str | None
    extra: str | None
    description: str | None
    updated_at: datetime


class VariableIn(Body):
    value: SecretStr = Field(max_length=1_000_000)
    description: str | None = Field(default=None, max_length=5000)


class VariableOut(BaseModel):
    """A stored variable; its value always shows as `***`."""

    name: str
    value: str
    description: str | None
    updated_at: datetime


# --------------------------------------------------------------------------------- mappings
def dag_out(
    row: DagRow,
    spec: DagSpec,
    next_run: tuple[datetime, datetime] | None,
    last_run: DagRunRow | None,
) -> DagOut:
    return DagOut(
        dag_id=row.dag_id,
        fileloc=row.fileloc,
        description=spec.description,
        schedule=_schedule(row),
        tags=list(spec.tags),
        paused=row.is_paused,
        active=row.is_active,
        tasks=len(spec.tasks),
        next_run=next_run[0] if next_run else None,
        next_data_interval_end=next_run[1] if next_run else None,
        last_run=RunSummary(
            run_id=last_run.run_id, state=last_run.state, logical_date=last_run.logical_date
        )
        if last_run is not None
        else None,
    )


def dag_detail(
    row: DagRow,
    spec: DagSpec,
    next_run: tuple[datetime, datetime] | None,
    last_run: DagRunRow | None,
) -> DagDetail:
    summary = dag_out(row, spec, next_run, last_run)
    return DagDetail(
        **summary.model_dump(),
        params={name: p.model_dump(mode="json") for name, p in spec.params.items()},
        task_list=[
            TaskOut(
                task_id=t.task_id,
                kind=t.kind.value,
                image=t.image,
                upstream_task_ids=list(t.upstream_task_ids),
                trigger_rule=t.trigger_rule.value,
                retries=t.retries,
                pool=t.pool,
            )
            for t in spec.tasks
        ],
    )


def _schedule(row: DagRow) -> str | None:
    schedule = json.loads(row.spec_json).get("schedule")
    if schedule is None:
        return None
    value = schedule.get("expression") or schedule.get("every")
    return str(value) if value is not None else None


def run_out(run: DagRunRow) -> RunOut:
    return RunOut(
        dag_id=run.dag_id,
        run_id=run.run_id,
        run_type=run.run_type,
        state=run.state,
        logical_date=run.logical_date,
        data_interval_start=run.data_interval_start,
        data_interval_end=run.data_interval_end,
        conf=run.conf,
        queued_at=run.queued_at,
        start_date=run.start_date,
        end_date=run.end_date,
        state_detail=run.state_detail,
    )


def ti_out(ti: TaskInstanceRow) -> TaskInstanceOut:
    return TaskInstanceOut(
        task_id=ti.task_id,
        map_index=ti.map_index,
        state=ti.state,
        try_number=ti.try_number,
        max_tries=ti.max_tries,
        exit_code=ti.exit_code,
        output=json.loads(ti.output_json) if ti.output_json is not None else None,
        state_detail=ti.state_detail,
        container_name=ti.container_name,
        pool=ti.pool,
        queued_at=ti.queued_at,
        start_date=ti.start_date,
        end_date=ti.end_date,
    )


def import_error_out(row: ImportErrorRow) -> ImportErrorOut:
    return ImportErrorOut(fileloc=row.fileloc, error=row.error, timestamp=row.timestamp)


def pool_out(pool: PoolUse) -> PoolOut:
    return PoolOut(
        name=pool.name,
        slots=pool.slots,
        running=pool.running,
        queued=pool.queued,
        open=pool.open,
        description=pool.description,
    )


def changes_out(changes: Changes) -> ChangesOut:
    return ChangesOut(
        dag_id=changes.dag_id,
        run_id=changes.run_id,
        run_state_before=changes.run_state_before,
        run_state=changes.run_state,
        tasks=[
            ChangeOut(
                task_id=c.task_id,
                map_index=c.map_index,
                from_state=c.from_state,
                to_state=c.to_state,
                try_number=c.try_number,
                stopping=c.stopping,
            )
            for c in changes.tasks
        ],
    )


def connection_out(summary: ConnectionSummary) -> ConnectionOut:
    return ConnectionOut(
        conn_id=summary.conn_id,
        conn_type=summary.conn_type,
        host=summary.host,
        port=summary.port,
        login=summary.login,
        schema_=summary.schema,
        password=MASK if summary.has_password else None,
        extra=MASK if summary.has_extra else None,
        description=summary.description,
        updated_at=summary.updated_at,
    )


def variable_out(summary: VariableSummary) -> VariableOut:
    return VariableOut(
        name=summary.name,
        value=MASK,
        description=summary.description,
        updated_at=summary.updated_at,
    )
