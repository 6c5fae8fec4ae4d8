"""The long-running scheduler process: a DAG-folder parsing thread plus the scheduler loop."""

from __future__ import annotations

import logging
import threading

from sqlalchemy.orm import Session, sessionmaker

from orchestrator.runtime.base import ContainerRuntime
from orchestrator.services.clock import Clock
from orchestrator.services.dag_sync import sync_dags_folder
from orchestrator.services.scheduler import Scheduler
from orchestrator.settings import Settings

log = logging.getLogger("orchestrator.scheduler")


def run_scheduler(
    settings: Settings,
    sessions: sessionmaker[Session],
    runtime: ContainerRuntime,
    clock: Clock,
    stop: threading.Event,
) -> None:
    """Run until `stop` is set. A bad DAG file or a failing pass is logged, never fatal."""
    scheduler = Scheduler(settings=settings, sessions=sessions, runtime=runtime, clock=clock)
    folder = settings.resolved_dags_folder

    def parse_loop() -> None:
        while not stop.is_set():
            try:
                results = sync_dags_folder(
                    sessions, folder, timeout=settings.dag_file_timeout, now=clock.now()
                )
                for result in results:
                    if result.error:
                        log.warning("import error in %s", result.fileloc)
                scheduler.wake()
            except Exception:
                log.exception("parsing the DAG folder %s failed", folder)
            stop.wait(settings.dag_reparse_interval)

    parser = threading.Thread(target=parse_loop, name="dag-parser", daemon=True)
    parser.start()
    log.info("scheduler started: DAGs from %s, parallelism %d", folder, settings.parallelism)
    try:
        scheduler.run_forever(stop)
    finally:
        scheduler.close()
        parser.join(timeout=5)
        log.info("scheduler stopped")
