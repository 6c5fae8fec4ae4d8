"""Creating runs: manual triggers with validated conf, and the data interval they cover."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from orchestrator.errors import InvalidConf, UserError
from orchestrator.models.json_values import BadJson, loads_strict
from orchestrator.models.params import ParamsInvalid, validate_params
from orchestrator.models.run_info import RunInfo
from orchestrator.models.specs import DagSpec, ParamSpec
from orchestrator.scheduling.timetables import (
    manual_data_interval,
    next_logical_date,
    prev_logical_date,
)
from orchestrator.store import dags as dag_store
from orchestrator.store import runs as run_store
from orchestrator.store.tables import DagRunRow


def parse_conf(text: str | None, *, where: str = "--conf") -> dict[str, Any]:
    """Parse run conf given as text: it must be a JSON object."""
    if text is None or not text.strip():
        return {}
    try:
        value = loads_strict(text)
    except BadJson as exc:
        raise InvalidConf(
            f"{where} is not valid JSON: {exc}; pass an object such as '{{\"rows\": 10}}'"
        ) from None
    if not isinstance(value, dict):
        raise InvalidConf(f"{where} must be a JSON object, not {type(value).__name__}")
    return value


def validate_conf(spec: DagSpec, conf: dict[str, Any]) -> dict[str, Any]:
    """Validate run conf against the DAG's typed params; return the params' values.

    The DAG's params, then tasks' params the DAG does not declare, form one pydantic model
    (`models.params`): conf overrides defaults, a required param (no default) must be given,
    and keys no param declares are passed through. Raises InvalidConf naming the DAG and, for
    each failing param, what it expects and the value given.
    """
    params: dict[str, ParamSpec] = dict(spec.params)
    for task in spec.tasks:
        for name, param in task.params.items():
            params.setdefault(name, param)
    try:
        return validate_params(params, conf)
    except ParamsInvalid as exc:
        lines = "\n".join(f"  {problem}" for problem in exc.problems)
        raise InvalidConf(
            f"conf for DAG {spec.dag_id!r} does not fit its params:\n{lines}\n"
            "Fix the conf (--conf) and trigger again; nothing was stored."
        ) from None


def triggerable_spec(session: Session, dag_id: str) -> DagSpec:
    """The stored spec of a DAG that may get new runs: raises DagNotFound for an unknown DAG
    and UserError for one whose file is gone (inactive)."""
    row = dag_store.get_dag_row(session, dag_id)
    if not row.is_active:
        raise UserError(f"cannot trigger DAG '{dag_id}': it is no longer in the DAGs folder")
    return DagSpec.model_validate_json(row.spec_json)


def trigger_run(
    session: Session,
    spec: DagSpec,
    *,
    now: datetime,
    conf: dict[str, Any] | None = None,
    logical_date: datetime | None = None,
    run_id: str | None = None,
    run_type: str = "manual",
) -> DagRunRow:
    """Queue a manual run. Its logical date defaults to now; its data interval is the
    schedule's latest complete interval at that date (Airflow 2's manual-run rule)."""
    conf = dict(conf or {})
    validate_conf(spec, conf)
    when = logical_date or now
    interval = manual_data_interval(spec.schedule, spec.timezone, when)
    return run_store.create_run(
        session,
        spec,
        run_id=run_id or f"{run_type}__{when.isoformat()}",
        run_type=run_type,
        logical_date=when,
        data_interval=interval,
        conf=conf,
        now=now,
    )


def preview_run_info(spec: DagSpec, when: datetime, conf: dict[str, Any]) -> RunInfo:
    """What templates would see in a manual run at `when` (nothing is stored)."""
    validate_conf(spec, conf)
    start, end = manual_data_interval(spec.schedule, spec.timezone, when)
    scheduled = spec.schedule is not None
    return RunInfo(
        run_id=f"manual__{when.isoformat()}",
        run_type="manual",
        logical_date=when,
        data_interval_start=start,
        data_interval_end=end,
        conf=conf,
        prev_logical_date=prev_logical_date(spec.schedule, spec.timezone, when)
        if scheduled
        else None,
        next_logical_date=next_logical_date(spec.schedule, spec.timezone, when)
        if scheduled
        else None,
    )
