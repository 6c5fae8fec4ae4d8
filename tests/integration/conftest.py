"""Real-Docker fixtures: an engine (required under CI), the local test images, and removal of
every container, volume and network this test session labelled."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import docker
import docker.errors
import pytest
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.settings import Settings
from tests.integration.harness import BUSYBOX, PYTHON, Env
from tests.support import TEST_SESSION_LABEL


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    try:
        client = docker.from_env(version="auto")
        client.ping()
    except Exception as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI needs a Docker engine and none answered: {exc}")
        pytest.skip(f"no Docker engine: {exc}")
    yield client
    remove_labelled(client, {"orch.test": TEST_SESSION_LABEL})
    client.close()


def remove_labelled(client: docker.DockerClient, labels: dict[str, str]) -> None:
    filters = {"label": [f"{k}={v}" for k, v in labels.items()]}
    for container in client.api.containers(all=True, filters=filters):
        with contextlib.suppress(docker.errors.NotFound):
            client.api.remove_container(container["Id"], force=True)
    for volume in client.volumes.list(filters=filters):
        volume.remove(force=True)
    for network in client.networks.list(filters=filters):
        network.remove()


@pytest.fixture(scope="session")
def test_images(docker_client: docker.DockerClient) -> None:
    """The local base images (made once by `orchestrator images bootstrap`, reused by tag)."""
    missing = [tag for tag in (BUSYBOX, PYTHON) if not docker_client.images.list(name=tag)]
    if missing:
        from orchestrator.services.images import bootstrap_base_images

        bootstrap_base_images(docker_client)


@pytest.fixture
def env(
    settings: Settings, sessions: sessionmaker[Session], docker_client: docker.DockerClient
) -> Iterator[Env]:
    e = Env(settings, sessions, docker_client)
    yield e
    e.scheduler.close()
