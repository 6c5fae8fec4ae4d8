"""Root filesystems for the base images, made from the host's own files (no Docker here).

* busybox: the host's static busybox plus a symlink per applet, as a tar archive;
* debootstrap: finding and running it, stripping the result to a small image, and removing its
  work directory without following a mount left behind into the host.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import tarfile
from collections.abc import Callable, Iterable, Sequence
from io import BytesIO
from pathlib import Path

from orchestrator.errors import ImageBuildError

_ROOTFS_STRIP = (
    "var/lib/apt/lists",
    "var/cache/apt",
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    "usr/share/lintian",
)
# Images derived from the base with `apt-get install` stay small too (as Debian's images do).
_DPKG_NODOC = """\
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
path-exclude=/usr/share/lintian/*
"""
_APT_CLEAN = """\
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
Acquire::Languages "none";
"""


# --- busybox ------------------------------------------------------------------------------


def find_static_busybox(
    candidates: Sequence[str | Path] = ("/bin/busybox", "/usr/bin/busybox"),
) -> Path:
    """The host's statically linked busybox (Debian's `busybox-static`)."""
    found = [Path(c) for c in candidates if Path(c).is_file()]
    for path in found:
        if is_static_elf(path):
            return path
    if found:
        raise ImageBuildError(
            f"{found[0]} is dynamically linked and cannot run in an empty image: "
            "install the static one with `apt-get install -y busybox-static`"
        )
    raise ImageBuildError(
        "busybox is not installed: install it with `apt-get install -y busybox-static`"
    )


def is_static_elf(path: Path) -> bool:
    """Whether `path` is an ELF executable with no program interpreter (no dynamic loader)."""
    with path.open("rb") as f:
        header = f.read(64)
        if len(header) < 64 or header[:4] != b"\x7fELF":
            return False
        is64, endian = header[4] == 2, "<" if header[5] == 1 else ">"
        if is64:
            phoff, phentsize, phnum = (
                struct.unpack_from(endian + "Q", header, 32)[0],
                *struct.unpack_from(endian + "HH", header, 54),
            )
        else:
            phoff, phentsize, phnum = (
                struct.unpack_from(endian + "I", header, 28)[0],
                *struct.unpack_from(endian + "HH", header, 42),
            )
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    pt_interp = 3
    return all(
        struct.unpack_from(endian + "I", table, i * phentsize)[0] != pt_interp for i in range(phnum)
    )


def busybox_rootfs_tar(busybox: Path, applets: Iterable[str]) -> bytes:
    """A root filesystem: /bin/busybox, a symlink per applet, /etc/passwd and a /tmp."""
    buffer = BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:

        def add(name: str, kind: bytes, mode: int, data: bytes = b"", link: str = "") -> None:
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.linkname, info.size = kind, mode, link, len(data)
            tar.addfile(info, BytesIO(data) if data else None)

        for directory, mode in (("bin", 0o755), ("etc", 0o755), ("root", 0o700), ("tmp", 0o1777)):
            add(directory, tarfile.DIRTYPE, mode)
        add("bin/busybox", tarfile.REGTYPE, 0o755, busybox.read_bytes())
        for applet in sorted(set(applets) - {"busybox"}):
            add(f"bin/{applet}", tarfile.SYMTYPE, 0o777, link="busybox")
        passwd = b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"
        add("etc/passwd", tarfile.REGTYPE, 0o644, passwd)
        add("etc/group", tarfile.REGTYPE, 0o644, b"root:x:0:\nnobody:x:65534:\n")
    return buffer.getvalue()


# --- debootstrap --------------------------------------------------------------------------


def find_debootstrap() -> str:
    """The debootstrap executable (also looked for in the sbin directories)."""
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    found = shutil.which("debootstrap", path=search)
    if found is None:
        raise ImageBuildError(
            "debootstrap is not installed: install it with `apt-get install -y debootstrap`"
        )
    return found


def run_streaming(argv: Sequence[str], log: Callable[[str], None], prefix: str) -> None:
    with subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    ) as proc:
        assert proc.stdout is not None
        tail: list[str] = []
        for line in proc.stdout:
            log(f"{prefix}{line.rstrip()}")
            tail = [*tail[-19:], line.rstrip()]
    if proc.returncode != 0:
        raise ImageBuildError(
            f"`{' '.join(argv)}` failed with exit code {proc.returncode}:\n" + "\n".join(tail)
        )


def _mounts_under(root: Path) -> list[str]:
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return []
    prefix = str(root.resolve()) + "/"
    points = [line.split()[1].replace("\\040", " ") for line in lines if len(line.split()) > 1]
    return sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True)


def remove_tree(root: Path, log: Callable[[str], None]) -> None:
    """Delete a debootstrap work dir, never following a mount left behind into the host."""
    for point in _mounts_under(root):
        subprocess.run(["umount", "-l", point], check=False)
    left = _mounts_under(root)
    if left:
        log(f"left {root} in place: still mounted there: {', '.join(left)}")
        return
    shutil.rmtree(root, ignore_errors=True)


def strip_rootfs(rootfs: Path) -> None:
    """Drop apt lists, caches, logs, docs and translations; keep the dpkg and debconf data."""
    for relative in _ROOTFS_STRIP:
        target = rootfs / relative
        if target.is_dir() and not target.is_symlink():  # a link would lead out of the rootfs
            for child in target.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
    logs = [p for p in rootfs.glob("var/log/**/*") if p.is_file() or p.is_symlink()]
    for leftover in [
        *logs,
        *rootfs.glob("var/cache/debconf/*-old"),
        *rootfs.glob("var/lib/dpkg/*-old"),
    ]:
        leftover.unlink()
    (rootfs / "var/cache/apt/archives/partial").mkdir(parents=True, exist_ok=True)
    (rootfs / "etc/dpkg/dpkg.cfg.d/orchestrator-nodoc").write_text(_DPKG_NODOC)
    (rootfs / "etc/apt/apt.conf.d/orchestrator-clean").write_text(_APT_CLEAN)
