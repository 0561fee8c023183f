-- Counts per day, region, district and anomaly type ('none' for rows that raised no alert,
-- 'unclassified' for an alert without a type). Summed over all rows, transactions equals the
-- number of scored rows: no transaction is counted twice or dropped.
CREATE OR REPLACE VIEW anomaly_counts_by_type_region AS
SELECT
    dt,
    CAST(dt AS DATE) AS txn_date,
    CASE WHEN region IS NULL OR region = '' THEN 'unknown' ELSE region END AS region,
    district_id,
    CASE
        WHEN verdict <> 'alert' THEN 'none'
        WHEN anomaly_type IS NULL OR anomaly_type = '' THEN 'unclassified'
        ELSE anomaly_type
    END AS anomaly_type,
    COUNT(*) AS transactions,
    SUM(CASE WHEN verdict = 'alert' THEN 1 ELSE 0 END) AS alerts,
    SUM(amount) AS amount_total
FROM scored
GROUP BY
    dt,
    CASE WHEN region IS NULL OR region = '' THEN 'unknown' ELSE region END,
    district_id,
    CASE
        WHEN verdict <> 'alert' THEN 'none'
        WHEN anomaly_type IS NULL OR anomaly_type = '' THEN 'unclassified'
        ELSE anomaly_type
    END
