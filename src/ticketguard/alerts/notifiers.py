"""Notifiers: outbox senders for the pagerduty, slack and email channels (the webhook channel is the
delivery layer's signed `WebhookSender`, one signing implementation for every webhook).

Each outbox row of an alert carries the same neutral notification (`notification_payload`); the sender
shapes it for its receiver when it sends, so secrets (routing key, SMTP password, Slack's URL) never sit
in the outbox. Failures map to `DeliveryError` like every sender: connection errors, timeouts, 408/429/5xx
and SMTP 4xx are retried; other answers are final.
"""

from __future__ import annotations

import email.policy
import hashlib
import smtplib
import ssl
from collections.abc import Mapping
from datetime import datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any

import httpx

from ticketguard.alerts.rules import Rule, format_duration
from ticketguard.delivery.outbox import DeliveryError, OutboxMessage
from ticketguard.delivery.senders import canonical_json, make_client, post_json

# PagerDuty Events API v2 knows critical, error, warning and info.
PAGERDUTY_SEVERITY = {
    "critical": "critical",
    "high": "error",
    "medium": "warning",
    "low": "info",
    "info": "info",
}
KINDS = ("trigger", "resolve", "repeat", "test")


def dedup_key(rule: str) -> str:
    """One PagerDuty incident per rule: its trigger, repeats and resolve share this key."""
    return f"ticketguard/{rule}"


def notification_payload(
    rule: Rule,
    *,
    kind: str,
    value: float | None,
    detail: str,
    since: datetime,
    at: datetime,
    firing_id: int | None,
    console_url: str | None,
) -> dict[str, Any]:
    """The channel-neutral notification (also the webhook channel's JSON body)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    return {
        "type": "alert",
        "kind": kind,
        "rule": rule.name,
        "severity": rule.severity,
        "summary": rule.summary,
        "condition": rule.condition.text,
        "metric": rule.condition.metric,
        "operator": rule.condition.op,
        "threshold": rule.condition.threshold,
        "value": value,
        "detail": detail,
        "duration": format_duration(rule.duration),
        "since": since.isoformat(),
        "at": at.isoformat(),
        "firing_id": firing_id,
        "labels": dict(rule.labels),
        "annotations": dict(rule.annotations),
        "console_url": console_url,
    }


def _value(payload: Mapping[str, Any]) -> str:
    value = payload.get("value")
    if value is None:
        return "no data"
    return f"{value:.4g}"


def headline(payload: Mapping[str, Any]) -> str:
    kind = payload["kind"]
    word = {"trigger": "FIRING", "repeat": "STILL FIRING", "resolve": "RESOLVED", "test": "TEST"}[kind]
    return f"[{word}] {payload['rule']} ({payload['severity']}): {payload['summary']}"


def readable_text(payload: Mapping[str, Any]) -> str:
    """The message people read (Slack, e-mail): what, the value against the threshold, since when, where."""
    lines = [
        headline(payload),
        f"{payload['metric']} = {_value(payload)} (condition {payload['condition']}, "
        f"threshold {payload['threshold']:g}; {payload['detail']})",
    ]
    if payload["kind"] == "resolve":
        lines.append(f"fired {payload['since']}, resolved {payload['at']}")
    else:
        lines.append(f"since {payload['since']} (held for {payload['duration']})")
    if payload.get("console_url"):
        lines.append(f"console: {payload['console_url']}")
    return "\n".join(lines)


class PagerDutySender:
    """Events API v2: trigger and resolve with the rule's dedup_key, severity mapped."""

    def __init__(
        self,
        routing_key: str,
        *,
        url: str,
        timeout_seconds: float = 5.0,
        client: httpx.Client | None = None,
    ) -> None:
        if not routing_key:
            raise ValueError("PAGERDUTY_API_KEY (the integration's routing key) is required")
        self._key = routing_key
        self._url = url
        self._client = client or make_client(timeout_seconds)

    def body(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        action = "resolve" if payload["kind"] == "resolve" else "trigger"
        body: dict[str, Any] = {
            "routing_key": self._key,
            "event_action": action,
            "dedup_key": dedup_key(payload["rule"]),
        }
        if action == "trigger":
            body["payload"] = {
                "summary": headline(payload)[:1024],
                "source": "ticketguard",
                "severity": PAGERDUTY_SEVERITY.get(payload["severity"], "warning"),
                "timestamp": payload["at"],
                "component": payload["metric"],
                "group": "ticketguard-alerts",
                "class": payload["rule"],
                "custom_details": {
                    "condition": payload["condition"],
                    "value": payload["value"],
                    "threshold": payload["threshold"],
                    "detail": payload["detail"],
                    "since": payload["since"],
                    "firing_id": payload["firing_id"],
                    "test": payload["kind"] == "test",
                    **payload.get("labels", {}),
                },
            }
            if payload.get("console_url"):
                body["links"] = [{"href": payload["console_url"], "text": "ticketguard console"}]
        return body

    def send(self, message: OutboxMessage) -> None:
        post_json(self._client, self._url, canonical_json(self.body(message.payload)), {}, "PagerDuty")

    def close(self) -> None:
        self._client.close()


class SlackSender:
    """Incoming webhook: one readable message (the URL is the secret; it never appears in errors)."""

    def __init__(self, webhook_url: str, *, timeout_seconds: float = 5.0, client: httpx.Client | None = None):
        if not webhook_url:
            raise ValueError("SLACK_WEBHOOK is required")
        self._url = webhook_url
        self._client = client or make_client(timeout_seconds)

    @staticmethod
    def body(payload: Mapping[str, Any]) -> dict[str, Any]:
        return {"text": readable_text(payload)}

    def send(self, message: OutboxMessage) -> None:
        post_json(self._client, self._url, canonical_json(self.body(message.payload)), {}, "Slack")

    def close(self) -> None:
        self._client.close()


class EmailSender:
    """SMTP with STARTTLS (required unless SMTP_STARTTLS=false) and login when SMTP_USER is set. The
    Message-ID is derived from the idempotency key, so a resent message is recognisably the same."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        sender: str,
        user: str | None = None,
        password: str | None = None,
        starttls: bool = True,
        ca_file: Path | None = None,
        timeout_seconds: float = 5.0,
        default_to: str = "",
    ) -> None:
        self.host, self.port, self.sender = host, port, sender
        self.user, self.password = user, password
        self.starttls = starttls
        self.ca_file = ca_file
        self.timeout = timeout_seconds
        self.default_to = default_to

    def build(self, message: OutboxMessage) -> EmailMessage:
        payload = message.payload
        to = message.destination or self.default_to
        if not to:
            raise DeliveryError(
                "email has no recipient (rule option 'to' or ALERT_EMAIL_TO)", retryable=False
            )
        # headers unfolded up to RFC 5322's 998 characters: a subject folded right after "Subject:" shows
        # with a leading space in some clients
        mail = EmailMessage(policy=email.policy.SMTP.clone(max_line_length=998))
        mail["Subject"] = headline(payload)[:200]
        mail["From"] = self.sender
        mail["To"] = to
        mail["Date"] = formatdate(usegmt=True)
        digest = hashlib.sha256(message.idempotency_key.encode()).hexdigest()[:32]
        mail["Message-ID"] = make_msgid(idstring=digest, domain="ticketguard")
        mail["X-Ticketguard-Idempotency-Key"] = message.idempotency_key
        mail.set_content(readable_text(payload))
        return mail

    def send(self, message: OutboxMessage) -> None:
        mail = self.build(message)
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                smtp.ehlo()
                if self.starttls:
                    if not smtp.has_extn("starttls"):
                        raise DeliveryError("SMTP server does not offer STARTTLS", retryable=False)
                    context = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
                    smtp.starttls(context=context)
                    smtp.ehlo()
                if self.user:
                    smtp.login(self.user, self.password or "")
                smtp.send_message(mail)
        except DeliveryError:
            raise
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryError(f"SMTP login refused ({exc.smtp_code})", retryable=False) from None
        except smtplib.SMTPResponseException as exc:
            code = int(exc.smtp_code)
            raise DeliveryError(f"SMTP server answered {code}", retryable=code < 500 or code == 421) from None
        except smtplib.SMTPRecipientsRefused:
            raise DeliveryError("SMTP server refused every recipient", retryable=False) from None
        except ssl.SSLError as exc:
            raise DeliveryError(f"SMTP TLS failed ({type(exc).__name__})", retryable=False) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise DeliveryError(f"SMTP server unreachable ({type(exc).__name__})") from None
