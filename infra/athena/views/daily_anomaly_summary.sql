-- One row per day (partition dt): volume, alerts, alert rate, clients alerted, score profile
-- and the amount under alert. Partition pruning: filter on dt (or day) in Tableau.
CREATE OR REPLACE VIEW daily_anomaly_summary AS
SELECT
    dt,
    CAST(dt AS DATE) AS txn_date,
    COUNT(*) AS transactions,
    SUM(CASE WHEN verdict = 'alert' THEN 1 ELSE 0 END) AS alerts,
    CAST(SUM(CASE WHEN verdict = 'alert' THEN 1 ELSE 0 END) AS DOUBLE) / COUNT(*) AS alert_rate,
    COUNT(DISTINCT CASE WHEN verdict = 'alert' THEN client_ref END) AS clients_alerted,
    COUNT(DISTINCT client_ref) AS clients,
    AVG(score) AS mean_score,
    MAX(score) AS max_score,
    SUM(amount) AS amount_total,
    SUM(CASE WHEN verdict = 'alert' THEN amount ELSE 0 END) AS amount_alerted
FROM scored
GROUP BY dt
