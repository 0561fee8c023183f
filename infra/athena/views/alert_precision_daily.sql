-- Precision of the alerts over time, by the analysts' verdicts: per day (partition dt) the
-- alerts raised, how many were confirmed, dismissed or are still unreviewed, and the precision
-- of the reviewed ones (confirmed / (confirmed + dismissed); NULL while none is reviewed).
-- The current verdict per transaction is chosen exactly as in alert_verdicts. The counts are
-- cast to BIGINT (Athena's SUM of integers already is; DuckDB's is HUGEINT).
CREATE OR REPLACE VIEW alert_precision_daily AS
SELECT
    s.dt,
    CAST(s.dt AS DATE) AS txn_date,
    COUNT(*) AS alerts,
    CAST(SUM(CASE WHEN l.verdict IS NOT NULL AND l.verdict <> 'dismissed' THEN 1 ELSE 0 END) AS BIGINT) AS confirmed,
    CAST(SUM(CASE WHEN l.verdict = 'dismissed' THEN 1 ELSE 0 END) AS BIGINT) AS dismissed,
    CAST(SUM(CASE WHEN l.verdict IS NULL THEN 1 ELSE 0 END) AS BIGINT) AS unreviewed,
    CAST(SUM(CASE WHEN l.verdict IS NOT NULL AND l.verdict <> 'dismissed' THEN 1 ELSE 0 END) AS DOUBLE)
        / NULLIF(SUM(CASE WHEN l.verdict IS NULL THEN 0 ELSE 1 END), 0) AS precision,
    CAST(SUM(CASE WHEN l.verdict IS NULL THEN 0 ELSE 1 END) AS DOUBLE) / COUNT(*) AS reviewed_share
FROM scored s
LEFT JOIN (
    SELECT
        trans_id,
        verdict,
        ROW_NUMBER() OVER (PARTITION BY trans_id ORDER BY "when" DESC, received_at DESC, label_id DESC) AS latest
    FROM labels
) l ON l.trans_id = s.trans_id AND l.latest = 1
WHERE s.verdict = 'alert'
GROUP BY s.dt
