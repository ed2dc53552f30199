"""SQLite bodies of the reporting views. PostgreSQL holds the same definitions as materialized views
(migrations 0001 and 0002); these run the same logic into tables of the same shape. Any change to a rule
here must be made in a new migration for PostgreSQL too, and in docs/data-control.md.

Every query takes ``:now`` (UTC, SQLite's stored text format) instead of reading the clock itself, so a
refresh is reproducible in tests.
"""

from __future__ import annotations

KPI_HOURLY = """
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
WHERE t.timestamp > :since_7d
GROUP BY 1
"""

EVENT_ANALYTICS = """
INSERT INTO event_analytics (
    event_id, name, capacity, face_value, starts_at, primary_sold, sold_ratio, primary_revenue,
    resale_count, resale_revenue, avg_resale_markup, transfer_count, scored_count, approved_count,
    require_2fa_count, manual_review_count, blocked_count, avg_fraud_score, first_transaction_at,
    last_transaction_at, refreshed_at)
WITH tx AS (
    SELECT transaction_id, event_id, price_paid, is_resale, status, timestamp FROM transactions
    UNION ALL
    SELECT transaction_id, event_id, price_paid, is_resale, status, timestamp FROM transactions_archive
), fp AS (
    SELECT transaction_id, fraud_score, decision FROM fraud_predictions
    UNION ALL
    SELECT transaction_id, fraud_score, decision FROM fraud_predictions_archive
), s AS (
    -- A sale counts towards sold/revenue unless the scorer blocked it or its status says it did not happen.
    SELECT tx.*, fp.fraud_score, fp.decision,
           (COALESCE(fp.decision, '') <> 'BLOCKED'
            AND COALESCE(tx.status, 'completed')
                NOT IN ('failed', 'cancelled', 'refunded', 'reverted', 'blocked')) AS counted
    FROM tx LEFT JOIN fp ON fp.transaction_id = tx.transaction_id
)
SELECT
    e.event_id, e.name, e.capacity, e.face_value, e.starts_at,
    COALESCE(SUM(CASE WHEN s.counted AND NOT s.is_resale THEN 1 ELSE 0 END), 0),
    COALESCE(SUM(CASE WHEN s.counted AND NOT s.is_resale THEN 1 ELSE 0 END), 0) * 1.0 / e.capacity,
    COALESCE(SUM(CASE WHEN s.counted AND NOT s.is_resale THEN s.price_paid END), 0),
    COALESCE(SUM(CASE WHEN s.counted AND s.is_resale AND s.price_paid IS NOT NULL THEN 1 ELSE 0 END), 0),
    COALESCE(SUM(CASE WHEN s.counted AND s.is_resale THEN s.price_paid END), 0),
    AVG(CASE WHEN s.counted AND s.is_resale AND s.price_paid IS NOT NULL AND e.face_value > 0
             THEN (s.price_paid - e.face_value) * 1.0 / e.face_value END),
    COALESCE(SUM(CASE WHEN s.counted AND s.is_resale AND s.price_paid IS NULL THEN 1 ELSE 0 END), 0),
    COALESCE(SUM(CASE WHEN s.decision IS NOT NULL THEN 1 ELSE 0 END), 0),
    COALESCE(SUM(CASE WHEN s.decision = 'APPROVED' THEN 1 ELSE 0 END), 0),
    COALESCE(SUM(CASE WHEN s.decision = 'REQUIRE_2FA' THEN 1 ELSE 0 END), 0),
    COALESCE(SUM(CASE WHEN s.decision = 'MANUAL_REVIEW' THEN 1 ELSE 0 END), 0),
    COALESCE(SUM(CASE WHEN s.decision = 'BLOCKED' THEN 1 ELSE 0 END), 0),
    AVG(s.fraud_score),
    MIN(s.timestamp),
    MAX(s.timestamp),
    :now
FROM events e
LEFT JOIN s ON s.event_id = e.event_id
GROUP BY e.event_id, e.name, e.capacity, e.face_value, e.starts_at
"""

WALLET_SEGMENTS = """
INSERT INTO wallet_segments (
    wallet_address, first_seen_at, last_seen_at, tickets_bought_365d, spend_365d, events_365d,
    resales_sold_365d, avg_sell_markup, blocked_count, challenged_count, avg_fraud_score, allowlisted,
    segment, behaviour, refreshed_at)
WITH tx AS (
    SELECT transaction_id, wallet_address, seller_address, event_id, price_paid, is_resale, status, timestamp
    FROM transactions
    UNION ALL
    SELECT transaction_id, wallet_address, seller_address, event_id, price_paid, is_resale, status, timestamp
    FROM transactions_archive
), fp AS (
    SELECT transaction_id, fraud_score, decision FROM fraud_predictions
    UNION ALL
    SELECT transaction_id, fraud_score, decision FROM fraud_predictions_archive
), s AS (
    SELECT tx.*, fp.fraud_score, fp.decision,
           (COALESCE(fp.decision, '') <> 'BLOCKED'
            AND COALESCE(tx.status, 'completed')
                NOT IN ('failed', 'cancelled', 'refunded', 'reverted', 'blocked')) AS counted,
           tx.timestamp > :since_365d AS recent
    FROM tx LEFT JOIN fp ON fp.transaction_id = tx.transaction_id
), activity AS (
    SELECT s.wallet_address AS wallet_address, 'buy' AS role, s.event_id, s.price_paid, s.timestamp,
           s.counted, s.recent, s.decision, s.fraud_score, NULL AS markup
    FROM s
    UNION ALL
    SELECT s.seller_address, 'sell', s.event_id, s.price_paid, s.timestamp, s.counted, s.recent, NULL, NULL,
           CASE WHEN s.price_paid IS NOT NULL AND e.face_value > 0
                THEN (s.price_paid - e.face_value) * 1.0 / e.face_value END
    FROM s LEFT JOIN events e ON e.event_id = s.event_id
    WHERE s.is_resale AND s.seller_address IS NOT NULL
), m AS (
    SELECT
        wallet_address,
        MIN(timestamp) AS first_seen_at,
        MAX(timestamp) AS last_seen_at,
        SUM(CASE WHEN role = 'buy' AND counted AND recent THEN 1 ELSE 0 END) AS tickets_bought_365d,
        COALESCE(SUM(CASE WHEN role = 'buy' AND counted AND recent THEN price_paid END), 0) AS spend_365d,
        COUNT(DISTINCT CASE WHEN role = 'buy' AND counted AND recent THEN event_id END) AS events_365d,
        SUM(CASE WHEN role = 'sell' AND counted AND recent AND price_paid IS NOT NULL THEN 1 ELSE 0 END)
            AS resales_sold_365d,
        AVG(CASE WHEN role = 'sell' AND counted AND recent THEN markup END) AS avg_sell_markup,
        SUM(CASE WHEN role = 'buy' AND decision = 'BLOCKED' THEN 1 ELSE 0 END) AS blocked_count,
        SUM(CASE WHEN role = 'buy' AND decision IN ('REQUIRE_2FA', 'MANUAL_REVIEW') THEN 1 ELSE 0 END)
            AS challenged_count,
        AVG(fraud_score) AS avg_fraud_score
    FROM activity
    GROUP BY wallet_address
)
SELECT
    m.wallet_address, m.first_seen_at, m.last_seen_at, m.tickets_bought_365d, m.spend_365d, m.events_365d,
    m.resales_sold_365d, m.avg_sell_markup, m.blocked_count, m.challenged_count, m.avg_fraud_score,
    a.wallet_address IS NOT NULL,
    CASE
        WHEN a.wallet_address IS NOT NULL THEN 'vip'
        WHEN m.first_seen_at > :since_30d THEN 'new'
        WHEN m.tickets_bought_365d >= 10 AND m.spend_365d >= 1000 THEN 'vip'
        WHEN m.tickets_bought_365d >= 3 THEN 'regular'
        ELSE 'casual'
    END,
    CASE
        WHEN m.resales_sold_365d >= 3 AND m.resales_sold_365d >= 0.5 * m.tickets_bought_365d
             AND COALESCE(m.avg_sell_markup, 0) >= 0.2 THEN 'scalper'
        WHEN m.tickets_bought_365d >= 5 AND m.events_365d >= 3
             AND m.resales_sold_365d <= 0.1 * m.tickets_bought_365d THEN 'collector'
        ELSE 'none'
    END,
    :now
FROM m
LEFT JOIN allowlisted_wallets a
    ON a.wallet_address = m.wallet_address AND (a.expires_at IS NULL OR a.expires_at > :now)
"""

# --- operator console (migration 0009, issue 14): labelled decisions per hour of the label's arrival ------
REALISED_HOURLY = """
INSERT INTO realised_hourly (hour, flagged, is_fraud, n)
SELECT
    substr(lb.labelled_at, 1, 13) || ':00:00.000000' AS hour,
    COALESCE(fp.decision IN ('BLOCKED', 'MANUAL_REVIEW'), 0) AS flagged,
    lb.is_fraud,
    COUNT(*)
FROM fraud_labels lb
JOIN fraud_predictions fp ON fp.transaction_id = lb.transaction_id
WHERE lb.labelled_at > :since_8d
GROUP BY 1, 2, 3
"""
