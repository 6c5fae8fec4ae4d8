"""What rendering (and the container contract) needs to know about one DAG run.

`RunInfo` is a snapshot the caller builds from its stored run and the DAG's schedule; it holds
no behaviour. Datetimes must be timezone-aware: they are shown to templates in the zone they
carry (the scheduler stores and passes UTC, as Airflow does), so `ds` is the date in that zone.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

__all__ = ["RunInfo", "RunType"]

RunType = Literal["manual", "scheduled", "backfill"]


class RunInfo(BaseModel):
    """One DAG run as templates see it: ids, dates and the run's conf.

    `prev_logical_date` and `next_logical_date` come from the DAG's schedule (the runs before
    and after this one, whether or not they exist); both are None for a DAG without a schedule.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    run_id: str
    run_type: RunType
    logical_date: AwareDatetime
    data_interval_start: AwareDatetime
    data_interval_end: AwareDatetime
    conf: dict[str, Any] = Field(default_factory=dict)
    prev_logical_date: AwareDatetime | None = None
    next_logical_date: AwareDatetime | None = None

    @model_validator(mode="after")
    def _interval_ordered(self) -> RunInfo:
        if self.data_interval_end < self.data_interval_start:
            raise ValueError(
                f"data interval ends ({self.data_interval_end.isoformat()}) before it starts "
                f"({self.data_interval_start.isoformat()})"
            )
        return self
