"""Alerting: the guide's alert_rules.yaml evaluated by the worker, notifications through the outbox,
automated actions through the security layer's responses (docs/alerts.md)."""
