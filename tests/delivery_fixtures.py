"""A real HTTP receiver on 127.0.0.1 for notifier and callback tests: it records every request and answers
with the status codes the test scripts (e.g. 500 twice, then 200), optionally holding an answer until the
test releases it. Used by the outbox, review-callback and alerting tests."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    url: str
    requests: list[Received] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)  # answered in order; then `default_status`
    default_status: int = 200
    hold: threading.Event | None = None  # when set by the test: answers wait until it is set
    arrived: threading.Condition = field(default_factory=threading.Condition)
    retry_after: str | None = None

    def next_status(self) -> int:
        return self.statuses.pop(0) if self.statuses else self.default_status

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Block until at least ``count`` requests arrived (or fail the test after ``timeout``)."""
        with self.arrived:
            if not self.arrived.wait_for(lambda: len(self.requests) >= count, timeout):
                pytest.fail(
                    f"receiver got {len(self.requests)} requests, expected {count} within {timeout} s"
                )
            return list(self.requests)


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            with receiver.arrived:
                receiver.requests.append(
                    Received("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                )
                status = receiver.next_status()
                receiver.arrived.notify_all()
            if receiver.hold is not None:
                receiver.hold.wait(30)
            self.send_response(status)
            if receiver.retry_after is not None and status in (429, 503):
                self.send_header("Retry-After", receiver.retry_after)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"status":"ok"}' if status < 300 else b'{"error":"scripted"}')

        def log_message(self, format: str, *args: object) -> None:
            return

    return Handler


def start_receiver() -> tuple[Receiver, ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    receiver = Receiver(url=f"http://127.0.0.1:{server.server_address[1]}/hook")
    server.RequestHandlerClass = _handler(receiver)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="test-receiver", daemon=True).start()
    return receiver, server


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A recording HTTP receiver at ``receiver.url`` (POST only)."""
    rec, server = start_receiver()
    yield rec
    if rec.hold is not None:
        rec.hold.set()
    server.shutdown()
    server.server_close()
