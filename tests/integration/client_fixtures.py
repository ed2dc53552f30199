"""Fixtures for the client and example-backend tests: a real ticketguard API with the ladder model (whose
decisions are known, see scoring_fixtures), and local HTTP receivers that misbehave on purpose."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from scoring_fixtures import ladder_booster, make_settings, register_model, running_api

from ticketguard.kit.db import make_engine


@contextmanager
def ticketguard_api(
    database_url: str, data_dir: Path, *, model: bool = True, **settings: Any
) -> Iterator[str]:
    """A real scoring API (uvicorn on 127.0.0.1) with the ladder model live; yields its base URL."""
    config = make_settings(database_url, data_dir, **settings)
    if model:
        engine = make_engine(database_url)
        register_model(engine, config.resolved_model_dir, "ladder-1", ladder_booster(), promote=True)
        engine.dispose()
    with running_api(config) as base:
        yield base


class Receiver:
    """A local HTTP server for failures a real API will not produce on demand. ``drop_first`` requests get
    no answer at all (the connection closes after the request was forwarded upstream: a lost response);
    ``hang`` holds every request open without answering; the rest are forwarded to ``upstream``."""

    def __init__(self, upstream: str | None = None, *, drop_first: int = 0, hang: bool = False) -> None:
        self.upstream = upstream
        self.drop_first = drop_first
        self.hang = hang
        self.requests = 0
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                pass

            def _handle(self) -> None:
                receiver.requests += 1
                n = receiver.requests
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if receiver.hang:
                    receiver.release.wait(30)
                    self.close_connection = True
                    return
                assert receiver.upstream is not None
                headers = {
                    k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")
                }
                upstream = httpx.request(
                    self.command, receiver.upstream + self.path, content=body, headers=headers, timeout=10
                )
                if n <= receiver.drop_first:
                    self.close_connection = True  # processed upstream, answer lost on the way back
                    return
                self.send_response(upstream.status_code)
                for key, value in upstream.headers.items():
                    if key.lower() not in (
                        "content-length",
                        "transfer-encoding",
                        "connection",
                        "date",
                        "server",
                    ):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(upstream.content)))
                self.end_headers()
                self.wfile.write(upstream.content)

            do_GET = _handle
            do_POST = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> Receiver:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
