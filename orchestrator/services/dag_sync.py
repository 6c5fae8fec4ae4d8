"""Reading the DAG folder into the store (each file parsed in a subprocess)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from orchestrator.errors import DagNotFound
from orchestrator.models.specs import DagSpec
from orchestrator.services.dag_processing import FileResult, process_folder
from orchestrator.services.policy import OperatorPolicy
from orchestrator.store import dags as dag_store


def sync_dags_folder(
    sessions: sessionmaker[Session],
    folder: Path,
    *,
    timeout: float,
    now: datetime,
    paused_at_creation: bool = False,
    policy: OperatorPolicy | None = None,
) -> list[FileResult]:
    """Parse every DAG file and record its DAGs or its import error. Never raises for a bad
    file: each file's failure is recorded on that file alone. With a `policy`, a DAG asking
    for more than the operator allows is its file's import error."""
    results = process_folder(folder, timeout) if folder.is_dir() else []
    if policy is not None:
        results = policy.apply_to_results(results)
    with sessions.begin() as session:
        dag_store.lock_sync(session)
        for result in results:
            dag_store.record_file_result(
                session,
                result.fileloc,
                result.dags,
                result.error,
                now,
                paused_at_creation=paused_at_creation,
            )
        dag_store.deactivate_missing_files(session, {r.fileloc for r in results})
    return results


def find_dag(results: list[FileResult], dag_id: str, folder: Path) -> DagSpec:
    """The parsed DAG with this id, or a DagNotFound that lists what went wrong."""
    for result in results:
        for spec in result.dags:
            if spec.dag_id == dag_id:
                return spec
    known = sorted(spec.dag_id for r in results for spec in r.dags)
    broken = [r.fileloc for r in results if r.error]
    hint = f"; files that failed to import: {', '.join(broken)}" if broken else ""
    raise DagNotFound(f"no DAG {dag_id!r} in {folder} (found: {', '.join(known) or 'none'}){hint}")
