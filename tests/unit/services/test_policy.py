"""The operator's policy: what tasks may ask of the host, refused at load and at launch."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.errors import DagDefinitionError, PolicyViolation
from orchestrator.models.run_info import RunInfo
from orchestrator.models.specs import DagSpec, ParamSpec, TaskSpec
from orchestrator.models.states import RunState, TaskState
from orchestrator.services.containers import AttemptKey, build_launch_request
from orchestrator.services.dag_watch import DagFolderSync
from orchestrator.services.policy import OperatorPolicy
from orchestrator.settings import Settings
from orchestrator.store import dags as dag_store
from orchestrator.templating import RenderedTask
from tests.support import FixedClock
from tests.unit.services.test_scheduler import Harness


def policy(tmp_path: Path, **kw: Any) -> OperatorPolicy:
    return OperatorPolicy.from_settings(Settings(allowed_mount_roots=[tmp_path / "ok"], **kw))


# --- settings ---------------------------------------------------------------------------


def test_default_roots_are_home_and_the_folder_holding_the_dags_folder(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", dags_folder=tmp_path / "project" / "dags")
    assert settings.resolved_mount_roots == [tmp_path / "home", tmp_path / "project"]
    assert not settings.allow_privileged and not settings.allow_host_network
    assert not settings.allow_docker_socket and settings.allowed_capabilities == []


def test_lists_and_limits_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_ALLOWED_MOUNT_ROOTS", "/data, /srv/in")
    monkeypatch.setenv("ORCH_ALLOWED_CAPABILITIES", '["net_admin", "CAP_SYS_TIME"]')
    monkeypatch.setenv("ORCH_DEFAULT_MEMORY", "512m")
    monkeypatch.setenv("ORCH_DEFAULT_CPUS", "none")
    monkeypatch.setenv("ORCH_DEFAULT_PIDS_LIMIT", "0")
    settings = Settings()
    assert settings.allowed_mount_roots == [Path("/data"), Path("/srv/in")]
    assert settings.allowed_capabilities == ["NET_ADMIN", "SYS_TIME"]
    assert (settings.default_memory, settings.default_cpus) == (512 * 1024**2, None)
    assert settings.default_pids_limit is None


def test_bad_settings_name_the_problem() -> None:
    with pytest.raises(ValueError, match="must be an absolute path"):
        Settings(allowed_mount_roots=["relative/dir"])
    with pytest.raises(ValueError, match="not a capability name"):
        Settings(allowed_capabilities=["net admin!"])


# --- host paths -------------------------------------------------------------------------


def test_bind_sources_are_judged_after_resolving_dotdot_and_symlinks(tmp_path: Path) -> None:
    ok = tmp_path / "ok"
    (ok / "data").mkdir(parents=True)
    (ok / "escape").symlink_to("/etc")
    rules = policy(tmp_path)
    assert rules.bind_problem(str(ok / "data")) is None
    assert rules.bind_problem(str(ok / "not-yet-made")) is None
    dotdot = rules.bind_problem(str(ok / ".." / "elsewhere"))
    assert dotdot is not None and "outside the allowed mount roots" in dotdot
    assert "ORCH_ALLOWED_MOUNT_ROOTS" in dotdot
    link = rules.bind_problem(str(ok / "escape"))
    assert link is not None and "resolves to '/etc'" in link
    assert rules.bind_problem("data", base=ok) is None  # relative: against the DAG's folder
    assert rules.bind_problem("../x", base=ok) is not None


def test_the_docker_socket_needs_its_own_setting_even_inside_a_root(tmp_path: Path) -> None:
    everything = OperatorPolicy.from_settings(Settings(allowed_mount_roots=["/"]))
    for source in ("/var/run/docker.sock", "/run/docker.sock", "/var/run", "/"):
        problem = everything.bind_problem(source)
        assert problem is not None and "ORCH_ALLOW_DOCKER_SOCKET" in problem, source
    link = tmp_path / "sock"
    link.symlink_to("/var/run/docker.sock")
    assert everything.bind_problem(str(link)) is not None
    allowed = OperatorPolicy.from_settings(
        Settings(allowed_mount_roots=["/"], allow_docker_socket=True)
    )
    assert allowed.bind_problem("/var/run/docker.sock") is None


def test_a_custom_engine_socket_counts_as_the_docker_socket(tmp_path: Path) -> None:
    sock = tmp_path / "ok" / "engine.sock"
    rules = policy(tmp_path, docker_url=f"unix://{sock}")
    problem = rules.bind_problem(str(sock))
    assert problem is not None and "Docker socket" in problem


# --- at load ----------------------------------------------------------------------------


def dag_file(folder: Path, name: str, task_args: str) -> Path:
    path = folder / name
    path.write_text(
        "from orchestrator import DAG, ContainerTask\n"
        "with DAG('guarded', default_args={'image': 'alpine'}):\n"
        f"    ContainerTask('greedy', {task_args})\n"
    )
    return path


@pytest.mark.parametrize(
    ("task_args", "asked", "setting"),
    [
        ("privileged=True", "privileged=True", "ORCH_ALLOW_PRIVILEGED=true"),
        ("network='host'", "network='host'", "ORCH_ALLOW_HOST_NETWORK=true"),
        ("cap_add=['net_admin']", "cap_add NET_ADMIN", "ORCH_ALLOWED_CAPABILITIES"),
        ("mounts=['/etc:/host-etc:ro']", "bind mount '/etc'", "ORCH_ALLOWED_MOUNT_ROOTS"),
        ("mounts=['../../x:/x']", "outside the allowed mount roots", "ORCH_ALLOWED_MOUNT_ROOTS"),
        ("mounts=['/var/run/docker.sock:/s']", "Docker socket", "ORCH_ALLOW_DOCKER_SOCKET=true"),
    ],
)
def test_a_dag_asking_for_more_than_allowed_is_an_import_error_of_its_file(
    tmp_path: Path,
    sessions: sessionmaker[Session],
    clock: FixedClock,
    task_args: str,
    asked: str,
    setting: str,
) -> None:
    folder = tmp_path / "project" / "dags"
    folder.mkdir(parents=True)
    path = dag_file(folder, "guarded.py", task_args)
    rules = OperatorPolicy.from_settings(Settings(home=tmp_path / "home", dags_folder=folder))
    DagFolderSync(sessions, folder, timeout=20, policy=rules).full(clock.now())
    with sessions() as session:
        assert dag_store.list_dag_rows(session) == []
        [error] = dag_store.list_import_errors(session)
    assert error.fileloc == str(path)
    assert "DAG 'guarded'" in error.error and "task 'greedy'" in error.error
    assert asked in error.error and setting in error.error


def test_allowed_requests_load(
    tmp_path: Path, sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    folder = tmp_path / "project" / "dags"
    folder.mkdir(parents=True)
    dag_file(
        folder,
        "guarded.py",
        "privileged=True, network='host', cap_add=['CAP_NET_ADMIN'],"
        " mounts=['./data:/data', '../shared:/shared', 'cache:/cache',"
        " '{{ params.anywhere }}:/later']",
    )
    settings = Settings(
        home=tmp_path / "home",
        dags_folder=folder,
        allow_privileged=True,
        allow_host_network=True,
        allowed_capabilities=["net_admin"],
    )
    sync = DagFolderSync(
        sessions, folder, timeout=20, policy=OperatorPolicy.from_settings(settings)
    )
    sync.full(clock.now())
    with sessions() as session:
        assert dag_store.list_import_errors(session) == []
        spec = dag_store.get_dag_spec(session, "guarded")
    task = spec.task("greedy")
    assert (task.privileged, task.network, task.cap_add) == (True, "host", ("NET_ADMIN",))


def test_container_hook_mounts_are_checked_at_load(tmp_path: Path) -> None:
    from orchestrator.models.notifiers import ContainerHook

    hook = ContainerHook("alpine", mounts=["/etc:/etc"])
    dag = DagSpec(
        dag_id="d",
        fileloc=str(tmp_path / "d.py"),
        tasks=(TaskSpec(task_id="t", image="i"),),
        on_failure=(hook,),
    )
    with pytest.raises(PolicyViolation, match=r"on_failure\[0\]\.mounts\[0\]: bind mount '/etc'"):
        policy(tmp_path).check_dag(dag)


def test_bad_capability_names_fail_in_the_dag_file() -> None:
    from orchestrator import DAG, ContainerTask

    with DAG("caps"), pytest.raises(DagDefinitionError, match="not a capability name"):
        ContainerTask("t", image="i", cap_add=["not a cap"])


# --- at launch --------------------------------------------------------------------------


def launch(settings: Settings, task: TaskSpec, rendered: RenderedTask | None = None) -> Any:
    key = AttemptKey("d", "r", task.task_id, -1, 1)
    when = datetime(2026, 1, 1, tzinfo=UTC)
    info = RunInfo(
        run_id="r",
        run_type="manual",
        logical_date=when,
        data_interval_start=when,
        data_interval_end=when,
    )
    rendered = rendered or RenderedTask(image=task.image, mounts=task.mounts)
    return build_launch_request(settings, task, rendered, key, info, settings.home / "out")


def test_limits_default_from_settings_unless_the_task_sets_them(settings: Settings) -> None:
    request = launch(settings, TaskSpec(task_id="t", image="i"))
    assert (request.mem_limit, request.nano_cpus, request.pids_limit) == (2 * 1024**3, 10**9, 1024)
    assert (request.privileged, request.cap_add, request.user) == (False, (), None)
    own = TaskSpec(task_id="t", image="i", memory="256m", cpus=0.5, pids_limit=64, user="1000")
    request = launch(settings, own)
    assert (request.mem_limit, request.nano_cpus, request.pids_limit) == (256 * 1024**2, 5e8, 64)
    assert request.user == "1000"
    unlimited = settings.model_copy(
        update={"default_memory": None, "default_cpus": None, "default_pids_limit": None}
    )
    request = launch(unlimited, TaskSpec(task_id="t", image="i"))
    assert (request.mem_limit, request.nano_cpus, request.pids_limit) == (None, None, None)


def test_launch_refuses_what_the_policy_was_tightened_against(settings: Settings) -> None:
    task = TaskSpec(task_id="t", image="i", privileged=True, mounts=("/etc:/e",))
    with pytest.raises(PolicyViolation) as caught:
        launch(settings, task)
    message = str(caught.value)
    assert message.startswith("DAG 'd', task 't': privileged=True is not allowed")
    assert "mounts[0]: bind mount '/etc' is outside the allowed mount roots" in message


def test_a_templated_mount_outside_the_roots_fails_the_task_without_retries(
    settings: Settings, sessions: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> None:
    inside = tmp_path / "inside"
    inside.mkdir()
    os.symlink("/etc", inside / "link")
    harness = Harness(settings, sessions, clock)
    dag = DagSpec(
        dag_id="d",
        fileloc=str(settings.resolved_dags_folder / "d.py"),
        params={"dir": ParamSpec(default=str(inside))},
        tasks=(
            TaskSpec(
                task_id="t",
                image="img",
                retries=3,
                mounts=("{{ params.dir }}:/data",),
            ),
        ),
    )
    fine = harness.trigger(dag)
    harness.tick(5)
    assert harness.run_state(fine) == RunState.SUCCESS
    clock.advance(minutes=1)
    bad = harness.trigger(dag, conf={"dir": str(inside / "link")})
    harness.tick(5)
    ti = harness.tis(bad)["t"]
    assert (ti.state, ti.try_number) == (TaskState.FAILED.value, 1)
    assert ti.state_detail.startswith("refused by policy: DAG 'd', task 't': mounts[0]: bind")
    assert "resolves to '/etc'" in ti.state_detail
    assert harness.run_state(bad) == RunState.FAILED
    assert len(harness.runtime.created) == 1  # only the allowed run made a container


def test_container_hook_mounts_are_checked_at_launch(tmp_path: Path) -> None:
    """`check_request` also guards hooks (their mounts were checked at load too)."""
    from orchestrator.models.launch import LaunchRequest
    from orchestrator.models.specs import Mount

    request = LaunchRequest(name="n", image="i", mounts=(Mount.parse("/etc:/etc"),))
    with pytest.raises(PolicyViolation, match="hook: mounts"):
        policy(tmp_path).check_request(request, "hook")
