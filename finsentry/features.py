"""Per-account behavioural features, computed only from the account's past (point-in-time).

One definition, two forms. The definition is ``_step``: it reads an account's state (a small
fixed-size pair of arrays), emits the features of one transaction from that state (plus the
transaction's own fields) and then folds the transaction into the state. Then:

* the **batch** form (``compute_features``) runs ``_step`` over every account's ordered
  history, starting from empty states — this is what training, Glue and evaluation use;
* the **incremental** form (``AccountProfile`` and ``update_profiles``) runs the same ``_step``
  from a stored state, one transaction or one batch at a time — this is what the streaming
  scorer uses, persisting each profile (a few kB) between invocations.

Because both forms execute the very same compiled function, they agree exactly; a test proves
it on the same sequence. Every feature of a transaction uses only earlier transactions of the
account, except the running daily and monthly spend, which include the transaction itself
(it is known when the transaction arrives).
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numba
import numpy as np
import pandas as pd

from finsentry.partners import PARTNER_FEATURE_COLUMNS, compute_partner_features, key_time_order, stable_hash
from finsentry.schema import CHANNEL_OF_OPERATION, Channel, Direction, Operation, Purpose

FEATURE_COLUMNS: tuple[str, ...] = (
    "log_amount",           # log1p(amount)
    "amount_z",             # z-score of log1p(amount) vs the account's same operation+direction
    "amount_ratio_log",     # log1p(amount) - mean log1p(amount) of the same operation+direction
    "decimal_shift",        # 1 if amount / last amount of the same op is 10^k, k=+-1..3 (0.5%)
    "daily_spend_ratio",    # log1p(debits today incl. this one / usual daily debit total)
    "monthly_spend_ratio",  # log1p(debits this month incl. this one / usual monthly debit total)
    "n_last_hour",          # transactions on the account in the previous hour (capped at 32)
    "n_last_day",           # transactions on the account in the previous 24 hours (capped at 32)
    "hour_rarity",          # -log P(hour of day | account's history on the same channel), Laplace-smoothed
    "hour_distance",        # hours (circular) to the nearest hour the account has used on this channel
    "new_partner_account",  # 1 if a partner account is given and never seen on this account
    "new_partner_bank",     # 1 if a partner bank is given and never seen on this account
    "log_gap_hours",        # log1p(hours since the previous transaction); 0 for the first
    "history_count_log",    # log1p(number of earlier transactions on the account, capped at 100)
    "balance_error",        # |balance_before +/- amount - balance_after| (data-entry error)
    "balance_gap",          # |balance_before - previous balance_after| (continuity break)
    "duplicate_recent",     # 1 if an identical posting (amount, op, partner, purpose) <= 2 min before
    "op_rarity",            # -log P(operation+direction | account history)
    "transition_rarity",    # -log P(operation+direction | previous operation+direction)
    "rapid_pass_through",   # 1 if a debit takes >= 90% of a credit received < 48 h before
    "drain_share",          # debit amount / balance before it (capped at DRAIN_CAP; 0 for credits)
    "amount_burst",         # max(amount_ratio_log, 0) x decayed count of earlier postings > 3x usual and z > 1.5
)  # fmt: skip
N_FEATURES = len(FEATURE_COLUMNS)
# What a detector reads: the account's own past (above) and the counterparty's (finsentry.partners).
DETECTOR_COLUMNS: tuple[str, ...] = FEATURE_COLUMNS + PARTNER_FEATURE_COLUMNS
# What every scoring path computes, the stream included: the features above and the
# transaction's own operation code (``seq_op``, row-local: ``operation_codes``), which the tails
# detector reads against the whole bank.
OPERATION_COLUMN = "seq_op"
SCORING_COLUMNS: tuple[str, ...] = DETECTOR_COLUMNS + (OPERATION_COLUMN,)

# Which tail of each feature is unusual, and which family of evidence it belongs to: what the
# tail-probability detector (``finsentry.detectors.tails``) reads. "high": large values are
# unusual; "low": small ones (a short gap is a burst); "context": not evidence on its own (a
# young account is not suspicious), used by models that learn interactions only. Features of one
# family say the same thing several ways (three views of an amount): a family counts once.
# "category": a code whose rarity across the bank is the evidence (not its numeric value).
FEATURE_TAILS: dict[str, tuple[str, str]] = {
    "log_amount": ("high", "amount"), "amount_z": ("high", "amount"), "amount_ratio_log": ("high", "amount"),
    "decimal_shift": ("high", "amount"),
    "daily_spend_ratio": ("high", "spend"), "monthly_spend_ratio": ("high", "spend"),
    "n_last_hour": ("high", "velocity"), "n_last_day": ("high", "velocity"), "log_gap_hours": ("low", "velocity"),
    "hour_rarity": ("high", "hour"), "hour_distance": ("high", "hour"),
    "new_partner_account": ("high", "partner"), "new_partner_bank": ("high", "partner"),
    "history_count_log": ("context", "history"),
    "balance_error": ("high", "integrity"), "balance_gap": ("high", "integrity"),
    "duplicate_recent": ("high", "integrity"),
    "op_rarity": ("high", "sequence"), "transition_rarity": ("high", "sequence"),
    "rapid_pass_through": ("high", "sequence"),
    "drain_share": ("high", "balance"),
    "amount_burst": ("high", "burst"),
    "partner_senders_recent_log": ("high", "counterparty"), "partner_senders_ratio": ("high", "counterparty"),
    "partner_volume_ratio": ("high", "counterparty"), "partner_age_log": ("context", "counterparty"),
    "partner_new": ("high", "partner"),
    # the transaction's own operation (the sequence column ``seq_op``), read against the whole
    # bank by the tails detector: how rare the operation is across all accounts
    "seq_op": ("category", "sequence"),
}  # fmt: skip
HOUR_DISTANCE = FEATURE_COLUMNS.index("hour_distance")

# --- encoding of a transaction into the kernel's numeric inputs -------------------------------

OPERATIONS: tuple[str, ...] = tuple(Operation)
N_OPS = 2 * len(OPERATIONS)  # operation x direction
CHANNELS: tuple[str, ...] = tuple(Channel)
# channel index of each op code (operation x direction), for the per-channel hour habits
CHANNEL_OF_OP = np.array([CHANNELS.index(CHANNEL_OF_OPERATION[Operation(op)]) for op in OPERATIONS
                          for _ in range(2)], dtype=np.int64)  # fmt: skip
RING = 32  # recent timestamps kept for the hour/day counts
SIG_RING = 8  # recent posting signatures kept for duplicate detection
DUPLICATE_SECONDS = 120.0  # an identical posting this close is a duplicate (same ts for date-only data)
PARTNER_BITS = 128  # bitmap of partner accounts seen (hashed)
BANK_BITS = 64  # bitmap of partner banks seen (hashed)
HISTORY_CAP = 100.0  # history_count_log saturates: "a young account", not a clock that drifts with time
Z_STD_FLOOR = 0.1  # std of log-amount never below 10%: recurring payments have zero variance
Z_CLIP = 50.0
AMOUNT_ALPHA_MIN = 0.02  # per-operation amount statistics become an EWMA after 50 postings
DAILY_ALPHA_MIN = 1.0 / 60.0
MONTHLY_ALPHA_MIN = 1.0 / 12.0
DECIMAL_TOLERANCE = math.log10(1.005)
PASS_THROUGH_SECONDS = 48 * 3600.0
PASS_THROUGH_SHARE = 0.9
DRAIN_CAP = 10.0  # drain_share of a debit from an empty or overdrawn account
BURST_TAU = 7 * 86400.0  # the burst count decays with this time constant
BURST_RATIO = math.log(3.0)  # a posting above 3x its operation's usual amount ...
BURST_Z = 1.5  # ... and 1.5 of its spread counts into the burst
BURST_MIN_N = 5  # once its operation's usual amount has this many postings

# float state layout
F_N, F_LAST_TS, F_LAST_AFTER, F_LAST_OP = 0, 1, 2, 3
F_DAY, F_DAY_DEBIT, F_DAYS, F_DAY_MEAN = 4, 5, 6, 7
F_MONTH, F_MONTH_DEBIT, F_MONTHS, F_MONTH_MEAN = 8, 9, 10, 11
F_LAST_CREDIT, F_LAST_CREDIT_TS, F_RING_POS = 12, 13, 14
F_BURST = 15  # decayed count of clearly large postings (at F_LAST_TS)
F_OPS = 16  # per op: count, mean, var, last amount
F_TRANS = F_OPS + 4 * N_OPS
F_HOURS = F_TRANS + N_OPS * N_OPS
F_RING = F_HOURS + 24 * len(CHANNELS)
F_SIZE = F_RING + RING
# int state layout
I_PARTNERS = 0  # PARTNER_BITS // 64 words
I_BANKS = I_PARTNERS + PARTNER_BITS // 64
I_SIG = I_BANKS + BANK_BITS // 64
I_SIG_TS = I_SIG + SIG_RING
I_SIG_POS = I_SIG_TS + SIG_RING
I_SIZE = I_SIG_POS + 1

INPUT_COLUMNS = (
    "ts_s", "day", "month", "hour", "amount", "is_debit", "op", "partner_bit", "bank_bit",
    "balance_before", "balance_after", "signature",
)  # fmt: skip


def new_state() -> tuple[np.ndarray, np.ndarray]:
    """The state of an account with no history."""
    f = np.zeros(F_SIZE, dtype=np.float64)
    f[F_LAST_OP] = -1.0
    f[F_DAY] = -1.0
    f[F_MONTH] = -1.0
    f[F_LAST_CREDIT_TS] = -1e18
    f[F_RING:F_RING + RING] = -1e18  # fmt: skip
    i = np.zeros(I_SIZE, dtype=np.int64)
    i[I_SIG_TS:I_SIG_TS + SIG_RING] = -(2**62)  # fmt: skip
    return f, i


_stable_hash = stable_hash  # one definition (finsentry.partners)


def encode(transactions: pd.DataFrame) -> dict[str, np.ndarray]:
    """Turn canonical transactions into the kernel's numeric input columns (vectorised)."""
    ts = pd.to_datetime(transactions["ts"]).astype("datetime64[ns]")
    ts_ns = ts.to_numpy().astype("int64")
    direction = _texts(transactions["direction"])
    operation = _texts(transactions["operation"])
    is_debit = np.array([d == Direction.DEBIT for d in direction], dtype=bool)
    op_index = _OPERATION_INDEX.get_indexer(operation)
    op_index = np.where(op_index < 0, OPERATIONS.index(Operation.NONE), op_index)
    bank = ["" if b != b else b for b in _texts(transactions["partner_bank"])]  # missing: ""
    account = ["" if a != a else a for a in _texts(transactions["partner_account"])]
    partner = [b + "/" + a for b, a in zip(bank, account, strict=True)]
    partner_bit = np.where(np.array([a != "" for a in account], dtype=bool),
                           _stable_hash(pd.Series(partner, dtype=object)) % PARTNER_BITS, -1)  # fmt: skip
    bank_bit = np.where(np.array([b != "" for b in bank], dtype=bool),
                        _stable_hash(pd.Series(bank, dtype=object)) % BANK_BITS, -1)  # fmt: skip
    amount = transactions["amount"].to_numpy(dtype=np.float64)
    cents = np.round(amount * 100).astype(np.int64).tolist()
    # the posting's signature; a missing part makes it missing (as pandas' string concatenation)
    signature = _stable_hash(pd.Series([
        math.nan if o != o or d != d or k != k else f"{o}|{d}|{c}|{p}|{k}"
        for o, d, c, p, k in zip(operation, direction, cents, partner, _texts(transactions["k_symbol"]), strict=True)
    ], dtype=object))  # fmt: skip
    return {
        "ts_s": ts_ns / 1e9,
        "day": ts_ns // 86_400_000_000_000,
        "month": (ts.dt.year * 12 + ts.dt.month - 1).to_numpy(dtype=np.int64),
        "hour": ts.dt.hour.to_numpy(dtype=np.int64),
        "amount": amount,
        "is_debit": is_debit.astype(np.int64),
        "op": (op_index.astype(np.int64) * 2 + is_debit),
        "partner_bit": partner_bit.astype(np.int64),
        "bank_bit": bank_bit.astype(np.int64),
        "balance_before": transactions["balance_before"].to_numpy(dtype=np.float64),
        "balance_after": transactions["balance_after"].to_numpy(dtype=np.float64),
        "signature": signature,
    }


_OPERATION_INDEX = pd.Index([str(o) for o in OPERATIONS], dtype=object)


def _texts(values: pd.Series) -> list:
    """``values.astype(str)`` as a list: text, a missing value stays missing (NaN)."""
    return values.astype(str).tolist()


# --- the one definition -------------------------------------------------------------------


@numba.njit(cache=True)
def _bit_test_and_set(words: np.ndarray, start: int, bit: int) -> bool:
    w = start + bit // 64
    mask = np.int64(1) << np.int64(bit % 64)
    seen = (words[w] & mask) != 0
    words[w] |= mask
    return seen


@numba.njit(cache=True)
def _roll_period(f: np.ndarray, key: int, period: int, debit: int, mean: int, count: int,
                 alpha_min: float) -> None:  # fmt: skip
    """Close the running day/month when a new one starts: fold its debit total into the mean."""
    if f[key] == period:
        return
    if f[key] >= 0 and f[debit] > 0:
        f[count] += 1.0
        alpha = max(1.0 / f[count], alpha_min)
        f[mean] += alpha * (f[debit] - f[mean])
    f[key] = period
    f[debit] = 0.0


@numba.njit(cache=True)
def _step(f: np.ndarray, s: np.ndarray, x: np.ndarray, sig: np.int64, out: np.ndarray) -> None:
    """Write the features of transaction ``x`` into ``out``, then fold ``x`` into the state.

    ``x`` holds INPUT_COLUMNS except the signature (passed as an int64 to keep all 64 bits).
    """
    ts, day, month, hour = x[0], int(x[1]), int(x[2]), int(x[3])
    amount, debit, op = x[4], int(x[5]), int(x[6])
    partner_bit, bank_bit = int(x[7]), int(x[8])
    before, after = x[9], x[10]
    n = f[F_N]
    la = math.log1p(amount)
    base = F_OPS + 4 * op
    op_n, op_mean, op_var, op_last = f[base], f[base + 1], f[base + 2], f[base + 3]

    # amount against this account's typical amount for the same operation
    out[0] = la
    out[1] = 0.0
    out[2] = 0.0
    if op_n >= 1:
        out[2] = la - op_mean
    if op_n >= 2:
        z = (la - op_mean) / max(math.sqrt(op_var), Z_STD_FLOOR)
        out[1] = min(max(z, -Z_CLIP), Z_CLIP)
    out[3] = 0.0
    if op_last > 0 and amount > 0:
        r = math.log10(amount / op_last)
        k = round(r)
        if k != 0 and abs(k) <= 3 and abs(r - k) < DECIMAL_TOLERANCE:
            out[3] = 1.0

    # the account's recent clearly large postings (decayed count, earlier postings only) x this one's ratio
    burst = f[F_BURST] * math.exp(-max(ts - f[F_LAST_TS], 0.0) / BURST_TAU) if n >= 1 else 0.0
    out[21] = max(out[2], 0.0) * burst
    if (op_n >= BURST_MIN_N and la - op_mean > BURST_RATIO
            and (la - op_mean) / max(math.sqrt(op_var), Z_STD_FLOOR) > BURST_Z):  # fmt: skip
        burst += 1.0

    # running daily and monthly spend (including this transaction) against usual
    _roll_period(f, F_DAY, day, F_DAY_DEBIT, F_DAY_MEAN, F_DAYS, DAILY_ALPHA_MIN)
    _roll_period(f, F_MONTH, month, F_MONTH_DEBIT, F_MONTH_MEAN, F_MONTHS, MONTHLY_ALPHA_MIN)
    if debit == 1:
        f[F_DAY_DEBIT] += amount
        f[F_MONTH_DEBIT] += amount
    out[4] = math.log1p(f[F_DAY_DEBIT] / max(f[F_DAY_MEAN], 1.0)) if f[F_DAYS] >= 1 else 0.0
    out[5] = math.log1p(f[F_MONTH_DEBIT] / max(f[F_MONTH_MEAN], 1.0)) if f[F_MONTHS] >= 1 else 0.0

    # velocity from the ring of recent timestamps
    hour_count = 0.0
    day_count = 0.0
    for j in range(RING):
        t = f[F_RING + j]
        if t <= ts and t > ts - 3600.0:
            hour_count += 1.0
        if t <= ts and t > ts - 86400.0:
            day_count += 1.0
    out[6] = hour_count
    out[7] = day_count

    # habits: hour of day, partners, operations
    hours = F_HOURS + 24 * CHANNEL_OF_OP[op]
    channel_n = 0.0
    for j in range(24):
        channel_n += f[hours + j]
    out[8] = -math.log((f[hours + hour] + 1.0) / (channel_n + 24.0))
    distance = 0.0
    if channel_n > 0:
        for d in range(13):
            if f[hours + (hour + d) % 24] > 0 or f[hours + (hour - d) % 24] > 0:
                distance = float(d)
                break
    out[HOUR_DISTANCE] = distance
    out[10] = 0.0
    if partner_bit >= 0 and not _bit_test_and_set(s, I_PARTNERS, partner_bit):
        out[10] = 1.0
    out[11] = 0.0
    if bank_bit >= 0 and not _bit_test_and_set(s, I_BANKS, bank_bit):
        out[11] = 1.0
    out[12] = math.log1p(max(ts - f[F_LAST_TS], 0.0) / 3600.0) if n >= 1 else 0.0
    out[13] = math.log1p(min(n, HISTORY_CAP))

    # balance integrity
    signed = -amount if debit == 1 else amount
    out[14] = abs(before + signed - after)  # NaN when the source has no balances: never faked
    out[15] = abs(before - f[F_LAST_AFTER]) if n >= 1 else (math.nan if math.isnan(before) else 0.0)
    out[20] = 0.0
    if math.isnan(before):
        out[20] = math.nan
    elif debit == 1 and amount > 0:
        out[20] = min(amount / before, DRAIN_CAP) if before > 0 else DRAIN_CAP

    # duplicate posting: identical signature posted within DUPLICATE_SECONDS before
    out[16] = 0.0
    for j in range(SIG_RING):
        if s[I_SIG + j] == sig and s[I_SIG_TS + j] >= ts - DUPLICATE_SECONDS:
            out[16] = 1.0

    # operation sequence
    out[17] = -math.log((op_n + 1.0) / (n + N_OPS))
    last_op = int(f[F_LAST_OP])
    out[18] = 0.0
    if last_op >= 0:
        row = F_TRANS + last_op * N_OPS
        total = 0.0
        for j in range(N_OPS):
            total += f[row + j]
        out[18] = -math.log((f[row + op] + 1.0) / (total + N_OPS))
    out[19] = 0.0
    if (debit == 1 and f[F_LAST_CREDIT] > 0 and ts - f[F_LAST_CREDIT_TS] < PASS_THROUGH_SECONDS
            and amount >= PASS_THROUGH_SHARE * f[F_LAST_CREDIT]):  # fmt: skip
        out[19] = 1.0

    # ---- fold the transaction into the state ----
    op_n += 1.0
    alpha = max(1.0 / op_n, AMOUNT_ALPHA_MIN)
    diff = la - op_mean
    op_mean += alpha * diff
    op_var = (1.0 - alpha) * (op_var + alpha * diff * diff)
    f[base], f[base + 1], f[base + 2], f[base + 3] = op_n, op_mean, op_var, amount
    if last_op >= 0:
        f[F_TRANS + last_op * N_OPS + op] += 1.0
    f[hours + hour] += 1.0
    pos = int(f[F_RING_POS])
    f[F_RING + pos] = ts
    f[F_RING_POS] = (pos + 1) % RING
    spos = int(s[I_SIG_POS])
    s[I_SIG + spos] = sig
    s[I_SIG_TS + spos] = np.int64(ts)
    s[I_SIG_POS] = (spos + 1) % SIG_RING
    if debit == 0:
        f[F_LAST_CREDIT] = amount
        f[F_LAST_CREDIT_TS] = ts
    f[F_LAST_OP] = op
    f[F_LAST_TS] = ts
    f[F_BURST] = burst
    f[F_LAST_AFTER] = after
    f[F_N] = n + 1.0


@numba.njit(cache=True)
def _run(x: np.ndarray, sig: np.ndarray, slot: np.ndarray, f_states: np.ndarray,
         i_states: np.ndarray) -> np.ndarray:  # fmt: skip
    """Run ``_step`` over rows in order; row r uses and updates the state in ``slot[r]``."""
    out = np.empty((x.shape[0], N_FEATURES), dtype=np.float64)
    for r in range(x.shape[0]):
        k = slot[r]
        _step(f_states[k], i_states[k], x[r], sig[r], out[r])
    return out


def _matrix(inputs: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    cols = [np.asarray(inputs[c], dtype=np.float64) for c in INPUT_COLUMNS[:-1]]
    return np.column_stack(cols) if cols[0].size else np.empty((0, 11)), np.asarray(
        inputs["signature"], dtype=np.int64
    )


def _ordered(transactions: pd.DataFrame) -> np.ndarray:
    """Row positions sorted by account then time; ties keep the input order."""
    return _ordered_accounts(transactions)[0]


def _ordered_accounts(transactions: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """``_ordered`` and the rows' account ids as text (input order)."""
    a, t = transactions["account_id"].astype(str).to_numpy(), pd.to_datetime(transactions["ts"]).to_numpy()
    fast = key_time_order(a, t)
    if fast is not None:
        return fast, a
    keys = pd.DataFrame({"a": a, "t": t, "p": np.arange(len(transactions))})
    return keys.sort_values(["a", "t", "p"], kind="stable")["p"].to_numpy(), a


# --- batch form ---------------------------------------------------------------------------


def compute_features(transactions: pd.DataFrame) -> pd.DataFrame:
    """Features of every transaction from its account's earlier history (batch form).

    Accounts are independent; within an account, transactions are taken in time order, ties
    in input order. The result is aligned row for row with ``transactions`` (same index).
    """
    if transactions.empty:
        return pd.DataFrame(columns=list(FEATURE_COLUMNS), index=transactions.index, dtype=float)
    order = _ordered(transactions)
    ordered = transactions.iloc[order]
    slot = pd.factorize(ordered["account_id"].astype(str))[0].astype(np.int64)
    n_accounts = int(slot.max()) + 1
    f0, i0 = new_state()
    f_states = np.tile(f0, (n_accounts, 1))
    i_states = np.tile(i0, (n_accounts, 1))
    x, sig = _matrix(encode(ordered))
    values = _run(x, sig, slot, f_states, i_states)
    result = np.empty_like(values)
    result[order] = values
    return pd.DataFrame(result, columns=list(FEATURE_COLUMNS), index=transactions.index)


# --- incremental form ---------------------------------------------------------------------


@dataclass
class AccountProfile:
    """The streaming state of one account: everything its next features need, nothing more.

    ``to_dict`` / ``from_dict`` give a compact JSON-friendly form (two base64 arrays, about
    4 kB) for a DynamoDB item. ``seen`` counts transactions folded in.
    """

    account_id: str
    f: np.ndarray = field(default_factory=lambda: new_state()[0])
    i: np.ndarray = field(default_factory=lambda: new_state()[1])
    recent_ids: list[str] = field(default_factory=list)  # last trans_ids folded in (redelivery guard)
    q: np.ndarray = field(default_factory=lambda: new_sequence_state())  # the LSTM's last steps (update_sequences)

    @property
    def seen(self) -> int:
        return int(self.f[F_N])

    def update(self, transaction: Mapping[str, object] | pd.DataFrame) -> dict[str, float]:
        """Fold one canonical transaction in; return its features (computed before the fold)."""
        frame = (
            transaction
            if isinstance(transaction, pd.DataFrame)
            else pd.DataFrame([dict(transaction)])
        )
        if len(frame) != 1:
            raise ValueError("AccountProfile.update takes exactly one transaction")
        x, sig = _matrix(encode(frame))
        f_states, i_states = self.f[None, :], self.i[None, :]
        values = _run(x, sig, np.zeros(1, dtype=np.int64), f_states, i_states)
        self.f, self.i = f_states[0], i_states[0]
        return dict(zip(FEATURE_COLUMNS, values[0].tolist(), strict=True))

    def to_dict(self) -> dict[str, object]:
        return {
            "account_id": self.account_id,
            "f": base64.b64encode(self.f.astype("<f8").tobytes()).decode(),
            "i": base64.b64encode(self.i.astype("<i8").tobytes()).decode(),
            "recent_ids": list(self.recent_ids),
        }

    @classmethod
    def from_dict(cls, item: Mapping[str, object]) -> AccountProfile:
        f_bytes, i_bytes = base64.b64decode(item["f"]), base64.b64decode(item["i"])
        if len(f_bytes) != 8 * F_SIZE or len(i_bytes) != 8 * I_SIZE:
            raise ValueError(f"profile of account {item.get('account_id')} has a foreign layout")
        f = np.frombuffer(f_bytes, dtype="<f8").astype(np.float64)
        i = np.frombuffer(i_bytes, dtype="<i8").astype(np.int64)
        return cls(account_id=str(item["account_id"]), f=f, i=i,
                   recent_ids=[str(t) for t in item.get("recent_ids", [])])  # fmt: skip


def update_profiles(
    profiles: dict[str, AccountProfile], transactions: pd.DataFrame
) -> pd.DataFrame:
    """Features of a batch from stored profiles, folding the batch in (incremental form).

    Missing accounts get a new profile in ``profiles``. Within the batch, each account's
    transactions are taken in time order. Result aligned with ``transactions``.
    """
    if transactions.empty:
        return compute_features(transactions)
    return _fold_profiles(_Batch(profiles, transactions))


class _Batch:
    """A batch of the incremental form, sorted once: rows by account then time (``order``), the
    accounts' positions in it (``codes`` into ``accounts``) and their profiles (missing ones
    created in ``profiles``). The kernels' inputs are row-local: computed on the rows as given,
    then put in ``order`` (``sorted``), never a sorted copy of the frame."""

    def __init__(self, profiles: dict[str, AccountProfile], transactions: pd.DataFrame) -> None:
        self.transactions = transactions
        self.order, accounts = _ordered_accounts(transactions)
        codes, uniques = pd.factorize(accounts[self.order])
        self.codes = codes.astype(np.int64)
        self.accounts = [str(a) for a in uniques]
        self.profiles = []
        for acc in self.accounts:
            profile = profiles.get(acc)
            if profile is None:
                profile = profiles[acc] = AccountProfile(account_id=acc)
            self.profiles.append(profile)

    @property
    def rows(self) -> pd.DataFrame:
        """The transactions in ``order`` (a sorted copy: the reference forms and tests)."""
        return self.transactions.iloc[self.order]

    def sorted(self, *columns: np.ndarray) -> tuple[np.ndarray, ...]:
        """Per-row arrays of the transactions as given, in ``order``."""
        return tuple(c[self.order] for c in columns)

    def aligned(self, values: np.ndarray, columns: tuple[str, ...]) -> pd.DataFrame:
        """``values`` (rows in ``order``) as a frame aligned with the batch's transactions."""
        result = np.empty_like(values)
        result[self.order] = values
        return pd.DataFrame(result, columns=list(columns), index=self.transactions.index)


def _fold_profiles(batch: _Batch) -> pd.DataFrame:
    f_states = np.stack([p.f for p in batch.profiles])
    i_states = np.stack([p.i for p in batch.profiles])
    x, sig = batch.sorted(*_matrix(encode(batch.transactions)))
    values = _run(x, sig, batch.codes, f_states, i_states)
    for k, profile in enumerate(batch.profiles):
        profile.f, profile.i = f_states[k], i_states[k]
    return batch.aligned(values, FEATURE_COLUMNS)


# --- sequence columns (the LSTM's view of each account's recent transactions) ---------------

# What a sequence model needs, carried IN the row so that every row stays self-contained (a
# row scored alone, a subset explained, a Batch Transform mini-batch: all see the same inputs):
# the transaction's own operation, purpose and hour, and the account's SEQUENCE_WINDOW previous
# transactions as tokens, most recent first (k = 1 is the one just before). Codes are 1-based:
# 0 means "no such earlier transaction", the same "no history" zero as every feature above.
SEQUENCE_WINDOW = 8
PURPOSES: tuple[str, ...] = tuple(Purpose)
N_PURPOSES = len(PURPOSES)
SEQUENCE_TARGET_COLUMNS: tuple[str, ...] = (
    "seq_op",       # operation x direction code + 1 (1 .. N_OPS) of this transaction
    "seq_purpose",  # index of k_symbol in schema.Purpose + 1 (1 .. N_PURPOSES)
    "seq_hour",     # hour of day 0-23 (bank time)
)  # fmt: skip
SEQUENCE_STEP_COLUMNS: tuple[str, ...] = (
    "seq_op",       # seq_op_k: code + 1 of the k-th previous transaction, 0 when none
    "seq_purpose",  # seq_purpose_k: purpose index + 1, 0 when none
    "seq_amount",   # seq_amount_k: log1p(amount) of the k-th previous transaction
    "seq_gap",      # seq_gap_k: log1p(hours) between the (k+1)-th and the k-th previous, 0 when none
)  # fmt: skip
SEQUENCE_COLUMNS: tuple[str, ...] = SEQUENCE_TARGET_COLUMNS + tuple(
    f"{c}_{k}" for k in range(1, SEQUENCE_WINDOW + 1) for c in SEQUENCE_STEP_COLUMNS
)
SEQUENCE_SOURCE = ("account_id", "ts", "operation", "direction", "k_symbol", "amount")


def op_name(code: int) -> str:
    """The words of a 1-based ``seq_op`` code, e.g. ``cash_credit`` or ``remittance_other_bank``
    followed by its direction; "no transaction" for 0."""
    code = int(code)
    if code <= 0:
        return "no transaction"
    return f"{OPERATIONS[(code - 1) // 2]} {'debit' if (code - 1) % 2 else 'credit'}"


def operation_codes(transactions: pd.DataFrame) -> np.ndarray:
    """Each transaction's own ``seq_op`` code (operation x direction + 1; an unknown operation
    counts as ``none``): row-local, so the stream computes it as the batch does."""
    is_debit = (transactions["direction"].astype(str) == Direction.DEBIT).to_numpy()
    op = _OPERATION_INDEX.get_indexer(transactions["operation"].astype(str))
    return (np.where(op < 0, OPERATIONS.index(Operation.NONE), op) * 2 + is_debit + 1).astype(np.float64)


def purpose_name(code: int) -> str:
    """The words of a 1-based ``seq_purpose`` code."""
    return "no purpose" if int(code) <= 0 else PURPOSES[int(code) - 1]


def sequence_columns(transactions: pd.DataFrame) -> pd.DataFrame:
    """The ``SEQUENCE_COLUMNS`` of canonical transactions, aligned with them (same index).

    Point-in-time like ``compute_features``: a row sees only earlier rows of its account
    (time order, ties in input order). Unknown operations and purposes count as ``none``.
    """
    missing = [c for c in SEQUENCE_SOURCE if c not in transactions.columns]
    if missing:
        raise ValueError(f"sequence columns need the transaction columns {missing}")
    if transactions.empty:
        return pd.DataFrame(columns=list(SEQUENCE_COLUMNS), index=transactions.index, dtype=float)
    order = _ordered(transactions)
    t = transactions.iloc[order]
    op, purpose, amount, ns, hour = _sequence_inputs(t)
    account = t["account_id"].astype(str).to_numpy()
    first = np.r_[True, account[1:] != account[:-1]]
    out = _sequence_block(op, purpose, amount, ns / 3.6e12, hour, first)
    result = np.empty_like(out)
    result[order] = out
    return pd.DataFrame(result, columns=list(SEQUENCE_COLUMNS), index=transactions.index)


_PURPOSE_INDEX = pd.Index([str(p) for p in PURPOSES], dtype=object)


def _sequence_inputs(t: pd.DataFrame) -> tuple[np.ndarray, ...]:
    """Per row: op code (1-based), purpose code (1-based), amount, ts in ns, hour of day."""
    ts = pd.to_datetime(t["ts"]).astype("datetime64[ns]")
    op = operation_codes(t)
    purpose = _PURPOSE_INDEX.get_indexer(t["k_symbol"].astype(str))
    purpose = np.where(purpose < 0, PURPOSES.index(Purpose.NONE), purpose) + 1
    return (op.astype(np.int64), purpose.astype(np.int64), t["amount"].to_numpy(dtype=np.float64),
            ts.to_numpy().astype("int64"), ts.dt.hour.to_numpy())  # fmt: skip


def _sequence_block(op: np.ndarray, purpose: np.ndarray, amount: np.ndarray, hours: np.ndarray,
                    hour: np.ndarray, first: np.ndarray) -> np.ndarray:  # fmt: skip
    """``SEQUENCE_COLUMNS`` of rows grouped by account in time order (``first``: the row is its
    account's first): the one definition, for the batch and the incremental form."""
    gap = np.log1p(np.maximum(np.diff(hours, prepend=np.nan), 0.0))  # gap before each row
    gap[first] = 0.0
    step = np.column_stack([op, purpose, np.log1p(amount), gap]).astype(np.float64)
    n = len(op)
    start = np.maximum.accumulate(np.where(first, np.arange(n), 0))  # first row of each account
    out = np.zeros((n, len(SEQUENCE_COLUMNS)), dtype=np.float64)
    out[:, 0], out[:, 1], out[:, 2] = op, purpose, hour
    rows = np.arange(n)
    width = len(SEQUENCE_STEP_COLUMNS)
    for k in range(1, SEQUENCE_WINDOW + 1):
        prev = rows - k
        ok = prev >= start
        block = np.zeros((n, width))
        block[ok] = step[prev[ok]]
        out[:, 3 + (k - 1) * width: 3 + k * width] = block
    return out


# The incremental form: an AccountProfile keeps ``q``, its last SEQUENCE_WINDOW transactions'
# (op, purpose) codes (``op * 16 + purpose``, 0 = none) then their amounts, most recent first;
# their timestamps are those of the profile's ring of recent timestamps (``F_RING``, one more for
# the oldest step's gap). Timestamps are held there in float seconds: gaps are exact for
# timestamps to the microsecond (a record's sub-microsecond part would change the last digits).
SEQ_STATE_SIZE = 2 * SEQUENCE_WINDOW


def new_sequence_state() -> np.ndarray:
    return np.zeros(SEQ_STATE_SIZE, dtype=np.float64)


def update_sequences(profiles: dict[str, AccountProfile], transactions: pd.DataFrame) -> pd.DataFrame:
    """The ``SEQUENCE_COLUMNS`` of a batch from stored profiles, folding the batch into their
    ``q`` (each account's rows in time order, after its stored history). Call it BEFORE
    ``update_profiles`` folds the same rows (it reads the ring of timestamps as stored);
    ``update_profiles_with_sequence`` does both. Equal to ``sequence_columns`` over the whole
    history (``tests/test_features.py``)."""
    if transactions.empty:
        return sequence_columns(transactions)
    return _fold_sequences(_Batch(profiles, transactions))


def _fold_sequences(batch: _Batch) -> pd.DataFrame:
    """``update_sequences`` of a sorted batch, all accounts at once: each account's stored steps
    (``_history``, gathered as arrays) are laid before its batch rows, ``_sequence_block`` runs
    once over the whole, and each account's last ``SEQUENCE_WINDOW`` rows become its new ``q``."""
    op, purpose, amount, ns, hour = batch.sorted(*_sequence_inputs(batch.transactions))
    n_acc, n_rows = len(batch.profiles), len(op)
    f = np.stack([p.f for p in batch.profiles])
    q = np.stack([p.q for p in batch.profiles])
    steps = np.count_nonzero(q[:, :SEQUENCE_WINDOW], axis=1)
    seen, pos = f[:, F_N], f[:, F_RING_POS]
    if not (np.all((seen >= 0) & (seen < 2.0**62)) and np.all((pos >= 0) & (pos < RING))):
        return _fold_sequences_per_account(batch, op, purpose, amount, ns, hour)  # a damaged state: as before
    m = np.where(steps > 0, np.minimum(np.minimum(steps + 1, seen.astype(np.int64)), RING), 0)
    if np.any(m < steps):
        return _fold_sequences_per_account(batch, op, purpose, amount, ns, hour)
    # layout: per account, its m history rows then its batch rows
    count = np.bincount(batch.codes, minlength=n_acc)
    held = np.cumsum(m)  # history rows up to and including each account
    batch_at = np.arange(n_rows) + held[batch.codes]
    start = np.cumsum(count) - count + held - m  # each account's first row in the layout
    total = n_rows + int(held[-1])
    owner = np.repeat(np.arange(n_acc), m)
    j = np.arange(int(held[-1])) - np.repeat(held - m, m)  # 0 = oldest history row
    history_at = start[owner] + j
    back = m[owner] - 1 - j  # 0 = the most recent stored step
    ring = (pos[owner].astype(np.int64) - (m[owner] - j)) % RING
    ts_s = f[owner, F_RING + ring]
    h_codes = np.where(back < steps[owner], q[owner, np.minimum(back, SEQUENCE_WINDOW - 1)], 0.0).astype(np.int64)
    h_amounts = np.where(back < steps[owner], q[owner, SEQUENCE_WINDOW + np.minimum(back, SEQUENCE_WINDOW - 1)], 0.0)
    cols = [np.zeros(total, dtype=np.int64), np.zeros(total, dtype=np.int64), np.zeros(total),
            np.zeros(total), np.zeros(total, dtype=hour.dtype)]  # fmt: skip
    for col, history, now in zip(cols, (h_codes // 16, h_codes % 16, h_amounts,
                                        (np.round(ts_s * 1e6).astype(np.int64) * 1000) / 3.6e12, 0),
                                 (op, purpose, amount, ns / 3.6e12, hour), strict=True):  # fmt: skip
        col[history_at] = history
        col[batch_at] = now
    first = np.zeros(total, dtype=bool)
    first[start] = True
    out = _sequence_block(*cols, first)[batch_at]
    # each account's new q: its last SEQUENCE_WINDOW rows, most recent first
    end = start + m + count
    k = np.arange(SEQUENCE_WINDOW)
    at = end[:, None] - 1 - k
    has = k < (m + count)[:, None]
    at = np.where(has, at, 0)
    codes = cols[0] * 16 + cols[1]
    new_q = np.zeros((n_acc, SEQ_STATE_SIZE))
    new_q[:, :SEQUENCE_WINDOW] = np.where(has, codes[at], 0)
    new_q[:, SEQUENCE_WINDOW:] = np.where(has, cols[2][at], 0.0)
    for profile, row in zip(batch.profiles, new_q, strict=True):
        profile.q = row
    return batch.aligned(out, SEQUENCE_COLUMNS)


def _fold_sequences_per_account(batch: _Batch, op: np.ndarray, purpose: np.ndarray, amount: np.ndarray,
                                ns: np.ndarray, hour: np.ndarray) -> pd.DataFrame:  # fmt: skip
    """``_fold_sequences`` one account at a time (the reference form; also what a damaged
    stored state goes through, failing as it always did)."""
    hours = ns / 3.6e12
    parts: list[tuple[np.ndarray, ...]] = []  # per account: its history rows then its batch rows
    keep: list[np.ndarray] = []
    bounds = np.flatnonzero(np.r_[True, batch.codes[1:] != batch.codes[:-1], True])
    for k, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        profile = batch.profiles[k]
        h_op, h_purpose, h_amount, h_hours = _history(profile)
        m = len(h_op)
        parts.append((np.r_[h_op, op[a:b]], np.r_[h_purpose, purpose[a:b]], np.r_[h_amount, amount[a:b]],
                      np.r_[h_hours, hours[a:b]], np.r_[np.zeros(m, dtype=hour.dtype), hour[a:b]],
                      np.r_[True, np.zeros(m + b - a - 1, dtype=bool)]))  # fmt: skip
        keep.append(np.r_[np.zeros(m, dtype=bool), np.ones(b - a, dtype=bool)])
        last = slice(max(0, m + b - a - SEQUENCE_WINDOW), m + b - a)
        codes, amounts = parts[-1][0][last] * 16 + parts[-1][1][last], parts[-1][2][last]
        q = new_sequence_state()
        q[:len(codes)], q[SEQUENCE_WINDOW:SEQUENCE_WINDOW + len(codes)] = codes[::-1], amounts[::-1]
        profile.q = q
    cols = [np.concatenate([p[j] for p in parts]) for j in range(6)]
    return batch.aligned(_sequence_block(*cols)[np.concatenate(keep)], SEQUENCE_COLUMNS)


def _history(profile: AccountProfile) -> tuple[np.ndarray, ...]:
    """The profile's last transactions, oldest first, as rows of ``_sequence_block``: its stored
    steps plus, when the account has one, the transaction before them (its time only: the
    oldest step's gap). A profile without ``q`` history (older than ``q``) has none."""
    q = profile.q
    steps = int(np.count_nonzero(q[:SEQUENCE_WINDOW]))
    if steps == 0:
        return (np.zeros(0, dtype=np.int64),) * 2 + (np.zeros(0),) * 2
    n = min(steps + 1, int(profile.f[F_N]), RING)
    pos = int(profile.f[F_RING_POS])
    ts_s = profile.f[F_RING + (pos - np.arange(n, 0, -1)) % RING]  # oldest first
    hours = (np.round(ts_s * 1e6).astype(np.int64) * 1000) / 3.6e12
    codes = np.r_[np.zeros(n - steps), q[:steps][::-1]].astype(np.int64)
    amounts = np.r_[np.zeros(n - steps), q[SEQUENCE_WINDOW:SEQUENCE_WINDOW + steps][::-1]]
    return codes // 16, codes % 16, amounts, hours


def update_profiles_with_sequence(profiles: dict[str, AccountProfile], transactions: pd.DataFrame) -> pd.DataFrame:
    """``update_profiles`` plus the ``SEQUENCE_COLUMNS`` (the stream's account features)."""
    if transactions.empty:
        return pd.concat([compute_features(transactions), sequence_columns(transactions)], axis=1)
    batch = _Batch(profiles, transactions)
    sequence = _fold_sequences(batch)  # first: it reads the ring of timestamps as stored
    return pd.concat([_fold_profiles(batch), sequence], axis=1)


# The curated feature row every candidate reads (what the Glue features job writes to curated/).
CURATED_COLUMNS: tuple[str, ...] = DETECTOR_COLUMNS + SEQUENCE_COLUMNS


def account_features_with_sequence(transactions: pd.DataFrame) -> pd.DataFrame:
    """``compute_features`` plus the ``SEQUENCE_COLUMNS``: what whole accounts alone determine
    (the Spark path runs it per group of accounts, the partner features per group of partners)."""
    return pd.concat([compute_features(transactions), sequence_columns(transactions)], axis=1)


def features_with_sequence(transactions: pd.DataFrame) -> pd.DataFrame:
    """The ``CURATED_COLUMNS`` of ``transactions`` (aligned with them): the account's and the
    partner's point-in-time features, plus the LSTM's sequence columns."""
    account = account_features_with_sequence(transactions)
    partner = compute_partner_features(transactions)
    return pd.concat([account[list(FEATURE_COLUMNS)], partner, account[list(SEQUENCE_COLUMNS)]], axis=1)
