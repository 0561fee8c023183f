-- One row per scored transaction, as Tableau reads it. Client identifiers are masked:
-- client_ref is the HMAC pseudonym written by the scorer; the raw account_id is NOT selected
-- (it identifies the account owner and a hash computed here would be either reversible by
-- enumeration or need the secret key in this view's text). trans_id stays so that an
-- investigator with access to the core banking system can open the case.
CREATE OR REPLACE VIEW scored_transactions AS
SELECT
    trans_id,
    client_ref,
    ts,
    CAST(dt AS DATE) AS txn_date,
    hour(ts) AS hour_of_day,
    amount,
    direction,
    operation,
    district_id,
    CASE WHEN region IS NULL OR region = '' THEN 'unknown' ELSE region END AS region,
    score,
    verdict,
    CASE
        WHEN verdict <> 'alert' THEN 'none'
        WHEN anomaly_type IS NULL OR anomaly_type = '' THEN 'unclassified'
        ELSE anomaly_type
    END AS anomaly_type,
    reasons,
    model_version,
    dt
FROM scored
