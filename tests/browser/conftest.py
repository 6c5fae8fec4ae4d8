"""A real web server (uvicorn in a thread, the app `orchestrator web` serves) over a temporary
store with a user and a DAG, a scheduler thread executing its runs on the fake runtime, and a
headless Chromium (the system's `chromium`, driven by Playwright) to look at it. Without
Chromium or Playwright the tests skip, and fail under CI."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.models.launch import LaunchRequest
from orchestrator.models.mapping import LiteralItems
from orchestrator.models.specs import DagSpec, ParamSpec, TaskSpec
from orchestrator.runtime.fake import FakeBehavior, FakeRuntime
from orchestrator.services.clock import SystemClock
from orchestrator.services.scheduler import Scheduler
from orchestrator.services.users import Role, create_user
from orchestrator.settings import Settings
from orchestrator.store import dags as dag_store
from orchestrator.web import create_app

USER, PASSWORD = "ann", "browser-secret"
CHROMIUM_NAMES = ("chromium", "chromium-browser")


def chromium_path() -> str:
    """The system Chromium (Debian's `chromium` package); skip, or fail under CI, without it."""
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    message = "no chromium on PATH: `apt-get install chromium` (scripts/setup.sh does)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def dag() -> DagSpec:
    def task(task_id: str, *upstream: str, group: str | None = None) -> TaskSpec:
        return TaskSpec(
            task_id=task_id, image="busybox", upstream_task_ids=upstream, group_id=group
        )

    return DagSpec(
        dag_id="sales",
        fileloc="/dags/sales.py",
        description="daily sales figures",
        params={"rows": ParamSpec(default=10, type="integer", minimum=1)},
        tasks=(
            task("extract"),
            task("load.orders", "extract", group="load"),
            task("load.refunds", "extract", group="load"),
            task("report", "load.orders", "load.refunds"),
        ),
    )


def slow_dag() -> DagSpec:
    """One task whose container runs until the test finishes it."""
    task = TaskSpec(task_id="wait", image="busybox")
    return DagSpec(dag_id="slow", fileloc="/dags/slow.py", tasks=(task,))


def fanout_dag() -> DagSpec:
    """`fetch` maps over three cities; group `load` holds one task after it."""
    fetch = TaskSpec(
        task_id="fetch",
        image="busybox",
        environment={"CITY": "{{ mapped.item }}"},
        expand={"item": LiteralItems(items=("amsterdam", "paris", "tokyo"))},
    )
    load = TaskSpec(
        task_id="load.all", image="busybox", upstream_task_ids=("fetch",), group_id="load"
    )
    return DagSpec(dag_id="fanout", fileloc="/dags/fanout.py", tasks=(fetch, load))


def script(request: LaunchRequest) -> FakeBehavior:
    task_id = request.labels["orch.task_id"]
    if request.labels["orch.dag_id"] == "slow":
        return FakeBehavior(logs=b"waiting for input\n", hang=True)
    return FakeBehavior(logs=f"hello from {task_id}\nrows written: 10\n".encode(), output=task_id)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Site:
    url: str
    sessions: sessionmaker[Session]
    runtime: FakeRuntime


@pytest.fixture
def site(settings: Settings, sessions: sessionmaker[Session]) -> Iterator[Site]:
    clock = SystemClock()
    with sessions.begin() as session:
        create_user(session, USER, PASSWORD, Role.OPERATOR, clock.now())
        dag_store.upsert_dag(session, dag(), clock.now())
        dag_store.upsert_dag(session, slow_dag(), clock.now())
        dag_store.upsert_dag(session, fanout_dag(), clock.now())
    runtime = FakeRuntime(script)
    scheduler = Scheduler(settings=settings, sessions=sessions, runtime=runtime, clock=clock)
    stop = threading.Event()
    loop = threading.Thread(target=scheduler.run_forever, args=(stop,), daemon=True)
    loop.start()

    def nudge() -> None:  # a scheduler process polls the store; this one is told at once
        while not stop.wait(0.3):
            scheduler.wake()

    threading.Thread(target=nudge, daemon=True).start()
    port = free_port()
    config = uvicorn.Config(
        create_app(settings, sessions, clock), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    serving = threading.Thread(target=server.run, daemon=True)
    serving.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline:
            pytest.fail("the web server did not start within 15 s")
        time.sleep(0.05)
    try:
        yield Site(url=f"http://127.0.0.1:{port}", sessions=sessions, runtime=runtime)
    finally:
        server.should_exit = True
        serving.join(timeout=10)
        stop.set()
        scheduler.wake()
        loop.join(timeout=10)
        scheduler.close()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where this test run's screenshots go (`ORCH_TEST_ARTIFACTS`, else a temporary folder);
    the path is printed."""
    root = os.environ.get("ORCH_TEST_ARTIFACTS")
    if root:
        folder = Path(root) / time.strftime("browser-%Y%m%d-%H%M%S")
        folder.mkdir(parents=True, exist_ok=True)
    else:
        folder = tmp_path_factory.mktemp("browser-screenshots")
    print(f"\nbrowser screenshots: {folder}")
    return folder


@pytest.fixture
def browser_page() -> Iterator[Any]:
    """A Playwright page in headless Chromium (confirmation dialogs are accepted)."""
    executable = chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("playwright is not installed: pip install -e '.[dev]'")
        pytest.skip("playwright is not installed")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True, args=["--no-sandbox"]
        )
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(20_000)
        page.on("dialog", lambda dialog: dialog.accept())
        try:
            yield page
        finally:
            browser.close()
