"""Notifications: building them while the scheduler applies state changes, delivering them
after its transaction committed, from a small bounded pool of worker threads.

Delivery is at most once: a notification is handed over only once the state change that
caused it is committed (a rolled-back pass notifies nothing), and one lost to a scheduler crash
before delivery is not sent again. A failing or hanging notifier (connection refused, HTTP
500, timeout, non-zero exit, missing image) is logged in the scheduler's log and, for task
events, in the attempt's log file, and recorded in the `notifications` table with its error;
it never fails the task, the run or the scheduler.

- Webhook: `POST` of the payload (`application/json`). Connection errors, timeouts and 5xx/429
  answers are retried twice (after 1 s and 4 s); other answers of 400 and above fail at once.
- Command: the program runs without a shell, with the scheduler's environment plus
  `ORCH_NOTIFICATION` (the payload) and the payload on stdin; refused unless
  `ORCH_ALLOW_COMMAND_NOTIFIERS` is true (the default, for local use).
- ContainerHook: a container with the payload in `ORCH_NOTIFICATION`, labelled with the
  installation, DAG, run and task (plus `orch.notification=<event>`), removed afterwards.
"""

from __future__ import annotations

import logging
import os
import subprocess
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from orchestrator.models.launch import LABEL_DAG, LABEL_RUN, LABEL_TASK, LaunchRequest
from orchestrator.models.notifiers import (
    NOTIFICATION_ENV,
    Command,
    ContainerHook,
    NotificationPayload,
    Notifier,
    NotifyEvent,
    Webhook,
)
from orchestrator.models.specs import DagSpec, Mount, PullPolicy, TaskSpec
from orchestrator.models.states import RunState, TaskState
from orchestrator.runtime.base import ContainerRuntime
from orchestrator.scheduling.notifications import (
    run_event,
    run_notifiers,
    task_event,
    task_notifiers,
)
from orchestrator.services.clock import Clock
from orchestrator.services.containers import AttemptKey, instance_labels, log_path
from orchestrator.services.logs import LogFile
from orchestrator.services.policy import OperatorPolicy
from orchestrator.settings import Settings
from orchestrator.store import notifications as notification_store
from orchestrator.store.tables import DagRunRow, NotificationRow, TaskInstanceRow

log = logging.getLogger(__name__)

#: Label marking a notification container (its value: the event).
LABEL_NOTIFICATION = "orch.notification"
#: Seconds between webhook attempts: two retries.
WEBHOOK_RETRY_DELAYS: tuple[float, ...] = (1.0, 4.0)
#: Notifications waiting for a worker beyond this are dropped (and logged): hanging notifiers
#: must not grow the scheduler's memory without bound.
MAX_PENDING = 10_000
#: Characters of a failing command's or container's output kept in the error.
_OUTPUT_TAIL = 500


@dataclass(frozen=True)
class Notice:
    """One event for one notifier, ready to deliver once the state change is committed."""

    notifier: Notifier
    payload: NotificationPayload
    log_path: Path | None = None  # the attempt's log file, told how delivery went
    sla_miss_id: int | None = None  # marked notified once delivered


# --------------------------------------------------------------------------- building notices
def task_notices(
    settings: Settings,
    task_of: Callable[[], TaskSpec | None],
    ti: TaskInstanceRow,
    old: TaskState,
    new: TaskState,
    now: datetime,
    run_of: Callable[[], DagRunRow],
) -> list[Notice]:
    """Notices for a task instance's state change. Most changes produce none: `task_of` is
    called only for a change that is an event, `run_of` only when a notifier is due."""
    event = task_event(old, new)
    if event is None:
        return []
    task = task_of()
    if task is None:
        return []
    notifiers = task_notifiers(task, event)
    if not notifiers:
        return []
    path = attempt_log(settings, ti)
    payload = build_payload(event, run_of(), now, ti=ti, log=path)
    return [Notice(notifier, payload, path) for notifier in notifiers]


def run_notices(
    spec: DagSpec | None, run: DagRunRow, old: RunState, new: RunState, now: datetime
) -> list[Notice]:
    """Notices for a run's state change (the DAG-level notifiers)."""
    event = run_event(old, new)
    if event is None or spec is None:
        return []
    notifiers = run_notifiers(spec, event)
    if not notifiers:
        return []
    payload = build_payload(event, run, now, state=new.value)
    return [Notice(notifier, payload) for notifier in notifiers]


def attempt_log(settings: Settings, ti: TaskInstanceRow) -> Path | None:
    """The log file of the task instance's latest attempt (None before its first)."""
    if ti.try_number < 1:
        return None
    key = AttemptKey(ti.dag_id, ti.run_id, ti.task_id, ti.map_index, ti.try_number)
    return log_path(settings, key)


def build_payload(
    event: NotifyEvent,
    run: DagRunRow,
    now: datetime,
    *,
    ti: TaskInstanceRow | None = None,
    state: str | None = None,
    log: Path | None = None,
    sla: tuple[object, datetime] | None = None,
) -> NotificationPayload:
    """The payload of a run event, or of a task event when `ti` is given."""
    task_fields = {}
    if ti is not None:
        task_fields = {
            "task_id": ti.task_id,
            "map_index": ti.map_index,
            "try_number": ti.try_number,
            "state": ti.state,
            "state_detail": ti.state_detail,
            "exit_code": ti.exit_code,
            "log_path": str(log) if log is not None else None,
        }
    else:
        task_fields = {"state": state or run.state}
    if sla is not None:
        task_fields.update({"sla": sla[0], "sla_deadline": sla[1]})
    return NotificationPayload.model_validate(
        {
            "event": event,
            "dag_id": run.dag_id,
            "run_id": run.run_id,
            "run_type": run.run_type,
            "logical_date": run.logical_date,
            "data_interval_start": run.data_interval_start,
            "data_interval_end": run.data_interval_end,
            "at": now,
            **task_fields,
        }
    )


# --------------------------------------------------------------------------- delivering
class DeliveryFailed(Exception):
    """A notifier did not accept the notification (the message says why)."""

    def __init__(self, message: str, attempts: int = 1) -> None:
        super().__init__(message)
        self.attempts = attempts


class _Refused(Exception):
    """The scheduler's settings forbid this notifier."""


class NotificationService:
    """Delivers notices from a bounded pool of worker threads; never raises to its caller."""

    def __init__(
        self,
        *,
        settings: Settings,
        sessions: sessionmaker[Session],
        runtime: ContainerRuntime,
        clock: Clock,
        executor: Executor | None = None,
        retry_delays: Sequence[float] = WEBHOOK_RETRY_DELAYS,
    ) -> None:
        self._settings = settings
        self._sessions = sessions
        self._runtime = runtime
        self._clock = clock
        self._retry_delays = tuple(retry_delays)
        self._owns_executor = executor is None
        self._executor = executor or ThreadPoolExecutor(
            max_workers=settings.notification_workers, thread_name_prefix="orch-notify"
        )
        self._lock = threading.Lock()
        self._pending = 0
        self._closed = threading.Event()

    def submit(self, notices: Iterable[Notice]) -> None:
        """Queue notices for delivery; returns at once (unless the executor is inline)."""
        for notice in notices:
            with self._lock:
                if self._pending >= MAX_PENDING:
                    log.error(
                        "dropping notification %s to %s: %d notifications are already waiting",
                        notice.payload.event.value,
                        notice.notifier.describe(),
                        self._pending,
                    )
                    continue
                self._pending += 1
            try:
                self._executor.submit(self._deliver_counted, notice)
            except RuntimeError:  # the pool was shut down: the scheduler is stopping
                with self._lock:
                    self._pending -= 1
                log.warning("scheduler stopping: notification %s not sent", notice.payload.event)

    def close(self, *, wait: bool = True) -> None:
        """Deliver what is queued, then stop the workers (if this service made them).
        `wait=False` (a SIGTERM) returns at once: the workers go on with what is queued while
        the process lets them (delivery is at most once: what is not sent then never is)."""
        self._closed.set()
        if self._owns_executor:
            self._executor.shutdown(wait=wait)

    def _deliver_counted(self, notice: Notice) -> None:
        try:
            self.deliver(notice)
        finally:
            with self._lock:
                self._pending -= 1

    def deliver(self, notice: Notice) -> bool:
        """Send one notice, then log and record how it went. True if it was delivered."""
        notifier, payload = notice.notifier, notice.payload
        target = notifier.describe()
        where = f"notification {payload.event.value} to {target}"
        status, attempts, error = "delivered", 1, None
        try:
            attempts = self._send(notifier, payload)
        except DeliveryFailed as exc:
            status, attempts, error = "failed", exc.attempts, str(exc)
        except _Refused as exc:
            status, error = "refused", str(exc)
        except Exception as exc:  # a notifier must never take a worker (or anything) down
            status, error = "failed", f"{type(exc).__name__}: {exc}"
        subject = _subject(payload)
        if error is None:
            log.info("%s for %s delivered", where, subject)
        else:
            log.warning("%s for %s %s: %s", where, subject, status, error)
        if notice.log_path is not None:
            line = f"[orchestrator] {where} delivered"
            if error is not None:
                line = f"[orchestrator] {where} {status}: {error}"
            try:
                LogFile(notice.log_path).write_line(line)
            except OSError:
                log.exception("could not write to %s", notice.log_path)
        self._record(notice, target, status, attempts, error)
        return error is None

    def _record(
        self, notice: Notice, target: str, status: str, attempts: int, error: str | None
    ) -> None:
        payload = notice.payload
        try:
            with self._sessions.begin() as session:
                notification_store.record_delivery(
                    session,
                    NotificationRow(
                        event=payload.event.value,
                        dag_id=payload.dag_id,
                        run_id=payload.run_id,
                        task_id=payload.task_id,
                        map_index=payload.map_index,
                        try_number=payload.try_number,
                        notifier=notice.notifier.kind,
                        target=target,
                        status=status,
                        attempts=attempts,
                        error=error,
                        created_at=payload.at,
                        finished_at=self._clock.now(),
                    ),
                )
                if notice.sla_miss_id is not None and status == "delivered":
                    notification_store.mark_sla_notified(session, notice.sla_miss_id)
        except Exception:
            log.exception("could not record the delivery of a notification to %s", target)

    # ----------------------------------------------------------------- per kind
    def _send(self, notifier: Notifier, payload: NotificationPayload) -> int:
        """Deliver; return the number of attempts. Raises DeliveryFailed or _Refused."""
        body = payload.model_dump_json()
        if isinstance(notifier, Webhook):
            return self._post(notifier, body.encode())
        if isinstance(notifier, Command):
            self._run_command(notifier, body)
        else:
            self._run_container(notifier, payload, body)
        return 1

    def _post(self, hook: Webhook, body: bytes) -> int:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "orchestrator-notifier",
            **hook.headers,
        }
        attempt = 0
        while True:
            attempt += 1
            request = urllib.request.Request(hook.url, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=hook.timeout) as response:
                    response.read(65536)
                return attempt
            except urllib.error.HTTPError as exc:
                error = f"HTTP {exc.code} {exc.reason}"
                retry = exc.code >= 500 or exc.code == 429
            except TimeoutError:
                error, retry = f"no answer within {hook.timeout:g}s", True
            except urllib.error.URLError as exc:
                reason = exc.reason
                if isinstance(reason, TimeoutError):
                    error = f"no answer within {hook.timeout:g}s"
                else:
                    error = f"cannot connect: {reason}"
                retry = True
            except OSError as exc:
                error, retry = f"connection failed: {exc}", True
            if not retry or attempt > len(self._retry_delays) or self._closed.is_set():
                tries = f" (after {attempt} attempts)" if attempt > 1 else ""
                raise DeliveryFailed(error + tries, attempt)
            self._closed.wait(self._retry_delays[attempt - 1])

    def _run_command(self, command: Command, body: str) -> None:
        if not self._settings.allow_command_notifiers:
            raise _Refused(
                "command notifiers are disabled on this scheduler"
                " (ORCH_ALLOW_COMMAND_NOTIFIERS=false); use a Webhook or a ContainerHook"
            )
        try:
            done = subprocess.run(
                list(command.argv),
                input=body.encode(),
                env={**os.environ, NOTIFICATION_ENV: body},
                capture_output=True,
                timeout=command.timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise DeliveryFailed(f"did not finish within {command.timeout:g}s; killed") from None
        except OSError as exc:
            raise DeliveryFailed(f"cannot run {command.argv[0]!r}: {exc.strerror}") from None
        if done.returncode != 0:
            output = (done.stderr or done.stdout).decode(errors="replace").strip()
            raise DeliveryFailed(f"exited with status {done.returncode}{_tail(output)}")

    def _run_container(self, hook: ContainerHook, payload: NotificationPayload, body: str) -> None:
        labels = {
            **self._settings.extra_labels,
            **instance_labels(self._settings),
            LABEL_DAG: payload.dag_id,
            LABEL_RUN: payload.run_id,
            LABEL_NOTIFICATION: payload.event.value,
        }
        if payload.task_id is not None:
            labels[LABEL_TASK] = payload.task_id
        request = LaunchRequest(
            name=f"{self._settings.instance_name}-notify-{payload.dag_id}-{uuid.uuid4().hex[:12]}",
            image=hook.image,
            command=hook.command,
            environment={**hook.environment, NOTIFICATION_ENV: body},
            mounts=tuple(Mount.parse(m) for m in hook.mounts),
            labels=labels,
            pull_policy=PullPolicy.IF_NOT_PRESENT,
        )
        output = bytearray()

        def sink(chunk: bytes) -> None:
            if len(output) < 64 * 1024:
                output.extend(chunk)

        try:
            OperatorPolicy.from_settings(self._settings).check_request(
                request, f"DAG '{payload.dag_id}': container hook"
            )
            self._runtime.ensure_image(hook.image, request.pull_policy, sink)
            container_id = self._runtime.create(request)
        except Exception as exc:
            raise DeliveryFailed(f"cannot create the container: {exc}") from None
        try:
            self._runtime.start(container_id)
            follower = threading.Thread(
                target=self._runtime.follow_logs,
                args=(container_id, sink),
                kwargs={"started": True},
                name=f"notify-logs-{container_id[:12]}",
                daemon=True,
            )
            follower.start()
            follower.join(hook.timeout)
            if follower.is_alive():
                self._runtime.stop(container_id, self._settings.stop_grace_period)
                follower.join(self._settings.stop_grace_period + 5)
                raise DeliveryFailed(f"did not finish within {hook.timeout:g}s; stopped")
            status = self._runtime.exit_status(container_id)
            if status is None or status.exit_code != 0:
                code = "unknown" if status is None else status.exit_code
                text = output.decode(errors="replace").strip()
                raise DeliveryFailed(f"container exited with code {code}{_tail(text)}")
        except DeliveryFailed:
            raise
        except Exception as exc:
            raise DeliveryFailed(f"container failed: {exc}") from None
        finally:
            try:
                self._runtime.remove(container_id)
            except Exception:
                log.exception("could not remove notification container %s", container_id)


def _subject(payload: NotificationPayload) -> str:
    task = f", task {payload.task_id!r}" if payload.task_id else ""
    return f"DAG {payload.dag_id!r}, run {payload.run_id!r}{task}"


def _tail(text: str) -> str:
    if not text:
        return ""
    if len(text) > _OUTPUT_TAIL:
        text = "..." + text[-_OUTPUT_TAIL:]
    return f": {text}"
