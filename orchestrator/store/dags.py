"""Queries on parsed DAGs and DAG-file import errors."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import delete, func, or_, select, text
from sqlalchemy.orm import Session

from orchestrator.errors import DagNotFound
from orchestrator.models.specs import DagSpec
from orchestrator.store.tables import DagRow, ImportErrorRow

#: The PostgreSQL advisory lock that serializes recording parsed DAG files.
SYNC_LOCK = 0x6F7263682D646167  # "orch-dag"


def lock_sync(session: Session) -> None:
    """On PostgreSQL, wait for the lock on recording parsed DAG files, held until the
    transaction ends: schedulers sharing the store parse the same folder, and one records at a
    time (no duplicate insert of a new DAG, no deadlock between two updates)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SYNC_LOCK})


def spec_hash(spec_json: str) -> str:
    return hashlib.sha256(spec_json.encode()).hexdigest()


def upsert_dag(
    session: Session, spec: DagSpec, now: datetime, *, paused_at_creation: bool = False
) -> DagRow:
    """Store the latest spec of a DAG; its paused flag and history are kept. A new DAG starts
    paused when `paused_at_creation` (setting `dags_are_paused_at_creation`). A new, changed
    or re-activated DAG is planned again at the scheduler's next pass."""
    spec_json = spec.model_dump_json()
    row = session.get(DagRow, spec.dag_id)
    if row is None:
        row = DagRow(dag_id=spec.dag_id, is_paused=paused_at_creation)
        session.add(row)
    new_hash = spec_hash(spec_json)
    if row.spec_hash != new_hash or not row.is_active:
        row.next_dagrun_create_after = None
    row.fileloc = spec.fileloc
    row.spec_json = spec_json
    row.spec_hash = new_hash
    row.is_active = True
    row.last_parsed_at = now
    return row


def record_file_result(
    session: Session,
    fileloc: str,
    specs: Iterable[DagSpec],
    error: str | None,
    now: datetime,
    *,
    paused_at_creation: bool = False,
) -> None:
    """Record one DAG file's parse: its DAGs, or its import error (keeping its old DAGs)."""
    if error is not None:
        existing = session.scalar(select(ImportErrorRow).where(ImportErrorRow.fileloc == fileloc))
        if existing is None:
            session.add(ImportErrorRow(fileloc=fileloc, error=error, timestamp=now))
        else:
            existing.error, existing.timestamp = error, now
        return
    session.execute(delete(ImportErrorRow).where(ImportErrorRow.fileloc == fileloc))
    seen = set()
    for spec in specs:
        upsert_dag(session, spec, now, paused_at_creation=paused_at_creation)
        seen.add(spec.dag_id)
    for row in session.scalars(select(DagRow).where(DagRow.fileloc == fileloc)):
        if row.dag_id not in seen:
            row.is_active = False


def deactivate_missing_files(session: Session, present: set[str]) -> None:
    """DAGs whose file is gone stop being active; import errors of gone files are dropped."""
    for row in session.scalars(select(DagRow).where(DagRow.is_active.is_(True))):
        if row.fileloc not in present:
            row.is_active = False
    for err in session.scalars(select(ImportErrorRow)):
        if err.fileloc not in present:
            session.delete(err)


def integrity_targets(session: Session) -> dict[str, str]:
    """Every DAG's spec hash, or `inactive` for DAGs whose file is gone, in one narrow query
    (no spec text): what a long-running reader compares its cached specs with."""
    rows = session.execute(select(DagRow.dag_id, DagRow.spec_hash, DagRow.is_active))
    return {dag_id: spec_hash if active else INACTIVE for dag_id, spec_hash, active in rows}


#: `integrity_targets`' value for an inactive DAG.
INACTIVE = "inactive"


def get_dag_row(session: Session, dag_id: str) -> DagRow:
    row = session.get(DagRow, dag_id)
    if row is None:
        raise DagNotFound(
            f"no DAG {dag_id!r} is known; check `orchestrator dags list` (is its file in the"
            " DAGs folder, and did it import without errors?)"
        )
    return row


def get_dag_spec(session: Session, dag_id: str) -> DagSpec:
    return DagSpec.model_validate_json(get_dag_row(session, dag_id).spec_json)


def list_dag_rows(session: Session, *, include_inactive: bool = False) -> list[DagRow]:
    query = select(DagRow).order_by(DagRow.dag_id)
    if not include_inactive:
        query = query.where(DagRow.is_active.is_(True))
    return list(session.scalars(query))


def list_import_errors(session: Session) -> list[ImportErrorRow]:
    return list(session.scalars(select(ImportErrorRow).order_by(ImportErrorRow.fileloc)))


def set_paused(session: Session, dag_id: str, paused: bool) -> DagRow:
    """Pause or unpause a DAG; an unpaused DAG is planned again at the next pass."""
    row = get_dag_row(session, dag_id)
    if row.is_paused and not paused:
        row.next_dagrun_create_after = None
    row.is_paused = paused
    return row


def dags_to_plan(session: Session, now: datetime) -> list[DagRow]:
    """Active, unpaused DAGs whose planning is due (never planned, changed, or due by now),
    read afresh and locked until the transaction ends. A DAG another transaction holds (a
    scheduler planning it or starting its runs) is passed over (`FOR UPDATE SKIP LOCKED`), so
    schedulers sharing a PostgreSQL store never plan the same DAG at once."""
    due = DagRow.next_dagrun_create_after
    return list(
        session.scalars(
            select(DagRow)
            .where(DagRow.is_active.is_(True), DagRow.is_paused.is_(False))
            .where(or_(due.is_(None), due <= now))
            .order_by(DagRow.dag_id)
            .with_for_update(skip_locked=True)
            .execution_options(populate_existing=True)
        )
    )


def next_planning_time(session: Session) -> datetime | None:
    """The earliest time an active, unpaused DAG needs planning again."""
    return session.scalar(
        select(func.min(DagRow.next_dagrun_create_after)).where(
            DagRow.is_active.is_(True), DagRow.is_paused.is_(False)
        )
    )
