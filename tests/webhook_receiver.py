"""A real HTTP server in a thread that records the webhooks it receives (for every tier)."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    """Answers POSTs with `status` after `delay` seconds (and once `gate` is set, if given) and
    keeps each JSON body received.

    `host` is where it listens: loopback for in-process tests; a container on the default
    bridge reaches the host on its gateway, so integration tests may bind all interfaces.
    """

    def __init__(
        self,
        status: int = 200,
        delay: float = 0.0,
        host: str = "127.0.0.1",
        gate: threading.Event | None = None,
    ) -> None:
        self.status, self.delay, self.gate = status, delay, gate
        self.received: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._lock:
                    receiver.received.append(json.loads(body))
                    receiver.headers.append(dict(self.headers))
                if receiver.delay:
                    time.sleep(receiver.delay)
                if receiver.gate is not None:  # answer once the test opens it
                    receiver.gate.wait(60)
                self.send_response(receiver.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def url(self, host: str = "127.0.0.1", path: str = "/hook") -> str:
        return f"http://{host}:{self.port}{path}"

    def events(self) -> list[str]:
        with self._lock:
            return [body["event"] for body in self.received]

    def wait_for(self, count: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.05)
        with self._lock:
            return list(self.received)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def closed_port() -> int:
    """A local port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
