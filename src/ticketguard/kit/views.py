"""Refreshing the reporting views: `REFRESH MATERIALIZED VIEW CONCURRENTLY` on PostgreSQL, the same query
into an equivalent table on SQLite (one transaction, so readers see the old rows or the new, never none)."""

from __future__ import annotations

from sqlalchemy import Connection, text

KPI_HOURLY_SQLITE = """
INSERT INTO kpi_hourly (hour, total_transactions, unique_wallets, total_revenue, avg_fraud_score,
                        blocked_count, approved_count)
SELECT
    substr(t.timestamp, 1, 13) || ':00:00.000000' AS hour,
    COUNT(DISTINCT t.transaction_id),
    COUNT(DISTINCT t.wallet_address),
    SUM(t.price_paid),
    AVG(fp.fraud_score),
    SUM(CASE WHEN fp.decision = 'BLOCKED' THEN 1 ELSE 0 END),
    SUM(CASE WHEN fp.decision = 'APPROVED' THEN 1 ELSE 0 END)
FROM transactions t
LEFT JOIN fraud_predictions fp ON t.transaction_id = fp.transaction_id
WHERE t.timestamp > strftime('%Y-%m-%d %H:%M:%f', 'now', '-7 days')
GROUP BY 1
"""


def refresh_kpi_hourly(conn: Connection, *, concurrently: bool = True) -> None:
    """Recompute kpi_hourly. Runs in the caller's transaction on SQLite; PostgreSQL's CONCURRENTLY
    refresh needs the unique index the migration creates and cannot run inside a transaction block
    alongside other writes, so call it on a connection of its own."""
    if conn.dialect.name == "postgresql":
        mode = "CONCURRENTLY " if concurrently else ""
        conn.execute(text(f"REFRESH MATERIALIZED VIEW {mode}kpi_hourly"))
    else:
        conn.execute(text("DELETE FROM kpi_hourly"))
        conn.execute(text(KPI_HOURLY_SQLITE))
