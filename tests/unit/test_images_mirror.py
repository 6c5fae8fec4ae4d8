"""Reading the host's apt mirror and suite, and choosing a task image's base, without Docker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import docker.errors
import pytest

from orchestrator.errors import ImageUnavailable
from orchestrator.services.apt_sources import (
    default_apt_source_files,
    find_debian_mirror,
    parse_deb822_sources,
    read_suite,
)
from orchestrator.services.images import (
    ImageBuildError,
    build_task_images,
    dockerfile_default_base,
)

DEB822 = """\
Types: deb
# http://snapshot.example/archive/debian-security/20250520T000000Z
URIs: http://security.example.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://src-only.example.org/debian
Suites: bookworm
Components: main

Types: deb
URIs: http://disabled.example.org/debian
Suites: bookworm
Components: main
Enabled: no

Types: deb
URIs: http://mirror.example.org/debian/
Suites: bookworm
  bookworm-updates
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""

ONE_LINE = """\
# deb http://commented.example.org/debian bookworm main
deb-src http://src-only.example.org/debian bookworm main
deb http://updates.example.org/debian bookworm-updates main
deb [arch=amd64 signed-by=/etc/k.gpg] http://mirror.example.net/debian bookworm main
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_deb822_picks_the_enabled_binary_source_for_the_suite_itself(tmp_path: Path) -> None:
    sources = write(tmp_path / "debian.sources", DEB822)

    assert find_debian_mirror("bookworm", [sources]) == "http://mirror.example.org/debian"


def test_deb822_folded_suites_are_all_read() -> None:
    entries = parse_deb822_sources(DEB822)

    assert entries[-1].suites == ("bookworm", "bookworm-updates")
    assert entries[-1].components == ("main", "contrib")


def test_one_line_format_skips_comments_sources_and_options(tmp_path: Path) -> None:
    sources = write(tmp_path / "sources.list", ONE_LINE)

    assert find_debian_mirror("bookworm", [sources]) == "http://mirror.example.net/debian"


def test_first_file_that_serves_the_suite_wins(tmp_path: Path) -> None:
    classic = write(tmp_path / "sources.list", ONE_LINE)
    deb822 = write(tmp_path / "sources.list.d" / "debian.sources", DEB822)

    assert find_debian_mirror("bookworm", [deb822, classic]) == "http://mirror.example.org/debian"
    assert find_debian_mirror("bookworm", [classic, deb822]) == "http://mirror.example.net/debian"


def test_a_source_without_main_or_for_another_suite_is_not_a_mirror(tmp_path: Path) -> None:
    sources = write(
        tmp_path / "other.list",
        "deb http://contrib-only.example.org/debian bookworm contrib\n"
        "deb http://trixie.example.org/debian trixie main\n",
    )

    with pytest.raises(ImageBuildError, match="no apt source for suite 'bookworm'"):
        find_debian_mirror("bookworm", [sources, tmp_path / "missing.sources"])


def test_default_source_files_are_the_ones_apt_reads(tmp_path: Path) -> None:
    write(tmp_path / "sources.list", ONE_LINE)
    write(tmp_path / "sources.list.d" / "b.sources", DEB822)
    write(tmp_path / "sources.list.d" / "a.list", "")
    write(tmp_path / "sources.list.d" / "c.sources.disabled-by-admin", DEB822)

    assert default_apt_source_files(tmp_path) == [
        tmp_path / "sources.list",
        tmp_path / "sources.list.d" / "a.list",
        tmp_path / "sources.list.d" / "b.sources",
    ]


def test_suite_comes_from_version_codename(tmp_path: Path) -> None:
    os_release = write(
        tmp_path / "os-release",
        'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nVERSION_ID="12"\n'
        "VERSION_CODENAME=bookworm\nID=debian\n",
    )

    assert read_suite(os_release) == "bookworm"


def test_a_host_without_codename_is_refused_with_the_reason(tmp_path: Path) -> None:
    os_release = write(tmp_path / "os-release", 'NAME="Some Linux"\nID=some\n')

    with pytest.raises(ImageBuildError, match="no VERSION_CODENAME"):
        read_suite(os_release)
    with pytest.raises(ImageBuildError, match="cannot read"):
        read_suite(tmp_path / "absent")


def test_dockerfile_default_base_is_read_from_the_arg_line(tmp_path: Path) -> None:
    dockerfile = write(
        tmp_path / "Dockerfile", "# base\nARG BASE_IMAGE=python:3.12-slim\nFROM ${BASE_IMAGE}\n"
    )

    assert dockerfile_default_base(dockerfile) == "python:3.12-slim"
    assert dockerfile_default_base(write(tmp_path / "D2", "FROM scratch\n")) is None


class _NoImages:
    """Just enough of a docker client whose engine has no images at all."""

    class images:  # the shape of docker.DockerClient.images
        @staticmethod
        def get(name: str) -> Any:
            raise docker.errors.ImageNotFound(f"No such image: {name}")

        @staticmethod
        def list(name: str | None = None) -> list[Any]:
            return []


def test_building_without_any_base_image_tells_to_bootstrap(tmp_path: Path) -> None:
    write(tmp_path / "job" / "Dockerfile", "ARG BASE_IMAGE=python:3.12-slim\nFROM ${BASE_IMAGE}\n")

    with pytest.raises(ImageUnavailable, match="orchestrator images bootstrap"):
        build_task_images(_NoImages(), tmp_path, log=lambda line: None)


def test_an_invalid_image_name_is_refused_before_building(tmp_path: Path) -> None:
    write(tmp_path / "Bad_Name" / "Dockerfile", "FROM scratch\n")

    with pytest.raises(ImageBuildError, match="not a valid image name"):
        build_task_images(_NoImages(), tmp_path, log=lambda line: None)
