"""Per-account behavioural features, computed only from the account's past (point-in-time).

Contract (implementation follows): ``FEATURE_COLUMNS`` is the model input, in this order.
"""

from __future__ import annotations

FEATURE_COLUMNS: tuple[str, ...] = (
    "log_amount",           # log1p(amount)
    "amount_z",             # z-score of log1p(amount) vs this account's history for the same operation+direction
    "amount_ratio_log",     # log(amount / typical amount for the same operation+direction); typical = exp(mean log1p)
    "decimal_shift",        # 1 if amount / last amount of the same operation is 10, 100, 1000 (or 1/10..) within 0.5%
    "daily_spend_ratio",    # log1p(debits today incl. this one / usual daily debit total)
    "monthly_spend_ratio",  # log1p(debits this month incl. this one / usual monthly debit total)
    "n_last_hour",          # transactions on the account in the previous hour (capped at 32)
    "n_last_day",           # transactions on the account in the previous 24 hours (capped at 32)
    "hour_rarity",          # -log P(hour of day | account history), Laplace-smoothed
    "new_partner_account",  # 1 if a partner account is given and never seen on this account
    "new_partner_bank",     # 1 if a partner bank is given and never seen on this account
    "log_gap_hours",        # log1p(hours since the previous transaction); 0 for the first
    "history_count_log",    # log1p(number of earlier transactions on the account)
    "balance_error",        # |balance_before +/- amount - balance_after| (data-entry error)
    "balance_gap",          # |balance_before - previous balance_after| (continuity break)
    "duplicate_same_day",   # 1 if an identical posting (amount, operation, partner, purpose) was seen the same day
    "op_rarity",            # -log P(operation+direction | account history)
    "transition_rarity",    # -log P(operation+direction | previous operation+direction)
    "rapid_pass_through",   # 1 if a debit takes >= 90% of a credit received < 48 h before
)
