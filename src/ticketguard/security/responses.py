"""Automated responses of the correlation rules: apply (idempotent, audited), revert (audited), and the
active global-limit tightening the rate limiter reads.

Each response is a `security_responses` row plus its effect (an IP block, a blacklisted wallet, a tighter
global limit); both are written in one transaction, with one admin_audit_log row, as actor ``rule:<name>``.
Reverting removes the effect — unless a person had put the same entry there before the rule did — and
stamps the row ``reverted_at``; a reverted response does not fire again for the same events.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, insert, or_, select, update

from ticketguard.security import lists
from ticketguard.security.audit import audit
from ticketguard.security.redact import mask_wallet
from ticketguard.tables import blacklisted_wallets, ip_blocks, security_responses

ACTIONS = (
    "block_ip",
    "blacklist_wallet",
    "tighten_global_limit",
    "alert",
    # alerting (issue 15): a runtime threshold override the API reads, and an admin account lock
    "tighten_thresholds",
    "lock_admin",
)


class ResponseError(ValueError):
    pass


@dataclass(frozen=True)
class ResponseRecord:
    id: int
    rule: str
    action: str
    target: str
    params: dict[str, Any]
    created_at: datetime
    expires_at: datetime | None
    reverted_at: datetime | None
    reverted_by: str | None


def _record(row: Any) -> ResponseRecord:
    return ResponseRecord(
        row.id,
        row.rule,
        row.action,
        row.target,
        dict(row.params or {}),
        row.created_at,
        row.expires_at,
        row.reverted_at,
        row.reverted_by,
    )


def _active(now: datetime) -> Any:
    t = security_responses
    return and_(t.c.reverted_at.is_(None), or_(t.c.expires_at.is_(None), t.c.expires_at > now))


def last_response(conn: Connection, rule: str, target: str) -> ResponseRecord | None:
    t = security_responses
    row = conn.execute(
        select(t).where(t.c.rule == rule, t.c.target == target).order_by(t.c.created_at.desc(), t.c.id.desc())
    ).first()
    return None if row is None else _record(row)


def list_responses(conn: Connection, *, limit: int = 100) -> list[ResponseRecord]:
    t = security_responses
    rows = conn.execute(select(t).order_by(t.c.created_at.desc(), t.c.id.desc()).limit(limit))
    return [_record(r) for r in rows]


def apply_response(
    conn: Connection,
    *,
    rule: str,
    action: str,
    target: str,
    now: datetime,
    duration: timedelta | None,
    params: dict[str, Any],
) -> ResponseRecord:
    """Record and apply one response. The caller has checked it is not a repeat (see correlation)."""
    if action not in ACTIONS:
        raise ResponseError(f"action must be one of {', '.join(ACTIONS)}, got {action!r}")
    if action == "blacklist_wallet":
        target = lists.normalize_wallet(target)  # one spelling per wallet, as every list entry
    expires_at = now + duration if duration is not None else None
    actor = f"rule:{rule}"
    effect: dict[str, Any] = dict(params)
    if action == "block_ip":
        existed = lists.ip_token_blocked(conn, target, now)
        effect["preexisting"] = existed
        if not existed:
            lists.block_ip_token(
                conn,
                target,
                masked=params.get("masked"),
                reason=f"rule {rule}",
                actor=actor,
                now=now,
                expires_at=expires_at,
            )
    elif action == "blacklist_wallet":
        existed = lists.wallet_blacklisted(conn, target, now)
        effect["preexisting"] = existed
        if not existed:
            lists.add_wallet(
                conn, "blacklist", target, reason=f"rule {rule}", actor=actor, now=now, expires_at=expires_at
            )
    new_id = conn.execute(
        insert(security_responses)
        .values(rule=rule, action=action, target=target, params=effect, created_at=now, expires_at=expires_at)
        .returning(security_responses.c.id)
    ).scalar_one()
    shown = mask_wallet(target) if action == "blacklist_wallet" else target
    audit(
        conn,
        actor=actor,
        action=f"response.{action}",
        now=now,
        details={
            "response_id": new_id,
            "target": shown,
            **{k: v for k, v in effect.items() if k != "wallets"},
        },
    )
    return ResponseRecord(new_id, rule, action, target, effect, now, expires_at, None, None)


def revert_response(conn: Connection, response_id: int, *, actor: str, now: datetime) -> ResponseRecord:
    t = security_responses
    row = conn.execute(select(t).where(t.c.id == response_id)).first()
    if row is None:
        raise ResponseError(f"no response with id {response_id}; see `ticketguard security responses`")
    record = _record(row)
    if record.reverted_at is not None:
        return record  # idempotent
    if not record.params.get("preexisting"):
        if record.action == "block_ip":
            removed = conn.execute(
                ip_blocks.delete().where(
                    ip_blocks.c.ip_hash == record.target, ip_blocks.c.added_by == f"rule:{record.rule}"
                )
            ).rowcount
            del removed
        elif record.action == "blacklist_wallet":
            conn.execute(
                blacklisted_wallets.delete().where(
                    blacklisted_wallets.c.wallet_address == record.target,
                    blacklisted_wallets.c.added_by == f"rule:{record.rule}",
                )
            )
        elif record.action == "lock_admin":  # alerting (issue 15): the console's own unlock
            from ticketguard.admin.accounts import unlock_account

            unlock_account(conn, record.target, actor=actor, reason=f"revert of response {response_id}")
    conn.execute(update(t).where(t.c.id == response_id).values(reverted_at=now, reverted_by=actor[:64]))
    audit(
        conn,
        actor=actor,
        action=f"response.revert.{record.action}",
        now=now,
        details={"response_id": response_id, "rule": record.rule},
    )
    return ResponseRecord(**{**record.__dict__, "reverted_at": now, "reverted_by": actor})


def active_global_limit(conn: Connection, now: datetime) -> int | None:
    """The tightest global limit an active `tighten_global_limit` response sets, if any."""
    t = security_responses
    rows = conn.execute(
        select(t.c.params).where(t.c.action == "tighten_global_limit", _active(now))
    ).scalars()
    limits = [int(p["limit"]) for p in rows if p and "limit" in p]
    return min(limits) if limits else None


# --- alerting (issue 15): the decision-threshold override of `tighten_thresholds` responses ---------------
@dataclass(frozen=True)
class ThresholdOverride:
    """The decision thresholds an active `tighten_thresholds` response sets (the tightest if several)."""

    response_id: int
    rule: str
    block: float
    review: float
    twofa: float
    expires_at: datetime | None


def active_threshold_override(conn: Connection, now: datetime) -> ThresholdOverride | None:
    t = security_responses
    rows = conn.execute(
        select(t.c.id, t.c.rule, t.c.params, t.c.expires_at).where(
            t.c.action == "tighten_thresholds", _active(now)
        )
    ).all()
    best: ThresholdOverride | None = None
    for row in rows:
        p = row.params or {}
        try:
            candidate = ThresholdOverride(
                row.id, row.rule, float(p["block"]), float(p["review"]), float(p["2fa"]), row.expires_at
            )
        except (KeyError, TypeError, ValueError):
            continue
        if best is None or candidate.block < best.block:
            best = candidate
    return best
