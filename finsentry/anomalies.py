"""The anomaly catalog: the one source of truth for anomaly types.

Each type has an injector (to label held-out real or synthetic data), a detection path (a
deterministic rule where one exists, else the models through the features that reveal it),
and a reason text for an alert. ``CATALOG`` holds them; ``RULE_TYPES`` are the types with a rule.

Injection (``inject_anomalies``) works on a canonical frame (``finsentry.schema``) and touches
only the held-out period (``ts >= start``). Injected postings look like the account's own:
its withdrawal operation (card if it has used one, else cash), its usual hours on the channel,
the amount grid of the operation (card withdrawals in hundreds), the data's most common bank
``type`` for the operation, a real partner-bank code it never used. Injectors keep balances
consistent — a changed, inserted or deleted posting shifts the account's later balances as a
real posting would (``rebalance``) — so only ``balance_mismatch`` breaks the balance identity
and detectors cannot find injections through a balance break. Date-only data (every ``ts`` at
midnight, as in the real Czech files) gets date-only insertions, and no ``unusual_hour``: a time
of day in such data would be an artefact, not an anomaly.

Rules: ``apply_rules`` turns features into rule hits (balance mismatch, duplicate posting), per
batch; ``missing_recurring_payments`` checks permanent orders month by month on a frame.

Units: amounts and balances in the account currency (CZK), times naive local bank time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import pandas as pd

from finsentry.schema import CHANNEL_OF_OPERATION, Direction, Operation, Purpose, TxnType


class AnomalyType(StrEnum):
    AMOUNT_SPIKE = "amount_spike"
    DECIMAL_SHIFT = "decimal_shift"
    SPEND_SURGE = "spend_surge"
    BURST = "burst"
    UNUSUAL_HOUR = "unusual_hour"
    UNUSUAL_PARTNER = "unusual_partner"
    BALANCE_MISMATCH = "balance_mismatch"
    DUPLICATE_POSTING = "duplicate_posting"
    MISSING_RECURRING = "missing_recurring_payment"
    UNUSUAL_SEQUENCE = "unusual_sequence"


OTHER = "other"  # an alert whose strongest reason points to no catalog type
MIN_EVENTS = 3  # events per type at least, when the held-out data has room for them
BALANCE_TOLERANCE = 0.005  # CZK, half a heller: rounding never fires the balance rule
ORDER_MATCH = 0.01  # a payment matches a permanent order within 1 % of the order's amount
BURST_SECONDS = 1800  # a burst's postings fall within 30 minutes
SEQUENCE_SECONDS = (300, 6600)  # the pass-through remittance follows the cash credit in 5-110 min
RARE_HOURS = (1, 2, 3, 4)  # unusual-hour postings happen at 01:00-04:59
LABEL_FRAME_COLUMNS = ("trans_id", "account_id", "anomaly_type", "ts", "detail")
MISSING_COLUMNS = ("account_id", "month", "partner_account", "amount")
MISSING_RULE_COLUMNS = (*MISSING_COLUMNS, "k_symbol")
_WORK_COLUMNS = ["_seq", "_delta", "_typo", "_drop"]
_DAY = pd.Timedelta(days=1)
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

# --- balances -----------------------------------------------------------------------------------


def signed_amount(frame: pd.DataFrame) -> np.ndarray:
    """Amounts with the sign of their direction (debits negative), account currency."""
    amount = frame["amount"].to_numpy(dtype=np.float64)
    return np.where(frame["direction"].astype(str).to_numpy() == str(Direction.DEBIT), -amount, amount)


def rebalance(frame: pd.DataFrame, delta: np.ndarray) -> pd.DataFrame:
    """Shift every account's later balances by the signed change of each earlier posting.

    ``frame`` is in posting order within each account. ``delta`` (CZK, one per row) is the
    change of a row's signed amount: new minus old for a changed amount, the signed amount of a
    new posting, minus it for a posting about to be deleted. New postings carry NaN balances and
    start from the previous row's balance_after. Returns a copy with both balances rewritten.
    """
    out = frame.copy()
    by_account = out.groupby("account_id", sort=False)
    start = by_account["balance_after"].ffill().fillna(by_account["balance_before"].bfill()).fillna(0.0)
    new = out["balance_before"].isna().to_numpy()
    before = np.where(new, start, out["balance_before"].to_numpy(dtype=np.float64))
    after = np.where(new, start, out["balance_after"].to_numpy(dtype=np.float64))
    shift = pd.Series(delta, index=out.index).groupby(out["account_id"], sort=False).cumsum().to_numpy()
    # an account whose source has no balances (a card table) keeps none: NaN, never invented
    known = (out["balance_after"].notna() | out["balance_before"].notna()).groupby(
        out["account_id"], sort=False).transform("any").to_numpy(dtype=bool)  # fmt: skip
    out["balance_before"] = np.where(known, np.round(before + shift - delta, 2), np.nan)
    out["balance_after"] = np.where(known, np.round(after + shift, 2), np.nan)
    return out


# --- what the injectors know about the accounts -------------------------------------------------


@dataclass(frozen=True)
class _Habits:
    """Per-account habits before ``start`` (and a few data-wide facts), computed once, vectorised."""

    date_only: bool  # every ts at midnight: the data has dates, not times
    median_debit: dict[str, float]  # account -> median debit amount before start
    median_op: dict[tuple[str, str], float]  # (account, operation) -> median debit amount
    fallback_debit: float  # median debit of the whole data
    hours: dict[tuple[str, str], np.ndarray]  # (account, channel) -> postings per hour of day
    channel_hours: dict[str, np.ndarray]  # channel -> postings per hour of day, all accounts
    card_accounts: frozenset[str]  # accounts that have made card withdrawals
    banks: tuple[str, ...]  # partner-bank codes in the data
    banks_of: dict[str, frozenset[str]]  # account -> partner banks it ever used
    type_of: dict[tuple[str, str], str]  # (operation, direction) -> most common bank type
    step_of: dict[str, float]  # operation -> amount grid (100 for card withdrawals), CZK


def _hour_table(frame: pd.DataFrame, keys: list[str]) -> dict:
    """Postings per hour of day (24 counts) for each value of ``keys`` (a tuple when several)."""
    if frame.empty:
        return {}
    factors = [pd.factorize(frame[k]) for k in keys]
    sizes = [len(u) for _, u in factors]
    code = np.ravel_multi_index([c for c, _ in factors], sizes)
    present, inverse = np.unique(code, return_inverse=True)
    hour = frame["ts"].dt.hour.to_numpy()
    counts = np.bincount(inverse * 24 + hour, minlength=len(present) * 24).reshape(-1, 24).astype(np.float64)
    parts = [u[i] for (_, u), i in zip(factors, np.unravel_index(present, sizes), strict=True)]
    names = list(zip(*parts, strict=True)) if len(keys) > 1 else list(parts[0])
    return dict(zip(names, counts, strict=True))


def _amount_step(amounts: pd.Series) -> float:
    """The coarsest grid (CZK) that at least 60 % of the amounts sit on."""
    for step in (100.0, 10.0, 1.0, 0.1):
        if len(amounts) and (np.abs(amounts / step - np.round(amounts / step)) < 1e-6).mean() >= 0.6:
            return step
    return 0.01


_HABIT_COLUMNS = ["account_id", "ts", "amount", "direction", "type", "operation", "k_symbol", "partner_bank", "channel"]


def _habits(frame: pd.DataFrame, start: pd.Timestamp) -> _Habits:
    """What the injectors need to imitate each account: amounts and hours from before ``start``
    (no peeking at the held-out period), partner banks and vocabularies from the whole frame."""
    f = frame[_HABIT_COLUMNS].astype({c: str for c in _HABIT_COLUMNS if c not in ("ts", "amount")})
    debit = (f["direction"] == str(Direction.DEBIT)).to_numpy()
    past = f[(f["ts"] < start).to_numpy()]
    debits = f[debit & (f["ts"] < start).to_numpy()]
    every_debit = f.loc[debit, "amount"]
    fallback = float(debits["amount"].median() if len(debits) else every_debit.median() if len(every_debit) else 0)
    types = f.value_counts(["operation", "direction", "type"]).reset_index()
    types = types.drop_duplicates(["operation", "direction"])  # the most common type of each pair
    plain = f[((f["k_symbol"] == str(Purpose.NONE)) & (f["amount"] > 0)).to_numpy()]
    partnered = f[(f["partner_bank"] != "").to_numpy()]
    cards = f.loc[(f["operation"] == str(Operation.CARD_WITHDRAWAL)).to_numpy(), "account_id"]
    return _Habits(
        date_only=bool((frame["ts"] == frame["ts"].dt.normalize()).all()),
        median_debit=debits.groupby("account_id")["amount"].median().to_dict(),
        median_op=debits.groupby(["account_id", "operation"])["amount"].median().to_dict(),
        fallback_debit=fallback if fallback > 0 else 500.0,
        hours=_hour_table(past, ["account_id", "channel"]),
        channel_hours=_hour_table(past, ["channel"]),
        card_accounts=frozenset(cards.unique()),
        banks=tuple(sorted(partnered["partner_bank"].unique())),
        banks_of={a: frozenset(b) for a, b in partnered.groupby("account_id")["partner_bank"].unique().items()},
        type_of={(o, d): t for o, d, t in types[["operation", "direction", "type"]].itertuples(index=False)},
        step_of={op: _amount_step(g["amount"]) for op, g in plain.groupby("operation")},
    )


# --- the injection plan -------------------------------------------------------------------------


@dataclass
class _Plan:
    """The working frame and the changes the injectors collect; applied once by ``_apply``."""

    frame: pd.DataFrame  # sorted copy with _seq (posting order), _delta, _typo, _drop
    habits: _Habits
    orders: pd.DataFrame
    rng: np.random.Generator
    next_id: int
    day_key: np.ndarray  # account-day code of each row: one event per account and day
    partners: set[str]  # partner accounts in use (new partners avoid them)
    inserts: list[dict] = field(default_factory=list)
    labels: list[dict] = field(default_factory=list)
    missing: list[dict] = field(default_factory=list)
    used_days: set[int] = field(default_factory=set)

    def pick(self, candidates: np.ndarray, count: int) -> list[int]:
        """Up to ``count`` random rows of ``candidates``, at most one per account-day, on days
        no earlier event used."""
        if count <= 0 or len(candidates) == 0:
            return []
        keys = self.day_key[candidates]
        free = np.flatnonzero(self.free(candidates))
        shuffled = self.rng.permutation(free)
        first = ~pd.Series(keys[shuffled]).duplicated().to_numpy()
        chosen = candidates[shuffled[first][:count]]
        self.used_days.update(self.day_key[chosen].tolist())
        return [int(c) for c in chosen]

    def free(self, rows: np.ndarray) -> np.ndarray:
        """Which ``rows`` lie on an account-day no event has used yet."""
        return ~np.isin(self.day_key[rows], np.fromiter(self.used_days, dtype=np.int64))

    def insert(self, anchor: int, kind: AnomalyType, ts: pd.Timestamp, amount: float, operation: str, *,
               direction: str = Direction.DEBIT, partner: tuple[str, str] = ("", ""),
               k_symbol: str = Purpose.NONE, order: float = 0.5, detail: str = "") -> None:  # fmt: skip
        """A new labelled posting on the anchor's account, sorted right after the anchor on ties."""
        row = self.frame.loc[anchor].to_dict()
        amount = round(float(amount), 2)
        row.update({
            "trans_id": self._new_id(), "ts": pd.Timestamp(ts), "amount": amount, "direction": str(direction),
            "type": self.habits.type_of.get((str(operation), str(direction)), _default_type(direction)),
            "operation": str(operation), "k_symbol": str(k_symbol), "partner_bank": partner[0],
            "partner_account": partner[1], "channel": str(CHANNEL_OF_OPERATION[Operation(operation)]),
            "balance_before": np.nan, "balance_after": np.nan, "_seq": row["_seq"] + order,
            "_delta": -amount if direction == Direction.DEBIT else amount, "_typo": 0.0, "_drop": False,
            "is_anomaly": True, "anomaly_type": str(kind),
        })  # fmt: skip
        self.inserts.append(row)
        self.label(kind, row["trans_id"], row["account_id"], row["ts"], detail or f"inserted {amount:,.2f}")

    def label(self, kind: AnomalyType, trans_id: str, account: str, ts: pd.Timestamp, detail: str) -> None:
        self.labels.append({"trans_id": str(trans_id), "account_id": str(account), "anomaly_type": str(kind),
                            "ts": pd.Timestamp(ts), "detail": detail})  # fmt: skip

    def mark(self, idx: int, kind: AnomalyType, detail: str) -> None:
        """Label an existing row."""
        self.frame.at[idx, "is_anomaly"] = True
        self.frame.at[idx, "anomaly_type"] = str(kind)
        r = self.frame.loc[idx]
        self.label(kind, r["trans_id"], r["account_id"], r["ts"], detail)

    def _new_id(self) -> str:
        self.next_id += 1
        return str(self.next_id)


def _default_type(direction: str) -> str:
    return str(TxnType.CREDIT if direction == Direction.CREDIT else TxnType.DEBIT)


def _column_is(plan: _Plan, column: str, values: Iterable[str]) -> np.ndarray:
    return plan.frame[column].astype(str).isin([str(v) for v in values]).to_numpy()


def _median_debit(plan: _Plan, account: str) -> float:
    return float(plan.habits.median_debit.get(account, plan.habits.fallback_debit))


def _median_of(plan: _Plan, account: str, operation: str) -> float:
    """The account's median amount of ``operation`` before start, else its median debit (CZK)."""
    return float(plan.habits.median_op.get((account, str(operation)), _median_debit(plan, account)))


def _usual_debit(plan: _Plan, account: str, operation: str) -> float:
    """The base of the large-amount types: the larger of the account's median debit and its median
    for ``operation`` (CZK), so that a spike is a spike for the operation too."""
    return max(_median_debit(plan, account), _median_of(plan, account, operation))


def _withdrawal_op(plan: _Plan, account: str) -> str:
    """Card withdrawal for accounts that use a card, else cash withdrawal at the branch."""
    card = account in plan.habits.card_accounts
    return str(Operation.CARD_WITHDRAWAL if card else Operation.CASH_WITHDRAWAL)


def _on_grid(plan: _Plan, amount: float, operation: str) -> float:
    """``amount`` rounded to the operation's grid (never to zero), CZK."""
    step = plan.habits.step_of.get(str(operation), 0.01)
    return max(step, round(amount / step) * step)


def _usual_times(plan: _Plan, row: pd.Series, operation: str, k: int) -> list[pd.Timestamp]:
    """``k`` sorted times on the day after ``row``, at hours the account uses on the operation's
    channel (its own date in date-only data)."""
    if plan.habits.date_only:
        return [pd.Timestamp(row["ts"])] * k
    channel = str(CHANNEL_OF_OPERATION[Operation(operation)])
    counts = plan.habits.hours.get((row["account_id"], channel))
    if counts is None or counts.sum() == 0:
        counts = plan.habits.channel_hours.get(channel, np.ones(24))
    counts = counts if counts.sum() > 0 else np.ones(24)
    hours = plan.rng.choice(24, size=k, p=counts / counts.sum())
    seconds = hours * 3600 + plan.rng.integers(0, 3600, size=k)
    day = pd.Timestamp(row["ts"]).normalize() + _DAY
    return [day + pd.Timedelta(seconds=int(s)) for s in np.sort(seconds)]


def _new_partner(plan: _Plan, account: str) -> tuple[str, str]:
    """A partner bank the account never used (a code from the data when one is left, else a new
    two-letter code) and an 8-digit account number nobody in the data uses."""
    pool = [b for b in plan.habits.banks if b not in plan.habits.banks_of.get(account, frozenset())]
    pool = pool or [a + b for a in _LETTERS for b in _LETTERS if a + b not in plan.habits.banks]
    bank = pool[int(plan.rng.integers(0, len(pool)))]
    number = str(int(plan.rng.integers(10_000_000, 99_999_999)))
    while number in plan.partners:
        number = str(int(plan.rng.integers(10_000_000, 99_999_999)))
    plan.partners.add(number)
    return bank, number


def _typo(balance: float, rng: np.random.Generator) -> float:
    """``balance`` as keyed with a plausible error in its CZK digits: two adjacent digits swapped,
    or one digit off by 1-9. Always a different value."""
    sign = -1.0 if balance < 0 else 1.0
    digits = list(str(int(round(abs(balance) * 100))).zfill(3))
    whole = len(digits) - 2  # the digits before the hellers
    pairs = [i for i in range(whole - 1) if digits[i] != digits[i + 1]]
    if pairs and rng.random() < 0.5:
        i = pairs[int(rng.integers(0, len(pairs)))]
        digits[i], digits[i + 1] = digits[i + 1], digits[i]
    else:
        i = int(rng.integers(0, whole))
        digits[i] = str((int(digits[i]) + int(rng.integers(1, 10))) % 10)
    return sign * int("".join(digits)) / 100.0


# --- the injectors: (plan, held-out row labels, events) -> None ---------------------------------


def inject_amount_spike(plan: _Plan, candidates: np.ndarray, events: int) -> None:
    """A withdrawal of 8-30x the account's usual debit (``_usual_debit``), at an hour it uses."""
    for a in plan.pick(candidates, events):
        row = plan.frame.loc[a]
        op = _withdrawal_op(plan, row["account_id"])
        factor = plan.rng.uniform(8, 30)
        amount = _on_grid(plan, _usual_debit(plan, row["account_id"], op) * factor, op)
        plan.insert(a, AnomalyType.AMOUNT_SPIKE, _usual_times(plan, row, op, 1)[0], amount, op,
                    detail=f"withdrawal of {amount:,.2f}, {factor:.0f}x the usual debit")  # fmt: skip


def inject_decimal_shift(plan: _Plan, candidates: np.ndarray, events: int) -> None:
    """An existing remittance or card withdrawal whose amount is multiplied by 10 or 100."""
    ops = (Operation.REMITTANCE, Operation.CARD_WITHDRAWAL)
    ok = _column_is(plan, "operation", ops) & _column_is(plan, "direction", [Direction.DEBIT])
    ok &= plan.frame["amount"].to_numpy() > 0
    for a in plan.pick(candidates[ok[candidates]], events):
        factor = float(plan.rng.choice([10.0, 100.0]))
        old = float(plan.frame.at[a, "amount"])
        new = round(old * factor, 2)
        plan.frame.at[a, "amount"] = new
        plan.frame.at[a, "_delta"] = round(old - new, 2)  # a debit: the signed amount falls
        plan.mark(a, AnomalyType.DECIMAL_SHIFT, f"amount {old:,.2f} keyed x{factor:.0f}")


def inject_spend_surge(plan: _Plan, candidates: np.ndarray, events: int) -> None:
    """3-6 withdrawals of 2-4x the usual debit (``_usual_debit``) on one day, at the account's usual hours."""
    for a in plan.pick(candidates, events):
        row = plan.frame.loc[a]
        op = _withdrawal_op(plan, row["account_id"])
        k = int(plan.rng.integers(3, 7))
        for j, ts in enumerate(_usual_times(plan, row, op, k)):
            amount = _on_grid(plan, _usual_debit(plan, row["account_id"], op) * plan.rng.uniform(2, 4), op)
            plan.insert(a, AnomalyType.SPEND_SURGE, ts, amount, op, order=0.5 + j / 100,
                        detail=f"surge withdrawal {j + 1} of {k}: {amount:,.2f}")  # fmt: skip


def inject_burst(plan: _Plan, candidates: np.ndarray, events: int) -> None:
    """5-10 small withdrawals (20-60 % of the usual amount) within 30 minutes."""
    for a in plan.pick(candidates, events):
        row = plan.frame.loc[a]
        op = _withdrawal_op(plan, row["account_id"])
        k = int(plan.rng.integers(5, 11))
        first = _usual_times(plan, row, op, 1)[0]
        offsets = np.zeros(k) if plan.habits.date_only else np.sort(plan.rng.integers(0, BURST_SECONDS, size=k))
        usual = _median_of(plan, row["account_id"], op)
        for j, s in enumerate(offsets):
            amount = _on_grid(plan, usual * plan.rng.uniform(0.2, 0.6), op)
            plan.insert(a, AnomalyType.BURST, first + pd.Timedelta(seconds=int(s)), amount, op,
                        order=0.5 + j / 100, detail=f"burst withdrawal {j + 1} of {k}: {amount:,.2f}")  # fmt: skip


def _rare_hour(plan: _Plan, account: str) -> int:
    """The hour in RARE_HOURS the account has used least for card withdrawals (ties at random)."""
    counts = plan.habits.hours.get((account, str(CHANNEL_OF_OPERATION[Operation.CARD_WITHDRAWAL])), np.zeros(24))
    rare = np.array(RARE_HOURS)
    least = rare[counts[rare] == counts[rare].min()]
    return int(least[int(plan.rng.integers(0, len(least)))])


def inject_unusual_hour(plan: _Plan, candidates: np.ndarray, events: int) -> None:
    """A card withdrawal of a normal amount at 01:00-04:59, the hour the account uses least."""
    card = plan.frame.loc[candidates, "account_id"].isin(list(plan.habits.card_accounts)).to_numpy()
    chosen = plan.pick(candidates[card], events)
    chosen += plan.pick(candidates[~card], events - len(chosen))
    op = str(Operation.CARD_WITHDRAWAL)
    for a in chosen:
        row = plan.frame.loc[a]
        hour = _rare_hour(plan, row["account_id"])
        seconds = hour * 3600 + int(plan.rng.integers(0, 3600))
        ts = pd.Timestamp(row["ts"]).normalize() + _DAY + pd.Timedelta(seconds=seconds)
        amount = _on_grid(plan, _median_of(plan, row["account_id"], op) * plan.rng.uniform(0.8, 1.25), op)
        plan.insert(a, AnomalyType.UNUSUAL_HOUR, ts, amount, op, detail=f"card withdrawal at {ts:%H:%M}")


def inject_unusual_partner(plan: _Plan, candidates: np.ndarray, events: int) -> None:
    """A remittance of 3-8x the usual debit (``_usual_debit``) to a partner bank and account the
    account never used."""
    op = str(Operation.REMITTANCE)
    for a in plan.pick(candidates, events):
        row = plan.frame.loc[a]
        partner = _new_partner(plan, row["account_id"])
        amount = _on_grid(plan, _usual_debit(plan, row["account_id"], op) * plan.rng.uniform(3, 8), op)
        plan.insert(a, AnomalyType.UNUSUAL_PARTNER, _usual_times(plan, row, op, 1)[0], amount, op, partner=partner,
                    detail=f"remittance of {amount:,.2f} to new partner {partner[0]}/{partner[1]}")  # fmt: skip


def inject_balance_mismatch(plan: _Plan, candidates: np.ndarray, events: int) -> None:
    """A keying error in one row's balance_after; its balance_before and later rows unchanged.
    Rows without balances (a card table) cannot carry one."""
    candidates = candidates[np.isfinite(plan.frame["balance_after"].to_numpy(dtype=np.float64)[candidates])]
    for a in plan.pick(candidates, events):
        old = float(plan.frame.at[a, "balance_after"])
        typo = round(_typo(old, plan.rng) - old, 2)
        plan.frame.at[a, "_typo"] = typo
        plan.mark(a, AnomalyType.BALANCE_MISMATCH, f"balance_after {old:,.2f} keyed as {old + typo:,.2f}")


def inject_duplicate_posting(plan: _Plan, candidates: np.ndarray, events: int) -> None:
    """A debit posted twice: same time, amount, operation, partner and purpose, a new trans_id."""
    ok = _column_is(plan, "direction", [Direction.DEBIT]) & (plan.frame["amount"].to_numpy() > 0)
    for a in plan.pick(candidates[ok[candidates]], events):
        r = plan.frame.loc[a]
        plan.insert(a, AnomalyType.DUPLICATE_POSTING, r["ts"], float(r["amount"]), r["operation"],
                    partner=(r["partner_bank"], r["partner_account"]), k_symbol=r["k_symbol"],
                    detail=f"copy of {r['trans_id']}")  # fmt: skip
        plan.inserts[-1]["type"] = r["type"]


def inject_missing_recurring(plan: _Plan, candidates: np.ndarray, events: int) -> None:
    """Delete one month's payment of a running permanent order (paid the month before): the
    missing bill. At most one per order; only payments alone in their order-month. The day of the
    month-before payment is reserved too, so no later injector alters it."""
    pay = _order_payments(plan.frame[~plan.frame["_drop"]], plan.orders)
    key = pay["order"].to_numpy(dtype=np.int64) * 100_000 + pay["month"].to_numpy(dtype=np.int64)
    alone = ~pd.Series(key).duplicated(keep=False).to_numpy()
    row_of = dict(zip(key[alone], pay["row"].to_numpy()[alone], strict=True))
    ok = alone & np.isin(key - 1, key[alone]) & np.isin(pay["row"].to_numpy(), candidates)
    ok &= plan.free(pay["row"].to_numpy())
    pay = pay[ok].iloc[plan.rng.permutation(int(ok.sum()))].drop_duplicates("order")  # one per order
    amount_of = dict(zip(pay["row"], pay["amount_order"], strict=True))
    before = dict(zip(pay["row"], [row_of[k - 1] for k in pay["order"] * 100_000 + pay["month"]], strict=True))
    for a in plan.pick(np.sort(pay["row"].to_numpy()), events):
        plan.used_days.add(int(plan.day_key[before[a]]))
        r = plan.frame.loc[a]
        plan.frame.at[a, "_drop"] = True
        plan.frame.at[a, "_delta"] = -signed_amount(plan.frame.loc[[a]])[0]
        month = pd.Timestamp(r["ts"]).strftime("%Y-%m")
        plan.missing.append({"account_id": r["account_id"], "month": month,
                             "partner_account": r["partner_account"], "amount": float(amount_of[a])})  # fmt: skip
        detail = f"{month} order of {amount_of[a]:,.2f} to {r['partner_account']} not paid (was {r['trans_id']})"
        plan.label(AnomalyType.MISSING_RECURRING, "", r["account_id"], r["ts"], detail)


def inject_unusual_sequence(plan: _Plan, candidates: np.ndarray, events: int) -> None:
    """A cash credit of A (5-15x the median debit) moved out within 2 hours by a remittance of
    about 0.95 A to a never-used partner (pass-through)."""
    for a in plan.pick(candidates, events):
        row = plan.frame.loc[a]
        credit = _on_grid(plan, _median_debit(plan, row["account_id"]) * plan.rng.uniform(5, 15), Operation.CASH_CREDIT)
        t0 = _usual_times(plan, row, Operation.CASH_CREDIT, 1)[0]
        t1 = t0 if plan.habits.date_only else t0 + pd.Timedelta(seconds=int(plan.rng.integers(*SEQUENCE_SECONDS)))
        out = round(credit * plan.rng.uniform(0.92, 0.98), 0)
        partner = _new_partner(plan, row["account_id"])
        plan.insert(a, AnomalyType.UNUSUAL_SEQUENCE, t0, credit, Operation.CASH_CREDIT, direction=Direction.CREDIT,
                    detail=f"cash credit of {credit:,.2f}")  # fmt: skip
        plan.insert(a, AnomalyType.UNUSUAL_SEQUENCE, t1, out, Operation.REMITTANCE, partner=partner, order=0.51,
                    detail=f"{out:,.2f} of it sent on to new partner {partner[0]}/{partner[1]}")  # fmt: skip


# --- the catalog --------------------------------------------------------------------------------


@dataclass(frozen=True)
class CatalogEntry:
    type: AnomalyType
    title: str
    reason: str  # the alert text
    injector: Callable[[_Plan, np.ndarray, int], None]
    features: tuple[str, ...]  # the features that reveal it (first = strongest)
    rule_feature: str | None = None  # a deterministic rule fires on this feature
    rows: tuple[int, int] = (1, 1)  # labelled rows per injected event (min, max)


CATALOG: dict[AnomalyType, CatalogEntry] = {e.type: e for e in (
    CatalogEntry(AnomalyType.AMOUNT_SPIKE, "Amount spike", "amount far above the account's usual for this operation",
                 inject_amount_spike, ("amount_ratio_log", "amount_z", "log_amount", "amount_burst")),
    CatalogEntry(AnomalyType.DECIMAL_SHIFT, "Decimal shift",
                 "amount a power of ten away from the usual (incorrect pricing)",
                 inject_decimal_shift, ("decimal_shift",)),
    CatalogEntry(AnomalyType.SPEND_SURGE, "Spend surge", "daily or monthly spend far above the account's usual",
                 inject_spend_surge, ("daily_spend_ratio", "monthly_spend_ratio"), rows=(3, 6)),
    CatalogEntry(AnomalyType.BURST, "Burst", "many transactions within a short time",
                 inject_burst, ("n_last_hour", "n_last_day", "log_gap_hours"), rows=(5, 10)),
    CatalogEntry(AnomalyType.UNUSUAL_HOUR, "Unusual hour", "a time of day the account does not use",
                 inject_unusual_hour, ("hour_distance", "hour_rarity")),
    CatalogEntry(AnomalyType.UNUSUAL_PARTNER, "Unusual partner", "a payment to a never-seen partner bank or account",
                 inject_unusual_partner, ("new_partner_account", "new_partner_bank")),
    CatalogEntry(AnomalyType.BALANCE_MISMATCH, "Balance mismatch",
                 "balance after does not equal balance before plus or minus the amount (data-entry error)",
                 inject_balance_mismatch, ("balance_error", "balance_gap"), rule_feature="balance_error"),
    CatalogEntry(AnomalyType.DUPLICATE_POSTING, "Duplicate posting", "the same posting made twice",
                 inject_duplicate_posting, ("duplicate_recent",), rule_feature="duplicate_recent"),
    CatalogEntry(AnomalyType.MISSING_RECURRING, "Missing recurring payment",
                 "a permanent order was not paid this month (the missing bill)", inject_missing_recurring, ()),
    CatalogEntry(AnomalyType.UNUSUAL_SEQUENCE, "Unusual sequence",
                 "an operation pattern the account never shows (e.g. cash in, straight out to a new partner)",
                 inject_unusual_sequence, ("rapid_pass_through", "transition_rarity", "op_rarity"), rows=(2, 2)),
)}  # fmt: skip
RULE_TYPES: tuple[AnomalyType, ...] = tuple(t for t, e in CATALOG.items() if e.rule_feature)
FEATURE_TYPES: dict[str, str] = {f: str(t) for t, e in CATALOG.items() for f in e.features}
# the LSTM's reasons (finsentry.detectors.sequence) are not features; they point to these types
FEATURE_TYPES.update({"seq_op_surprise": str(AnomalyType.UNUSUAL_SEQUENCE),
                      "seq_purpose_surprise": str(AnomalyType.UNUSUAL_SEQUENCE),
                      "seq_amount_error": str(AnomalyType.AMOUNT_SPIKE)})  # fmt: skip


def type_of_feature(feature: str) -> str:
    """The anomaly type a reason's feature points to (``other`` when none does)."""
    return FEATURE_TYPES.get(feature, OTHER)


# --- rule checks --------------------------------------------------------------------------------


def apply_rules(features: pd.DataFrame, balance_tolerance: float = BALANCE_TOLERANCE,
                suspended: Iterable[str] = ()) -> np.ndarray:  # fmt: skip
    """Deterministic rules on a features frame (vectorised): the anomaly type per row, '' where none fires.

    Balance mismatch (balance_error > ``balance_tolerance``, the data's rounding unit) wins over
    duplicate posting (an identical posting just before, ``duplicate_recent``) when both fire. A
    rule whose feature the frame lacks (a generic table) or that is ``suspended`` (it fired on
    too much of a model's training window) never fires; NaN (no balances in the source) never fires.
    """
    out = np.full(len(features), "", dtype=object)
    off = {str(t) for t in suspended}
    if "duplicate_recent" in features.columns and str(AnomalyType.DUPLICATE_POSTING) not in off:
        dup = features["duplicate_recent"].to_numpy(dtype=np.float64) >= 1.0
        out[dup] = str(AnomalyType.DUPLICATE_POSTING)
    if "balance_error" in features.columns and str(AnomalyType.BALANCE_MISMATCH) not in off:
        bal = features["balance_error"].to_numpy(dtype=np.float64) > balance_tolerance
        out[bal] = str(AnomalyType.BALANCE_MISMATCH)
    return out


def data_unit(amounts: np.ndarray, share: float = 0.999) -> float:
    """The rounding unit of a column of amounts: the coarsest of 1, 0.1, 0.01, 0.001 of which
    at least ``share`` of the (finite) amounts are whole multiples; 0.001 when none fits."""
    a = np.abs(np.asarray(amounts, dtype=np.float64))
    a = a[np.isfinite(a)]
    for unit in (1.0, 0.1, 0.01):
        if a.size and np.mean(np.abs(a / unit - np.round(a / unit)) < 1e-6) >= share:
            return unit
    return 0.001


def _orders(orders: pd.DataFrame) -> pd.DataFrame:
    """Permanent orders with string keys, float amounts and an ``order`` number, one per
    (account, partner account, amount)."""
    o = pd.DataFrame({
        "account_id": orders["account_id"].astype(str), "partner_account": orders["partner_account"].astype(str),
        "amount": orders["amount"].astype(float),
        "k_symbol": orders["k_symbol"].astype(str) if "k_symbol" in orders else str(Purpose.NONE),
    })  # fmt: skip
    o = o.drop_duplicates(["account_id", "partner_account", "amount"]).reset_index(drop=True)
    return o.assign(order=np.arange(len(o)))


def _month_number(ts: pd.Series) -> np.ndarray:
    """Months since year 0 (consecutive months differ by 1)."""
    return (ts.dt.year * 12 + ts.dt.month - 1).to_numpy(dtype=np.int64)


def _order_payments(transactions: pd.DataFrame, orders: pd.DataFrame) -> pd.DataFrame:
    """Debits paying a permanent order (to its partner account, within 1 % of its amount): row
    (index label), order, month (``_month_number``), amount_order (CZK)."""
    debit = transactions["direction"].astype(str) == str(Direction.DEBIT)
    t = transactions[(debit & (transactions["partner_account"].astype(str) != "")).to_numpy()]
    t = t[["account_id", "partner_account", "amount", "ts"]].astype({"account_id": str, "partner_account": str})
    m = t.reset_index(names="row").merge(_orders(orders), on=["account_id", "partner_account"], suffixes=("", "_order"))
    m = m[(m["amount"] - m["amount_order"]).abs() <= ORDER_MATCH * m["amount_order"]]
    return m.assign(month=_month_number(pd.to_datetime(m["ts"])))[["row", "order", "month", "amount_order"]]


def _empty_missing() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series([], dtype=float if c == "amount" else str) for c in MISSING_RULE_COLUMNS})


def _running(expected: pd.DataFrame, paid: pd.DataFrame) -> np.ndarray:
    """Which (order, month) rows are due: the order was paid in an earlier month, and either the
    month before or a later one (an order that stopped is due once, then no more)."""
    span = paid.groupby("order")["month"].agg(first="min", last="max")
    e = expected.join(span, on="order")
    before = paid.assign(month=paid["month"] + 1, _prev=True)
    prev = e[["order", "month"]].merge(before, on=["order", "month"], how="left")["_prev"].notna().to_numpy()
    return ((e["first"] < e["month"]) & ((e["last"] > e["month"]) | prev)).to_numpy()


def missing_recurring_payments(transactions: pd.DataFrame, orders: pd.DataFrame,
                               start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:  # fmt: skip
    """Permanent orders not paid in a whole month of [start, end) in which they were due.

    An order (account_id, partner_account, amount of ``orders``) is paid in a month by a debit
    to its partner account within 1 % of its amount. It is due in a month that lies wholly in
    [start, end) when the account has a transaction in it and the order is running: paid in an
    earlier month, and in the month before or a later one (the whole ``transactions`` history
    counts, not only [start, end)). This leaves out orders that had not started yet and, after
    one report, orders that stopped — the order table has no dates. Returns account_id, month
    ('YYYY-MM'), partner_account, amount (the order's, CZK), k_symbol, sorted. Vectorised.
    """
    first = (pd.Timestamp(start) - pd.Timedelta(1, "ns")).to_period("M") + 1
    last = pd.Timestamp(end).to_period("M")  # exclusive: the month holding ``end`` is not whole
    ts = pd.to_datetime(transactions["ts"])
    inside = ((ts >= first.start_time) & (ts < last.start_time)).to_numpy()
    if last <= first or not inside.any() or orders.empty:
        return _empty_missing()
    active = pd.DataFrame({"account_id": transactions.loc[inside, "account_id"].astype(str).to_numpy(),
                           "month": _month_number(ts[inside])}).drop_duplicates()  # fmt: skip
    expected = active.merge(_orders(orders), on="account_id")
    paid = _order_payments(transactions, orders)[["order", "month"]].drop_duplicates()
    expected = expected[_running(expected, paid)]
    out = expected.merge(paid.assign(_paid=True), on=["order", "month"], how="left")
    out = out[out["_paid"].isna()].sort_values(["account_id", "month", "partner_account", "amount"], kind="stable")
    months = pd.PeriodIndex.from_ordinals(out["month"].to_numpy() - 1970 * 12, freq="M")
    return out.assign(month=months.strftime("%Y-%m"))[list(MISSING_RULE_COLUMNS)].reset_index(drop=True)


# --- the entry point ----------------------------------------------------------------------------


@dataclass
class InjectionResult:
    transactions: pd.DataFrame  # with is_anomaly and anomaly_type, sorted by account then time
    labels: pd.DataFrame  # one row per labelled posting (trans_id '' for a missing payment)
    missing_payments: pd.DataFrame  # account_id, month ('YYYY-MM'), partner_account, amount
    skipped: dict[str, str] = field(default_factory=dict)  # type -> why it was not injected


def planned_events(held_out: int, rate: float, types: Iterable[AnomalyType]) -> dict[AnomalyType, int]:
    """Events to inject per type: ``rate`` x ``held_out`` rows shared evenly over the types (in
    rows: a burst is 5-10 rows), at least MIN_EVENTS each."""
    kinds = [AnomalyType(t) for t in dict.fromkeys(types)]
    budget = rate * held_out / max(len(kinds), 1)
    return {t: max(MIN_EVENTS, int(round(budget / (sum(CATALOG[t].rows) / 2)))) for t in kinds}


def _working_copy(transactions: pd.DataFrame) -> pd.DataFrame:
    """A copy with label columns, sorted by account then time (ties in input order), plus the
    plan's work columns."""
    frame = transactions.copy()
    frame["is_anomaly"] = frame["is_anomaly"].fillna(False).astype(bool) if "is_anomaly" in frame else False
    frame["anomaly_type"] = frame["anomaly_type"].fillna("").astype(str) if "anomaly_type" in frame else ""
    frame["ts"] = pd.to_datetime(frame["ts"])
    keys = pd.DataFrame({"a": frame["account_id"].astype(str).to_numpy(), "t": frame["ts"].to_numpy(),
                         "p": np.arange(len(frame))})  # fmt: skip
    frame = frame.iloc[keys.sort_values(["a", "t", "p"], kind="stable")["p"].to_numpy()].reset_index(drop=True)
    return frame.assign(_seq=np.arange(len(frame), dtype=float), _delta=0.0, _typo=0.0, _drop=False)


def _new_plan(frame: pd.DataFrame, orders: pd.DataFrame, start: pd.Timestamp, seed: int) -> _Plan:
    numeric = pd.to_numeric(frame["trans_id"], errors="coerce")
    account_code = pd.factorize(frame["account_id"].astype(str))[0].astype(np.int64)
    day = frame["ts"].to_numpy().astype("datetime64[D]").astype(np.int64)
    return _Plan(frame=frame, habits=_habits(frame, start), orders=orders, rng=np.random.default_rng(seed),
                 next_id=int(numeric.max()) if numeric.notna().any() else 0,
                 day_key=account_code * 1_000_000 + (day - day.min() if len(day) else day),
                 partners=set(frame["partner_account"].astype(str)))  # fmt: skip


def _skip_reason(plan: _Plan, kind: AnomalyType) -> str:
    if kind == AnomalyType.UNUSUAL_HOUR and plan.habits.date_only:
        return "date-only data: a time of day would be an artefact"
    if kind == AnomalyType.MISSING_RECURRING and plan.orders.empty:
        return "no permanent orders"
    return ""


def inject_anomalies(transactions: pd.DataFrame, orders: pd.DataFrame, start: pd.Timestamp, *,
                     rate: float = 0.002, types: Iterable[AnomalyType] | None = None,
                     seed: int = 0) -> InjectionResult:  # fmt: skip
    """Turn about ``rate`` of the unlabelled transactions at or after ``start`` into labelled anomalies.

    ``orders``: permanent orders (account_id, partner_bank, partner_account, amount, k_symbol).
    Events are spread evenly over ``types`` (all by default), at least MIN_EVENTS each when the
    data has room; existing labels are kept and their rows never chosen. The input frame is not
    modified; the result is deterministic for a seed.
    """
    start = pd.Timestamp(start)
    plan = _new_plan(_working_copy(transactions), orders, start, seed)
    f = plan.frame
    held_out = f.index[(f["ts"] >= start).to_numpy() & ~f["is_anomaly"].to_numpy()].to_numpy()
    kinds = list(AnomalyType) if types is None else [AnomalyType(t) for t in types]
    kinds.sort(key=lambda k: k != AnomalyType.MISSING_RECURRING)  # the scarcest candidates choose first
    skipped: dict[str, str] = {}
    for kind, events in planned_events(len(held_out), rate, kinds).items():
        if why := _skip_reason(plan, kind):
            skipped[str(kind)] = why
            continue
        CATALOG[kind].injector(plan, held_out, events)
    labels = pd.DataFrame(plan.labels, columns=list(LABEL_FRAME_COLUMNS))
    missing = pd.DataFrame(plan.missing, columns=list(MISSING_COLUMNS))
    return InjectionResult(_apply(plan, transactions), labels, missing, skipped)


def _apply(plan: _Plan, original: pd.DataFrame) -> pd.DataFrame:
    """Insert, shift later balances by each change's signed delta, add the typos, delete."""
    f = plan.frame
    if plan.inserts:
        f = pd.concat([f, pd.DataFrame(plan.inserts, columns=f.columns)], ignore_index=True)
    f = f.sort_values(["account_id", "ts", "_seq"], kind="stable").reset_index(drop=True)
    f = rebalance(f, f["_delta"].to_numpy(dtype=np.float64))
    f["balance_after"] = (f["balance_after"] + f["_typo"]).round(2)
    f = f[~f["_drop"].to_numpy(dtype=bool)].drop(columns=_WORK_COLUMNS).reset_index(drop=True)
    dtypes = {c: original[c].dtype for c in original.columns if c in f.columns}
    dtypes.update({"is_anomaly": bool, "anomaly_type": str})
    return f.astype(dtypes)
