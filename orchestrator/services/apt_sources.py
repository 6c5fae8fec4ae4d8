"""The host's apt configuration: which Debian suite it runs and which mirror serves it.

`orchestrator images bootstrap` runs debootstrap from the same mirror the host installs its own
packages from, so nothing names a mirror in the repository. Both formats apt reads are parsed:
the classic one-line `sources.list` and deb822 `.sources` stanzas.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import ImageBuildError


@dataclass(frozen=True)
class AptSource:
    """One `deb` entry of the host's apt configuration."""

    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...]


def read_suite(os_release: Path = Path("/etc/os-release")) -> str:
    """The Debian suite (`VERSION_CODENAME`) of the host, e.g. `bookworm`."""
    try:
        text = os_release.read_text()
    except OSError as exc:
        raise ImageBuildError(f"cannot read {os_release}: {exc}") from exc
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "VERSION_CODENAME" and value.strip().strip("\"'"):
            return value.strip().strip("\"'")
    raise ImageBuildError(
        f"{os_release} has no VERSION_CODENAME: base images are made only on Debian hosts"
    )


def default_apt_source_files(apt_dir: Path = Path("/etc/apt")) -> list[Path]:
    """The files apt itself reads: sources.list, then sources.list.d/*.list and *.sources."""
    files = [apt_dir / "sources.list"] if (apt_dir / "sources.list").is_file() else []
    listing = apt_dir / "sources.list.d"
    if listing.is_dir():
        files += sorted(p for p in listing.iterdir() if p.suffix in (".list", ".sources"))
    return files


def parse_one_line_sources(text: str) -> list[AptSource]:
    """Entries of the classic format: `deb [options] URI suite component...`."""
    sources = []
    for raw in text.splitlines():
        words = raw.split("#", 1)[0].split()
        if not words or words[0] != "deb":
            continue
        words = words[1:]
        if words and words[0].startswith("["):
            while words and not words[0].endswith("]"):
                words = words[1:]
            words = words[1:]
        if len(words) >= 2:
            sources.append(AptSource(words[0], (words[1],), tuple(words[2:])))
    return sources


def parse_deb822_sources(text: str) -> list[AptSource]:
    """Entries of the deb822 format (`Types:`, `URIs:`, `Suites:` stanzas)."""
    sources = []
    for stanza in _deb822_stanzas(text):
        if (
            stanza.get("enabled", "yes").lower() == "no"
            or "deb" not in stanza.get("types", "").split()
        ):
            continue
        suites = tuple(stanza.get("suites", "").split())
        components = tuple(stanza.get("components", "").split())
        sources += [AptSource(uri, suites, components) for uri in stanza.get("uris", "").split()]
    return sources


def _deb822_stanzas(text: str) -> Iterator[dict[str, str]]:
    fields: dict[str, str] = {}
    key = None
    for raw in [*text.splitlines(), ""]:
        if raw.lstrip().startswith("#"):
            continue
        if not raw.strip():
            if fields:
                yield fields
            fields, key = {}, None
        elif raw[0] in " \t" and key is not None:
            fields[key] += " " + raw.strip()
        elif ":" in raw:
            name, _, value = raw.partition(":")
            key = name.strip().lower()
            fields[key] = value.strip()


def find_debian_mirror(suite: str, source_files: Iterable[Path]) -> str:
    """The mirror URL that serves `suite` itself (not `-updates`/`-security`) with `main`."""
    candidates: list[AptSource] = []
    for path in source_files:
        try:
            text = path.read_text()
        except OSError:
            continue
        parse = parse_deb822_sources if path.suffix == ".sources" else parse_one_line_sources
        candidates += parse(text)
    for source in candidates:
        usable = source.uri.split(":", 1)[0] in ("http", "https", "ftp", "file")
        if (
            usable
            and suite in source.suites
            and (not source.components or "main" in source.components)
        ):
            return source.uri.rstrip("/")
    raise ImageBuildError(
        f"no apt source for suite {suite!r} with component 'main' in "
        f"{', '.join(str(p) for p in source_files) or 'the apt configuration'}: "
        "debootstrap needs the Debian mirror this host installs its packages from"
    )
