"""System health as the console shows it: the scoring API's /health, PostgreSQL (or SQLite), Redis, the
chain RPC and the ETL cursor, and the scheduler's last run of each job. Each probe has a short timeout
and turns its failure into a row ("down: …"), never into an error of the page."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import Engine, desc, select

from ticketguard import tables
from ticketguard.config import Settings
from ticketguard.dashboard import queries

log = logging.getLogger(__name__)
PROBE_TIMEOUT_SECONDS = 1.5


def _row(component: str, ok: bool | None, detail: str) -> dict[str, Any]:
    return {
        "component": component,
        "status": {True: "ok", False: "down", None: "not configured"}[ok],
        "detail": detail,
    }


def _api(settings: Settings) -> dict[str, Any]:
    url = settings.dashboard_api_url.rstrip("/") + "/health"
    try:
        answer = httpx.get(url, timeout=PROBE_TIMEOUT_SECONDS)
        body = answer.json()
    except (httpx.HTTPError, ValueError) as exc:
        return _row("Scoring API", False, f"{url}: {type(exc).__name__}")
    status = body.get("status", "?") if isinstance(body, dict) else "?"
    model = body.get("model_version") if isinstance(body, dict) else None
    return _row(
        "Scoring API",
        answer.status_code == 200 and status == "healthy",
        f"{status}, model {model or '—'} (HTTP {answer.status_code})",
    )


def _database(settings: Settings, engine: Engine) -> dict[str, Any]:
    name = "SQLite (embedded)" if settings.is_embedded_database else "PostgreSQL"
    started = time.perf_counter()
    try:
        with engine.connect() as conn:
            queries.database_ping(conn)
    except Exception as exc:
        return _row(name, False, type(exc).__name__)
    return _row(name, True, f"{(time.perf_counter() - started) * 1000:.1f} ms round trip")


def _redis_client(settings: Settings) -> Any | None:
    url = settings.resolved_redis_url
    if url is None:
        return None
    import redis

    timeout = max(settings.redis_timeout_ms / 1000, 0.5)
    return redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)


def _redis(settings: Settings) -> dict[str, Any]:
    client = _redis_client(settings)
    if client is None:
        return _row("Redis", None, "in-process fallbacks (no REDIS_URL)")
    started = time.perf_counter()
    try:
        client.ping()
    except Exception as exc:
        return _row("Redis", False, type(exc).__name__)
    finally:
        client.close()
    return _row("Redis", True, f"{(time.perf_counter() - started) * 1000:.1f} ms ping")


def _chain(settings: Settings, engine: Engine) -> dict[str, Any]:
    cursor = ""
    try:
        with engine.connect() as conn:
            row = conn.execute(
                select(tables.chain_cursor).order_by(desc(tables.chain_cursor.c.updated_at)).limit(1)
            ).first()
        if row is not None:
            cursor = f"; ETL at block {row.last_block} ({row.updated_at:%Y-%m-%d %H:%M} UTC)"
    except Exception:
        log.warning("chain cursor unreadable", exc_info=True)
    if not settings.web3_provider:
        return _row("Chain RPC", None, "WEB3_PROVIDER not set" + cursor)
    if not settings.web3_provider.startswith(("http://", "https://")):
        return _row("Chain RPC", None, "non-HTTP provider: not probed" + cursor)
    try:
        answer = httpx.post(
            settings.web3_provider,
            json={"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []},
            timeout=PROBE_TIMEOUT_SECONDS,
        )
        head = int(answer.json()["result"], 16)
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        return _row("Chain RPC", False, type(exc).__name__ + cursor)
    return _row("Chain RPC", True, f"head block {head}" + cursor)


def check(settings: Settings, engine: Engine) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rows = [_api(settings), _database(settings, engine), _redis(settings), _chain(settings, engine)]
    try:
        with engine.connect() as conn:
            jobs = queries.scheduler(conn)
        failed = [j["job"] for j in jobs if j["status"] in ("failed", "abandoned")]
        rows.append(
            _row("Scheduler", not failed, "last runs ok" if not failed else "failed: " + ", ".join(failed))
        )
    except Exception as exc:
        jobs = []
        rows.append(_row("Scheduler", False, type(exc).__name__))
    for row in rows:
        row["checked"] = datetime.now(UTC).strftime("%H:%M:%S")
    return rows, jobs


def publish_ip_blocks(settings: Settings, engine: Engine) -> None:
    """Tell the API workers about an IP block change now (Redis snapshot); without Redis they re-read the
    database within SECURITY_LIST_CACHE_SECONDS anyway."""
    from ticketguard.security import lists

    client = _redis_client(settings)
    try:
        lists.publish_ip_blocks(engine, client)
    except Exception:
        log.warning("could not publish IP blocks; the API picks them up from the database", exc_info=True)
    finally:
        if client is not None:
            client.close()
