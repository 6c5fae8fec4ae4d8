"""Watching the DAG folder: the stat scan, and re-parsing only what changed."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from orchestrator.models.specs import DagSpec
from orchestrator.services.dag_watch import DagFolderSync, FolderWatcher
from orchestrator.store import dags as dag_store
from tests.support import FixedClock


def dag_source(dag_id: str, *tasks: str) -> str:
    lines = [
        "from orchestrator import DAG, ContainerTask",
        f"with DAG({dag_id!r}, default_args={{'image': 'alpine'}}):",
        *(f"    ContainerTask({task!r})" for task in tasks or ("only",)),
    ]
    return "\n".join(lines) + "\n"


# --- the scan ---------------------------------------------------------------------------


def test_first_scan_reports_every_candidate_file(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.py").write_text("y = 2\n")
    (tmp_path / "_private.py").write_text("")
    (tmp_path / "notes.txt").write_text("")
    changes = FolderWatcher(tmp_path).scan()
    assert sorted(changes.changed) == [str(tmp_path / "a.py"), str(tmp_path / "sub" / "b.py")]
    assert changes.deleted == ()


def test_unchanged_folder_reports_nothing(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("x = 1\n")
    watcher = FolderWatcher(tmp_path)
    watcher.scan()
    assert not watcher.scan()


def test_new_modified_and_deleted_files(tmp_path: Path) -> None:
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("x = 1\n")
    b.write_text("y = 2\n")
    watcher = FolderWatcher(tmp_path)
    watcher.scan()

    a.write_text("x = 10\n")  # new size
    c = tmp_path / "c.py"
    c.write_text("z = 3\n")
    b.unlink()
    changes = watcher.scan()
    assert sorted(changes.changed) == [str(a), str(c)]
    assert changes.deleted == (str(b),)


def test_same_size_edits_are_seen_by_mtime_or_inode(tmp_path: Path) -> None:
    a = tmp_path / "a.py"
    a.write_text("x = 1\n")
    watcher = FolderWatcher(tmp_path)
    watcher.scan()
    stat = a.stat()
    os.utime(a, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert watcher.scan().changed == (str(a),)

    # an editor's atomic save: a new file renamed over the old one, same size and mtime
    stat = a.stat()
    replacement = tmp_path / ".a.py.swp"
    replacement.write_text("x = 2\n")
    os.link(a, tmp_path / "old-a")  # holds the old inode so the new file cannot reuse it
    os.utime(replacement, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    os.replace(replacement, a)
    assert watcher.scan().changed == (str(a),)


def test_missing_folder_is_empty_and_its_files_deleted(tmp_path: Path) -> None:
    folder = tmp_path / "dags"
    watcher = FolderWatcher(folder)
    assert not watcher.scan()
    folder.mkdir()
    (folder / "a.py").write_text("")
    assert watcher.scan().changed == (str(folder / "a.py"),)
    (folder / "a.py").unlink()
    folder.rmdir()
    assert watcher.scan().deleted == (str(folder / "a.py"),)


# --- syncing the store ------------------------------------------------------------------


def active_dags(sessions: sessionmaker[Session]) -> dict[str, DagSpec]:
    with sessions() as session:
        return {
            row.dag_id: DagSpec.model_validate_json(row.spec_json)
            for row in dag_store.list_dag_rows(session)
        }


def test_poll_parses_only_new_and_changed_files(
    tmp_path: Path, sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    folder = tmp_path / "dags"
    folder.mkdir()
    (folder / "one.py").write_text(dag_source("one"))
    sync = DagFolderSync(sessions, folder, timeout=20)
    first = sync.full(clock.now())
    assert first.parsed == 1 and [r.fileloc for r in first.changed] == [str(folder / "one.py")]
    assert list(active_dags(sessions)) == ["one"]

    idle = sync.poll(clock.now())
    assert (idle.parsed, bool(idle)) == (0, False)  # nothing imported when nothing changed

    (folder / "two.py").write_text(dag_source("two"))
    added = sync.poll(clock.now())
    assert added.parsed == 1 and [r.fileloc for r in added.changed] == [str(folder / "two.py")]
    assert sorted(active_dags(sessions)) == ["one", "two"]

    (folder / "two.py").write_text(dag_source("two", "extract", "load"))
    changed = sync.poll(clock.now())
    assert changed.parsed == 1
    assert active_dags(sessions)["two"].task_ids == ("extract", "load")

    (folder / "two.py").unlink()
    removed = sync.poll(clock.now())
    assert removed.removed == [str(folder / "two.py")] and removed.parsed == 0
    assert list(active_dags(sessions)) == ["one"]
    with sessions() as session:
        rows = dag_store.list_dag_rows(session, include_inactive=True)
        assert [(r.dag_id, r.is_active) for r in rows] == [("one", True), ("two", False)]

    (folder / "two.py").write_text(dag_source("two"))
    sync.poll(clock.now())
    assert sorted(active_dags(sessions)) == ["one", "two"]  # back and active again


def test_file_that_stops_defining_a_dag_deactivates_it(
    tmp_path: Path, sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    folder = tmp_path / "dags"
    folder.mkdir()
    path = folder / "one.py"
    path.write_text(dag_source("one"))
    sync = DagFolderSync(sessions, folder, timeout=20)
    sync.full(clock.now())
    path.write_text("# orchestrator dag: nothing here any more\n")
    report = sync.poll(clock.now())
    assert report.parsed == 1
    assert active_dags(sessions) == {}

    path.write_text("x = 1  # a helper module, not a DAG file in safe mode\n")
    assert sync.poll(clock.now()).parsed == 0


def test_duplicate_dag_id_is_resolved_over_the_whole_folder(
    tmp_path: Path, sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    folder = tmp_path / "dags"
    folder.mkdir()
    (folder / "a.py").write_text(dag_source("same", "from_a"))
    sync = DagFolderSync(sessions, folder, timeout=20)
    sync.full(clock.now())
    (folder / "b.py").write_text(dag_source("same", "from_b"))
    report = sync.poll(clock.now())
    assert report.parsed == 1
    assert active_dags(sessions)["same"].task_ids == ("from_a",)  # the first file keeps it
    with sessions() as session:
        errors = dag_store.list_import_errors(session)
        assert [e.fileloc for e in errors] == [str(folder / "b.py")]
        assert "defined in both" in errors[0].error

    (folder / "a.py").unlink()
    report = sync.poll(clock.now())
    assert report.parsed == 0  # b.py did not change, but now owns the DAG
    assert active_dags(sessions)["same"].task_ids == ("from_b",)
    with sessions() as session:
        assert dag_store.list_import_errors(session) == []
