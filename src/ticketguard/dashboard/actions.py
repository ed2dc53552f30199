"""Admin actions of the console: block/unblock a wallet or IP, add/remove an allow-list entry, promote or
roll back a model, revert an automated response. Each needs the `admin` role and a fresh TOTP code (the
callback checks it first, `ticketguard.admin.login.step_up`), and is one transaction with its
`admin.<verb>` audit row (beside the row the list or registry service writes itself)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from ticketguard.admin.accounts import AdminUser
from ticketguard.config import Settings
from ticketguard.security import lists
from ticketguard.security.audit import audit
from ticketguard.security.keys import pepper
from ticketguard.security.redact import hash_ip, mask_ip, mask_wallet

ACTIONS: dict[str, str] = {
    "block_wallet": "Block a wallet (blacklist)",
    "unblock_wallet": "Unblock a wallet",
    "block_ip": "Block an IP address",
    "unblock_ip": "Unblock an IP address (or ip:… token)",
    "allowlist_add": "Add a wallet to the allow-list (VIP)",
    "allowlist_remove": "Remove a wallet from the allow-list",
    "promote_model": "Promote a model version",
    "rollback_model": "Roll back to the previous model",
    "revert_response": "Revert an automated response (id)",
}
NEEDS_TARGET = set(ACTIONS) - {"rollback_model"}


class ActionError(ValueError):
    """The action cannot be done as asked; the message says why (shown to the user)."""


class ActionDenied(PermissionError):
    """The user's role does not allow the action."""


@dataclass(frozen=True)
class ActionResult:
    message: str
    publish_ip_blocks: bool = False


def perform(
    conn: Connection,
    settings: Settings,
    *,
    user: AdminUser,
    action: str,
    target: str,
    reason: str,
    ip: str | None,
    now: datetime,
) -> ActionResult:
    if not user.is_admin:
        raise ActionDenied(f"{action} needs the admin role; {user.username} is {user.role}")
    if action not in ACTIONS:
        raise ActionError(f"action must be one of {', '.join(ACTIONS)}, got {action!r}")
    target = (target or "").strip()
    reason = (reason or "").strip()[:500] or "console"
    if action in NEEDS_TARGET and not target:
        raise ActionError(f"{action} needs a target")
    actor = user.username
    details: dict[str, Any] = {"reason": reason}
    publish = False
    try:
        if action in ("block_wallet", "allowlist_add"):
            kind = "blacklist" if action == "block_wallet" else "allowlist"
            address = lists.add_wallet(conn, kind, target, reason=reason, actor=actor, now=now)
            details["wallet"] = mask_wallet(address)
            message = f"{mask_wallet(address)} added to the {kind}"
        elif action in ("unblock_wallet", "allowlist_remove"):
            kind = "blacklist" if action == "unblock_wallet" else "allowlist"
            if not lists.remove_wallet(conn, kind, target, actor=actor, now=now):
                raise ActionError(f"{mask_wallet(target)} is not on the {kind}")
            details["wallet"] = mask_wallet(target)
            message = f"{mask_wallet(target)} removed from the {kind}"
        elif action == "block_ip":
            token = lists.block_ip(
                conn, target, pepper=pepper(settings), reason=reason, actor=actor, now=now, expires_at=None
            )
            details["ip"] = token
            message, publish = f"{mask_ip(target)} blocked", True
        elif action == "unblock_ip":
            token = target if target.startswith("ip:") else _ip_token(settings, target)
            if not lists.unblock_ip_token(conn, token, actor=actor, now=now):
                raise ActionError(f"{target if target.startswith('ip:') else mask_ip(target)} is not blocked")
            details["ip"] = token
            message, publish = "IP unblocked", True
        elif action in ("promote_model", "rollback_model"):
            from ticketguard.ml.registry import ModelRegistry, RegistryError, artifact_store

            registry = ModelRegistry(artifact_store(settings))
            try:
                if action == "promote_model":
                    deployment = registry.promote(conn, target, actor=actor, reason=reason)
                else:
                    deployment = registry.rollback(conn, actor=actor, reason=reason)
            except RegistryError as exc:
                raise ActionError(str(exc)) from None
            details["model_version"] = deployment.model_version
            message = f"model {deployment.model_version} is live ({deployment.action})"
        else:  # revert_response
            from ticketguard.security.responses import ResponseError, revert_response

            try:
                response_id = int(target)
            except ValueError:
                raise ActionError(
                    f"revert_response needs a response id (a number), got {target[:40]!r}"
                ) from None
            try:
                record = revert_response(conn, response_id, actor=actor, now=now)
            except ResponseError as exc:
                raise ActionError(str(exc)) from None
            details["response_id"] = response_id
            message = f"response {response_id} ({record.action}) reverted"
            publish = record.action == "block_ip"
    except lists.ListError as exc:
        raise ActionError(str(exc)) from None
    audit(conn, actor=actor, action=f"admin.{action}", now=now, ip_address=ip, details=details)
    return ActionResult(message, publish)


def _ip_token(settings: Settings, value: str) -> str:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ActionError(
            f"unblock_ip needs an IPv4/IPv6 address or an ip:… token, got {value[:45]!r}"
        ) from None
    return hash_ip(value, pepper(settings))
