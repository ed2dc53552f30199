"""The middleware on its own, mounted on a tiny FastAPI app under a real uvicorn, with its database gone:
JWTs still work (no database needed), API keys that cannot be checked get 503 (never a pass, never a
hang), bad credentials still get the uniform 401, and health stays reachable."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import jwt
import uvicorn
from fastapi import FastAPI

from ticketguard.config import Settings
from ticketguard.kit.db import make_engine
from ticketguard.security.api import SecurityMiddleware, SecurityRuntime

SECRET = "middleware-test-secret-0123456789abcdef"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", proxy_headers=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        assert thread.is_alive(), "uvicorn stopped"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def test_database_gone_jwt_works_api_key_503_bad_token_401(tmp_path: Path) -> None:
    dead = make_engine(f"postgresql+psycopg://postgres@127.0.0.1:{_free_port()}/gone")
    settings = Settings(
        data_dir=tmp_path,
        jwt_secret=SECRET,
        _env_file=None,
        rate_limit_ip=1000,  # type: ignore[call-arg]
    )
    app = FastAPI()

    @app.get("/api/v1/ml/model/info")
    def info() -> dict[str, str]:
        return {"ok": "yes"}

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "healthy"}

    runtime = SecurityRuntime.build(settings, dead, None)
    app.add_middleware(SecurityMiddleware, runtime=runtime)
    now = int(time.time())
    good = jwt.encode(
        {"sub": "u", "aud": "ticketguard", "iss": "ticketing-backend", "iat": now, "exp": now + 60}, SECRET
    )
    with serve(app) as base, httpx.Client(base_url=base, timeout=10) as client:
        started = time.perf_counter()
        assert (
            client.get("/api/v1/ml/model/info", headers={"Authorization": f"Bearer {good}"}).status_code
            == 200
        )
        key = client.get("/api/v1/ml/model/info", headers={"X-API-Key": "tgk_0badc0de_" + "x" * 43})
        assert key.status_code == 503
        assert key.headers["retry-after"] == "1"
        bad = client.get("/api/v1/ml/model/info", headers={"Authorization": "Bearer nope"})
        assert bad.status_code == 401
        assert client.get("/health").status_code == 200
        assert time.perf_counter() - started < 8  # bounded by the connect timeout, not hanging
    runtime.events.close()
    dead.dispose()
