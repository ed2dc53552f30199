"""The attack matrix of docs/threats.md, reproducible: starts the scoring API the way production runs it
(`ticketguard serve api`, 2 workers, PostgreSQL, a private Redis, client auth on, the guide's rate limits)
and runs every attack against it over real HTTP, printing expected and observed for each.

    .venv/bin/python benchmarks/attack_matrix.py                       # PostgreSQL at 127.0.0.1:5432/test
    .venv/bin/python benchmarks/attack_matrix.py --admin-url postgresql://postgres@127.0.0.1:5432/test \
        --json docs/threats/attack_matrix.json

It creates (and drops) a database of its own next to the admin URL's, starts a private redis-server on a
free port (the outage attacks kill it), registers a small model whose decisions are known
(tests/integration/scoring_fixtures.py), and exits non-zero when any attack's observation differs from
what is expected. Clients reach the API through 127.0.0.1, configured as the trusted proxy, so each attack
speaks from its own client IP (X-Forwarded-For) with its own rate-limit budget; the spoofing attack comes
from 127.0.0.2, which is not trusted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import jwt
from sqlalchemy import create_engine, func, make_url, select, text

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from scoring_fixtures import ladder_booster, register_model, request_body  # noqa: E402

from ticketguard import tables  # noqa: E402
from ticketguard.kit import migrate  # noqa: E402
from ticketguard.kit.db import make_engine  # noqa: E402
from ticketguard.security.clients import create_client, revoke_client  # noqa: E402

SECRET = "attack-matrix-jwt-secret-0123456789abcdef"
PEPPER = "attack-matrix-pepper-0123456789abcdef-xyz"
AUD, ISS = "ticketguard", "ticketing-backend"
PREDICT, BATCH, HEALTH, INFO = (
    "/api/v1/ml/predict/fraud",
    "/api/v1/ml/batch/predict",
    "/health",
    "/api/v1/ml/model/info",
)
JSON = {"content-type": "application/json"}
GUIDE_WALLET = "0x742d35Cc6634C0532925a3b844Bc9e7595f0bEb"


@dataclass
class Row:
    finding: str
    attack: str
    expected: str
    observed: str
    ok: bool


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def token(subject: str = "backend", **claims: Any) -> str:
    now = int(time.time())
    body: dict[str, Any] = {"sub": subject, "aud": AUD, "iss": ISS, "iat": now, "exp": now + 600}
    body.update(claims)
    return jwt.encode({k: v for k, v in body.items() if v is not None}, SECRET, algorithm="HS256")


class Lab:
    """The database, Redis and API the attacks run against."""

    def __init__(self, admin_url: str, workdir: Path) -> None:
        self.admin_url = admin_url
        self.workdir = workdir
        self.name = f"tg_attack_{uuid.uuid4().hex[:8]}"
        self.db_url = make_url(admin_url).set(database=self.name).render_as_string(hide_password=False)
        self.redis_port = free_port()
        self.api_port = free_port()
        self.base = f"http://127.0.0.1:{self.api_port}"
        self.log_path = workdir / "api.log"
        self.redis: subprocess.Popen[bytes] | None = None
        self.api: subprocess.Popen[bytes] | None = None

    # ------------------------------------------------------------------ set-up
    def admin(self, sql: str, **params: Any) -> None:
        engine = create_engine(
            self.admin_url.replace("postgresql://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT"
        )
        with engine.connect() as conn:
            conn.execute(text(sql), params)
        engine.dispose()

    def start(self) -> None:
        self.admin(f'CREATE DATABASE "{self.name}"')
        migrate.upgrade(self.db_url)
        engine = make_engine(self.db_url)
        register_model(engine, self.workdir / "models", "attack-1", ladder_booster(), promote=True)
        engine.dispose()
        self.start_redis()
        self.start_api()

    def start_redis(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server not found on PATH")
        self.redis = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.redis_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(0.5)

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DATABASE", "REDIS", "RATE_LIMIT", "JWT"))
        }
        env.update(
            DATABASE_URL=self.db_url,
            REDIS_URL=f"redis://127.0.0.1:{self.redis_port}/0",
            DATA_DIR=str(self.workdir),
            JWT_SECRET=SECRET,
            SECURITY_PEPPER=PEPPER,
            TRUSTED_PROXIES='["127.0.0.1"]',
            # The guide's limits: RATE_LIMIT_GLOBAL=10000 RATE_LIMIT_IP=100 RATE_LIMIT_USER=500 (per minute).
            RATE_LIMIT_GLOBAL="10000",
            RATE_LIMIT_IP="100",
            RATE_LIMIT_USER="100000",  # one backend subject speaks for every client IP here
            FEATURE_STATE_REFRESH_SECONDS="0.5",
            OMP_NUM_THREADS="1",
        )
        env.update(extra)
        return env

    def start_api(self) -> None:
        self.log = self.log_path.open("ab")
        self.api = subprocess.Popen(
            [
                str(BIN / "ticketguard"),
                "serve",
                "api",
                "--workers",
                "2",
                "--port",
                str(self.api_port),
                "--log-level",
                "info",
            ],
            env=self.env(),
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 90
        while True:
            try:
                r = httpx.get(self.base + HEALTH, headers={"x-forwarded-for": "192.0.2.250"}, timeout=2)
                if r.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if self.api.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"API did not start; see {self.log_path}")
            time.sleep(0.5)
        time.sleep(3)  # both workers: model loaded, feature state ready

    def log_size(self) -> int:
        self.log.flush()
        return self.log_path.stat().st_size

    def log_since(self, offset: int) -> list[str]:
        with self.log_path.open("rb") as f:
            f.seek(offset)
            return [ln for ln in f.read().decode(errors="replace").splitlines() if ln.strip()]

    def stop_api(self) -> int | None:
        if self.api is None:
            return None
        os.killpg(self.api.pid, signal.SIGTERM)
        try:
            code = self.api.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.api.pid, signal.SIGKILL)
            code = None
        self.api = None
        return code

    def close(self) -> None:
        self.stop_api()
        if self.redis is not None and self.redis.poll() is None:
            self.redis.kill()
            self.redis.wait(5)
        self.admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    def allow_connections(self, allow: bool) -> None:
        self.admin(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS {"true" if allow else "false"}')
        if not allow:
            self.admin(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n", n=self.name
            )

    def stored(self, transaction_id: str) -> int:
        engine = make_engine(self.db_url)
        with engine.connect() as conn:
            n = conn.execute(
                select(func.count())
                .select_from(tables.transactions)
                .where(tables.transactions.c.transaction_id == transaction_id)
            ).scalar_one()
        engine.dispose()
        return int(n)


# ---------------------------------------------------------------------------------------------- attacks
class Attacks:
    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.rows: list[Row] = []
        self.ip_counter = 0
        self.auth = {"authorization": f"Bearer {token()}"}

    def client_ip(self) -> str:
        self.ip_counter += 1
        n = self.ip_counter
        return f"198.{51 + n // 62500}.{n // 250 % 250}.{n % 250 + 1}"

    def spread(
        self, c: httpx.Client, n: int, send: Callable[[httpx.Client, dict[str, str]], httpx.Response]
    ) -> list[httpx.Response]:
        """``n`` requests, each from a client IP of its own (outages are not about rate limits)."""
        return [send(c, {"x-forwarded-for": self.client_ip()}) for _ in range(n)]

    def client(self, **kwargs: Any) -> httpx.Client:
        """A client speaking from a fresh IP (its own rate-limit budget), authenticated unless told."""
        headers = {"x-forwarded-for": self.client_ip(), **self.auth, **kwargs.pop("headers", {})}
        return httpx.Client(base_url=self.lab.base, timeout=30, headers=headers, **kwargs)

    def record(self, finding: str, attack: str, expected: str, observed: str, ok: bool) -> None:
        self.rows.append(Row(finding, attack, expected, observed, ok))
        mark = "ok " if ok else "FAIL"
        print(f"[{mark}] {finding:<10} {attack}: expected {expected}; observed {observed}", flush=True)

    def check(self, finding: str, attack: str, expected: str, fn: Callable[[], tuple[str, bool]]) -> None:
        try:
            observed, ok = fn()
        except Exception as exc:  # an attack that crashes the harness is a finding too
            observed, ok = f"harness error {type(exc).__name__}: {exc}"[:200], False
        self.record(finding, attack, expected, observed, ok)

    # ------------------------------------------------------------------ auth
    def auth_attacks(self) -> None:
        now = int(time.time())
        cases: list[tuple[str, dict[str, str]]] = [
            ("no credentials", {}),
            (
                "alg none",
                {
                    "authorization": "Bearer "
                    + _unsigned({"sub": "x", "aud": AUD, "iss": ISS, "iat": now, "exp": now + 60})
                },
            ),
            (
                "HS512 token",
                {
                    "authorization": "Bearer "
                    + jwt.encode(
                        {"sub": "x", "aud": AUD, "iss": ISS, "iat": now, "exp": now + 60},
                        SECRET,
                        algorithm="HS512",
                    )
                },
            ),
            ("bad signature", {"authorization": "Bearer " + token()[:-4] + "AAAA"}),
            ("expired", {"authorization": "Bearer " + token(iat=now - 900, exp=now - 60)}),
            ("wrong audience", {"authorization": "Bearer " + token(aud="someone-else")}),
            ("wrong issuer", {"authorization": "Bearer " + token(iss="attacker")}),
            ("no iat", {"authorization": "Bearer " + token(iat=None)}),
            (
                "valid for 10 years (finding 5)",
                {"authorization": "Bearer " + token(exp=now + 10 * 365 * 86400)},
            ),
            (
                "25 h lifetime (> JWT_MAX_LIFETIME_SECONDS)",
                {"authorization": "Bearer " + token(exp=now + 25 * 3600)},
            ),
        ]
        engine = make_engine(self.lab.db_url)
        with engine.begin() as conn:
            _, revoked = create_client(
                conn,
                name="revoked",
                scopes="score",
                actor="matrix",
                pepper=PEPPER.encode(),
                now=datetime.now(UTC),
            )
            revoke_client(conn, name_or_id="revoked", actor="matrix", now=datetime.now(UTC))
            _, metrics_only = create_client(
                conn,
                name="metrics-only",
                scopes="metrics",
                actor="matrix",
                pepper=PEPPER.encode(),
                now=datetime.now(UTC),
            )
            _, good_key = create_client(
                conn,
                name="backend",
                scopes="score",
                actor="matrix",
                pepper=PEPPER.encode(),
                now=datetime.now(UTC),
            )
        engine.dispose()
        time.sleep(0.2)
        cases += [
            ("revoked API key", {"x-api-key": revoked}),
            ("API key without the score scope", {"x-api-key": metrics_only}),
        ]
        for name, headers in cases:

            def attempt(headers: dict[str, str] = headers) -> tuple[str, bool]:
                with httpx.Client(
                    base_url=self.lab.base,
                    timeout=30,
                    headers={"x-forwarded-for": self.client_ip(), **headers},
                ) as c:
                    r = c.post(PREDICT, json=request_body())
                body = r.json()
                return f"{r.status_code} {body.get('error')}", r.status_code == 401 and body == {
                    "error": "unauthorized",
                    "detail": "valid credentials required",
                }

            self.check("auth", name, "401, the uniform body", attempt)

        def valid(headers: dict[str, str]) -> Callable[[], tuple[str, bool]]:
            def run() -> tuple[str, bool]:
                with httpx.Client(
                    base_url=self.lab.base,
                    timeout=30,
                    headers={"x-forwarded-for": self.client_ip(), **headers},
                ) as c:
                    r = c.post(PREDICT, json=request_body())
                return str(r.status_code), r.status_code == 200

            return run

        self.check(
            "auth",
            "control: JWT valid 24 h",
            "200",
            valid({"authorization": f"Bearer {token(exp=now + 86400)}"}),
        )
        self.check("auth", "control: API key with the score scope", "200", valid({"x-api-key": good_key}))

    # ------------------------------------------------------------------ wallets
    def wallet_attacks(self) -> None:
        env = self.lab.env()
        for wallet in (GUIDE_WALLET, "0x00000000000000000000000000000000deadbeef"):
            subprocess.run(
                [str(BIN / "ticketguard"), "blocklist", "add", "wallet", wallet, "--reason", "attack matrix"],
                env=env,
                check=True,
                capture_output=True,
            )
        time.sleep(0.5)  # NOTIFY reaches both workers within milliseconds; leave room on a busy machine
        with self.client() as c:

            def decision(wallet: str) -> tuple[int, str]:
                r = c.post(PREDICT, json=request_body(wallet_address=wallet))
                return r.status_code, str(r.json().get("decision") or r.json().get("message"))

            padded = "0x0742d35cc6634c0532925a3b844bc9e7595f0beb"
            from eth_utils import to_checksum_address

            for attack, wallet in [
                ("listed spelling itself (guide's 39-digit sample)", GUIDE_WALLET),
                ("same wallet left-padded (finding 1)", padded),
                ("same wallet, upper case", "0x" + padded[2:].upper()),
                ("same wallet, EIP-55 checksummed", to_checksum_address(padded)),
                ("0xdeadbeef after listing 0x000…00deadbeef (finding 1)", "0xdeadbeef"),
                ("0XDEADBEEF", "0XDEADBEEF"),
            ]:
                self.check(
                    "1 wallets",
                    attack,
                    "200 BLOCKED",
                    lambda w=wallet: (lambda s, d: (f"{s} {d}", (s, d) == (200, "BLOCKED")))(*decision(w)),
                )
            self.check(
                "1 wallets",
                "mixed case with a wrong EIP-55 checksum (the probe's padded spelling)",
                "422 naming wallet_address",
                lambda: (
                    lambda r: (
                        f"{r.status_code} {r.json().get('message', '')[:70]}",
                        r.status_code == 422 and r.json()["detail"][0]["field"] == "wallet_address",
                    )
                )(
                    c.post(
                        PREDICT,
                        json=request_body(wallet_address="0x0742d35Cc6634C0532925a3b844Bc9e7595f0bEb"),
                    )
                ),
            )
            self.check(
                "1 wallets",
                "41 hex digits",
                "422 naming wallet_address",
                lambda: (lambda r: (str(r.status_code), r.status_code == 422))(
                    c.post(PREDICT, json=request_body(wallet_address="0x" + "a" * 41))
                ),
            )

    # ------------------------------------------------------------------ limits
    def limit_attacks(self) -> None:
        def amplification() -> tuple[str, bool]:
            with self.client() as c:
                first = c.post(BATCH, json={"transactions": [request_body() for _ in range(100)]})
                second = c.post(BATCH, json={"transactions": [request_body() for _ in range(100)]})
                single = c.post(PREDICT, json=request_body())
            scope = second.headers.get("x-ratelimit-scope")
            observed = f"{first.status_code}, then {second.status_code} ({scope}), then {single.status_code}"
            return observed, (first.status_code, second.status_code, single.status_code) == (200, 429, 429)

        self.check(
            "2 limits",
            "batch amplification: 2 batches of 100 + 1 at RATE_LIMIT_IP=100",
            "200, then 429 (ip), then 429",
            amplification,
        )

        def cap() -> tuple[str, bool]:
            with self.client() as c:
                r = c.post(BATCH, json={"transactions": [{}] * 101})
            return f"{r.status_code} {r.json()['detail'][0]['field']}", r.status_code == 422 and r.json()[
                "detail"
            ][0]["type"] == "too_long"

        self.check(
            "2 limits", "batch of 101 invalid items", "422 transactions too_long, before item validation", cap
        )

        def flood(
            path: str, n: int, send: Callable[[httpx.Client], httpx.Response]
        ) -> Callable[[], tuple[str, bool]]:
            def run() -> tuple[str, bool]:
                with self.client() as c:
                    codes = [send(c).status_code for _ in range(n)]
                passed = sum(code != 429 for code in codes)
                return f"{passed} answered, {codes.count(429)} × 429", passed

            return run  # type: ignore[return-value]

        def exact(expected: int, run: Callable[[], tuple[str, Any]]) -> Callable[[], tuple[str, bool]]:
            def wrapped() -> tuple[str, bool]:
                observed, passed = run()
                return observed, passed == expected

            return wrapped

        self.check(
            "2 limits",
            "/health flood, 130 anonymous requests from one IP",
            "120 answered, then 429 (its own route limit)",
            exact(120, flood(HEALTH, 130, lambda c: c.get(HEALTH, headers={"authorization": ""}))),
        )
        self.check(
            "2 limits",
            "415 flood: 105 text/plain bodies from one IP",
            "100 answered 415, then 429",
            exact(
                100,
                flood(
                    PREDICT,
                    105,
                    lambda c: c.post(PREDICT, content=b"x", headers={"content-type": "text/plain"}),
                ),
            ),
        )
        self.check(
            "2 limits",
            "413 flood: 105 bodies of 1.1 MB from one IP",
            "100 answered 413, then 429",
            exact(
                100,
                flood(
                    PREDICT,
                    105,
                    lambda c: c.post(PREDICT, content=b"{" + b" " * 1_100_000 + b"}", headers=JSON),
                ),
            ),
        )

        def spoof() -> tuple[str, bool]:
            transport = httpx.HTTPTransport(local_address="127.0.0.2")
            with httpx.Client(
                base_url=self.lab.base, timeout=30, transport=transport, headers=self.auth
            ) as c:
                codes = [
                    c.get(INFO, headers={"x-forwarded-for": f"10.0.{i // 200}.{i % 200}"}).status_code
                    for i in range(105)
                ]
            passed = sum(code != 429 for code in codes)
            return f"{passed} answered", passed == 100

        self.check(
            "2 limits",
            "spoofed X-Forwarded-For from an untrusted peer, 105 requests",
            "100 answered (one IP budget)",
            spoof,
        )

    # ------------------------------------------------------------------ bodies
    def body_attacks(self) -> None:
        def chunks() -> Iterator[bytes]:
            yield b'{"transaction_id": "'
            for _ in range(20):
                yield b"x" * 65_536
            yield b'"}'

        deep = b'{"transaction_id": ' + b"[" * 5000 + b"]" * 5000 + b"}"
        dup_id = f"dup-{uuid.uuid4().hex[:8]}"
        dup = (
            b'{"transaction_id": "'
            + dup_id.encode()
            + b'", "wallet_address": "0xdeadbeef", "ticket_id": "t-1", '
            b'"price_paid": 50, "price_paid": 99999}'
        )
        cases: list[
            tuple[str, str, Callable[[httpx.Client], httpx.Response], Callable[[httpx.Response], bool]]
        ] = [
            (
                "Content-Length over 1 MB",
                "413 payload_too_large",
                lambda c: c.post(PREDICT, content=b"{" + b" " * 1_100_000 + b"}", headers=JSON),
                lambda r: r.status_code == 413 and r.json()["error"] == "payload_too_large",
            ),
            (
                "chunked body over 1 MB (finding 3)",
                "413 payload_too_large",
                lambda c: c.post(PREDICT, content=chunks(), headers=JSON),
                lambda r: r.status_code == 413 and r.json()["error"] == "payload_too_large",
            ),
            (
                "invalid UTF-8",
                "422 json_encoding",
                lambda c: c.post(PREDICT, content=b'{"transaction_id": "\xff"}', headers=JSON),
                _kind("json_encoding"),
            ),
            (
                "a 5,000-digit number",
                "422 json_number_too_long",
                lambda c: c.post(PREDICT, content=b'{"price_paid": 1' + b"0" * 5000 + b"}", headers=JSON),
                _kind("json_number_too_long"),
            ),
            (
                "JSON nested 5,000 deep",
                "422 json_too_deep",
                lambda c: c.post(PREDICT, content=deep, headers=JSON),
                _kind("json_too_deep"),
            ),
            (
                "duplicate key price_paid 50 then 99999",
                "422 json_duplicate_key, nothing stored",
                lambda c: c.post(PREDICT, content=dup, headers=JSON),
                lambda r: _kind("json_duplicate_key")(r) and self.lab.stored(dup_id) == 0,
            ),
            (
                'is_resale "yes"',
                "422 is_resale",
                lambda c: c.post(PREDICT, json=request_body(is_resale="yes")),
                _field("is_resale"),
            ),
            (
                "is_resale 1",
                "422 is_resale",
                lambda c: c.post(PREDICT, json=request_body(is_resale=1)),
                _field("is_resale"),
            ),
            (
                "price_paid NaN",
                "422 json_invalid",
                lambda c: c.post(PREDICT, content=b'{"price_paid": NaN}', headers=JSON),
                _kind("json_invalid"),
            ),
            (
                "unknown field",
                "422 naming it",
                lambda c: c.post(PREDICT, json=request_body(admin=True)),
                _field("admin"),
            ),
            (
                "negative price",
                "422 price_paid",
                lambda c: c.post(PREDICT, json=request_body(price_paid=-5)),
                _field("price_paid"),
            ),
            (
                "text/plain body",
                "415",
                lambda c: c.post(PREDICT, content=b"{}", headers={"content-type": "text/plain"}),
                lambda r: r.status_code == 415,
            ),
        ]
        for attack, expected, send, good in cases:

            def run(
                send: Callable[[httpx.Client], httpx.Response] = send,
                good: Callable[[httpx.Response], bool] = good,
            ) -> tuple[str, bool]:
                with self.client() as c:
                    r = send(c)
                try:
                    body = r.json()
                except ValueError:
                    return f"{r.status_code} non-JSON body {r.text[:60]!r}", False
                kind = (
                    (body.get("detail") or [{}])[0].get("type")
                    if isinstance(body.get("detail"), list)
                    else body.get("error")
                )
                return f"{r.status_code} {kind}", good(r)

            self.check("3 bodies", attack, expected, run)

    # ------------------------------------------------------------------ idempotency, health
    def idempotency_attacks(self) -> None:
        def replay() -> tuple[str, bool]:
            with self.client() as c:
                body = request_body(is_resale=True, seller_address="0x" + "ab" * 20, ip_address="203.0.113.9")
                first = c.post(PREDICT, json=body)
                again = [c.post(PREDICT, json=body) for _ in range(2)]
            same = all(r.content == first.content for r in again)
            return f"{first.status_code}, replays identical: {same}", first.status_code == 200 and same

        self.check(
            "8 replay",
            "same request three times (JSONB reorders keys)",
            "the stored answer, byte for byte",
            replay,
        )

        def conflict() -> tuple[str, bool]:
            with self.client() as c:
                body = request_body()
                c.post(PREDICT, json=body)
                r = c.post(PREDICT, json=dict(body, price_paid=51))
            return str(r.status_code), r.status_code == 409

        self.check("idempotency", "same transaction_id, another price", "409", conflict)

        def concurrent() -> tuple[str, bool]:
            body = request_body()
            with self.client(limits=httpx.Limits(max_connections=20)) as c, ThreadPoolExecutor(20) as pool:
                answers = list(pool.map(lambda _: c.post(PREDICT, json=body), range(20)))
            codes = sorted({r.status_code for r in answers})
            contents = {r.content for r in answers if r.status_code == 200}
            rows = self.lab.stored(body["transaction_id"])
            return f"statuses {codes}, {len(contents)} distinct answers, {rows} row", rows == 1 and len(
                contents
            ) == 1

        self.check(
            "idempotency", "20 concurrent duplicates across 2 workers", "one row, one answer", concurrent
        )

        def anonymous_health() -> tuple[str, bool]:
            with self.client(headers={"authorization": ""}) as c:
                body = c.get(HEALTH).json()
            return str(sorted(body)), sorted(body) == ["model_version", "status"]

        self.check("2 health", "anonymous GET /health", '{"status", "model_version"} only', anonymous_health)

        def detailed_health() -> tuple[str, bool]:
            with self.client() as c:
                body = c.get(HEALTH).json()
            return str(sorted(body)), "checks" in body

        self.check("2 health", "GET /health with a valid token", "with the checks", detailed_health)

    # ------------------------------------------------------------------ outages
    def outage_attacks(self, n: int) -> None:
        def stuffing() -> tuple[str, bool]:
            offset = self.lab.log_size()
            with self.client() as c:
                answers = self.spread(
                    c,
                    n,
                    lambda c, h: c.post(
                        PREDICT, json=request_body(), headers={**h, "authorization": "Bearer x.y.z"}
                    ),
                )
            time.sleep(0.5)
            lines = self.lab.log_since(offset)
            codes = sorted({r.status_code for r in answers})
            return f"statuses {codes}, {len(lines)} log lines", codes == [401] and len(lines) <= 6

        self.check(
            "4 outages",
            f"credential stuffing: {n} bad tokens from {n} IPs",
            "401 each, a few log lines",
            stuffing,
        )

        def database() -> tuple[str, bool]:
            offset = self.lab.log_size()
            self.lab.allow_connections(False)
            try:
                with self.client() as c:
                    answers = self.spread(c, n, lambda c, h: c.post(PREDICT, json=request_body(), headers=h))
                lines = self.lab.log_since(offset)
            finally:
                self.lab.allow_connections(True)
            decisions = {r.json().get("decision") for r in answers}
            codes = sorted({r.status_code for r in answers})
            observed = f"statuses {codes}, decisions {sorted(map(str, decisions))}, {len(lines)} log lines"
            return observed, codes == [503] and decisions == {"MANUAL_REVIEW"} and len(lines) <= 12

        self.check(
            "4 outages",
            f"database refusing connections, {n} requests",
            "503 MANUAL_REVIEW each, a few log lines",
            database,
        )
        time.sleep(2)

        def recovery() -> tuple[str, bool]:
            offset = self.lab.log_size()
            deadline = time.monotonic() + 20
            with self.client() as c:
                while c.post(PREDICT, json=request_body()).status_code != 200 and time.monotonic() < deadline:
                    time.sleep(0.2)
                time.sleep(1.5)
                last = c.post(PREDICT, json=request_body())
            time.sleep(0.5)
            back = [ln for ln in self.lab.log_since(offset) if "database back up" in ln]
            return f"{last.status_code}, {len(back)} 'back up' line(s)", last.status_code == 200 and bool(
                back
            )

        self.check("4 outages", "database back", "200 again, recovery logged", recovery)

        def redis_down() -> tuple[str, bool]:
            assert self.lab.redis is not None
            offset = self.lab.log_size()
            self.lab.redis.kill()
            self.lab.redis.wait(5)
            with self.client() as c:
                answers = self.spread(c, n, lambda c, h: c.post(PREDICT, json=request_body(), headers=h))
            lines = self.lab.log_since(offset)
            codes = sorted({r.status_code for r in answers})
            approved_degraded = sum(1 for r in answers if r.status_code == 200 and r.json()["degraded"])
            observed = f"statuses {codes}, {approved_degraded} marked degraded, {len(lines)} log lines"
            return observed, codes == [200] and len(lines) <= 12

        self.check(
            "4 outages",
            f"Redis killed, {n} requests",
            "200 (features from SQL, degraded), a few log lines",
            redis_down,
        )

    # ------------------------------------------------------------------ start-up and shutdown
    def process_attacks(self) -> None:
        def unreachable() -> tuple[str, bool]:
            env = self.lab.env(
                DATABASE_URL=f"postgresql://postgres@127.0.0.1:{free_port()}/gone",
                DB_CONNECT_TIMEOUT_SECONDS="2",
            )
            started = time.monotonic()
            done = subprocess.run(
                [str(BIN / "ticketguard"), "serve", "api", "--port", str(free_port())],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            took = time.monotonic() - started
            return (
                f"exit {done.returncode} after {took:.1f} s",
                done.returncode == 2 and "refusing to start" in done.stderr,
            )

        self.check(
            "7 start-up",
            "serve api with an unreachable DATABASE_URL",
            "refuses with the reason (exit 2)",
            unreachable,
        )

        def shutdown() -> tuple[str, bool]:
            metrics_dir = Path(tempfile.gettempdir()) / f"ticketguard-metrics-{self.lab.api_port}"
            existed = metrics_dir.exists()
            code = self.lab.stop_api()
            return (
                f"exit {code}, metrics dir existed {existed}, remains {metrics_dir.exists()}",
                existed and not metrics_dir.exists() and code == 0,
            )

        self.check("8 shutdown", "SIGTERM to serve api", "clean exit, metrics dir removed", shutdown)


def _unsigned(payload: dict[str, Any]) -> str:
    import base64

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    return f"{b64(json.dumps({'alg': 'none', 'typ': 'JWT'}).encode())}.{b64(json.dumps(payload).encode())}."


def _kind(kind: str) -> Callable[[httpx.Response], bool]:
    return lambda r: r.status_code == 422 and r.json()["detail"][0]["type"] == kind


def _field(field: str) -> Callable[[httpx.Response], bool]:
    return lambda r: r.status_code == 422 and r.json()["detail"][0]["field"] == field


def markdown(rows: list[Row]) -> str:
    out = ["| finding | attack | expected | observed | |", "| --- | --- | --- | --- | --- |"]
    for r in rows:
        out.append(f"| {r.finding} | {r.attack} | {r.expected} | {r.observed} | {'✅' if r.ok else '❌'} |")
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--outage-requests", type=int, default=300)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="tg-attack-"))
    lab = Lab(args.admin_url, workdir)
    started = datetime.now(UTC)
    attacks = Attacks(lab)
    try:
        lab.start()
        attacks.auth_attacks()
        attacks.wallet_attacks()
        attacks.body_attacks()
        attacks.idempotency_attacks()
        attacks.limit_attacks()
        attacks.outage_attacks(args.outage_requests)
        attacks.process_attacks()
    finally:
        lab.close()
    failed = [r for r in attacks.rows if not r.ok]
    print()
    print(markdown(attacks.rows))
    print(
        f"\n{len(attacks.rows) - len(failed)} of {len(attacks.rows)} as expected "
        f"({started:%Y-%m-%d %H:%M} UTC); "
        f"API log: {lab.log_path}"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps({"run_at": started.isoformat(), "rows": [asdict(r) for r in attacks.rows]}, indent=1)
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
