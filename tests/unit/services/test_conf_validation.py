"""Triggering runs with conf: validated against typed params; a rejected run stores nothing."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.errors import InvalidConf
from orchestrator.models.specs import DagSpec, ParamSpec, TaskSpec
from orchestrator.services.runs import preview_run_info, trigger_run, validate_conf
from orchestrator.store import runs as run_store
from tests.support import FixedClock

DAG = DagSpec(
    dag_id="etl",
    params={
        "rows": ParamSpec(default=10, type="integer", minimum=1),
        "day": ParamSpec(type="string"),
    },
    tasks=(
        TaskSpec(
            task_id="load",
            image="img",
            params={"mode": ParamSpec(default="a", type="string", enum=("a", "b"))},
        ),
    ),
)


def test_conf_overrides_defaults_and_unknown_keys_pass() -> None:
    values = validate_conf(DAG, {"day": "2026-03-14", "rows": 5, "note": "hi"})
    assert values == {"rows": 5, "day": "2026-03-14", "mode": "a", "note": "hi"}


def test_task_params_are_validated_too() -> None:
    with pytest.raises(InvalidConf, match="param 'mode' expects string, one of"):
        validate_conf(DAG, {"day": "x", "mode": "c"})


def test_invalid_conf_is_rejected_and_nothing_is_stored(
    sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    with sessions() as session:
        with pytest.raises(InvalidConf) as info:
            trigger_run(session, DAG, now=clock.now(), conf={"rows": "many", "day": "d"})
        assert run_store.list_runs(session, "etl") == []
    message = str(info.value)
    assert "conf for DAG 'etl' does not fit its params" in message
    assert "param 'rows' expects integer, >= 1, got \"many\"" in message
    assert "nothing was stored" in message


def test_a_missing_required_param_is_named(
    sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    with (
        sessions() as session,
        pytest.raises(InvalidConf, match="param 'day' \\(string\\) is required"),
    ):
        trigger_run(session, DAG, now=clock.now(), conf={})


def test_stored_conf_is_what_was_given(sessions: sessionmaker[Session], clock: FixedClock) -> None:
    with sessions.begin() as session:
        run = trigger_run(session, DAG, now=clock.now(), conf={"day": "2026-03-14"})
        assert run.conf == {"day": "2026-03-14"}  # dag_run.conf: as triggered


def test_preview_validates_like_a_trigger(clock: FixedClock) -> None:
    with pytest.raises(InvalidConf, match="'rows'"):
        preview_run_info(DAG, clock.now(), {"day": "d", "rows": 0})
