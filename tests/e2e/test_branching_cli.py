"""The branching example through the CLI: `dags show` and `dags test` as a user runs them."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.e2e.conftest import REPO, Cli

pytestmark = pytest.mark.docker


def test_the_branching_example_follows_the_weekend_path(cli: Cli) -> None:
    shutil.copy(REPO / "dags" / "example_branching.py", cli.dags / "example_branching.py")
    shown = cli("dags", "show", "example_branching").stdout
    join_line = next(line for line in shown.splitlines() if line.startswith("join "))
    assert "(empty)" in join_line and "none_failed_min_one_success" in join_line
    assert "(branch)" in next(line for line in shown.splitlines() if line.startswith("choose "))

    result = cli("dags", "test", "example_branching", "--date", "2026-03-14")  # a Saturday
    assert "a day off: 2026-03-14" in result.stdout
    assert "a working day" not in result.stdout
    runs = json.loads(cli("runs", "list", "example_branching", "-o", "json").stdout)
    (run,) = runs
    shown_run = cli.json("runs", "show", "example_branching", run["run_id"])
    states = {
        ti["task_id"]: (ti["state"], ti["state_detail"]) for ti in shown_run["task_instances"]
    }
    assert states["weekday"] == ("skipped", "skipped by branch choose")
    assert {states[t][0] for t in ("latest", "choose", "weekend", "join", "report")} == {"success"}
    assert shown_run["state"] == "success"
