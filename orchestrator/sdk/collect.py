"""Import one DAG file and print its DAGs as JSON: the child side of DAG file processing.

Run as `python -m orchestrator.sdk.collect PATH`. It prints exactly one JSON document on the
real stdout::

    {"dags": [<DagSpec as JSON>, ...], "error": null}
    {"dags": [], "error": "<traceback>"}        # on any exception, SystemExit included

Every DAG created while the file is imported is collected (helper modules and factories
included), not only DAGs left in module globals. Output of the user's code (print, or
anything written to file descriptor 1) goes to stderr so it cannot corrupt the JSON. The
scheduler never runs this in its own process: `orchestrator.services.dag_processing` starts
it in a subprocess with a timeout.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import sys
import traceback
from collections.abc import Sequence
from typing import Any

from orchestrator.errors import DagDefinitionError
from orchestrator.models.specs import DagSpec
from orchestrator.sdk.context import collecting

_SDK_DIR = os.path.dirname(os.path.abspath(__file__))


def module_name_for(fileloc: str) -> str:
    """A module name unique to the file's absolute path, so same-named files never clash."""
    digest = hashlib.sha1(fileloc.encode()).hexdigest()[:12]
    stem = re.sub(r"\W", "_", os.path.splitext(os.path.basename(fileloc))[0])
    return f"orchestrator_dag_{digest}_{stem}"


def load_dag_file(path: str) -> list[DagSpec]:
    """Import the file at `path` and return the specs of every DAG it created.

    The file's folder goes first on `sys.path` so sibling helper modules import. Raises
    whatever the file raises, and DagDefinitionError when two DAGs share an id.
    """
    fileloc = os.path.abspath(path)
    folder = os.path.dirname(fileloc)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    name = module_name_for(fileloc)
    spec = importlib.util.spec_from_file_location(name, fileloc)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {fileloc}: not a Python source file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    with collecting() as dags:
        spec.loader.exec_module(module)
    first_declared: dict[str, str] = {}
    for dag in dags:
        if dag.dag_id in first_declared:
            raise DagDefinitionError(
                f"DAG id '{dag.dag_id}' is defined twice in {fileloc}: at "
                f"{first_declared[dag.dag_id]} and at {dag.declared_at}"
            )
        first_declared[dag.dag_id] = dag.declared_at
    return [dag.to_spec(fileloc=fileloc) for dag in dags]


def collect(path: str) -> dict[str, Any]:
    """The JSON document for one file; never raises."""
    try:
        specs = load_dag_file(path)
        return {"dags": [spec.model_dump(mode="json") for spec in specs], "error": None}
    except BaseException as exc:
        return {"dags": [], "error": format_user_traceback(exc)}


def format_user_traceback(exc: BaseException) -> str:
    """The traceback without the loader's own frames (this module and importlib's), and for
    a DagDefinitionError without the SDK frames that raised it."""
    tb = traceback.TracebackException.from_exception(exc)
    frames = list(tb.stack)
    while frames and (
        frames[0].filename == __file__ or frames[0].filename.startswith("<frozen importlib")
    ):
        frames.pop(0)
    if isinstance(exc, DagDefinitionError):
        # Our own message says what is wrong; the user's line is the last frame that matters.
        while len(frames) > 1 and os.path.dirname(frames[-1].filename) == _SDK_DIR:
            frames.pop()
    tb.stack = traceback.StackSummary.from_list(frames)
    return "".join(tb.format())


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the child process; returns its exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m orchestrator.sdk.collect PATH", file=sys.stderr)
        return 2
    sys.stdout.flush()
    result_fd = os.dup(1)
    os.dup2(2, 1)  # the user's prints and subprocesses now write to stderr
    document = collect(args[0])
    try:
        payload = json.dumps(document)
    except (TypeError, ValueError) as exc:
        payload = json.dumps({"dags": [], "error": f"cannot serialize the DAGs: {exc}"})
    sys.stdout.flush()
    sys.stderr.flush()
    with os.fdopen(result_fd, "wb") as result:
        result.write(payload.encode("utf-8"))
    return 0


if __name__ == "__main__":
    code = main()
    # Leave at once: user threads or atexit hooks must not keep the child alive after it has
    # reported (the parent would otherwise wait for its timeout).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
