"""End-to-end: the `orchestrator` command as a user runs it, in subprocesses, on real Docker."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import docker_client, test_images  # noqa: F401 - fixtures
from tests.support import TEST_SESSION_LABEL

REPO = Path(__file__).resolve().parents[2]


class Cli:
    """Runs `python -m orchestrator ...` with its own ORCH_HOME and DAGs folder."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.dags = home / "dags"
        self.dags.mkdir(parents=True, exist_ok=True)
        self.env = {
            **os.environ,
            "ORCH_HOME": str(home),
            "ORCH_DAGS_FOLDER": str(self.dags),
            "ORCH_INSTANCE_NAME": f"e{uuid.uuid4().hex[:8]}",
            "ORCH_EXTRA_LABELS": json.dumps({"orch.test": TEST_SESSION_LABEL}),
            "ORCH_STOP_GRACE_PERIOD": "1",
        }

    def __call__(self, *args: str, check: bool = True, timeout: float = 180) -> Any:
        result = subprocess.run(
            [sys.executable, "-m", "orchestrator", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.home,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"orchestrator {' '.join(args)} exited {result.returncode}\n"
                f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
            )
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "--output", "json").stdout)

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "orchestrator", *args],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=self.home,
        )

    def add_dag(self, name: str, text: str) -> Path:
        path = self.dags / name
        path.write_text(text)
        return path

    def add_example(self) -> None:
        shutil.copy(REPO / "dags" / "example_sales.py", self.dags / "example_sales.py")


@pytest.fixture
def cli(tmp_path: Path, docker_client: Any, test_images: None) -> Iterator[Cli]:  # noqa: F811
    yield Cli(tmp_path / "home")
