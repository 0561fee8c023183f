-- One row per alert, with the analysts' current verdict next to it (the feedback path's table
-- labels: finsentry.labels' history). The current verdict of a transaction is its latest one
-- (greatest "when", then the one received last; within one batch by label_id), as
-- finsentry.labels.current_verdicts decides;
-- verdicts counts every verdict given on it (corrections included). outcome folds the verdict
-- into what precision needs: confirmed (confirmed_fraud or a confirmed anomaly type), dismissed
-- (a false positive) or unreviewed. Client identifiers are masked as in scored_transactions.
CREATE OR REPLACE VIEW alert_verdicts AS
SELECT
    s.dt,
    CAST(s.dt AS DATE) AS txn_date,
    s.ts,
    s.trans_id,
    s.client_ref,
    s.amount,
    s.operation,
    CASE WHEN s.region IS NULL OR s.region = '' THEN 'unknown' ELSE s.region END AS region,
    s.score,
    CASE WHEN s.anomaly_type IS NULL OR s.anomaly_type = '' THEN 'unclassified' ELSE s.anomaly_type END
        AS anomaly_type,
    s.reasons,
    s.model_version,
    COALESCE(l.verdict, 'unreviewed') AS analyst_verdict,
    CASE
        WHEN l.verdict IS NULL THEN 'unreviewed'
        WHEN l.verdict = 'dismissed' THEN 'dismissed'
        ELSE 'confirmed'
    END AS outcome,
    l.who AS verdict_by,
    l."when" AS verdict_at,
    COALESCE(l.verdicts, 0) AS verdicts,
    l.note
FROM scored s
LEFT JOIN (
    SELECT
        trans_id,
        verdict,
        who,
        "when",
        note,
        COUNT(*) OVER (PARTITION BY trans_id) AS verdicts,
        ROW_NUMBER() OVER (PARTITION BY trans_id ORDER BY "when" DESC, received_at DESC, label_id DESC) AS latest
    FROM labels
) l ON l.trans_id = s.trans_id AND l.latest = 1
WHERE s.verdict = 'alert'
