"""Counterparty features: the transaction's partner against the partner's own past (point-in-time).

The third family of features (``DESIGN.md``, Detection): who pays or is paid by the partner,
how much moves with it, since when the bank knows it. They need no history of the account, so
a first-time account is still scored by them.

The partner is ``partner_bank + "/" + partner_account`` (``partner_key``); a row with neither
has no partner and gets 0 ("nothing unusual") in every column. As in ``finsentry.features``
there is one definition, ``_partner_step``, run by a batch form (``compute_partner_features``,
every partner's ordered history from empty states: pandas and Glue/Spark) and an incremental
form (``PartnerProfile`` / ``update_partner_profiles``, from stored states: the stream). Every
feature of a row uses only earlier rows of its partner, except the running daily volume, which
includes the row itself (it is known when the row arrives).

This module imports only schema-level libraries; ``finsentry.features`` imports it, never the
reverse.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numba
import numpy as np
import pandas as pd

PARTNER_FEATURE_COLUMNS: tuple[str, ...] = (
    "partner_senders_recent_log",  # log1p(distinct accounts with a transaction with the partner in the 7
                                   #   calendar days up to today, earlier rows only; linear-counting estimate
                                   #   from a 256-bit hashed bitmap per day, exact while small)
    "partner_senders_ratio",       # log((1 + that) / (1 + its mean at the partner's earlier rows)); 0 = usual
    "partner_volume_ratio",        # log1p(amount moved with the partner today incl. this row / its usual
                                   #   daily amount, mean over its earlier active days); 0 before a full day
    "partner_age_log",             # log1p(days since the bank first saw the partner); 0 when new
    "partner_new",                 # 1 if the bank has never seen the partner before this row
)  # fmt: skip
N_PARTNER_FEATURES = len(PARTNER_FEATURE_COLUMNS)

WINDOW_DAYS = 7  # distinct senders are counted over this many calendar days (one bitmap per day)
SENDER_BITS = 256  # bits of each day's bitmap of hashed account ids
WORDS = SENDER_BITS // 64
SENDERS_ALPHA_MIN = 1.0 / 50.0  # the usual sender count becomes an EWMA after 50 rows
VOLUME_ALPHA_MIN = 1.0 / 60.0  # the usual daily volume becomes an EWMA after 60 active days

# float state layout
P_N, P_FIRST_TS, P_DAY, P_DAY_AMOUNT, P_DAYS, P_DAY_MEAN, P_SENDERS_MEAN = range(7)
P_SIZE = 8
# int state layout: the day each bitmap holds, then the bitmaps
Q_DAYS = 0
Q_BITS = Q_DAYS + WINDOW_DAYS
Q_SIZE = Q_BITS + WINDOW_DAYS * WORDS

PARTNER_INPUT_COLUMNS = ("ts_s", "day", "amount", "sender_bit")


def stable_hash(values: pd.Series) -> np.ndarray:
    """A process-independent 64-bit hash of strings (same value in Glue, Lambda and tests)."""
    return pd.util.hash_array(values.to_numpy(dtype=object), categorize=False).view(np.int64)


def key_time_order(keys: np.ndarray, ts: np.ndarray) -> np.ndarray | None:
    """Row positions sorted by key (text, in code point order) then time, ties in input order:
    what a stable pandas ``sort_values`` by key, time and position gives, without building a
    frame. None when that is not sure (a key that is not text, a time that is missing or not a
    datetime64): the caller sorts with pandas."""
    if ts.dtype.kind != "M" or len(keys) != len(ts) or np.isnat(ts).any() or not all(type(k) is str for k in keys):
        return None
    _, rank = np.unique(np.asarray(keys, dtype=object), return_inverse=True)
    return np.lexsort((np.arange(len(ts)), ts.view(np.int64), rank.reshape(-1)))


def _text(values: pd.Series) -> list[str]:
    """Each value as text; "" for a missing one."""
    missing = values.isna().to_numpy().tolist()
    return ["" if na else str(v) for v, na in zip(values.astype(object).tolist(), missing, strict=True)]


def partner_key(transactions: pd.DataFrame) -> pd.Series:
    """``partner_bank/partner_account`` of each row; "" when the row has no partner (both empty)."""
    bank, account = _text(transactions["partner_bank"]), _text(transactions["partner_account"])
    return pd.Series([b + "/" + a if b or a else "" for b, a in zip(bank, account, strict=True)],
                     index=transactions.index, dtype="str")  # fmt: skip


def new_partner_state() -> tuple[np.ndarray, np.ndarray]:
    """The state of a partner the bank has never seen."""
    f = np.zeros(P_SIZE, dtype=np.float64)
    f[P_DAY] = -1.0
    i = np.zeros(Q_SIZE, dtype=np.int64)
    i[Q_DAYS:Q_DAYS + WINDOW_DAYS] = -(2**62)  # fmt: skip
    return f, i


def encode_partner(transactions: pd.DataFrame) -> np.ndarray:
    """The kernel's numeric inputs (PARTNER_INPUT_COLUMNS) of canonical transactions."""
    ts_ns = pd.to_datetime(transactions["ts"]).astype("datetime64[ns]").to_numpy().astype("int64")
    sender = stable_hash(transactions["account_id"].astype(str)) % SENDER_BITS
    cols = [ts_ns / 1e9, (ts_ns // 86_400_000_000_000).astype(np.float64),
            transactions["amount"].to_numpy(dtype=np.float64), sender.astype(np.float64)]  # fmt: skip
    return np.column_stack(cols) if len(transactions) else np.empty((0, len(PARTNER_INPUT_COLUMNS)))


# --- the one definition -------------------------------------------------------------------


@numba.njit(cache=True)
def _popcount(w: np.int64) -> int:
    n = 0
    while w != 0:
        w &= w - np.int64(1)
        n += 1
    return n


@numba.njit(cache=True)
def _partner_step(f: np.ndarray, s: np.ndarray, x: np.ndarray, out: np.ndarray) -> None:
    """Write the features of row ``x`` (PARTNER_INPUT_COLUMNS) into ``out``, then fold it in."""
    ts, day, amount, bit = x[0], np.int64(x[1]), x[2], int(x[3])
    n = f[P_N]

    # distinct accounts in the window [day - WINDOW_DAYS + 1, day] (earlier rows only)
    zeros = 0
    for w in range(WORDS):
        word = np.int64(0)
        for b in range(WINDOW_DAYS):
            held = s[Q_DAYS + b]
            if held <= day and held > day - WINDOW_DAYS:
                word |= s[Q_BITS + b * WORDS + w]
        zeros += 64 - _popcount(word)
    m = float(SENDER_BITS)
    senders = 0.0 if zeros == SENDER_BITS else -m * math.log(max(zeros, 0.5) / m)
    out[0] = math.log1p(senders)
    out[1] = math.log((1.0 + senders) / (1.0 + f[P_SENDERS_MEAN])) if n >= 1 else 0.0

    # running daily volume (including this row) against the usual daily volume
    if f[P_DAY] != day:
        if f[P_DAY] >= 0 and f[P_DAY_AMOUNT] > 0:
            f[P_DAYS] += 1.0
            alpha = max(1.0 / f[P_DAYS], VOLUME_ALPHA_MIN)
            f[P_DAY_MEAN] += alpha * (f[P_DAY_AMOUNT] - f[P_DAY_MEAN])
        f[P_DAY] = day
        f[P_DAY_AMOUNT] = 0.0
    f[P_DAY_AMOUNT] += amount
    out[2] = math.log1p(f[P_DAY_AMOUNT] / max(f[P_DAY_MEAN], 1.0)) if f[P_DAYS] >= 1 else 0.0

    # since when the bank knows the partner
    out[3] = math.log1p(max(ts - f[P_FIRST_TS], 0.0) / 86400.0) if n >= 1 else 0.0
    out[4] = 1.0 if n == 0 else 0.0

    # ---- fold the row into the state ----
    slot = int(day % WINDOW_DAYS)
    if s[Q_DAYS + slot] < day:  # a new day takes the slot of the day a window ago
        s[Q_DAYS + slot] = day
        for w in range(WORDS):
            s[Q_BITS + slot * WORDS + w] = 0
    if s[Q_DAYS + slot] == day:  # (a row older than the slot's day is not counted)
        w = Q_BITS + slot * WORDS + bit // 64
        s[w] |= np.int64(1) << np.int64(bit % 64)
    alpha = max(1.0 / (n + 1.0), SENDERS_ALPHA_MIN)
    f[P_SENDERS_MEAN] += alpha * (senders - f[P_SENDERS_MEAN])
    if n == 0:
        f[P_FIRST_TS] = ts
    f[P_N] = n + 1.0


@numba.njit(cache=True)
def _run_partners(x: np.ndarray, slot: np.ndarray, f_states: np.ndarray, i_states: np.ndarray) -> np.ndarray:
    """Run ``_partner_step`` over rows in order; row r uses the state ``slot[r]`` (-1: no partner, zeros)."""
    out = np.zeros((x.shape[0], N_PARTNER_FEATURES), dtype=np.float64)
    for r in range(x.shape[0]):
        k = slot[r]
        if k >= 0:
            _partner_step(f_states[k], i_states[k], x[r], out[r])
    return out


def _ordered(transactions: pd.DataFrame, keys: pd.Series) -> np.ndarray:
    """Row positions sorted by partner then time; ties keep the input order."""
    k, t = keys.to_numpy(), pd.to_datetime(transactions["ts"]).to_numpy()
    fast = key_time_order(k, t)
    if fast is not None:
        return fast
    frame = pd.DataFrame({"k": k, "t": t, "p": np.arange(len(transactions))})
    return frame.sort_values(["k", "t", "p"], kind="stable")["p"].to_numpy()


def _run_ordered(transactions: pd.DataFrame, states: Mapping[str, tuple[np.ndarray, np.ndarray]] | None,
                 keys: pd.Series) -> tuple[pd.DataFrame, list[str], np.ndarray, np.ndarray]:  # fmt: skip
    """Features aligned with ``transactions`` (of partner keys ``keys``), plus the partners met
    and their final states."""
    order = _ordered(transactions, keys)
    ordered_keys = keys.to_numpy(dtype=object)[order]
    ordered_keys[ordered_keys == ""] = None  # no partner: code -1
    codes, uniques = pd.factorize(ordered_keys, use_na_sentinel=True)
    partners = [str(u) for u in uniques]
    f0, i0 = new_partner_state()
    if states is None:
        f_states, i_states = np.tile(f0, (len(partners), 1)), np.tile(i0, (len(partners), 1))
    else:
        f_states = np.stack([states[p][0] for p in partners]) if partners else np.empty((0, P_SIZE))
        i_states = (np.stack([states[p][1] for p in partners]) if partners
                    else np.empty((0, Q_SIZE), dtype=np.int64))  # fmt: skip
    x = encode_partner(transactions)[order]  # row-local inputs, put in order (no sorted copy of the frame)
    values = _run_partners(x, codes.astype(np.int64), f_states, i_states)
    result = np.empty_like(values)
    result[order] = values
    frame = pd.DataFrame(result, columns=list(PARTNER_FEATURE_COLUMNS), index=transactions.index)
    return frame, partners, f_states, i_states


# --- batch form ---------------------------------------------------------------------------


def compute_partner_features(transactions: pd.DataFrame) -> pd.DataFrame:
    """PARTNER_FEATURE_COLUMNS of every row from its partner's earlier rows (batch form).

    Partners are independent; within a partner, rows are taken in time order, ties in input
    order. The result is aligned row for row with ``transactions`` (same index).
    """
    if transactions.empty:
        return pd.DataFrame(columns=list(PARTNER_FEATURE_COLUMNS), index=transactions.index, dtype=float)
    return _run_ordered(transactions, None, partner_key(transactions))[0]


# --- incremental form ---------------------------------------------------------------------


@dataclass
class PartnerProfile:
    """The streaming state of one partner (about 0.5 kB); ``recent_ids`` guards redeliveries."""

    partner: str
    f: np.ndarray = field(default_factory=lambda: new_partner_state()[0])
    i: np.ndarray = field(default_factory=lambda: new_partner_state()[1])
    recent_ids: list[str] = field(default_factory=list)

    @property
    def seen(self) -> int:
        return int(self.f[P_N])

    def to_dict(self) -> dict[str, object]:
        return {
            "partner": self.partner,
            "f": base64.b64encode(self.f.astype("<f8").tobytes()).decode(),
            "i": base64.b64encode(self.i.astype("<i8").tobytes()).decode(),
            "recent_ids": list(self.recent_ids),
        }

    @classmethod
    def from_arrays(cls, partner: str, f_bytes: bytes, i_bytes: bytes, recent_ids: list[str]) -> PartnerProfile:
        if len(f_bytes) != 8 * P_SIZE or len(i_bytes) != 8 * Q_SIZE:
            raise ValueError(f"profile of partner {partner} has a foreign layout")
        return cls(partner=partner, f=np.frombuffer(f_bytes, dtype="<f8").astype(np.float64),
                   i=np.frombuffer(i_bytes, dtype="<i8").astype(np.int64),
                   recent_ids=[str(t) for t in recent_ids])  # fmt: skip

    @classmethod
    def from_dict(cls, item: Mapping[str, object]) -> PartnerProfile:
        return cls.from_arrays(str(item["partner"]), base64.b64decode(item["f"]), base64.b64decode(item["i"]),
                               list(item.get("recent_ids", [])))  # fmt: skip


def update_partner_profiles(profiles: dict[str, PartnerProfile], transactions: pd.DataFrame,
                            keys: pd.Series | None = None) -> pd.DataFrame:  # fmt: skip
    """PARTNER_FEATURE_COLUMNS of a batch from stored profiles, folding the batch in.

    Missing partners get a new profile in ``profiles``; rows without a partner get zeros and
    touch nothing. Within the batch, a partner's rows are taken in time order, ties in input
    order. Result aligned with ``transactions``. ``keys``: their ``partner_key`` when the caller
    has it.
    """
    if transactions.empty:
        return compute_partner_features(transactions)
    keys = partner_key(transactions) if keys is None else keys
    present = [k for k in keys.unique() if k]
    for key in present:
        if key not in profiles:
            profiles[key] = PartnerProfile(partner=key)
    states = {k: (profiles[k].f, profiles[k].i) for k in present}
    frame, partners, f_states, i_states = _run_ordered(transactions, states, keys)
    for k, key in enumerate(partners):
        profiles[key].f, profiles[key].i = f_states[k], i_states[k]
    return frame
