"""Authoring the tasks without a container, branches, and the join-after-branch rule."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

import orchestrator
from orchestrator import (
    DAG,
    ContainerTask,
    EmptyTask,
    LatestOnly,
    TaskGroup,
    TriggerRun,
    WaitForRun,
)
from orchestrator.errors import DagDefinitionError
from orchestrator.models.graph import branch_joins
from orchestrator.models.specs import DagSpec, TaskKind, TaskSpec, TriggerRule


def test_control_tasks_are_exported_and_serialize_without_an_image() -> None:
    assert {"EmptyTask", "LatestOnly", "TriggerRun", "WaitForRun"} <= set(orchestrator.__all__)
    with DAG("d", schedule="@daily", start_date=datetime(2026, 1, 1)) as dag:
        start = EmptyTask("start")
        latest = LatestOnly("latest")
        trigger = TriggerRun(
            "trigger",
            dag_id="other",
            conf={"day": "{{ ds }}", "n": 3},
            wait=True,
            poke_interval=5,
        )
        waiter = WaitForRun(
            "wait", dag_id="up", external_task_id="load", execution_delta=timedelta(hours=1)
        )
        start >> latest >> [trigger, waiter]
    spec = dag.to_spec()
    assert [t.kind for t in spec.tasks] == [
        TaskKind.EMPTY,
        TaskKind.LATEST_ONLY,
        TaskKind.TRIGGER_RUN,
        TaskKind.WAIT_FOR_RUN,
    ]
    assert all(t.image == "" for t in spec.tasks)
    trig = spec.task("trigger").trigger_run
    assert trig is not None
    assert (trig.dag_id, trig.conf, trig.wait, trig.poke_interval) == (
        "other",
        {"day": "{{ ds }}", "n": 3},
        True,
        timedelta(seconds=5),
    )
    wait = spec.task("wait").wait_for_run
    assert wait is not None
    assert (wait.dag_id, wait.task_id, wait.execution_delta) == ("up", "load", timedelta(hours=1))
    assert wait.timeout == timedelta(days=7)
    assert DagSpec.model_validate_json(spec.model_dump_json()) == spec
    assert repr(trigger) == "<TriggerRun 'trigger'>"


def test_airflow_argument_names_are_accepted_for_wait_for_run() -> None:
    with DAG("d") as dag:
        WaitForRun("w", external_dag_id="up", task_id_to_wait="load")
    wait = dag.to_spec().task("w").wait_for_run
    assert wait is not None and (wait.dag_id, wait.task_id) == ("up", "load")


def test_execution_date_fn_is_refused_with_the_template_to_write_instead() -> None:
    with DAG("d"), pytest.raises(DagDefinitionError) as caught:
        WaitForRun("w", dag_id="up", execution_date_fn=lambda dt: dt)
    message = str(caught.value)
    assert message.startswith("task 'w' in DAG 'd': WaitForRun takes no execution_date_fn")
    assert "never runs Python from DAG files" in message
    assert 'execution_date="{{ (logical_date - macros.timedelta(hours=1)).isoformat() }}"' in (
        message
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "WaitForRun needs dag_id"),
        ({"dag_id": "up", "external_dag_id": "up"}, "give dag_id or external_dag_id, not both"),
        (
            {"dag_id": "up", "execution_delta": 60, "execution_date": "{{ ds }}"},
            "execution_delta or execution_date, not both",
        ),
        ({"dag_id": "up", "allowed_states": ["sucess"]}, "'sucess' is not a run state"),
        (
            {"dag_id": "up", "external_task_id": "t", "failed_states": ["success"]},
            "success cannot be both allowed and failed",
        ),
        ({"dag_id": "up", "poke_interval": 0}, "poke_interval: must be positive"),
    ],
)
def test_bad_wait_for_run_arguments_are_located(kwargs: dict[str, object], message: str) -> None:
    with DAG("d"), pytest.raises(DagDefinitionError, match=message) as caught:
        WaitForRun("w", **kwargs)  # type: ignore[arg-type]
    assert str(caught.value).startswith("task 'w' in DAG 'd'")


def test_trigger_run_conf_must_be_json() -> None:
    with DAG("d"), pytest.raises(DagDefinitionError, match="TriggerRun conf must be JSON"):
        TriggerRun("t", dag_id="other", conf={"when": datetime(2026, 1, 1)})
    with DAG("d"), pytest.raises(DagDefinitionError, match="task 't' in DAG 'd': dag_id"):
        TriggerRun("t", dag_id="not an id")


def test_control_tasks_take_only_the_trigger_rule_from_default_args() -> None:
    args = {"image": "alpine", "retries": 3, "trigger_rule": "all_done"}
    with DAG("d", default_args=args) as dag:
        EmptyTask("e")
        EmptyTask("own", trigger_rule="one_success")
    spec = dag.to_spec()
    assert (spec.task("e").image, spec.task("e").retries) == ("", 0)
    assert spec.task("e").trigger_rule == TriggerRule.ALL_DONE
    assert spec.task("own").trigger_rule == TriggerRule.ONE_SUCCESS


def test_a_control_task_in_a_group_gets_the_prefixed_id() -> None:
    with DAG("d") as dag, TaskGroup("g"):
        EmptyTask("join")
    assert dag.to_spec().task("g.join").group_id == "g"


def test_spec_kinds_are_checked() -> None:
    with pytest.raises(ValueError, match="image is required"):
        TaskSpec(task_id="t")
    with pytest.raises(ValueError, match="a empty task runs no container: it takes no image"):
        TaskSpec(task_id="t", kind=TaskKind.EMPTY, image="alpine")
    with pytest.raises(ValueError, match="branch=True is for container tasks only"):
        TaskSpec(task_id="t", kind=TaskKind.EMPTY, branch=True)
    with pytest.raises(ValueError, match="`trigger_run` settings go with kind 'trigger_run'"):
        TaskSpec(task_id="t", kind=TaskKind.TRIGGER_RUN)


# ------------------------------------------------------------------ join after branch
def _branch_dag(**join_kw: object) -> DagSpec:
    with DAG("d", default_args={"image": "alpine"}) as dag:
        choose = ContainerTask("choose", branch=True)
        a, b = ContainerTask("a"), ContainerTask("b")
        join = ContainerTask("join", **join_kw)  # type: ignore[arg-type]
        after = ContainerTask("after")
        choose >> [a, b] >> join >> after
    return dag.to_spec()


def test_a_join_after_a_branch_gets_none_failed_min_one_success() -> None:
    spec = _branch_dag()
    assert spec.task("choose").branch
    assert spec.task("join").trigger_rule == TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS
    # tasks on one path, and tasks after the join, keep the default
    assert spec.task("a").trigger_rule == TriggerRule.ALL_SUCCESS
    assert spec.task("after").trigger_rule == TriggerRule.ALL_SUCCESS


def test_an_explicit_rule_on_a_join_is_kept() -> None:
    assert _branch_dag(trigger_rule="all_success").task("join").trigger_rule == "all_success"
    with DAG("d", default_args={"image": "alpine", "trigger_rule": "all_done"}) as dag:
        choose = ContainerTask("choose", branch=True)
        a = ContainerTask("a")
        join = EmptyTask("join")
        choose >> [a, join]
        a >> join
    assert dag.to_spec().task("join").trigger_rule == TriggerRule.ALL_DONE


def test_which_tasks_are_joins_after_a_branch() -> None:
    def spec(*tasks: TaskSpec) -> DagSpec:
        return DagSpec(dag_id="d", tasks=tasks)

    def t(task_id: str, *upstream: str, **kw: object) -> TaskSpec:
        return TaskSpec(task_id=task_id, image="i", upstream_task_ids=upstream, **kw)  # type: ignore[arg-type]

    # the branch itself as one path: choose >> [a, join], a >> join
    assert branch_joins(spec(t("c", branch=True), t("a", "c"), t("join", "c", "a"))) == {
        "join": "c"
    }
    # two parents on the same path are not a join
    assert branch_joins(spec(t("c", branch=True), t("a", "c"), t("b", "a"), t("x", "a", "b"))) == {}
    # longer paths meet
    assert branch_joins(
        spec(t("c", branch=True), t("a", "c"), t("a2", "a"), t("b", "c"), t("j", "a2", "b"))
    ) == {"j": "c"}
    # without a branch, a diamond is no join
    assert branch_joins(spec(t("c"), t("a", "c"), t("b", "c"), t("j", "a", "b"))) == {}
