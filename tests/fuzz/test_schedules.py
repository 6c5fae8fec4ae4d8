"""Random cron strings and intervals: a clear DagDefinitionError at load, or a schedule the
timetables can step through without raising."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from orchestrator.errors import DagDefinitionError
from orchestrator.models.specs import DagSpec
from orchestrator.scheduling import planning
from orchestrator.sdk.convert import to_schedule
from tests.fuzz.strategies import fuzz

_NUMBER = st.integers(min_value=0, max_value=70).map(str)
_NAME = st.sampled_from(["JAN", "feb", "MON", "sun", "L", "W", "?", "#", "H"])
_ATOM = st.one_of(
    st.just("*"),
    _NUMBER,
    _NAME,
    st.builds(lambda a, b: f"{a}-{b}", _NUMBER, _NUMBER),
    st.builds(lambda a, b: f"{a}/{b}", st.sampled_from(["*", "0", "5", "1-20"]), _NUMBER),
    st.text(alphabet="0123456789*/-,LW#?", min_size=1, max_size=5),
)
_FIELD = st.lists(_ATOM, min_size=1, max_size=3).map(",".join)
crons = st.one_of(
    st.lists(_FIELD, min_size=1, max_size=7).map(" ".join),
    st.lists(_FIELD, min_size=5, max_size=5).map(" ".join),
    st.sampled_from(["@daily", "@hourly", "@once", "@weekly", "@monthly", "@yearly", "@nope"]),
    st.text(max_size=20),
)
zones = st.sampled_from(["UTC", "Europe/Amsterdam", "America/New_York", "Australia/Lord_Howe"])
starts = st.datetimes(
    min_value=datetime(1990, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)
)


def step_through(spec: DagSpec, now: datetime) -> None:
    """Plan a few intervals and the latest complete one: they must be ordered and valid."""
    last = None
    for _ in range(4):
        interval = planning.next_interval(spec, last)
        if interval is None:
            break
        assert interval.start <= interval.end
        if last is not None:
            assert interval.start >= last.end
        last = interval
    latest = planning.latest_complete_interval(spec, now)
    if latest is not None:
        assert latest.end <= now
    planning.next_run(spec, None, now, catchup=False)


@fuzz(400)
@given(crons, zones, starts, starts)
def test_cron_strings_are_refused_clearly_or_planned(
    expression: str, tz: str, start: datetime, now: datetime
) -> None:
    try:
        schedule = to_schedule("DAG 'fuzz'", expression)
    except DagDefinitionError as exc:
        assert "DAG 'fuzz'" in str(exc)
        return
    spec = DagSpec(dag_id="fuzz", schedule=schedule, start_date=start, timezone=tz)
    step_through(spec, now)


@fuzz(200)
@given(
    st.timedeltas(min_value=timedelta(days=-5), max_value=timedelta(days=36525)),
    starts,
    starts,
)
def test_interval_schedules_are_refused_clearly_or_planned(
    every: timedelta, start: datetime, now: datetime
) -> None:
    try:
        schedule = to_schedule("DAG 'fuzz'", every)
    except DagDefinitionError:
        assert every <= timedelta(0)
        return
    step_through(DagSpec(dag_id="fuzz", schedule=schedule, start_date=start), now)
