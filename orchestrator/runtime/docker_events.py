"""Docker `die` events: one background subscription per `DockerRuntime.watch_exits` call.

A subscription reconnects on its own when the stream breaks and replays what happened meanwhile
from the engine's in-memory event log, delivering each exit once.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from orchestrator.runtime.base import ExitCallback, Subscription

logger = logging.getLogger(__name__)

_RECONNECT_BACKOFF = (0.05, 2.0)  # first and largest pause between reconnect attempts
_EVENT_REPLAY_MARGIN_NS = 2_000_000_000  # a reconnected event stream replays this much history
_REMEMBERED_EVENTS = 1_000  # exit events remembered (at least) to de-duplicate replays


class ExitWatcher(Subscription):
    """One `die`-event subscription, with its own thread and reconnect loop.

    Events are de-duplicated by (container id, event time): a reconnect asks for events since
    a margin before the newest one seen, because the engine may publish concurrent events
    slightly out of timestamp order.
    """

    def __init__(
        self,
        api: Any,
        labels: dict[str, str],
        on_exit: ExitCallback,
        clean_exits: dict[str, bool] | None = None,
    ) -> None:
        self._api = api
        self._clean_exits = clean_exits if clean_exits is not None else {}
        self._filters = {
            "type": "container",
            "event": "die",
            "label": [f"{key}={value}" for key, value in labels.items()],
        }
        self._on_exit = on_exit
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._stream: Any = None
        self._thread: threading.Thread | None = None
        self._subscribed_nano = 0  # when watch_exits was called: nothing earlier is delivered
        self._newest_nano = 0  # time of the newest event seen
        self._delivered: set[tuple[str, int]] = set()  # recent (container id, event time)
        self._remember = _REMEMBERED_EVENTS

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def connect_first(self) -> None:
        """Subscribe and start the thread.

        If the engine cannot be reached its connection error propagates (the runtime turns it
        into RuntimeUnavailable) and no thread is started.
        """
        self._subscribed_nano = self._newest_nano = time.time_ns()
        self._open(self._subscribed_nano)
        self._thread = threading.Thread(target=self._run, name="docker-exit-events", daemon=True)
        self._thread.start()

    def _open(self, since_nano: int) -> bool:
        since = f"{since_nano // 1_000_000_000}.{since_nano % 1_000_000_000:09d}"
        stream = self._api.events(since=since, filters=self._filters, decode=True)
        with self._lock:
            if self._closed.is_set():
                _close_quietly(stream)
                return False
            self._stream = stream
        return True

    def _run(self) -> None:
        pause = _RECONNECT_BACKOFF[0]
        while not self._closed.is_set():
            stream = self._stream
            if stream is None:
                since = max(self._subscribed_nano, self._newest_nano - _EVENT_REPLAY_MARGIN_NS)
                try:
                    if not self._open(since):
                        return
                except Exception as exc:  # engine down or restarting: keep trying until closed
                    logger.warning("container events: reconnect failed (%s); retrying", exc)
                    self._closed.wait(pause)
                    pause = min(pause * 2, _RECONNECT_BACKOFF[1])
                continue
            try:
                for event in stream:
                    pause = _RECONNECT_BACKOFF[0]
                    self._deliver(event)
            except Exception as exc:
                if not self._closed.is_set():
                    logger.warning("container events: stream broke (%s)", exc)
            with self._lock:
                if self._stream is stream:
                    self._stream = None
            _close_quietly(stream)
            if not self._closed.is_set():
                logger.info("container events: stream ended; reconnecting")
                self._closed.wait(pause)
                pause = min(pause * 2, _RECONNECT_BACKOFF[1])

    def _deliver(self, event: dict[str, Any]) -> None:
        container_id = str(event.get("id") or event.get("Actor", {}).get("ID", ""))
        time_nano = int(event.get("timeNano") or 0)
        key = (container_id, time_nano)
        if not container_id or key in self._delivered:
            return
        self._delivered.add(key)
        if time_nano > self._newest_nano:
            self._newest_nano = time_nano
        if len(self._delivered) > self._remember:
            cutoff = self._newest_nano - 2 * _EVENT_REPLAY_MARGIN_NS
            self._delivered = {k for k in self._delivered if k[1] >= cutoff}
            self._remember = max(_REMEMBERED_EVENTS, 2 * len(self._delivered))
        attributes = event.get("Actor", {}).get("Attributes", {}) or {}
        if str(attributes.get("exitCode", "")) == "0":
            if len(self._clean_exits) > _REMEMBERED_EVENTS:
                self._clean_exits.clear()  # never harvested here (another process's?): forget
            self._clean_exits[container_id] = True
        try:
            self._on_exit(container_id)
        except Exception:
            logger.exception("exit callback failed for container %s", container_id)

    def close(self) -> None:
        """Stop delivering; unblocks the thread by closing its connection and waits for it."""
        self._closed.set()
        with self._lock:
            stream, self._stream = self._stream, None
        _close_quietly(stream)
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)


def _close_quietly(stream: Any) -> None:
    if stream is None:
        return
    try:
        stream.close()
    except Exception:  # already closed, or the socket is gone
        logger.debug("closing an event stream failed", exc_info=True)
