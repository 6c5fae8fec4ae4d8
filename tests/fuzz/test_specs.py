"""Random DAG definitions: a valid spec, or a clear DagDefinitionError / ValidationError."""

from __future__ import annotations

import contextlib
from datetime import timedelta
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from orchestrator import DAG, ContainerTask
from orchestrator.errors import DagDefinitionError, PolicyViolation
from orchestrator.models.specs import DagSpec, TaskSpec
from orchestrator.sdk.dag import TASK_ARGUMENTS
from orchestrator.services.policy import OperatorPolicy
from orchestrator.settings import Settings
from tests.fuzz.strategies import fuzz, json_like, scalars

TASK_FIELDS = sorted(TaskSpec.model_fields)
DAG_FIELDS = sorted(DagSpec.model_fields)
DAG_ARGUMENTS = [
    "schedule",
    "start_date",
    "end_date",
    "timezone",
    "catchup",
    "params",
    "tags",
    "description",
    "max_active_tasks",
    "max_active_runs",
    "dagrun_timeout",
]

values = st.one_of(
    json_like,
    st.timedeltas(),
    st.lists(st.sampled_from(["/etc:/e", "cache:/c", "./d:/d", "tmpfs:/t", "bad"]), max_size=3),
)


def spec_dicts(fields: list[str], required: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    keys = st.one_of(st.sampled_from(fields), st.text(max_size=10))
    return st.builds(
        lambda extra, base: {**extra, **base},
        st.dictionaries(keys, values, max_size=6),
        st.fixed_dictionaries({}, optional=required),
    )


task_dicts = spec_dicts(
    TASK_FIELDS, {"task_id": st.sampled_from(["t", "a.b", "", "-x"]), "image": st.just("i")}
)
dag_dicts = st.builds(
    lambda dag, tasks: {**dag, "tasks": tasks},
    spec_dicts(DAG_FIELDS, {"dag_id": st.sampled_from(["d", "with space", ""])}),
    st.lists(task_dicts, max_size=3),
)


@fuzz(300)
@given(dag_dicts)
def test_stored_specs_validate_or_fail_with_a_validation_error(data: dict[str, Any]) -> None:
    """The loader's parent side validates the child's JSON with `DagSpec.model_validate`."""
    try:
        spec = DagSpec.model_validate(data)
    except ValidationError:
        return
    assert DagSpec.model_validate_json(spec.model_dump_json()) == spec  # round-trips


@fuzz(300)
@given(
    st.dictionaries(st.sampled_from(DAG_ARGUMENTS), values, max_size=4),
    st.dictionaries(
        st.one_of(st.sampled_from(sorted(TASK_ARGUMENTS)), st.text(max_size=8)), values, max_size=5
    ),
)
def test_dag_files_build_a_dag_or_raise_a_dag_definition_error(
    dag_args: dict[str, Any], task_args: dict[str, Any]
) -> None:
    """What a DAG file does: DAG(...) and ContainerTask(...) with any arguments."""
    try:
        with DAG("fuzzed", **dag_args) as dag:
            ContainerTask("t", **{"image": "i", **task_args})
        spec = dag.to_spec(fileloc="/dags/fuzzed.py")
    except DagDefinitionError as exc:
        assert str(exc)
        return
    assert spec.task("t").image


@fuzz(200)
@given(
    st.lists(
        st.fixed_dictionaries(
            {},
            optional={
                "privileged": st.booleans(),
                "network": st.sampled_from(["host", "bridge", "none", None]),
                "cap_add": st.lists(st.sampled_from(["NET_ADMIN", "SYS_TIME", "ALL"]), max_size=2),
                "mounts": st.lists(
                    st.sampled_from(
                        [
                            "/etc:/e",
                            "./d:/d",
                            "../../x:/x",
                            "/var/run/docker.sock:/s",
                            "{{ params.p }}:/p",
                            "v:/v",
                            "~/x:/x",
                        ]
                    ),
                    max_size=3,
                ),
                "retry_delay": st.timedeltas(min_value=timedelta(0)),
            },
        ),
        min_size=1,
        max_size=3,
    ),
    st.booleans(),
)
def test_the_policy_accepts_or_refuses_with_a_policy_violation(
    tasks: list[dict[str, Any]], permissive: bool
) -> None:
    try:
        spec = DagSpec(
            dag_id="d",
            fileloc="/dags/d.py",
            tasks=tuple(
                TaskSpec(task_id=f"t{i}", image="i", **task) for i, task in enumerate(tasks)
            ),
        )
    except ValidationError:
        return
    policy = OperatorPolicy.from_settings(
        Settings(
            allowed_mount_roots=[Path("/dags")],
            allow_privileged=permissive,
            allow_host_network=permissive,
            allowed_capabilities=["NET_ADMIN", "SYS_TIME", "ALL"] if permissive else [],
        )
    )
    try:
        policy.check_dag(spec)
    except PolicyViolation as exc:
        assert "DAG 'd'" in str(exc) and "ORCH_" in str(exc)


@fuzz(100)
@given(scalars)
def test_scalars_as_task_sizes_and_durations(value: Any) -> None:
    for field in ("memory", "shm_size", "cpus", "retry_delay", "execution_timeout", "sla"):
        with contextlib.suppress(ValidationError):
            TaskSpec(task_id="t", image="i", **{field: value})
