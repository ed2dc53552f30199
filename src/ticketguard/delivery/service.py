"""Wiring: the senders and the retry policy the settings ask for, and the worker's delivery pass."""

from __future__ import annotations

from sqlalchemy import Engine

from ticketguard.config import Settings
from ticketguard.delivery.outbox import DeliveryReport, RetryPolicy, Sender, deliver_due
from ticketguard.delivery.senders import WebhookSender

OUTBOX_BATCH = 20  # messages claimed per lease


def retry_policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=settings.outbox_max_attempts,
        base_seconds=settings.outbox_backoff_base_seconds,
        max_seconds=settings.outbox_backoff_max_seconds,
        # a claimed batch is sent one message after another, each within the timeout
        lease_seconds=max(60.0, settings.outbox_send_timeout_seconds * OUTBOX_BATCH * 2),
    )


def senders_from_settings(settings: Settings) -> dict[str, Sender]:
    """One sender per channel the settings configure; a channel left out keeps its rows pending (and says
    so in `ticketguard outbox status`) rather than dropping them."""
    senders: dict[str, Sender] = {}
    if settings.webhook_signing_secret is not None:
        senders["webhook"] = WebhookSender(
            settings.webhook_signing_secret.get_secret_value(),
            timeout_seconds=settings.outbox_send_timeout_seconds,
        )
    # --- alerting (issue 15, docs/alerts.md): pagerduty, slack, email ---------------------------------
    from ticketguard.alerts.notifiers import EmailSender, PagerDutySender, SlackSender

    timeout = settings.outbox_send_timeout_seconds
    if settings.pagerduty_api_key is not None and settings.pagerduty_api_key.get_secret_value():
        senders["pagerduty"] = PagerDutySender(
            settings.pagerduty_api_key.get_secret_value(),
            url=settings.pagerduty_events_url,
            timeout_seconds=timeout,
        )
    if settings.slack_webhook is not None and settings.slack_webhook.get_secret_value():
        senders["slack"] = SlackSender(settings.slack_webhook.get_secret_value(), timeout_seconds=timeout)
    if settings.smtp_host:
        senders["email"] = EmailSender(
            settings.smtp_host,
            settings.smtp_port,
            sender=settings.smtp_from,
            user=settings.smtp_user,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
            starttls=settings.smtp_starttls,
            ca_file=settings.smtp_ca_file,
            timeout_seconds=timeout,
            default_to=settings.alert_email_to,
        )
    return senders


def deliver(settings: Settings, engine: Engine) -> DeliveryReport:
    """One delivery pass with the configured senders (the `deliver-outbox` job)."""
    senders = senders_from_settings(settings)
    try:
        return deliver_due(engine, senders, policy=retry_policy(settings), batch=OUTBOX_BATCH)
    finally:
        for sender in senders.values():
            close = getattr(sender, "close", None)
            if close is not None:
                close()
