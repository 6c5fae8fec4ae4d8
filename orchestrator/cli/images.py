"""`orchestrator images ...`: make the local base images and build the task images.

On a host that cannot pull from a registry, run `orchestrator images bootstrap` once (as root:
it uses debootstrap) and then `orchestrator images build` after each change to task-images/.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import docker
import docker.errors
import typer

from orchestrator.errors import OrchestratorError, RuntimeUnavailable
from orchestrator.services.images import (
    BUSYBOX_IMAGE,
    POSTGRES_IMAGE,
    PYTHON_BASE_REPOSITORY,
    TASK_IMAGE_LABEL,
    bootstrap_base_images,
    build_task_images,
)

app = typer.Typer(
    help="Make the local base images (offline) and build the task images in task-images/.",
    no_args_is_help=True,
)

DockerUrl = Annotated[
    str | None,
    typer.Option(
        "--docker-url",
        envvar="ORCH_DOCKER_URL",
        help="Docker engine URL (default: DOCKER_HOST, else the local socket).",
        show_default=False,
    ),
]


def docker_client(url: str | None) -> docker.DockerClient:
    """A client for `url` (or the docker SDK's environment defaults), API version negotiated.

    `version="auto"` asks the engine for its API version, so an SDK that defaults to a newer
    API (docker 7.1 speaks 1.44+) still talks to an older engine such as 20.10 (API 1.41).
    """
    environment = dict(os.environ)
    if url:
        environment["DOCKER_HOST"] = url
    try:
        client = docker.from_env(version="auto", environment=environment)
        client.ping()
    except docker.errors.DockerException as exc:
        where = url or environment.get("DOCKER_HOST") or "the local socket"
        raise RuntimeUnavailable(
            f"cannot reach the Docker engine at {where}: {exc}. Is it running, and may this "
            "user use it? Pass --docker-url or set ORCH_DOCKER_URL for another engine."
        ) from exc
    return client


def _echo(line: str) -> None:
    typer.echo(line)


def _fail(exc: OrchestratorError) -> typer.Exit:
    typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=1)


def default_task_images_dir(start: Path | None = None) -> Path:
    """`task-images` in the working directory or the nearest parent that has one."""
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        if (directory / "task-images").is_dir():
            return directory / "task-images"
    return here / "task-images"


@app.command()
def bootstrap(
    force: Annotated[
        bool, typer.Option("--force", help="Remake the images even if their tags exist.")
    ] = False,
    work_dir: Annotated[
        Path | None,
        typer.Option(help="Where debootstrap's temporary root filesystem goes (default: /tmp)."),
    ] = None,
    docker_url: DockerUrl = None,
) -> None:
    """Make orchestrator/busybox, orchestrator/python-base and orchestrator/postgres locally.

    Needs root, debootstrap and busybox-static (`apt-get install -y debootstrap
    busybox-static`); uses this host's apt mirror. Images that exist are left alone.
    """
    try:
        client = docker_client(docker_url)
        made = bootstrap_base_images(client, force=force, log=_echo, work_dir=work_dir)
    except OrchestratorError as exc:
        raise _fail(exc) from exc
    typer.echo(f"made: {', '.join(made)}" if made else "all base images were already present")


@app.command()
def build(
    base_image: Annotated[
        str | None,
        typer.Option(help="Base image for every Dockerfile (default: its own, else the local)."),
    ] = None,
    directory: Annotated[
        Path | None,
        typer.Option("--dir", help="Directory of <name>/Dockerfile (default: ./task-images)."),
    ] = None,
    docker_url: DockerUrl = None,
) -> None:
    """Build every task-images/<name>/Dockerfile as orchestrator/<name>:latest."""
    try:
        client = docker_client(docker_url)
        built = build_task_images(
            client, directory or default_task_images_dir(), base_image=base_image, log=_echo
        )
    except OrchestratorError as exc:
        raise _fail(exc) from exc
    typer.echo(f"built: {', '.join(built)}")


@app.command("list")
def list_images(docker_url: DockerUrl = None) -> None:
    """Show the orchestrator's base and task images present on the engine."""
    try:
        client = docker_client(docker_url)
    except OrchestratorError as exc:
        raise _fail(exc) from exc
    wanted = [BUSYBOX_IMAGE, POSTGRES_IMAGE]
    rows: list[tuple[str, str, float]] = []
    for image in client.images.list():
        tags = [str(t) for t in image.tags]
        labels = image.labels or {}
        for tag in tags:
            if (
                tag in wanted
                or tag.startswith(PYTHON_BASE_REPOSITORY)
                or TASK_IMAGE_LABEL in labels
            ):
                rows.append((tag, str(image.short_id), float(image.attrs.get("Size", 0)) / 2**20))
    for tag in wanted:
        if not any(row[0] == tag for row in rows):
            rows.append((tag, "missing", 0.0))
    for tag, short_id, size in sorted(rows):
        typer.echo(f"{tag:<40} {short_id.removeprefix('sha256:'):<14} {size:8.1f} MiB")
