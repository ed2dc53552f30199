"""Issue 11's outside probe, finding by finding, over real HTTP (uvicorn): each test is named after the
finding and failed on the code the probe found.

2. batch amplification: limits count scorings (a batch its items, all or none), the batch cap is checked
   before its items are validated, 413/415 answers and /health are metered, /health's checks are cached and
   its details are for authenticated callers only;
3. bodies: an oversized chunked body gets 413, malformed bodies (invalid UTF-8, a 5,000-digit number,
   deep nesting, duplicate keys, NaN) get the project's 422 with a message, booleans are strict;
4. quiet outages: N requests during a database or Redis outage write O(1) log lines, and the recovery is
   logged.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from scoring_fixtures import (
    ladder_booster,
    make_settings,
    register_model,
    request_body,
    running_api,
)
from sqlalchemy import Engine, create_engine, event, func, select, text

from ticketguard import tables
from ticketguard.kit.db import make_engine

PREDICT = "/api/v1/ml/predict/fraud"
BATCH = "/api/v1/ml/batch/predict"
SECRET = "probe-findings-jwt-secret-0123456789abcdef"
AUD, ISS = "ticketguard", "ticketing-backend"
JSON = {"content-type": "application/json"}


def _token(subject: str = "user-1") -> str:
    now = int(time.time())
    claims = {"sub": subject, "aud": AUD, "iss": ISS, "iat": now, "exp": now + 300}
    return jwt.encode(claims, SECRET, algorithm="HS256")


@pytest.fixture
def sqlite_engine(sqlite_url: str) -> Iterator[Engine]:
    engine = make_engine(sqlite_url)
    yield engine
    engine.dispose()


def _serve(sqlite_url: str, engine: Engine, tmp_path: Path, **overrides: Any) -> Any:
    settings = make_settings(sqlite_url, tmp_path, **overrides)
    register_model(engine, settings.resolved_model_dir, "m1", ladder_booster(), promote=True)
    return running_api(settings)


def _stored(engine: Engine, ids: list[str]) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count())
                .select_from(tables.transactions)
                .where(tables.transactions.c.transaction_id.in_(ids))
            ).scalar_one()
        )


# ------------------------------------------------------------------------------ 2. batch amplification
def test_batch_amplification_counts_every_item_against_the_ip_limit(
    sqlite_url: str, sqlite_engine: Engine, tmp_path: Path
) -> None:
    """The probe: a batch of 100 counted as one request, so RATE_LIMIT_IP=100 allowed 10,000 scorings a
    minute. Now a batch counts its items, all or none."""
    with (
        _serve(sqlite_url, sqlite_engine, tmp_path, rate_limit_ip=100) as base,
        httpx.Client(base_url=base, timeout=20) as client,
    ):
        first = [request_body() for _ in range(60)]
        r = client.post(BATCH, json={"transactions": first})
        assert r.status_code == 200, r.text
        assert len(r.json()["predictions"]) == 60
        second = [request_body() for _ in range(60)]
        r = client.post(BATCH, json={"transactions": second})
        assert r.status_code == 429  # 60 + 60 scorings > 100 per minute
        assert r.headers["x-ratelimit-scope"] == "ip"
        assert r.headers["x-ratelimit-limit"] == "100"
        assert int(r.headers["retry-after"]) >= 1
        assert "scorings" in r.json()["detail"]
        assert _stored(sqlite_engine, [t["transaction_id"] for t in second]) == 0  # none of them
        # The refused batch spent one unit (its request), none of its items: 39 scorings are left.
        r = client.post(BATCH, json={"transactions": [request_body() for _ in range(39)]})
        assert r.status_code == 200, r.text
        assert client.post(PREDICT, json=request_body()).status_code == 429


def test_batch_amplification_counts_items_against_the_user_and_global_limits(
    sqlite_url: str, sqlite_engine: Engine, tmp_path: Path
) -> None:
    with (
        _serve(
            sqlite_url, sqlite_engine, tmp_path, jwt_secret=SECRET, rate_limit_user=30, rate_limit_global=45
        ) as base,
        httpx.Client(base_url=base, timeout=20) as client,
    ):
        alice = {"authorization": f"Bearer {_token('alice')}"}
        bob = {"authorization": f"Bearer {_token('bob')}"}
        assert client.post(BATCH, json={"transactions": [request_body() for _ in range(25)]}, headers=alice)
        r = client.post(BATCH, json={"transactions": [request_body() for _ in range(10)]}, headers=alice)
        assert r.status_code == 429
        assert r.headers["x-ratelimit-scope"] == "user"
        r = client.post(BATCH, json={"transactions": [request_body() for _ in range(15)]}, headers=bob)
        assert r.status_code == 200, r.text
        # 25 + 1 (the refused request) + 15 = 41 of 45 global: a batch of 5 more does not fit.
        r = client.post(BATCH, json={"transactions": [request_body() for _ in range(5)]}, headers=bob)
        assert r.status_code == 429
        assert r.headers["x-ratelimit-scope"] == "global"


def test_batch_cap_is_checked_before_its_items_are_validated(
    sqlite_url: str, sqlite_engine: Engine, tmp_path: Path
) -> None:
    with (
        _serve(sqlite_url, sqlite_engine, tmp_path, api_batch_max_items=10) as base,
        httpx.Client(base_url=base, timeout=20) as client,
    ):
        r = client.post(BATCH, json={"transactions": [{}] * 11})  # invalid items: never looked at
        assert r.status_code == 422
        assert r.json()["detail"] == [
            {
                "field": "transactions",
                "message": "at most 10 transactions per batch (API_BATCH_MAX_ITEMS), got 11",
                "type": "too_long",
            }
        ]


def test_413_415_and_health_answers_are_metered(
    sqlite_url: str, sqlite_engine: Engine, tmp_path: Path
) -> None:
    with (
        _serve(
            sqlite_url,
            sqlite_engine,
            tmp_path,
            rate_limit_ip=6,
            rate_limit_routes={"/health": 4},
            api_max_body_bytes=2048,
        ) as base,
        httpx.Client(base_url=base, timeout=20) as client,
    ):
        wrong_type = {"content-type": "text/plain"}
        statuses = [client.post(PREDICT, content=b"x", headers=wrong_type).status_code for _ in range(3)]
        statuses += [
            client.post(PREDICT, content=b"{" + b" " * 4096 + b"}", headers=JSON).status_code
            for _ in range(3)
        ]
        assert statuses == [415, 415, 415, 413, 413, 413]
        limited = client.post(PREDICT, content=b"x", headers=wrong_type)
        assert limited.status_code == 429
        assert limited.headers["x-ratelimit-scope"] == "ip"
        health = [client.get("/health").status_code for _ in range(5)]
        assert health == [200, 200, 200, 200, 429]  # its own budget: the IP's scoring budget is spent


def test_health_checks_are_cached_and_their_details_need_credentials(
    sqlite_url: str, sqlite_engine: Engine, tmp_path: Path
) -> None:
    """The probe: every anonymous GET /health ran a database query and a Redis ping and showed the
    dependencies' state. Now the checks run at most about once a second, and anonymous callers get the
    guide's {"status", "model_version"}."""
    selects: list[str] = []

    @event.listens_for(sqlite_engine, "before_cursor_execute")
    def _count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.strip().upper() == "SELECT 1":
            selects.append(statement)

    settings = make_settings(sqlite_url, tmp_path, jwt_secret=SECRET, security_pepper="p" * 40)
    register_model(sqlite_engine, settings.resolved_model_dir, "m1", ladder_booster(), promote=True)
    with (
        running_api(settings, engine=sqlite_engine) as base,
        httpx.Client(base_url=base, timeout=20) as client,
    ):
        started = time.monotonic()
        answers = [client.get("/health") for _ in range(40)]
        elapsed = time.monotonic() - started
        assert {r.status_code for r in answers} == {200}
        assert answers[0].json() == {"status": "healthy", "model_version": "m1"}
        assert len(selects) <= 2 + int(elapsed)  # at most once per second, not 40 times

        detailed = client.get("/health", headers={"authorization": f"Bearer {_token()}"}).json()
        assert detailed["checks"]["database"] == "ok"
        assert detailed["auth"].startswith("jwt(")
        from ticketguard.security.clients import create_client

        with sqlite_engine.begin() as conn:
            _, key = create_client(
                conn, name="ops", scopes="metrics", actor="t", pepper=b"p" * 40, now=datetime.now(UTC)
            )
        assert "checks" in client.get("/health", headers={"x-api-key": key}).json()
        bad = client.get("/health", headers={"authorization": "Bearer not.a.token"})
        assert bad.status_code == 401


# ------------------------------------------------------------------------------ 3. bodies
def test_oversized_chunked_body_gets_413_in_the_project_shape(
    sqlite_url: str, sqlite_engine: Engine, tmp_path: Path
) -> None:
    """The probe: a chunked body over API_MAX_BODY_BYTES got 400 "There was an error parsing the body"."""

    def chunks() -> Iterator[bytes]:
        yield b'{"transaction_id": "'
        for _ in range(40):
            yield b"x" * 65_536
        yield b'"}'

    with (
        _serve(sqlite_url, sqlite_engine, tmp_path) as base,
        httpx.Client(base_url=base, timeout=20) as client,
    ):
        r = client.post(PREDICT, content=chunks(), headers=JSON)  # no Content-Length: chunked
        assert r.status_code == 413
        assert r.json() == {
            "error": "payload_too_large",
            "detail": "request body larger than 1048576 bytes (API_MAX_BODY_BYTES)",
        }


MALFORMED = [
    (b'{"transaction_id": "t\xff1", "price_paid": 5}', "json_encoding", "not valid UTF-8"),
    (b'{"transaction_id": "t1", "price_paid": 1' + b"0" * 5000 + b"}", "json_number_too_long", "4300 digits"),
    (b'{"transaction_id": ' + b"[" * 5000 + b"]" * 5000 + b"}", "json_too_deep", "deeper than 32 levels"),
    (b'{"transaction_id": ' + b"[" * 40 + b"]" * 40 + b"}", "json_too_deep", "deeper than 32 levels"),
    (b'{"transaction_id": "t1", "price_paid": NaN}', "json_invalid", "NaN is not a JSON number"),
    (b'{"transaction_id": "t1", "price_paid": ', "json_invalid", "invalid JSON"),
]


@pytest.mark.parametrize(
    ("body", "kind", "message"), MALFORMED, ids=[m[1] + str(i) for i, m in enumerate(MALFORMED)]
)
def test_malformed_bodies_get_the_project_error_shape(
    sqlite_url: str, sqlite_engine: Engine, tmp_path: Path, body: bytes, kind: str, message: str
) -> None:
    """The probe: invalid UTF-8, numbers over 4,300 digits and JSON nested deeper than ~1,000 levels got
    FastAPI's default 400 body."""
    with (
        _serve(sqlite_url, sqlite_engine, tmp_path) as base,
        httpx.Client(base_url=base, timeout=20) as client,
    ):
        r = client.post(PREDICT, content=body, headers=JSON)
        assert r.status_code == 422, r.text
        answer = r.json()
        assert answer["error"] == "validation_error"
        assert answer["detail"][0]["field"] == "body"
        assert answer["detail"][0]["type"] == kind
        assert message in answer["message"]


def test_duplicate_json_keys_are_refused(sqlite_url: str, sqlite_engine: Engine, tmp_path: Path) -> None:
    """The probe: price_paid 50 then 99999 stored 99999 (the last one won)."""
    tid = f"dup-{uuid.uuid4().hex[:8]}"
    body = (
        b'{"transaction_id": "' + tid.encode() + b'", "wallet_address": "0xdeadbeef", "ticket_id": "t-1", '
        b'"price_paid": 50, "price_paid": 99999}'
    )
    with (
        _serve(sqlite_url, sqlite_engine, tmp_path) as base,
        httpx.Client(base_url=base, timeout=20) as client,
    ):
        r = client.post(PREDICT, content=body, headers=JSON)
        assert r.status_code == 422
        assert r.json()["detail"][0]["type"] == "json_duplicate_key"
        assert "'price_paid'" in r.json()["message"]
        nested = {"transactions": [request_body()]}
        raw = httpx.Request("POST", "/", json=nested).content.replace(
            b'"event_id"', b'"event_id": "x", "event_id"', 1
        )
        assert (
            client.post(BATCH, content=raw, headers=JSON).json()["detail"][0]["type"] == "json_duplicate_key"
        )
    assert _stored(sqlite_engine, [tid]) == 0


@pytest.mark.parametrize("value", ["yes", "true", "1", 1, 0, "on", None])
def test_booleans_are_strict(sqlite_url: str, sqlite_engine: Engine, tmp_path: Path, value: Any) -> None:
    """The probe: "yes" or 1 was read as true for is_resale."""
    with (
        _serve(sqlite_url, sqlite_engine, tmp_path) as base,
        httpx.Client(base_url=base, timeout=20) as client,
    ):
        r = client.post(PREDICT, json=request_body(is_resale=value))
        assert r.status_code == 422, r.text
        assert r.json()["detail"][0]["field"] == "is_resale"
        assert client.post(PREDICT, json=request_body(is_resale=False)).status_code == 200


# ------------------------------------------------------------------------------ 4. quiet outages
class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith("ticketguard") and record.levelno >= logging.INFO:
            self.records.append(record)

    def messages(self) -> list[str]:
        return [r.getMessage() for r in self.records]


@contextmanager
def _log_lines() -> Iterator[_Lines]:
    handler = _Lines()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)


def _set_connections(admin_url: str, name: str, allow: bool) -> None:
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {"true" if allow else "false"}'))
        if not allow:
            conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"), {"n": name}
            )
    admin.dispose()


OUTAGE_REQUESTS = 300


@pytest.mark.postgres
def test_log_flood_during_a_database_outage_is_a_few_lines(
    postgres_url: str, postgres_admin_url: str, tmp_path: Path
) -> None:
    """The probe: a 6-second database outage wrote 2,600 log lines (one per request). Now N requests
    during an outage write O(1) lines: "down" at once, then at most one summary per interval; and the
    recovery is logged."""
    engine = make_engine(postgres_url)
    settings = make_settings(postgres_url, tmp_path)
    register_model(engine, settings.resolved_model_dir, "m1", ladder_booster(), promote=True)
    name = str(engine.url.database)
    with running_api(settings) as base, httpx.Client(base_url=base, timeout=20) as client:
        assert client.post(PREDICT, json=request_body()).status_code == 200
        with _log_lines() as lines:
            _set_connections(postgres_admin_url, name, allow=False)
            try:
                statuses = [
                    client.post(PREDICT, json=request_body()).status_code for _ in range(OUTAGE_REQUESTS)
                ]
                during = lines.messages()
            finally:
                _set_connections(postgres_admin_url, name, allow=True)
            assert statuses.count(503) == OUTAGE_REQUESTS  # each one answered by the failure policy
            time.sleep(1.2)  # past the settle time: the next success declares the database back
            deadline = time.monotonic() + 10
            while client.post(PREDICT, json=request_body()).status_code != 200:
                assert time.monotonic() < deadline
            time.sleep(1.2)
            client.post(PREDICT, json=request_body())
            after = lines.messages()[len(during) :]
    engine.dispose()
    assert len(during) <= 10, during  # was one per request
    assert any(m.startswith("database down") for m in during), during
    assert any(m.startswith("database back up") for m in after), after


@pytest.mark.redis
def test_log_flood_during_a_redis_outage_is_a_few_lines(
    sqlite_url: str, sqlite_engine: Engine, tmp_path: Path, own_redis: tuple[str, Any]
) -> None:
    """The probe: a 5-second Redis outage wrote 546 lines. Now N requests during it write O(1) lines (the
    answers stay 200, marked degraded, features from SQL)."""
    url, proc = own_redis
    with (
        _serve(sqlite_url, sqlite_engine, tmp_path, redis_url=url, rate_limit_ip=1_000_000) as base,
        httpx.Client(base_url=base, timeout=20) as client,
    ):
        deadline = time.monotonic() + 20
        while "memory: ready" not in client.get("/health").json()["checks"]["features"]:
            assert time.monotonic() < deadline, "feature state never loaded"
            time.sleep(0.2)
        assert client.post(PREDICT, json=request_body()).status_code == 200
        with _log_lines() as lines:
            proc.kill()
            proc.wait(5)
            statuses = [client.post(PREDICT, json=request_body()).status_code for _ in range(OUTAGE_REQUESTS)]
            during = lines.messages()
    assert statuses.count(200) == OUTAGE_REQUESTS
    assert len(during) <= 10, during  # was 546 in 5 s
    assert any(m.startswith("redis down") for m in during), during
