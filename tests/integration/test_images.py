"""The base and task images against a real engine: bootstrap, build, and each image's job.

Base images are made once per machine and reused by tag (`bootstrap_base_images` is a no-op
when they exist); task images are rebuilt from the local python base, which Docker's layer
cache makes near-free. Every container and volume made here is labelled with this session's
`orch.test` label and removed by label when the module finishes.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest

from orchestrator.services.images import (
    BUSYBOX_IMAGE,
    POSTGRES_IMAGE,
    POSTGRES_READY_LINE,
    PYTHON_BASE_IMAGE,
    REQUIRED_APPLETS,
    ImageBuildError,
    bootstrap_base_images,
    build_task_images,
    make_busybox_image,
)
from tests.integration.conftest import remove_labelled
from tests.support import TEST_SESSION_LABEL

pytestmark = pytest.mark.docker

TASK_IMAGES = Path(__file__).resolve().parents[2] / "task-images"
LABELS = {"orch.test": TEST_SESSION_LABEL, "orch.test.module": "images"}
DAY = "2026-01-01"


@pytest.fixture(scope="module")
def client(docker_client: docker.DockerClient) -> Iterator[docker.DockerClient]:
    """The engine, with everything this module labels removed afterwards."""
    yield docker_client
    remove_labelled(docker_client, LABELS)


@pytest.fixture(scope="module")
def base_images(client: docker.DockerClient) -> list[str]:
    """Make the base images if this machine lacks them (minutes, once); else nothing."""
    return bootstrap_base_images(client, log=lambda line: None)


@pytest.fixture(scope="module")
def task_images(client: docker.DockerClient, base_images: list[str]) -> list[str]:
    return build_task_images(
        client, TASK_IMAGES, base_image=PYTHON_BASE_IMAGE, log=lambda line: None
    )


@pytest.fixture
def volume(client: docker.DockerClient) -> str:
    name = f"orch-test-images-{uuid.uuid4().hex[:8]}"
    client.volumes.create(name, labels=LABELS)
    return name


def run(
    client: docker.DockerClient, image: str, command: list[str], **kwargs: Any
) -> tuple[int, str]:
    """Run a container to its end; its exit code and its logs (stdout and stderr)."""
    container = client.containers.run(image, command, detach=True, labels=LABELS, **kwargs)
    status = container.wait(timeout=120)
    logs = container.logs(stdout=True, stderr=True).decode()
    container.remove(force=True)
    return int(status["StatusCode"]), logs


def run_task(
    client: docker.DockerClient,
    image: str,
    command: list[str],
    outputs: Path,
    volume: str,
    environment: dict[str, str] | None = None,
) -> tuple[int, str, Any]:
    """Run a task image under the container contract; exit code, logs and its JSON output."""
    outputs.mkdir(parents=True, exist_ok=True)
    output_file = outputs / "output.json"
    output_file.unlink(missing_ok=True)
    env = {
        "ORCH_DAG_ID": "example_sales",
        "ORCH_TASK_ID": command[0].lstrip("-"),
        "ORCH_RUN_ID": "manual__2026-01-01T00:00:00+00:00",
        "ORCH_LOGICAL_DATE": f"{DAY}T00:00:00+00:00",
        "ORCH_TRY_NUMBER": "1",
        "ORCH_MAP_INDEX": "-1",
        "ORCH_OUTPUT_PATH": "/orch/output/output.json",
        **(environment or {}),
    }
    code, logs = run(
        client,
        image,
        command,
        environment=env,
        volumes={volume: {"bind": "/data", "mode": "rw"}, str(outputs): {"bind": "/orch/output"}},
    )
    output = json.loads(output_file.read_text()) if output_file.exists() else None
    return code, logs, output


def test_bootstrap_a_second_time_is_a_fast_no_op(
    client: docker.DockerClient, base_images: list[str]
) -> None:
    before = {tag: client.images.get(tag).id for tag in (BUSYBOX_IMAGE, POSTGRES_IMAGE)}
    lines: list[str] = []

    started = time.monotonic()
    made = bootstrap_base_images(client, log=lines.append)

    assert made == []
    assert time.monotonic() - started < 5
    assert sum("already present" in line for line in lines) == 3
    assert {tag: client.images.get(tag).id for tag in before} == before


def test_busybox_image_has_the_applets_on_its_path(client: docker.DockerClient) -> None:
    tag = f"orchestrator-test/busybox:{uuid.uuid4().hex[:8]}"
    make_busybox_image(client, tag, log=lambda line: None, labels=LABELS)
    try:
        applets = " ".join(sorted(REQUIRED_APPLETS))
        script = f'for a in {applets}; do command -v "$a" >/dev/null || echo "no $a"; done; echo ok'
        code, logs = run(client, tag, ["sh", "-c", script])
    finally:
        client.images.remove(tag, force=True)

    assert (code, logs.strip()) == (0, "ok")


def test_task_images_build_on_the_local_python_base(
    client: docker.DockerClient, task_images: list[str]
) -> None:
    base_layers = client.images.get(PYTHON_BASE_IMAGE).attrs["RootFS"]["Layers"]

    assert task_images == [
        "orchestrator/datagen:latest",
        "orchestrator/report:latest",
        "orchestrator/transform:latest",
    ]
    for tag in task_images:
        layers = client.images.get(tag).attrs["RootFS"]["Layers"]
        assert layers[: len(base_layers)] == base_layers, tag


def test_a_failing_build_reports_the_builds_error(
    client: docker.DockerClient, base_images: list[str], tmp_path: Path
) -> None:
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "Dockerfile").write_text(
        "ARG BASE_IMAGE=python:3.12-slim\nFROM ${BASE_IMAGE}\nRUN echo about to fail && exit 3\n"
    )
    lines: list[str] = []

    with pytest.raises(ImageBuildError, match="returned a non-zero code: 3"):
        build_task_images(client, tmp_path, base_image=BUSYBOX_IMAGE, log=lines.append)
    assert "about to fail" in lines


def test_datagen_writes_the_requested_rows_into_a_volume_deterministically(
    client: docker.DockerClient, task_images: list[str], volume: str, tmp_path: Path
) -> None:
    command = ["--date", DAY, "--rows", "250", "--shards", "2", "--out", "/data/20260101/raw"]

    code, logs, output = run_task(
        client, "orchestrator/datagen:latest", command, tmp_path / "o1", volume
    )
    count = ["sh", "-c", "cat /data/20260101/raw/*.csv | wc -l; md5sum /data/20260101/raw/*.csv"]
    _, first = run(client, BUSYBOX_IMAGE, count, volumes={volume: {"bind": "/data"}})
    run_task(client, "orchestrator/datagen:latest", command, tmp_path / "o2", volume)
    _, second = run(client, BUSYBOX_IMAGE, count, volumes={volume: {"bind": "/data"}})

    assert code == 0, logs
    assert "done: 250 rows in 2 files" in logs
    assert output["rows"] == 250 and len(output["files"]) == 2
    assert first.splitlines()[0].strip() == str(250 + 2)  # two header lines
    assert first == second  # a retry rewrites identical files


def test_clean_aggregate_and_report_through_the_volume_and_outputs(
    client: docker.DockerClient, task_images: list[str], volume: str, tmp_path: Path
) -> None:
    generate = ["--date", DAY, "--rows", "400", "--out", "/data/d/raw"]
    code, logs, _ = run_task(client, "orchestrator/datagen:latest", generate, tmp_path, volume)
    assert code == 0, logs

    clean = ["clean", "--in", "/data/d/raw", "--out", "/data/d/clean"]
    code, logs, cleaned = run_task(client, "orchestrator/transform:latest", clean, tmp_path, volume)
    assert code == 0, logs
    assert cleaned["rows_in"] == 400
    assert cleaned["rows_out"] + sum(cleaned["dropped"].values()) == 400
    assert 0 < sum(cleaned["dropped"].values()) < 40

    aggregate = ["aggregate", "--in", "/data/d/clean", "--date", DAY]
    code, logs, summary = run_task(
        client, "orchestrator/transform:latest", aggregate, tmp_path, volume
    )
    assert code == 0, logs
    assert summary["date"] == DAY
    assert summary["orders"] + summary["cancelled"] + summary["refunded"] == cleaned["rows_out"]
    by_region = sum(region["revenue"] for region in summary["by_region"].values())
    assert abs(by_region - summary["revenue"]) < 0.01
    assert len(summary["top_products"]) == 3

    report = ["--title", "Daily sales", "--min-orders", "1"]
    code, logs, reported = run_task(
        client,
        "orchestrator/report:latest",
        report,
        tmp_path,
        volume,
        environment={"SUMMARY": json.dumps(summary)},
    )
    assert code == 0, logs
    assert "Daily sales" in logs and f"{summary['revenue']:.2f}" in logs
    assert reported == {"ok": True, "orders": summary["orders"], "revenue": summary["revenue"]}

    gate = ["--min-orders", str(summary["orders"] + 1)]
    code, logs, _ = run_task(
        client,
        "orchestrator/report:latest",
        gate,
        tmp_path,
        volume,
        environment={"SUMMARY": json.dumps(summary)},
    )
    assert code == 1 and "FAILED" in logs


def test_aggregate_fails_clearly_when_there_is_nothing_to_read(
    client: docker.DockerClient, task_images: list[str], volume: str, tmp_path: Path
) -> None:
    aggregate = ["aggregate", "--in", "/data/nothing-here"]
    code, logs, output = run_task(
        client, "orchestrator/transform:latest", aggregate, tmp_path, volume
    )

    assert code != 0 and output is None
    assert "no *.csv files in /data/nothing-here" in logs


@pytest.mark.postgres
def test_postgres_image_serves_password_connections_on_a_published_port(
    client: docker.DockerClient, base_images: list[str]
) -> None:
    psycopg = pytest.importorskip("psycopg")
    server = client.containers.run(
        POSTGRES_IMAGE,
        detach=True,
        labels=LABELS,
        environment={"POSTGRES_USER": "orch", "POSTGRES_PASSWORD": "s3cret", "POSTGRES_DB": "orch"},
        ports={"5432/tcp": ("127.0.0.1", None)},
    )
    deadline = time.monotonic() + 60
    while POSTGRES_READY_LINE not in server.logs().decode():
        server.reload()
        assert server.status != "exited", server.logs().decode()
        assert time.monotonic() < deadline, server.logs().decode()
        time.sleep(0.2)
    server.reload()
    port = int(server.ports["5432/tcp"][0]["HostPort"])
    address = server.attrs["NetworkSettings"]["IPAddress"]

    with psycopg.connect(
        host="127.0.0.1", port=port, user="orch", password="s3cret", dbname="orch"
    ) as conn:
        assert conn.execute("select current_user, current_database()").fetchone() == (
            "orch",
            "orch",
        )
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(host="127.0.0.1", port=port, user="orch", password="wrong", dbname="orch")
    code, logs = run(
        client,
        POSTGRES_IMAGE,
        ["psql", "-h", address, "-U", "orch", "-d", "orch", "-Atc", "select 40 + 2"],
        environment={"PGPASSWORD": "s3cret"},
    )
    assert (code, logs.strip()) == (0, "42")
    assert server.logs().decode().count(POSTGRES_READY_LINE) == 1
