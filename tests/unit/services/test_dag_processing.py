"""DAG files imported in real subprocesses: good files, broken files, hung and crashing ones."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

from orchestrator.services.dag_processing import (
    FileResult,
    list_dag_files,
    process_file,
    process_folder,
)

GOOD = """
from orchestrator import DAG, ContainerTask

with DAG("good", schedule="@daily", start_date="2026-01-01", default_args={"image": "alpine"}):
    ContainerTask("extract") >> ContainerTask("load")
"""


def write(folder: Path, name: str, source: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))
    return path


def load(folder: Path, name: str, source: str, timeout: float = 10) -> FileResult:
    return process_file(write(folder, name, source), timeout=timeout)


def test_good_file_yields_its_dags_with_absolute_fileloc(tmp_path: Path) -> None:
    result = load(tmp_path, "good.py", GOOD)

    assert result.error is None
    assert [dag.dag_id for dag in result.dags] == ["good"]
    dag = result.dags[0]
    assert dag.fileloc == str(tmp_path / "good.py")
    assert result.fileloc == str(tmp_path / "good.py")
    assert dag.task("load").upstream_task_ids == ("extract",)
    assert result.duration > 0


def test_dags_built_by_helpers_and_factories_are_collected(tmp_path: Path) -> None:
    write(
        tmp_path,
        "shared.py",
        """
        from orchestrator import DAG, ContainerTask

        def make(name):
            with DAG(name, default_args={"image": "alpine"}):
                ContainerTask("only")
        """,
    )
    result = load(
        tmp_path,
        "factory.py",
        """
        import shared  # a sibling helper module
        for name in ("first", "second"):
            shared.make(name)
        """,
    )
    assert result.error is None
    assert [dag.dag_id for dag in result.dags] == ["first", "second"]


def test_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    result = load(tmp_path, "syntax.py", "from orchestrator import DAG\nwith DAG('x') as dag\n")
    assert result.dags == []
    assert result.error is not None
    assert f'File "{tmp_path / "syntax.py"}", line 2' in result.error
    assert "SyntaxError" in result.error


def test_import_error(tmp_path: Path) -> None:
    result = load(tmp_path, "imports.py", "import orchestrator\nimport no_such_module_here\n")
    assert result.error is not None
    assert "ModuleNotFoundError: No module named 'no_such_module_here'" in result.error
    assert f'File "{tmp_path / "imports.py"}", line 2' in result.error


def test_exception_shows_the_traceback_line_without_loader_frames(tmp_path: Path) -> None:
    result = load(
        tmp_path,
        "boom.py",
        """
        from orchestrator import DAG

        def build():
            raise RuntimeError("cannot reach the config service")

        with DAG("boom"):
            build()
        """,
    )
    assert result.error is not None
    assert result.error.startswith("Traceback (most recent call last):")
    assert f'File "{tmp_path / "boom.py"}", line 5, in build' in result.error
    assert 'raise RuntimeError("cannot reach the config service")' in result.error
    assert "RuntimeError: cannot reach the config service" in result.error
    assert "collect.py" not in result.error
    assert "importlib" not in result.error


def test_definition_error_points_at_the_users_line(tmp_path: Path) -> None:
    result = load(
        tmp_path,
        "cycle.py",
        """
        from orchestrator import DAG, ContainerTask

        with DAG("cyclic", default_args={"image": "alpine"}) as dag:
            a, b = ContainerTask("a"), ContainerTask("b")
            a >> b >> a
        """,
    )
    assert result.error is not None
    assert "DagDefinitionError: DAG 'cyclic' has a cycle: a >> b >> a" in result.error


def test_same_dag_id_twice_in_one_file_is_an_error(tmp_path: Path) -> None:
    result = load(
        tmp_path,
        "twice.py",
        """
        from orchestrator import DAG
        DAG("same")
        DAG("same")
        """,
    )
    assert result.dags == []
    assert result.error is not None
    assert "DAG id 'same' is defined twice" in result.error
    assert f"{tmp_path / 'twice.py'}:3" in result.error
    assert f"{tmp_path / 'twice.py'}:4" in result.error


def test_sys_exit_is_an_error_not_a_crash(tmp_path: Path) -> None:
    result = load(tmp_path, "exits.py", "import sys\nsys.exit('bye')\n")
    assert result.error is not None
    assert "SystemExit: bye" in result.error


def test_infinite_loop_is_killed_after_the_timeout(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    path = write(
        tmp_path,
        "loop.py",
        f"""
        import subprocess, sys
        # A process the DAG file starts is in its process group and must die with it.
        sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        open({str(pid_file)!r}, "w").write(str(sleeper.pid))
        while True:
            pass
        """,
    )
    result = process_file(path, timeout=1)
    assert result.dags == []
    assert result.error is not None
    assert result.error.startswith(f"Timed out after 1 s importing {path}")
    assert 1 <= result.duration < 4
    assert _gone_within(int(pid_file.read_text()), seconds=2)


def _gone_within(pid: int, seconds: float) -> bool:
    """True once `pid` no longer runs (a zombie waiting for its reaper counts as gone)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except FileNotFoundError:
            return True
        if "\nState:\tZ" in status:
            return True
        time.sleep(0.05)
    return False


def test_hard_exit_is_an_error_with_the_stderr_tail(tmp_path: Path) -> None:
    result = load(
        tmp_path,
        "hard_exit.py",
        """
        import os, sys
        sys.stderr.write("about to leave\\n")
        sys.stderr.flush()
        os._exit(3)
        """,
    )
    assert result.error is not None
    assert f"The process importing {tmp_path / 'hard_exit.py'} exited with code 3" in result.error
    assert "about to leave" in result.error


def test_segfault_is_an_error(tmp_path: Path) -> None:
    result = load(tmp_path, "segv.py", "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n")
    assert result.error is not None
    assert "was killed by signal SIGSEGV" in result.error


def test_print_noise_does_not_corrupt_the_result(tmp_path: Path) -> None:
    noise = """
        import os, subprocess, sys
        print("hello from a DAG file")
        print('{"dags": "fake"}')
        os.write(1, b"raw bytes on fd 1\\n")
        subprocess.run([sys.executable, "-c", "print('from a child process')"])
        """
    result = load(tmp_path, "noisy.py", textwrap.dedent(noise) + GOOD)
    assert result.error is None
    assert [dag.dag_id for dag in result.dags] == ["good"]


def test_list_dag_files_skips_private_hidden_and_non_dag_files(tmp_path: Path) -> None:
    write(tmp_path, "a.py", GOOD)
    write(tmp_path, "nested/b.py", GOOD)
    write(tmp_path, "_private.py", GOOD)
    write(tmp_path, ".hidden.py", GOOD)
    write(tmp_path, ".venv/lib.py", GOOD)
    write(tmp_path, "__pycache__/c.py", GOOD)
    write(tmp_path, "helpers.py", "def add(a, b):\n    return a + b\n")
    write(tmp_path, "notes.txt", GOOD)

    assert list_dag_files(tmp_path) == [tmp_path / "a.py", tmp_path / "nested" / "b.py"]
    assert tmp_path / "helpers.py" in list_dag_files(tmp_path, safe_mode=False)


def test_broken_file_does_not_affect_a_good_one(tmp_path: Path) -> None:
    write(tmp_path, "a_broken.py", "from orchestrator import DAG\nraise ValueError('broken')\n")
    write(tmp_path, "b_good.py", GOOD)

    results = process_folder(tmp_path, timeout=10)

    by_name = {Path(r.fileloc).name: r for r in results}
    assert list(by_name) == ["a_broken.py", "b_good.py"]
    assert by_name["a_broken.py"].error is not None
    assert "ValueError: broken" in by_name["a_broken.py"].error
    assert by_name["b_good.py"].error is None
    assert [dag.dag_id for dag in by_name["b_good.py"].dags] == ["good"]


def test_same_dag_id_in_two_files_makes_the_second_an_error(tmp_path: Path) -> None:
    first = write(tmp_path, "first.py", GOOD)
    second = write(tmp_path, "second.py", GOOD)

    results = process_folder(tmp_path, timeout=10, workers=2)

    assert [r.fileloc for r in results] == [str(first), str(second)]
    assert [dag.dag_id for dag in results[0].dags] == ["good"]
    assert results[0].error is None
    assert results[1].dags == []
    assert results[1].error == (
        f"DAG id 'good' is defined in both {first} and {second}; "
        "DAG ids must be unique across the DAG folder"
    )


def test_files_with_the_same_name_in_different_folders_do_not_clash(tmp_path: Path) -> None:
    for team in ("red", "blue"):
        write(tmp_path, f"{team}/dags.py", GOOD.replace('"good"', f'"{team}"'))
    results = process_folder(tmp_path, timeout=10)
    assert sorted(dag.dag_id for r in results for dag in r.dags) == ["blue", "red"]
    assert all(r.error is None for r in results)


def test_process_folder_returns_results_in_path_order(tmp_path: Path) -> None:
    for name in ("c", "a", "b"):
        write(tmp_path, f"{name}.py", GOOD.replace('"good"', f'"{name}"'))
    results = process_folder(tmp_path, timeout=10, workers=3)
    assert [dag.dag_id for r in results for dag in r.dags] == ["a", "b", "c"]
