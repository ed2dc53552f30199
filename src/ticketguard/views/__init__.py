"""Reporting views: kpi_hourly (the deployment guide's), event_analytics and wallet_segments."""

from ticketguard.views.refresh import (
    VIEW_NAMES,
    ViewRefresh,
    refresh_kpi_hourly,
    refresh_view,
    refresh_views,
)

__all__ = ["VIEW_NAMES", "ViewRefresh", "refresh_kpi_hourly", "refresh_view", "refresh_views"]
