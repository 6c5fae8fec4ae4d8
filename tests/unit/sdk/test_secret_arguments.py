"""`secrets=` on tasks and in default_args, built with `Secret`."""

from __future__ import annotations

import pytest

from orchestrator import DAG, ContainerTask, Secret
from orchestrator.errors import DagDefinitionError
from orchestrator.models.secrets import SecretRef
from orchestrator.models.specs import DagSpec


def test_secrets_reach_the_spec_and_survive_json() -> None:
    with DAG("d", default_args={"image": "img", "secrets": {"TOKEN": Secret.env("T")}}) as dag:
        inherits = ContainerTask("inherits")
        ContainerTask(
            "own",
            secrets={"DB": Secret.conn("my_db"), "URI": Secret.conn("my_db", "uri")},
            environment={"PLAIN": "1"},
        )
    assert inherits.spec.secrets == {"TOKEN": SecretRef(source="env", key="T")}
    spec = dag.to_spec()
    again = DagSpec.model_validate_json(spec.model_dump_json())
    own = again.task("own").secrets
    assert own["DB"].describe() == "conn:my_db.password"
    assert own["URI"].describe() == "conn:my_db.uri"
    assert Secret.var("api_key").describe() == "var:api_key"


@pytest.mark.parametrize(
    ("secrets", "message"),
    [
        ({"1BAD": SecretRef(source="var", key="x")}, "not an environment variable name"),
        ({"PLAIN": SecretRef(source="var", key="x")}, "PLAIN given in both environment"),
        ({"X": "just-a-string"}, "must be Secret.conn"),
    ],
)
def test_bad_secrets_are_located_errors(secrets: dict[str, object], message: str) -> None:
    with DAG("d"), pytest.raises(DagDefinitionError, match=message) as caught:
        ContainerTask("t", image="img", environment={"PLAIN": "1"}, secrets=secrets)  # type: ignore[arg-type]
    assert "task 't'" in str(caught.value)


def test_secret_builders_check_their_arguments() -> None:
    with pytest.raises(DagDefinitionError, match=r"unknown field 'pasword'.*password"):
        Secret.conn("db", "pasword")
    with pytest.raises(DagDefinitionError, match=r"Secret.var\(''\): the name"):
        Secret.var("")
