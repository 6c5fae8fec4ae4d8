"""Making the images the orchestrator needs on a host that cannot pull from a registry.

Two jobs:

* `bootstrap_base_images` makes the local base images from what the host itself has:
  `orchestrator/busybox:latest` (the host's static busybox in an empty image),
  `orchestrator/python-base:<suite>` (a Debian minbase with python3, made by debootstrap from
  the host's own apt mirror) and `orchestrator/postgres:15` (Debian's PostgreSQL on that base,
  for the test tier that needs a real server). A tag that already exists is left alone unless
  `force` is given, so running it twice costs one `inspect` per image.
* `build_task_images` builds every `task-images/<name>/Dockerfile` as
  `orchestrator/<name>:latest`. The Dockerfiles take `ARG BASE_IMAGE` with a public default;
  when the engine lacks that default the local python base is passed instead. Builds always
  run, but Docker's layer cache turns an unchanged image into a no-op of well under a second,
  and an edited script is never served stale.

The mirror and suite are read at run time from the host's apt sources and `/etc/os-release`
(`apt_sources`); no host name is written anywhere in the repository. The root filesystems are
put together from host files in `rootfs`; this module turns them into images. Every function
takes the docker client and paths as arguments: nothing here reads the environment or touches
Docker at import.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import docker
import docker.errors

from orchestrator.errors import ImageBuildError, ImageUnavailable
from orchestrator.services.apt_sources import (
    default_apt_source_files,
    find_debian_mirror,
    read_suite,
)
from orchestrator.services.rootfs import (
    busybox_rootfs_tar,
    find_debootstrap,
    find_static_busybox,
    remove_tree,
    run_streaming,
    strip_rootfs,
)

Log = Callable[[str], None]

BUSYBOX_IMAGE = "orchestrator/busybox:latest"
PYTHON_BASE_REPOSITORY = "orchestrator/python-base"
PYTHON_BASE_IMAGE = f"{PYTHON_BASE_REPOSITORY}:bookworm"
POSTGRES_MAJOR = "15"
POSTGRES_IMAGE = f"orchestrator/postgres:{POSTGRES_MAJOR}"
#: The line the postgres image prints (once) when it accepts connections on 0.0.0.0:5432.
POSTGRES_READY_LINE = "database system is ready to accept connections"
TASK_IMAGE_REPOSITORY_PREFIX = "orchestrator/"
#: Label put on task images so they can be listed and cleaned up.
TASK_IMAGE_LABEL = "orch.task-image"

#: Applets the busybox image must have, whatever the host's busybox was built with.
REQUIRED_APPLETS = frozenset(
    {"sh", "echo", "sleep", "cat", "ls", "printf", "true", "false", "env", "head", "dd"}
    | {"mkdir", "rm", "wc"}
)
IMAGE_FILES_DIR = Path(__file__).with_name("image_files")
_PYTHON_BASE_PACKAGES = ("python3", "python-is-python3", "ca-certificates")
_PYTHON_BASE_CHANGES = (
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
    'CMD ["python3"]',
)
_ARG_BASE_RE = re.compile(r"^\s*ARG\s+BASE_IMAGE\s*=\s*(\S+)\s*$", re.IGNORECASE | re.MULTILINE)
_ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")
_IMAGE_NAME_RE = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$")


# --- small docker helpers -----------------------------------------------------------------


def image_exists(client: docker.DockerClient, tag: str) -> bool:
    """Whether the engine has an image with this tag (never pulls)."""
    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        return False
    return True


def _image_id(client: docker.DockerClient, tag: str) -> str | None:
    try:
        return str(client.images.get(tag).id)
    except docker.errors.ImageNotFound:
        return None


def stream_build(
    client: docker.DockerClient,
    *,
    context: Path,
    tag: str,
    log: Log,
    dockerfile: str = "Dockerfile",
    buildargs: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
) -> str:
    """Build `context` as `tag`, passing each output line to `log`; the new image id."""
    image_id = None
    pending = ""
    try:
        events: Iterator[dict[str, Any]] = client.api.build(
            path=str(context),
            tag=tag,
            dockerfile=dockerfile,
            buildargs=buildargs or {},
            labels=labels or {},
            rm=True,
            forcerm=True,
            pull=False,
            decode=True,
        )
        for event in events:
            if "error" in event:
                if pending.strip():
                    log(pending.rstrip())
                detail = event.get("errorDetail", {}).get("message") or event["error"]
                raise ImageBuildError(
                    f"building {tag} from {context / dockerfile} failed: {detail}"
                )
            *lines, pending = (pending + _ANSI_RE.sub("", str(event.get("stream", "")))).split("\n")
            for line in lines:
                if line.strip():
                    log(line.rstrip())
            aux = event.get("aux")
            if isinstance(aux, dict) and "ID" in aux:
                image_id = str(aux["ID"])
    except docker.errors.APIError as exc:
        raise ImageBuildError(f"building {tag} from {context / dockerfile} failed: {exc}") from exc
    if pending.strip():
        log(pending.rstrip())
    return image_id or str(client.images.get(tag).id)


# --- busybox ------------------------------------------------------------------------------


def make_busybox_image(
    client: docker.DockerClient,
    tag: str = BUSYBOX_IMAGE,
    *,
    log: Log = print,
    labels: dict[str, str] | None = None,
) -> None:
    """Import the host's static busybox as a FROM-scratch image with every applet on /bin."""
    busybox = find_static_busybox()
    listing = subprocess.run(
        [str(busybox), "--list"], capture_output=True, text=True, check=True
    ).stdout.split()
    missing = REQUIRED_APPLETS - set(listing)
    if missing:
        raise ImageBuildError(f"{busybox} lacks the applets {', '.join(sorted(missing))}")
    data = busybox_rootfs_tar(busybox, listing)
    log(f"{tag}: importing {busybox} with {len(listing)} applets ({len(data) // 1024} KiB)")
    repository, _, version = tag.rpartition(":")
    changes = ["ENV PATH=/bin", 'CMD ["sh"]']
    changes += [f"LABEL {key}={json.dumps(value)}" for key, value in (labels or {}).items()]
    client.api.import_image_from_data(data, repository=repository, tag=version, changes=changes)


# --- python base (debootstrap) ------------------------------------------------------------


def _make_python_base(
    client: docker.DockerClient,
    tag: str,
    *,
    suite: str,
    mirror: str,
    work_dir: Path | None,
    log: Log,
) -> None:
    debootstrap = find_debootstrap()
    if os.geteuid() != 0:
        raise ImageBuildError(
            f"debootstrap must run as root to make {tag}: run the command as root"
        )
    work = Path(tempfile.mkdtemp(prefix="orch-debootstrap-", dir=work_dir))
    rootfs = work / "rootfs"
    try:
        argv = [
            debootstrap,
            "--variant=minbase",
            f"--include={','.join(_PYTHON_BASE_PACKAGES)}",
            suite,
            str(rootfs),
            mirror,
        ]
        log(f"{tag}: {' '.join(argv)}")
        try:
            run_streaming(argv, log, prefix="debootstrap: ")
        except ImageBuildError as exc:
            details = rootfs / "debootstrap" / "debootstrap.log"
            if details.is_file():
                tail = details.read_text(errors="replace").splitlines()[-30:]
                raise ImageBuildError(f"{exc}\n{details} ends with:\n" + "\n".join(tail)) from exc
            raise
        strip_rootfs(rootfs)
        archive = work / "rootfs.tar"
        subprocess.run(
            ["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(archive), "."], check=True
        )
        log(f"{tag}: importing {archive.stat().st_size // 2**20} MiB root filesystem")
        repository, _, version = tag.rpartition(":")
        client.api.import_image_from_file(
            str(archive), repository=repository, tag=version, changes=list(_PYTHON_BASE_CHANGES)
        )
    finally:
        remove_tree(work, log)


# --- bootstrap ----------------------------------------------------------------------------


def bootstrap_base_images(
    client: docker.DockerClient,
    *,
    force: bool = False,
    log: Log = print,
    work_dir: Path | None = None,
    os_release: Path = Path("/etc/os-release"),
    apt_source_files: Sequence[Path] | None = None,
) -> list[str]:
    """Make the local base images that do not exist yet; return the tags made by this call.

    `force` remakes all three (replacing the tags; old images are removed when nothing uses
    them). `work_dir` is where debootstrap's temporary root filesystem goes (default: the
    system temp dir); it is deleted after the import.
    """
    made: list[str] = []
    replaced: list[str] = []

    def needed(tag: str) -> bool:
        old = _image_id(client, tag)
        if old is not None and not force:
            log(f"{tag}: already present ({old[7:19]}), nothing to do")
            return False
        if old is not None:
            replaced.append(old)
        return True

    def timed(tag: str, make: Callable[[], object]) -> None:
        started = time.monotonic()
        make()
        log(f"{tag}: made in {time.monotonic() - started:.1f}s")
        made.append(tag)

    if needed(BUSYBOX_IMAGE):
        timed(BUSYBOX_IMAGE, lambda: make_busybox_image(client, BUSYBOX_IMAGE, log=log))
    suite = read_suite(os_release)
    python_base = f"{PYTHON_BASE_REPOSITORY}:{suite}"
    if needed(python_base):
        sources = default_apt_source_files() if apt_source_files is None else list(apt_source_files)
        mirror = find_debian_mirror(suite, sources)
        timed(
            python_base,
            lambda: _make_python_base(
                client, python_base, suite=suite, mirror=mirror, work_dir=work_dir, log=log
            ),
        )
    if needed(POSTGRES_IMAGE):
        timed(
            POSTGRES_IMAGE,
            lambda: stream_build(
                client,
                context=IMAGE_FILES_DIR,
                dockerfile="postgres.Dockerfile",
                tag=POSTGRES_IMAGE,
                buildargs={"BASE_IMAGE": python_base, "PG_MAJOR": POSTGRES_MAJOR},
                log=log,
            ),
        )
    for old in reversed(replaced):
        try:
            client.images.remove(old)
            log(f"removed the replaced image {old[7:19]}")
        except docker.errors.APIError as exc:
            log(f"kept the replaced image {old[7:19]}: {exc.explanation or exc}")
    return made


# --- task images --------------------------------------------------------------------------


def dockerfile_default_base(dockerfile: Path) -> str | None:
    """The default of `ARG BASE_IMAGE=...` in a Dockerfile, if it declares one."""
    match = _ARG_BASE_RE.search(dockerfile.read_text())
    return match.group(1).strip("\"'") if match else None


def _local_python_base(client: docker.DockerClient) -> str | None:
    if image_exists(client, PYTHON_BASE_IMAGE):
        return PYTHON_BASE_IMAGE
    for image in client.images.list(name=PYTHON_BASE_REPOSITORY):
        tags = sorted(str(t) for t in image.tags)
        if tags:
            return tags[0]
    return None


def build_task_images(
    client: docker.DockerClient,
    task_images_dir: Path,
    *,
    base_image: str | None = None,
    log: Log = print,
) -> list[str]:
    """Build each `<task_images_dir>/<name>/Dockerfile` as `orchestrator/<name>:latest`.

    The base is `base_image` if given; otherwise each Dockerfile's own `BASE_IMAGE` default
    when the engine has it, else the local `orchestrator/python-base` made by
    `orchestrator images bootstrap`. Nothing is pulled. Returns the tags built.
    """
    if not task_images_dir.is_dir():
        raise ImageBuildError(
            f"{task_images_dir} is not a directory of task images: run from the repository "
            "root or pass the directory holding <name>/Dockerfile (--dir)"
        )
    dockerfiles = sorted(task_images_dir.glob("*/Dockerfile"))
    if not dockerfiles:
        raise ImageBuildError(f"no task images in {task_images_dir}: expected <name>/Dockerfile")
    local_base: str | None = None
    built = []
    for dockerfile in dockerfiles:
        name = dockerfile.parent.name
        if not _IMAGE_NAME_RE.match(name):
            raise ImageBuildError(
                f"{dockerfile.parent}: {name!r} is not a valid image name "
                "(lowercase letters, digits and . _ - separators)"
            )
        tag = f"{TASK_IMAGE_REPOSITORY_PREFIX}{name}:latest"
        buildargs = {}
        if base_image is not None:
            buildargs["BASE_IMAGE"] = base_image
        else:
            default = dockerfile_default_base(dockerfile)
            if default is not None and not image_exists(client, default):
                local_base = local_base or _local_python_base(client)
                if local_base is None:
                    raise ImageUnavailable(
                        f"{dockerfile}: its base image {default} is not on this engine and "
                        f"neither is {PYTHON_BASE_IMAGE}: run `orchestrator images bootstrap` "
                        "to make the local base images, or pass --base-image"
                    )
                buildargs["BASE_IMAGE"] = local_base
        base = buildargs.get("BASE_IMAGE", "the Dockerfile's default")
        log(f"{tag}: building from {dockerfile.parent} on {base}")
        started = time.monotonic()
        stream_build(
            client,
            context=dockerfile.parent,
            tag=tag,
            buildargs=buildargs,
            labels={TASK_IMAGE_LABEL: name},
            log=log,
        )
        log(f"{tag}: built in {time.monotonic() - started:.1f}s")
        built.append(tag)
    return built
