"""An attempt's files on the host: where its log and output folder are, how the output folder
is made ready and removed, how the output file is read, and how the log is appended to."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from orchestrator.models.launch import OUTPUT_FILE_NAME
from orchestrator.services.containers import (
    AttemptKey,
    attempt_dir,
    legacy_output_dir,
    log_path,
    output_dir,
    prepare_output_dir,
    prune_legacy_outputs,
    read_attempt_output,
    read_output,
    remove_attempt_output,
    remove_output_dir,
)
from orchestrator.services.logs import LogFile
from orchestrator.settings import Settings

KEY = AttemptKey("etl", "manual__2026-01-01T00:00:00+00:00", "load", -1, 2)


def test_attempt_paths_follow_the_airflow_layout(settings: Settings) -> None:
    run = "run_id=manual__2026-01-01T00_00_00_00_00"
    task = settings.logs_folder / "dag_id=etl" / run / "task_id=load"
    assert attempt_dir(settings.logs_folder, KEY) == task
    assert log_path(settings, KEY) == task / "attempt=2.log"
    mapped = AttemptKey("etl", "r", "load", 3, 1)
    folder = settings.outputs_folder / "dag_id=etl/run_id=r/task_id=load/map_index=3/attempt=1"
    assert legacy_output_dir(settings, mapped) == folder


def test_output_folders_are_flat_readable_and_one_per_try(settings: Settings) -> None:
    """One folder per try right under `outputs/` (one mkdir, one rmdir, nothing left behind),
    shared by a sensor's pokes, apart for keys whose readable names agree."""
    folder = output_dir(settings, KEY)
    assert folder.parent == settings.outputs_folder
    assert folder.name.startswith("etl-load-manual__2026-01-01T00_00_00_00_00-t2-")
    assert output_dir(settings, AttemptKey(*KEY.__dict__.values())) == folder
    poke = AttemptKey(KEY.dag_id, KEY.run_id, KEY.task_id, KEY.map_index, KEY.try_number, 3)
    assert output_dir(settings, poke) == folder
    others = [
        AttemptKey("etl", KEY.run_id, KEY.task_id, 0, 2),
        AttemptKey("etl", KEY.run_id, KEY.task_id, -1, 3),
        AttemptKey("etl-load", KEY.run_id, "x", -1, 2),
        AttemptKey("etl", KEY.run_id, "load-x", -1, 2),  # same slug as the one above
        AttemptKey("etl", "manual__2026-01-01T00_00_00_00_00", "load", -1, 2),
    ]
    folders = {output_dir(settings, key) for key in [KEY, *others]}
    assert len(folders) == 1 + len(others)
    long = AttemptKey("d" * 250, KEY.run_id, "t" * 250, 1023, 99)
    assert len(output_dir(settings, long).name) <= 200


def test_an_attempt_launched_before_the_flat_layout_is_read_and_removed(
    settings: Settings,
) -> None:
    old = legacy_output_dir(settings, KEY)
    prepare_output_dir(old)
    (old / OUTPUT_FILE_NAME).write_text('{"rows": 3}')
    assert read_attempt_output(settings, KEY).value() == {"rows": 3}
    remove_attempt_output(settings, KEY)
    assert not old.exists()
    new = output_dir(settings, KEY)
    prepare_output_dir(new)
    (new / OUTPUT_FILE_NAME).write_text("[1]")
    prepare_output_dir(old)
    (old / OUTPUT_FILE_NAME).write_text("[2]")
    assert read_attempt_output(settings, KEY).value() == [1]  # the flat folder wins
    remove_attempt_output(settings, KEY)
    assert not new.exists()


def test_a_prepared_output_folder_is_new_empty_and_writable_by_any_user(tmp_path: Path) -> None:
    folder = tmp_path / "a" / "b" / "attempt=1"
    prepare_output_dir(folder)
    assert folder.is_dir() and not any(folder.iterdir())
    assert stat.S_IMODE(folder.stat().st_mode) == 0o777
    (folder / OUTPUT_FILE_NAME).write_text("1")  # a launch that is repeated
    (folder / "other.txt").write_text("kept")
    prepare_output_dir(folder)
    assert sorted(path.name for path in folder.iterdir()) == ["other.txt"]


@pytest.mark.parametrize(
    "contents", [[], [OUTPUT_FILE_NAME], [OUTPUT_FILE_NAME, "extra/deep.txt"], ["other.txt"]]
)
def test_an_output_folder_is_removed_with_whatever_the_task_left(
    tmp_path: Path, contents: list[str]
) -> None:
    folder = tmp_path / "attempt=1"
    prepare_output_dir(folder)
    for name in contents:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text("x")
    remove_output_dir(folder)
    assert not folder.exists()
    assert tmp_path.is_dir()
    remove_output_dir(folder)  # gone already: nothing to do


def test_no_output_file_reads_as_no_output(tmp_path: Path) -> None:
    assert read_output(tmp_path, 100).json_text is None
    assert read_output(tmp_path / "missing", 100).error is None
    (tmp_path / OUTPUT_FILE_NAME).mkdir()  # a folder of that name is not an output
    assert read_output(tmp_path, 100).json_text is None


def test_a_fifo_as_output_file_does_not_hang_the_harvest(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / OUTPUT_FILE_NAME)
    result = read_output(tmp_path, 100)
    assert (result.json_text, result.error) == (None, None)


def test_an_output_symlink_is_not_followed_to_a_host_file(tmp_path: Path) -> None:
    """A task can leave a link to any path: resolved on the host, it would make the scheduler
    store a host file the task could not read as its output."""
    host_file = tmp_path / "host-secret.json"
    host_file.write_text('{"password": "hunter2"}')
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / OUTPUT_FILE_NAME).symlink_to(host_file)
    result = read_output(folder, 1000)
    assert result.json_text is None
    assert result.error is not None and "symbolic link" in result.error
    (folder / OUTPUT_FILE_NAME).unlink()
    (folder / OUTPUT_FILE_NAME).symlink_to(folder / OUTPUT_FILE_NAME)  # a loop: the same
    assert read_output(folder, 1000).error == result.error


def test_output_over_the_limit_is_an_error_and_within_it_a_value(tmp_path: Path) -> None:
    (tmp_path / OUTPUT_FILE_NAME).write_text('{"rows": [1, 2, 3]}')
    assert read_output(tmp_path, 100).value() == {"rows": [1, 2, 3]}
    error = read_output(tmp_path, 10).error
    assert error is not None and "over the 10-byte limit" in error


def test_a_log_file_makes_its_folder_and_appends(tmp_path: Path) -> None:
    log = LogFile(tmp_path / "dag_id=d" / "run_id=r" / "attempt=1.log", ["s3cret"])
    log.write_line("first s3cret")
    with log.appending() as write:
        write(b"streamed\n")
    log.write("last")
    assert log.path.read_text() == "first ***\nstreamed\nlast"


def test_pruning_the_old_layout_keeps_attempt_folders_and_says_whether_any_is_left(
    settings: Settings,
) -> None:
    assert not prune_legacy_outputs(settings)  # no outputs folder yet
    running = legacy_output_dir(settings, KEY)
    prepare_output_dir(running)  # empty: its container has not written yet
    empty = settings.outputs_folder / "dag_id=etl" / "run_id=old" / "task_id=done"
    empty.mkdir(parents=True)
    flat = output_dir(settings, KEY)
    prepare_output_dir(flat)
    assert prune_legacy_outputs(settings)
    assert running.is_dir() and flat.is_dir()
    assert not empty.parent.exists()
    assert not read_attempt_output(settings, KEY, legacy=False).json_text
    (running / OUTPUT_FILE_NAME).write_text("7")
    assert read_attempt_output(settings, KEY, legacy=False).json_text is None
    assert read_attempt_output(settings, KEY).value() == 7
    remove_attempt_output(settings, KEY)  # the flat folder
    remove_attempt_output(settings, KEY)  # then the old one
    assert not prune_legacy_outputs(settings)
    assert list(settings.outputs_folder.iterdir()) == []
