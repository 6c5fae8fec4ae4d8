"""Reading DAG files without running user code in this process.

Each file is imported by `python -m orchestrator.sdk.collect PATH` in its own subprocess (and
process group) with a timeout; what comes back is JSON `DagSpec`s or an error text. A file's
failure (syntax error, exception, timeout, crash, a DAG id used by another file) is recorded
on that file's `FileResult` and never affects other files.

Decisions:
- A file with an error contributes no DAGs (`error is not None` implies `dags == []`).
- When two files define the same dag_id, the file that sorts first (by path) keeps it; the
  other file becomes an error naming both files. The outcome does not depend on which
  subprocess finished first.
- By default only files mentioning both "dag" and "orchestrator" (case-insensitive) are
  imported, as in Airflow's safe mode: helper modules in the DAG folder are not run on their
  own. Pass `safe_mode=False` to import every file.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from orchestrator.models.specs import DagSpec

_STDERR_TAIL_LINES = 20
_STDERR_TAIL_CHARS = 4000
_SAFE_MODE_MARKERS = (b"dag", b"orchestrator")


@dataclass
class FileResult:
    """What one DAG file yielded: its DAGs, or the error that stopped it."""

    fileloc: str
    dags: list[DagSpec]
    error: str | None
    duration: float

    @property
    def ok(self) -> bool:
        return self.error is None


def list_dag_files(folder: Path | str, *, safe_mode: bool = True) -> list[Path]:
    """`*.py` files under `folder`, sorted, skipping `__pycache__` and any file or folder whose
    name starts with `_` or `.`. In safe mode, also files that do not mention both "dag" and
    "orchestrator" (case-insensitive)."""
    root = Path(folder)
    files = []
    for path in root.rglob("*.py"):
        parts = path.relative_to(root).parts
        if any(part.startswith(("_", ".")) for part in parts):
            continue
        if not path.is_file():
            continue
        if safe_mode and not mentions_markers(path):
            continue
        files.append(path)
    return sorted(files)


def mentions_markers(path: Path) -> bool:
    """Whether a file mentions both "dag" and "orchestrator" (safe mode's test)."""
    try:
        content = path.read_bytes().lower()
    except OSError:
        return True  # let the import report why the file cannot be read
    return all(marker in content for marker in _SAFE_MODE_MARKERS)


def process_file(path: Path | str, timeout: float) -> FileResult:
    """Import one DAG file in a subprocess, killing it (and its process group) after
    `timeout` seconds. Never raises: every failure is the result's `error`."""
    fileloc = os.path.abspath(path)
    started = time.monotonic()
    try:
        dags, error = _run_child(fileloc, timeout)
    except OSError as exc:
        dags, error = [], f"Could not start a process to import {fileloc}: {exc}"
    return FileResult(fileloc, dags, error, time.monotonic() - started)


def _run_child(fileloc: str, timeout: float) -> tuple[list[DagSpec], str | None]:
    process = subprocess.Popen(
        [sys.executable, "-P", "-m", "orchestrator.sdk.collect", fileloc],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_child_environment(),
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(process)
        try:
            _, stderr = process.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            stderr = b""
        message = f"Timed out after {timeout:g} s importing {fileloc}"
        hint = (
            "Keep slow work (network calls, large computations) out of the top level of DAG "
            "files, or raise the DAG file timeout (ORCH_DAG_FILE_TIMEOUT)."
        )
        return [], "\n".join(filter(None, [message, hint, _tail(stderr)]))
    finally:
        _kill_group(process)  # daemons the DAG file left behind
    return _parse_child_output(fileloc, process.returncode, stdout, stderr)


def _parse_child_output(
    fileloc: str, returncode: int, stdout: bytes, stderr: bytes
) -> tuple[list[DagSpec], str | None]:
    try:
        document = json.loads(stdout)
        if not isinstance(document, dict):
            raise ValueError("not a JSON object")
    except ValueError:
        if returncode < 0:
            name = _signal_name(-returncode)
            what = f"was killed by signal {name}"
        elif returncode != 0:
            what = f"exited with code {returncode}"
        else:
            what = "exited without reporting its DAGs"
        text = f"The process importing {fileloc} {what}."
        return [], "\n".join(filter(None, [text, _tail(stderr)]))
    error = document.get("error")
    if error is not None:
        return [], str(error)
    try:
        return [DagSpec.model_validate(item) for item in document.get("dags", [])], None
    except ValidationError as exc:
        return [], f"The DAGs read from {fileloc} are not valid specs:\n{exc}"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def _tail(stderr: bytes) -> str:
    text = stderr.decode("utf-8", errors="replace").rstrip()
    if not text:
        return ""
    lines = text.splitlines()[-_STDERR_TAIL_LINES:]
    tail = "\n".join(lines)[-_STDERR_TAIL_CHARS:]
    return f"Last lines of its stderr:\n{tail}"


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def _child_environment() -> dict[str, str]:
    """The parent's environment, plus the folder holding this `orchestrator` package on
    PYTHONPATH so the child imports the same code even when it is not installed."""
    environment = dict(os.environ)
    package_parent = str(Path(__file__).resolve().parents[2])
    existing = environment.get("PYTHONPATH")
    environment["PYTHONPATH"] = (
        f"{package_parent}{os.pathsep}{existing}" if existing else package_parent
    )
    return environment


def process_folder(
    folder: Path | str, timeout: float, workers: int = 2, *, safe_mode: bool = True
) -> list[FileResult]:
    """Process every DAG file of `folder`, at most `workers` at once, in path order.

    A dag_id already defined by a file earlier in path order turns the later file into an
    error naming both files.
    """
    files = list_dag_files(folder, safe_mode=safe_mode)
    return resolve_duplicate_dags(process_files(files, timeout, workers))


def process_files(paths: list[Path], timeout: float, workers: int = 2) -> list[FileResult]:
    """Process these files, at most `workers` at once; results in the order given."""
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(lambda path: process_file(path, timeout), paths))


def resolve_duplicate_dags(results: list[FileResult]) -> list[FileResult]:
    """Sort results by path; a dag_id already defined by an earlier file turns the later
    file into an error naming both files (the earlier file keeps the DAG)."""
    results = sorted(results, key=lambda r: Path(r.fileloc))
    owners: dict[str, str] = {}
    for index, result in enumerate(results):
        clashes = [dag.dag_id for dag in result.dags if dag.dag_id in owners]
        if clashes:
            results[index] = FileResult(
                result.fileloc,
                [],
                "\n".join(
                    f"DAG id '{dag_id}' is defined in both {owners[dag_id]} and "
                    f"{result.fileloc}; DAG ids must be unique across the DAG folder"
                    for dag_id in clashes
                ),
                result.duration,
            )
            continue
        for dag in result.dags:
            owners[dag.dag_id] = result.fileloc
    return results
