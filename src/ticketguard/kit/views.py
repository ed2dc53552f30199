"""Moved to :mod:`ticketguard.views`; this name stays importable for existing callers."""

from ticketguard.views.refresh import refresh_kpi_hourly

__all__ = ["refresh_kpi_hourly"]
