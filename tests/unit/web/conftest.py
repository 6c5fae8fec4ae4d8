"""A web app on a migrated SQLite store, with one user (and API token) per role and one
finished run of DAG `d` (tasks a >> b) executed on the fake runtime."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.models.launch import LaunchRequest
from orchestrator.models.specs import DagSpec, ParamSpec
from orchestrator.runtime.fake import FakeBehavior
from orchestrator.services.secrets import generate_key
from orchestrator.services.users import Role, create_user, issue_token
from orchestrator.settings import Settings
from orchestrator.web import create_app
from tests.support import FixedClock
from tests.unit.services.test_scheduler import Harness, t

PASSWORDS = {role: f"secret-{role.value}" for role in Role}
FERNET_KEY = generate_key()
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


def page_token(client: TestClient, path: str = "/login") -> str:
    """The CSRF token a page hands out (what its forms send back)."""
    found = CSRF_META.search(client.get(path).text)
    assert found is not None, f"no CSRF token on {path}"
    return found.group(1)


def sign_in(
    client: TestClient, username: str, password: str, next: str = "/", **kwargs: object
) -> httpx.Response:
    """Sign in through the login form, as a browser does (its token included)."""
    data = {
        "username": username,
        "password": password,
        "next": next,
        "csrf_token": page_token(client),
    }
    return client.post("/login", data=data, **kwargs)  # type: ignore[arg-type]


def dag() -> DagSpec:
    return DagSpec(
        dag_id="d",
        fileloc="/dags/d.py",
        tasks=(t("a"), t("b", "a")),
        params={"rows": ParamSpec(default=1, type="integer", minimum=1)},
    )


def script(request: LaunchRequest) -> FakeBehavior:
    task = request.labels["orch.task_id"]
    return FakeBehavior(logs=f"hello from {task}\nsecond line\n".encode(), output=task)


@dataclass
class Web:
    client: TestClient
    harness: Harness
    run_id: str
    tokens: dict[Role, str] = field(default_factory=dict)

    def auth(self, role: Role) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def sign_in(self, role: Role) -> None:
        response = sign_in(self.client, role.value, PASSWORDS[role])
        assert response.status_code == 200

    def post_form(self, path: str, data: dict[str, str] | None = None) -> httpx.Response:
        """Post a page's form with the CSRF token the pages hand out."""
        token = page_token(self.client, "/")
        return self.client.post(path, data={**(data or {}), "csrf_token": token})


@pytest.fixture
def web(settings: Settings, sessions: sessionmaker[Session], clock: FixedClock) -> Iterator[Web]:
    settings = settings.model_copy(update={"fernet_key": SecretStr(FERNET_KEY)})
    harness = Harness(settings, sessions, clock, script)
    run_id = harness.trigger(dag())
    harness.tick(6)
    tokens = {}
    with sessions.begin() as session:
        for role in Role:
            create_user(session, role.value, PASSWORDS[role], role, clock.now())
            tokens[role] = issue_token(session, role.value, clock.now())
    with TestClient(create_app(settings, sessions, clock)) as client:
        yield Web(client, harness, run_id, tokens)
