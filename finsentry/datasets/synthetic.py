"""A synthetic Czech-style bank: the PKDD'99 relations, any size, deterministic from a seed.

``generate_bank`` returns ``RawTables`` with the same relations and value conventions as the
real 1999 Czech dataset (77 districts in 8 regions, clients, accounts, dispositions, permanent
orders, loans, cards, transactions), plus a time of day on every transaction. It generates
*normal* behaviour only; labelled anomalies are injected later by ``finsentry.anomalies``.

Behaviour is per client and stable, so that a detector has habits to learn:

* income: a monthly salary (collection from another bank, ``Purpose.SALARY``, a fixed employer
  account, the client's own pay day and amount, a yearly raise), a pension for older clients
  (``Purpose.PENSION`` from the district's social-security office), or cash deposits at the
  branch for clients paid in cash;
* permanent orders (household/SIPO, insurance, loan, leasing, uncharacterised) paid every
  month on their day with the same partner and amount; loans and leases end after their term;
* card withdrawals a few times a week at the client's 1-2 preferred hours, with the client's
  own typical amount (lognormal); cash withdrawals and occasional cash credits at branch hours;
* month end: interest credit, statement fee, and penalty interest when the balance went
  negative during the month.

Type/operation/k_symbol combinations mirror the real data (``trans.asc``): card withdrawals are
``VYDAJ`` + ``VYBER KARTOU`` (debit), cash withdrawals are ``VYDAJ`` + ``VYBER`` with ~5% typed
``VYBER`` (cash withdrawal), statement fees and penalty interest are ``VYDAJ`` + ``VYBER`` (the
bank books them as a withdrawal), interest is ``PRIJEM`` with an empty operation.

Generation is vectorised: each event kind is drawn as arrays, events are concatenated, sorted
by account and time, and balances are cumulative sums per account in integer hellers (1/100
CZK), so ``balance`` is an exact running balance. Discretionary spending (card and cash
withdrawals) is capped by the money available: a month at a time (a loop over months, not over
transactions), a withdrawal is dropped when the month's withdrawals so far would exceed the
opening balance plus the month's other movements so far. Amounts are CZK, times are naive local
bank time in the 1990s.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

import numpy as np
import pandas as pd

from finsentry.datasets.raw import RawTables
from finsentry.schema import Frequency, Operation, Purpose, TxnType

Progress = Callable[[str], None]

# --- reference data -------------------------------------------------------------------------

REGIONS: tuple[str, ...] = (
    "Prague", "central Bohemia", "south Bohemia", "west Bohemia", "north Bohemia",
    "east Bohemia", "south Moravia", "north Moravia",
)  # fmt: skip

# (district name, region index) in the order of the real district ids 1..77
DISTRICTS: tuple[tuple[str, int], ...] = (
    ("Hl.m. Praha", 0),
    ("Benesov", 1), ("Beroun", 1), ("Kladno", 1), ("Kolin", 1), ("Kutna Hora", 1),
    ("Melnik", 1), ("Mlada Boleslav", 1), ("Nymburk", 1), ("Praha - vychod", 1),
    ("Praha - zapad", 1), ("Pribram", 1), ("Rakovnik", 1),
    ("Ceske Budejovice", 2), ("Cesky Krumlov", 2), ("Jindrichuv Hradec", 2), ("Pelhrimov", 2),
    ("Pisek", 2), ("Prachatice", 2), ("Strakonice", 2), ("Tabor", 2),
    ("Domazlice", 3), ("Cheb", 3), ("Karlovy Vary", 3), ("Klatovy", 3), ("Plzen - mesto", 3),
    ("Plzen - jih", 3), ("Plzen - sever", 3), ("Rokycany", 3), ("Sokolov", 3), ("Tachov", 3),
    ("Ceska Lipa", 4), ("Decin", 4), ("Chomutov", 4), ("Jablonec n. Nisou", 4), ("Liberec", 4),
    ("Litomerice", 4), ("Louny", 4), ("Most", 4), ("Teplice", 4), ("Usti nad Labem", 4),
    ("Havlickuv Brod", 5), ("Hradec Kralove", 5), ("Chrudim", 5), ("Jicin", 5), ("Nachod", 5),
    ("Pardubice", 5), ("Rychnov nad Kneznou", 5), ("Semily", 5), ("Svitavy", 5),
    ("Trutnov", 5), ("Usti nad Orlici", 5),
    ("Blansko", 6), ("Brno - mesto", 6), ("Brno - venkov", 6), ("Breclav", 6), ("Hodonin", 6),
    ("Jihlava", 6), ("Kromeriz", 6), ("Prostejov", 6), ("Trebic", 6), ("Uherske Hradiste", 6),
    ("Vyskov", 6), ("Zlin", 6), ("Znojmo", 6), ("Zdar nad Sazavou", 6),
    ("Bruntal", 7), ("Frydek - Mistek", 7), ("Jesenik", 7), ("Karvina", 7), ("Novy Jicin", 7),
    ("Olomouc", 7), ("Opava", 7), ("Ostrava - mesto", 7), ("Prerov", 7), ("Sumperk", 7),
    ("Vsetin", 7),
)  # fmt: skip
CITY_DISTRICTS = frozenset({1, 14, 24, 26, 36, 41, 43, 47, 54, 64, 72, 74})  # ids of big towns
REGION_UNEMPLOYMENT = (0.3, 2.5, 2.5, 2.5, 5.0, 3.0, 3.5, 5.5)  # % in 1995, level per region

# the 13 partner bank codes of the real data
PARTNER_BANKS: tuple[str, ...] = (
    "AB", "CD", "EF", "GH", "IJ", "KL", "MN", "OP", "QR", "ST", "UV", "WX", "YZ",
)  # fmt: skip

# statement frequency: share of accounts (real data) and monthly statement fee in CZK
FREQUENCY_SHARE = {Frequency.MONTHLY: 0.926, Frequency.WEEKLY: 0.053,
                   Frequency.AFTER_TRANSACTION: 0.021}  # fmt: skip
STATEMENT_FEE = {Frequency.MONTHLY: 14.6, Frequency.WEEKLY: 30.0,
                 Frequency.AFTER_TRANSACTION: 100.0}  # fmt: skip

# permanent orders: number per account and purpose mix (real order.asc), amount median/sigma
ORDERS_PER_ACCOUNT = (0.16, 0.47, 0.21, 0.09, 0.05, 0.02)  # P(0..5 orders)
ORDER_PURPOSES: tuple[tuple[Purpose, float, float, float], ...] = (
    (Purpose.HOUSEHOLD, 0.54, 3190.0, 0.6),
    (Purpose.NONE, 0.21, 1340.0, 0.8),
    (Purpose.LOAN, 0.11, 3990.0, 0.5),
    (Purpose.INSURANCE, 0.08, 630.0, 0.9),
    (Purpose.LEASING, 0.06, 1950.0, 0.5),
)
LOAN_TERMS = (12, 24, 36, 48, 60)  # months
LEASING_TERMS = (24, 36, 48)

# preferred hour of card use: weight per hour of day (lunch and evening people dominate)
CARD_HOUR_WEIGHTS = np.array(
    [0, 0, 0, 0, 0, 0, 1, 2, 3, 2, 2, 4, 6, 4, 2, 2, 3, 5, 6, 5, 4, 3, 1, 0.5], dtype=float
)
GENERAL_HOUR_WEIGHTS = np.array(
    [0, 0, 0, 0, 0, 0, 1, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 1, 0.5], dtype=float
)

INTEREST_TIME = 23 * 3600 + 50 * 60  # month-end postings, seconds after midnight
FEE_TIME = 23 * 3600 + 55 * 60
PENALTY_TIME = 23 * 3600 + 58 * 60
DAY = 86_400


@dataclass
class SyntheticConfig:
    """Size, calendar, seed and behaviour knobs of the synthetic bank (amounts in CZK)."""

    n_accounts: int = 1000
    months: int = 24
    start: str = "1995-01-01"  # first day of the window; months count from its month
    seed: int = 7
    opening_spread: float = 0.25  # accounts open uniformly over this fraction of the window
    disponent_share: float = 0.2  # accounts with a second (DISPONENT) client
    salary_transfer_share: float = 0.85  # working-age clients paid by bank transfer (else cash)
    card_share: float = 0.65  # owners with a card (halved for pensioners)
    card_per_week: tuple[float, float] = (1.0, 4.0)  # range of per-client card use rates
    card_habit: float = 0.85  # share of card withdrawals at the client's preferred hours
    cash_withdrawals_per_month: tuple[float, float] = (1.0, 4.0)
    cash_credits_per_month: float = 0.3  # occasional cash deposits on top of income
    cash_type_share: float = 0.046  # cash withdrawals typed VYBER rather than VYDAJ (real data)
    interest_rate: float = 0.04  # annual, credited monthly on the positive month-end balance
    penalty_rate: float = 0.06  # annual, charged on the month's lowest negative balance


# --- event kinds and their codes in the bank's vocabularies ---------------------------------


class Kind(IntEnum):
    """What produced a transaction row (internal; the output carries the bank's codes)."""

    OPENING = 0
    SALARY = 1
    PENSION = 2
    CASH_INCOME = 3
    CASH_CREDIT = 4
    ORDER_HOUSEHOLD = 5
    ORDER_INSURANCE = 6
    ORDER_LOAN = 7
    ORDER_LEASING = 8
    ORDER_OTHER = 9
    CARD = 10
    CASH = 11
    CASH_TYPED_WITHDRAWAL = 12
    STATEMENT = 13
    INTEREST = 14
    PENALTY = 15


# (type, operation, k_symbol, discretionary) per kind, mirroring the real combinations
KIND_CODES: dict[Kind, tuple[TxnType, Operation, Purpose, bool]] = {
    Kind.OPENING: (TxnType.CREDIT, Operation.CASH_CREDIT, Purpose.NONE, False),
    Kind.SALARY: (TxnType.CREDIT, Operation.COLLECTION, Purpose.SALARY, False),
    Kind.PENSION: (TxnType.CREDIT, Operation.COLLECTION, Purpose.PENSION, False),
    Kind.CASH_INCOME: (TxnType.CREDIT, Operation.CASH_CREDIT, Purpose.NONE, False),
    Kind.CASH_CREDIT: (TxnType.CREDIT, Operation.CASH_CREDIT, Purpose.NONE, False),
    Kind.ORDER_HOUSEHOLD: (TxnType.DEBIT, Operation.REMITTANCE, Purpose.HOUSEHOLD, False),
    Kind.ORDER_INSURANCE: (TxnType.DEBIT, Operation.REMITTANCE, Purpose.INSURANCE, False),
    Kind.ORDER_LOAN: (TxnType.DEBIT, Operation.REMITTANCE, Purpose.LOAN, False),
    Kind.ORDER_LEASING: (TxnType.DEBIT, Operation.REMITTANCE, Purpose.LEASING, False),
    Kind.ORDER_OTHER: (TxnType.DEBIT, Operation.REMITTANCE, Purpose.NONE, False),
    Kind.CARD: (TxnType.DEBIT, Operation.CARD_WITHDRAWAL, Purpose.NONE, True),
    Kind.CASH: (TxnType.DEBIT, Operation.CASH_WITHDRAWAL, Purpose.NONE, True),
    Kind.CASH_TYPED_WITHDRAWAL: (
        TxnType.CASH_WITHDRAWAL,
        Operation.CASH_WITHDRAWAL,
        Purpose.NONE,
        True,
    ),
    Kind.STATEMENT: (TxnType.DEBIT, Operation.CASH_WITHDRAWAL, Purpose.STATEMENT, False),
    Kind.INTEREST: (TxnType.CREDIT, Operation.NONE, Purpose.INTEREST, False),
    Kind.PENALTY: (TxnType.DEBIT, Operation.CASH_WITHDRAWAL, Purpose.PENALTY_INTEREST, False),
}
ORDER_KIND = {
    Purpose.HOUSEHOLD: Kind.ORDER_HOUSEHOLD, Purpose.INSURANCE: Kind.ORDER_INSURANCE,
    Purpose.LOAN: Kind.ORDER_LOAN, Purpose.LEASING: Kind.ORDER_LEASING,
    Purpose.NONE: Kind.ORDER_OTHER,
}  # fmt: skip

_KINDS = sorted(KIND_CODES)
_TYPE_OF = np.array([str(KIND_CODES[k][0]) for k in _KINDS], dtype=object)
_OPERATION_OF = np.array([str(KIND_CODES[k][1]) for k in _KINDS], dtype=object)
_PURPOSE_OF = np.array([str(KIND_CODES[k][2]) for k in _KINDS], dtype=object)
_DISCRETIONARY = np.array([KIND_CODES[k][3] for k in _KINDS], dtype=bool)
_IS_CREDIT = np.array([KIND_CODES[k][0] == TxnType.CREDIT for k in _KINDS], dtype=bool)


# --- calendar -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Calendar:
    """The window as day numbers since its first day; month m spans [starts[m], starts[m+1])."""

    first_day: np.datetime64
    starts: np.ndarray  # int64 day numbers, length months + 1
    year: np.ndarray  # calendar year index of each month (0 = the start year)

    @classmethod
    def of(cls, start: str, months: int) -> _Calendar:
        if months < 1:
            raise ValueError("months must be >= 1")
        first = np.datetime64(start, "D")
        month0 = first.astype("datetime64[M]")
        bounds = (month0 + np.arange(months + 1)).astype("datetime64[D]")
        starts = (bounds - first).astype(np.int64)
        starts[0] = 0
        years = (month0 + np.arange(months)).astype("datetime64[Y]").astype(np.int64)
        return cls(first, starts, years - years[0])

    @property
    def months(self) -> int:
        return len(self.starts) - 1

    @property
    def n_days(self) -> int:
        return int(self.starts[-1])

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.starts)

    def weekday(self, day: np.ndarray) -> np.ndarray:
        """Monday = 0 .. Sunday = 6."""
        epoch_day = int(self.first_day.astype(np.int64))
        return (day + epoch_day + 3) % 7  # 1970-01-01 was a Thursday

    def month_of_second(self, t: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.starts * DAY, t, side="right") - 1

    def workday(self, day: np.ndarray, month: np.ndarray) -> np.ndarray:
        """Weekend postings move back to Friday, or on to Monday at a month's start."""
        wd = self.weekday(day)
        back = day - np.where(wd == 5, 1, np.where(wd == 6, 2, 0))
        ahead = day + np.where(wd == 5, 2, np.where(wd == 6, 1, 0))
        return np.where(back >= self.starts[month], back, ahead)


# --- the population -------------------------------------------------------------------------


@dataclass
class _Population:
    """One row per account (index = account_id - 1) with its owner's attributes and habits."""

    district: np.ndarray  # district id 1..77
    frequency: np.ndarray  # index into Frequency
    open_day: np.ndarray
    open_second: np.ndarray  # seconds since the window start of the opening deposit
    birth_day: np.ndarray  # datetime64[D] of the owner
    female: np.ndarray
    age: np.ndarray  # owner's age in years at the window start
    income_kind: np.ndarray  # 0 salary transfer, 1 pension, 2 cash
    income: np.ndarray  # CZK per month at the start year
    raise_rate: np.ndarray  # yearly growth of the income
    pay_day: np.ndarray  # 1..28
    card: np.ndarray  # owner holds a card
    card_issued_day: np.ndarray

    @property
    def n(self) -> int:
        return len(self.district)


class _Partners:
    """Registry of partner accounts (bank code index, 8-digit number); index 0 is 'none'."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.bank: list[np.ndarray] = [np.array([-1])]
        self.number: list[np.ndarray] = [np.array([-1])]
        self.size = 1

    def new(self, count: int) -> np.ndarray:
        """Register ``count`` fresh partner accounts; return their indices."""
        self.bank.append(self.rng.integers(0, len(PARTNER_BANKS), count))
        self.number.append(self.rng.integers(10_000_000, 100_000_000, count))
        idx = np.arange(self.size, self.size + count)
        self.size += count
        return idx

    def columns(self) -> tuple[np.ndarray, np.ndarray]:
        """Object arrays of bank codes and account numbers ('' for the 'none' entry)."""
        bank = np.concatenate(self.bank)
        number = np.concatenate(self.number)
        codes = np.array(("",) + PARTNER_BANKS, dtype=object)[bank + 1]
        text = np.char.zfill(number.astype(str), 8).astype(object)
        text[number < 0] = ""
        return codes, text


class _Events:
    """Transaction rows gathered per event kind, as parallel arrays."""

    def __init__(self) -> None:
        self.parts: list[tuple[np.ndarray, ...]] = []

    def add(self, account, second, cents, kind, partner=None) -> None:
        account = np.asarray(account, dtype=np.int64)
        n = len(account)
        kinds = np.broadcast_to(np.asarray(kind, dtype=np.int8), (n,))
        partners = np.zeros(n, np.int64) if partner is None else partner
        self.parts.append(
            (
                account,
                np.asarray(second, dtype=np.int64),
                np.asarray(cents, dtype=np.int64),
                np.array(kinds),
                np.broadcast_to(np.asarray(partners, dtype=np.int64), (n,)).copy(),
            )
        )

    def arrays(self) -> dict[str, np.ndarray]:
        names = ("account", "second", "cents", "kind", "partner")
        return {name: np.concatenate([p[i] for p in self.parts]) for i, name in enumerate(names)}


def _streams(seed: int, count: int) -> list[np.random.Generator]:
    """Independent random streams per stage: changing one stage never shifts another."""
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(count)]


def _to_cents(czk: np.ndarray, step: float = 1.0) -> np.ndarray:
    """Round CZK amounts to ``step`` CZK and return integer hellers."""
    steps = np.maximum(np.rint(np.asarray(czk, dtype=float) / step), 1.0)
    return np.rint(steps * step * 100).astype(np.int64)


# --- districts, clients, accounts -----------------------------------------------------------


def _districts(rng: np.random.Generator) -> pd.DataFrame:
    """77 districts with plausible 1995-96 demographics (Prague the largest and richest)."""
    n = len(DISTRICTS)
    ids = np.arange(1, n + 1)
    region = np.array([r for _, r in DISTRICTS])
    city = np.isin(ids, list(CITY_DISTRICTS))
    inhabitants = np.clip(rng.lognormal(math.log(105_000), 0.35, n), 42_000, 390_000)
    inhabitants[city] *= 1.6
    inhabitants[0] = 1_204_953
    inhabitants = np.rint(inhabitants).astype(np.int64)
    urban = np.clip(rng.normal(60, 12, n) + 25 * city, 33, 100).round(1)
    urban[0] = 100.0
    salary = np.clip(rng.normal(8_900, 450, n) + 1_100 * city, 8_100, 12_000)
    salary[0] = 12_541
    unemployment95 = np.clip(
        np.array(REGION_UNEMPLOYMENT)[region] * rng.lognormal(0, 0.35, n) - 0.8 * city, 0.2, 7.5
    ).round(2)
    unemployment96 = (unemployment95 * rng.uniform(1.0, 1.3, n)).round(2)
    crimes95 = np.rint(inhabitants * rng.uniform(0.02, 0.045, n) * (1 + city)).astype(np.int64)
    small = np.rint(rng.uniform(0, 150, n) * (1 - city * 0.8)).astype(np.int64)
    frame = pd.DataFrame(
        {
            "district_id": ids,
            "district_name": [name for name, _ in DISTRICTS],
            "region": [REGIONS[r] for r in region],
            "num_inhabitants": inhabitants,
            "num_municipalities_lt500": small,
            "num_municipalities_500to1999": rng.integers(0, 70, n),
            "num_municipalities_2000to9999": rng.integers(0, 20, n),
            "num_municipalities_gt10000": rng.integers(0, 4, n) + city,
            "num_cities": rng.integers(1, 12, n),
            "ratio_urban": urban,
            "average_salary": np.rint(salary).astype(np.int64),
            "unemployment_rate95": unemployment95,
            "unemployment_rate96": unemployment96,
            "num_entrep_per1000": rng.integers(81, 140, n) + 25 * city,
            "num_crimes95": crimes95,
            "num_crimes96": np.rint(crimes95 * rng.uniform(0.95, 1.15, n)).astype(np.int64),
        }
    )
    for col in ("num_municipalities_lt500", "num_municipalities_500to1999",
                "num_municipalities_2000to9999"):  # fmt: skip
        frame.loc[0, col] = 0
    frame.loc[0, ["num_municipalities_gt10000", "num_cities"]] = 1
    return frame


def _population(
    config: SyntheticConfig, cal: _Calendar, districts: pd.DataFrame, rng: np.random.Generator
) -> _Population:
    n = config.n_accounts
    weights = districts["num_inhabitants"].to_numpy(float) ** 0.8
    district = rng.choice(districts["district_id"].to_numpy(), n, p=weights / weights.sum())
    freq = rng.choice(len(FREQUENCY_SHARE), n, p=list(FREQUENCY_SHARE.values()))
    spread = max(1, int(config.opening_spread * cal.n_days))
    open_day = np.sort(rng.integers(0, spread, n))
    open_day = np.where(cal.weekday(open_day) == 6, open_day + 1, open_day)
    open_day = np.minimum(open_day, cal.n_days - 1)
    open_second = open_day * DAY + _branch_seconds(cal, open_day, rng)

    lo, hi = np.datetime64("1920-01-01"), np.datetime64("1980-12-31")
    span = int((hi - lo).astype(np.int64))
    birth_day = lo + rng.integers(0, span + 1, n).astype("timedelta64[D]")
    female = rng.random(n) < 0.5
    age = (cal.first_day - birth_day).astype(np.int64) / 365.25
    retired = age >= np.where(female, 57, 60)
    cash_paid = ~retired & ((age < 20) | (rng.random(n) >= config.salary_transfer_share))
    income_kind = np.where(retired, 1, np.where(cash_paid, 2, 0))
    district_salary = districts["average_salary"].to_numpy(float)[district - 1]
    salary = district_salary * rng.lognormal(0, 0.35, n) * np.where(age < 25, 0.65, 1.0)
    pension = rng.lognormal(math.log(5_000), 0.15, n)
    pocket = rng.lognormal(math.log(1_500), 0.5, n)
    income = np.where(retired, pension, np.where(age < 20, pocket, salary))
    raise_rate = np.where(retired, 0.05, rng.uniform(0.0, 0.12, n))
    pay_day = rng.choice(np.arange(1, 29), n, p=_pay_day_weights())
    card = rng.random(n) < config.card_share * np.where(retired, 0.5, 1.0)
    card_issued_day = open_day + rng.integers(0, 60, n)
    return _Population(
        district=district, frequency=freq, open_day=open_day, open_second=open_second,
        birth_day=birth_day, female=female, age=age, income_kind=income_kind, income=income,
        raise_rate=raise_rate, pay_day=pay_day, card=card, card_issued_day=card_issued_day,
    )  # fmt: skip


def _pay_day_weights() -> np.ndarray:
    """Czech employers pay mostly around the 10th-15th; some at the month's start or end."""
    w = np.ones(28)
    w[9:15] = 6.0
    w[:3] = 2.0
    w[24:] = 2.0
    return w / w.sum()


def _branch_seconds(cal: _Calendar, day: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Seconds after midnight within branch hours: 8-18 on weekdays, 8-12 on Saturdays."""
    saturday = cal.weekday(day) == 5
    hour = np.where(saturday, rng.integers(8, 12, len(day)), rng.integers(8, 18, len(day)))
    return hour * 3600 + rng.integers(0, 3600, len(day))


def _clients_accounts(
    pop: _Population, cal: _Calendar, config: SyntheticConfig, rng: np.random.Generator
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, np.ndarray]:
    """client, account and disp frames; returns the owner disp_id of each account too."""
    n = pop.n
    account_id = np.arange(1, n + 1)
    has_disponent = rng.random(n) < config.disponent_share
    n_disp = int(has_disponent.sum())
    d_acc = np.flatnonzero(has_disponent)
    shift = np.rint(rng.normal(0, 3 * 365, n_disp)).astype("timedelta64[D]")
    d_birth = np.clip(
        pop.birth_day[d_acc] + shift, np.datetime64("1920-01-01"), np.datetime64("1980-12-31")
    )
    d_female = np.where(rng.random(n_disp) < 0.8, ~pop.female[d_acc], pop.female[d_acc])
    # client ids: owners and their disponent interleaved in account order, like the real data
    order = np.argsort(np.concatenate([account_id * 2, d_acc * 2 + 3]), kind="stable")
    acc_of = np.concatenate([account_id, d_acc + 1])[order]
    owner = np.concatenate([np.ones(n, bool), np.zeros(n_disp, bool)])[order]
    birth = np.concatenate([pop.birth_day, d_birth])[order]
    female = np.concatenate([pop.female, d_female])[order]
    moved = rng.random(n + n_disp) < 0.1
    home = pop.district[acc_of - 1]
    district = np.where(owner & moved, rng.integers(1, len(DISTRICTS) + 1, n + n_disp), home)
    client_id = np.arange(1, n + n_disp + 1)
    client = pd.DataFrame(
        {
            "client_id": client_id,
            "birth_date": birth.astype("datetime64[ns]"),
            "gender": np.where(female, "F", "M").astype(object),
            "district_id": district,
        }
    )
    freq_names = np.array([str(f) for f in FREQUENCY_SHARE], dtype=object)
    created = cal.first_day + pop.open_day.astype("timedelta64[D]")
    account = pd.DataFrame(
        {
            "account_id": account_id,
            "district_id": pop.district,
            "frequency": freq_names[pop.frequency],
            "created": created.astype("datetime64[ns]"),
        }
    )
    disp = pd.DataFrame(
        {
            "disp_id": client_id,
            "client_id": client_id,
            "account_id": acc_of,
            "disp_type": np.where(owner, "OWNER", "DISPONENT").astype(object),
        }
    )
    owner_disp = client_id[owner]  # in account order
    return client, account, disp, owner_disp


# --- event generators -----------------------------------------------------------------------


def _account_months(pop: _Population, cal: _Calendar) -> tuple[np.ndarray, np.ndarray]:
    """(account index, month) for every month in which the account is open at its end."""
    acc = np.repeat(np.arange(pop.n), cal.months)
    month = np.tile(np.arange(cal.months), pop.n)
    keep = pop.open_day[acc] < cal.starts[month + 1]
    return acc[keep], month[keep]


def _after_opening(pop: _Population, cal: _Calendar, acc, second) -> np.ndarray:
    return (second > pop.open_second[acc]) & (second < cal.n_days * DAY)


def _income_events(
    pop: _Population, cal: _Calendar, partners: _Partners, ev: _Events, rng: np.random.Generator
) -> None:
    """Opening deposits, salaries and pensions by transfer, cash income at the branch."""
    n = pop.n
    ev.add(np.arange(n), pop.open_second, _to_cents(rng.integers(2, 12, n) * 100.0), Kind.OPENING)

    employers = partners.new(max(20, n // 15))
    offices = partners.new(len(DISTRICTS))  # one social-security office per district
    employer = employers[rng.integers(0, len(employers), n)]
    payer = np.where(pop.income_kind == 1, offices[pop.district - 1], employer)
    post_time = rng.integers(1, 7, n) * 3600 + rng.integers(0, 3600, n)  # payer's batch time

    acc, month = _account_months(pop, cal)
    amount = pop.income[acc] * _growth(pop, cal, acc, month)
    by_transfer = pop.income_kind[acc] != 2
    a, m = acc[by_transfer], month[by_transfer]
    day = cal.starts[m] + np.minimum(pop.pay_day[a], cal.lengths[m]) - 1
    day = np.clip(cal.workday(day, m), cal.starts[m], cal.starts[m + 1] - 1)
    second = day * DAY + post_time[a]
    ok = _after_opening(pop, cal, a, second)
    kind = np.where(pop.income_kind[a] == 1, Kind.PENSION, Kind.SALARY).astype(np.int8)
    ev.add(a[ok], second[ok], _to_cents(amount[by_transfer][ok]), kind[ok], payer[a[ok]])

    cash = ~by_transfer  # one or two deposits a month, at random days
    a, m, amt = acc[cash], month[cash], amount[cash]
    times = 1 + (rng.random(len(a)) < 0.4)
    a, m, amt = np.repeat(a, times), np.repeat(m, times), np.repeat(amt / times, times)
    second = _branch_events(cal, m, rng)
    amt = amt * rng.lognormal(0, 0.1, len(a))
    ok = _after_opening(pop, cal, a, second)
    ev.add(a[ok], second[ok], _to_cents(amt[ok], 100.0), Kind.CASH_INCOME)


def _growth(pop: _Population, cal: _Calendar, acc: np.ndarray, month: np.ndarray) -> np.ndarray:
    """Income (and with it spending) grows by the client's raise every January."""
    return (1 + pop.raise_rate[acc]) ** cal.year[month]


def _branch_events(cal: _Calendar, month: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random branch-hours moment in each given month (Sundays move to Monday)."""
    day = cal.starts[month] + (rng.random(len(month)) * cal.lengths[month]).astype(np.int64)
    day = np.where(cal.weekday(day) == 6, day + 1, day)
    return day * DAY + _branch_seconds(cal, day, rng)


def _orders(
    pop: _Population, cal: _Calendar, partners: _Partners, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Permanent orders: account, purpose, amount (CZK), day, time, partner, first/end month."""
    count = rng.choice(len(ORDERS_PER_ACCOUNT), pop.n, p=ORDERS_PER_ACCOUNT)
    acc = np.repeat(np.arange(pop.n), count)
    k = len(acc)
    shares = np.array([s for _, s, _, _ in ORDER_PURPOSES])
    which = rng.choice(len(ORDER_PURPOSES), k, p=shares / shares.sum())
    median = np.array([m for _, _, m, _ in ORDER_PURPOSES])[which]
    sigma = np.array([s for _, _, _, s in ORDER_PURPOSES])[which]
    amount = rng.lognormal(np.log(median), sigma)
    total = np.bincount(acc, weights=amount, minlength=pop.n)
    scale = np.minimum(1.0, 0.5 * pop.income / np.maximum(total, 1.0))  # orders <= half income
    amount = np.maximum(np.round(amount * scale[acc], 1), 10.0)
    purposes = [p for p, _, _, _ in ORDER_PURPOSES]
    is_loan = which == purposes.index(Purpose.LOAN)
    is_leasing = which == purposes.index(Purpose.LEASING)
    term = np.where(is_loan, rng.choice(LOAN_TERMS, k), rng.choice(LEASING_TERMS, k))
    granted_day = pop.open_day[acc] + rng.integers(0, 45, k)
    first_month = np.minimum(cal.month_of_second(granted_day * DAY) + 1, cal.months)
    finite = is_loan | is_leasing
    end_month = np.where(finite, first_month + term, np.iinfo(np.int64).max // 2)
    first_month = np.where(finite, first_month, 0)
    return {
        "account": acc,
        "purpose": which,
        "amount": amount,
        "day": rng.integers(1, 29, k),
        "time": rng.integers(0, 6, k) * 3600 + rng.integers(0, 3600, k),
        "partner": partners.new(k),
        "first_month": first_month,
        "end_month": end_month,
        "term": np.where(finite, term, 0),
        "granted_day": granted_day,
        "is_loan": is_loan,
    }


def _order_events(pop: _Population, cal: _Calendar, orders: dict, ev: _Events) -> None:
    """Every order every month on its day (moved to a workday), same amount and partner."""
    k = len(orders["account"])
    idx = np.repeat(np.arange(k), cal.months)
    month = np.tile(np.arange(cal.months), k)
    keep = (month >= orders["first_month"][idx]) & (month < orders["end_month"][idx])
    idx, month = idx[keep], month[keep]
    day = cal.starts[month] + np.minimum(orders["day"][idx], cal.lengths[month]) - 1
    day = np.clip(cal.workday(day, month), cal.starts[month], cal.starts[month + 1] - 1)
    second = day * DAY + orders["time"][idx]
    acc = orders["account"][idx]
    ok = _after_opening(pop, cal, acc, second)
    kinds = np.array([ORDER_KIND[p] for p, _, _, _ in ORDER_PURPOSES], dtype=np.int8)
    ev.add(
        acc[ok],
        second[ok],
        _to_cents(orders["amount"][idx[ok]], 0.1),
        kinds[orders["purpose"][idx[ok]]],
        orders["partner"][idx[ok]],
    )


def _monthly_spend(pop: _Population, orders: dict, rng: np.random.Generator) -> np.ndarray:
    """CZK per month each client means to withdraw (income less orders and fees, give or take)."""
    fixed = np.bincount(orders["account"], weights=orders["amount"], minlength=pop.n)
    disposable = np.maximum(pop.income - fixed, 0.15 * pop.income)
    return disposable * rng.uniform(0.9, 1.05, pop.n)


def _counts(rate: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return rng.poisson(np.maximum(rate, 0.0))


def _card_events(
    pop: _Population,
    cal: _Calendar,
    config: SyntheticConfig,
    spend: np.ndarray,
    ev: _Events,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """Card withdrawals at each holder's preferred hours with the holder's typical amount."""
    n = pop.n
    lo, hi = config.card_per_week
    per_week = rng.uniform(lo, hi, n)
    card_part = rng.uniform(0.3, 0.7, n)
    typical = spend * card_part / (per_week * 4.35)
    sigma = rng.uniform(0.25, 0.6, n)
    p = CARD_HOUR_WEIGHTS / CARD_HOUR_WEIGHTS.sum()
    hour1 = rng.choice(24, n, p=p)
    hour2 = rng.choice(24, n, p=p)
    hour2 = np.where(np.abs(hour2 - hour1) < 3, np.where(hour1 < 15, hour1 + 6, hour1 - 6), hour2)
    two_hours = rng.random(n) < 0.4
    hour2 = np.where(two_hours, hour2, hour1)

    acc, month = _account_months(pop, cal)
    holder = pop.card[acc]
    acc, month = acc[holder], month[holder]
    times = _counts(per_week[acc] * cal.lengths[month] / 7.0, rng)
    acc, month = np.repeat(acc, times), np.repeat(month, times)
    m = len(acc)
    day = cal.starts[month] + (rng.random(m) * cal.lengths[month]).astype(np.int64)
    habit = rng.random(m) < config.card_habit
    preferred = np.where(rng.random(m) < 0.65, hour1[acc], hour2[acc])
    other = rng.choice(24, m, p=GENERAL_HOUR_WEIGHTS / GENERAL_HOUR_WEIGHTS.sum())
    hour = np.where(habit, preferred, other)
    second = day * DAY + hour * 3600 + rng.integers(0, 3600, m)
    ok = _after_opening(pop, cal, acc, second) & (day >= pop.card_issued_day[acc])
    acc, month, second = acc[ok], month[ok], second[ok]
    amount = typical[acc] * _growth(pop, cal, acc, month)
    amount *= rng.lognormal(-0.5 * sigma[acc] ** 2, sigma[acc])
    ev.add(acc, second, np.maximum(_to_cents(amount, 10.0), 5_000), Kind.CARD)
    return {"hour1": hour1, "hour2": hour2, "card_part": np.where(pop.card, card_part, 0.0)}


def _cash_events(
    pop: _Population,
    cal: _Calendar,
    config: SyntheticConfig,
    spend: np.ndarray,
    card_part: np.ndarray,
    ev: _Events,
    rng: np.random.Generator,
) -> None:
    """Cash withdrawals and occasional cash credits over the counter, at branch hours."""
    n = pop.n
    lo, hi = config.cash_withdrawals_per_month
    per_month = rng.uniform(lo, hi, n)
    typical = spend * (1 - card_part) / per_month
    acc, month = _account_months(pop, cal)
    full = cal.lengths[month] / 30.4
    times = _counts(per_month[acc] * full, rng)
    a, m = np.repeat(acc, times), np.repeat(month, times)
    second = _branch_events(cal, m, rng)
    ok = _after_opening(pop, cal, a, second)
    a, m, second = a[ok], m[ok], second[ok]
    amount = typical[a] * _growth(pop, cal, a, m) * rng.lognormal(-0.08, 0.4, len(a))
    typed = rng.random(len(a)) < config.cash_type_share
    kind = np.where(typed, Kind.CASH_TYPED_WITHDRAWAL, Kind.CASH).astype(np.int8)
    ev.add(a, second, _to_cents(amount, 100.0), kind)

    times = _counts(np.full(len(acc), config.cash_credits_per_month) * full, rng)
    a, m = np.repeat(acc, times), np.repeat(month, times)
    second = _branch_events(cal, m, rng)
    ok = _after_opening(pop, cal, a, second)
    a, second = a[ok], second[ok]
    amount = pop.income[a] * rng.lognormal(math.log(0.3), 0.6, len(a))
    ev.add(a, second, _to_cents(amount, 100.0), Kind.CASH_CREDIT)


def _statement_events(pop: _Population, cal: _Calendar, ev: _Events) -> None:
    acc, month = _account_months(pop, cal)
    fee = np.array([STATEMENT_FEE[f] for f in FREQUENCY_SHARE])[pop.frequency[acc]]
    second = (cal.starts[month + 1] - 1) * DAY + FEE_TIME
    ok = _after_opening(pop, cal, acc, second)
    ev.add(acc[ok], second[ok], _to_cents(fee[ok], 0.1), Kind.STATEMENT)


# --- ordering, spending cap, balances -------------------------------------------------------


def _sorted(rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Rows ordered by account then time (ties keep generation order)."""
    order = np.argsort(rows["account"] * (1 << 36) + rows["second"], kind="stable")
    return {k: v[order] for k, v in rows.items()}


def _signed(rows: dict[str, np.ndarray]) -> np.ndarray:
    return np.where(_IS_CREDIT[rows["kind"]], rows["cents"], -rows["cents"])


def _segment_prefix(values: np.ndarray, starts: np.ndarray, segment: np.ndarray) -> np.ndarray:
    """Inclusive cumulative sums restarting at each segment start."""
    total = np.cumsum(values)
    return total - (total[starts] - values[starts])[segment]


def _segments(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start index of each run of equal keys, and the run number of every row."""
    flags = np.empty(len(key), bool)
    flags[:1] = True
    flags[1:] = key[1:] != key[:-1]
    return np.flatnonzero(flags), np.cumsum(flags) - 1


def _cap_and_interest(
    rows: dict[str, np.ndarray], pop: _Population, cal: _Calendar, config: SyntheticConfig
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Drop withdrawals the account cannot afford; interest per (account, month) in hellers.

    Months are processed in order (the balance carries over), every month vectorised over all
    accounts: a discretionary withdrawal is kept when the month's withdrawals up to it do not
    exceed the opening balance plus the month's other movements up to it.
    """
    n, months = pop.n, cal.months
    month = cal.month_of_second(rows["second"])
    signed = _signed(rows)
    disc = _DISCRETIONARY[rows["kind"]]
    starts, segment = _segments(rows["account"] * months + month)
    fixed_prefix = _segment_prefix(np.where(disc, 0, signed), starts, segment)
    spend_prefix = _segment_prefix(np.where(disc, rows["cents"], 0), starts, segment)
    by_month = np.argsort(month, kind="stable")
    bounds = np.searchsorted(month[by_month], np.arange(months + 1))
    balance = np.zeros(n, np.int64)
    keep = np.ones(len(signed), bool)
    interest = np.zeros((n, months), np.int64)
    month_end = cal.starts[1:] * DAY
    for k in range(months):
        idx = by_month[bounds[k] : bounds[k + 1]]
        acc = rows["account"][idx]
        drop = disc[idx] & (spend_prefix[idx] > balance[acc] + fixed_prefix[idx])
        keep[idx[drop]] = False
        net = np.bincount(acc, weights=np.where(drop, 0, signed[idx]), minlength=n)
        balance += np.rint(net).astype(np.int64)
        rate = config.interest_rate / 12
        earned = (np.maximum(balance, 0) * rate // 10).astype(np.int64) * 10  # whole 0.1 CZK
        interest[:, k] = np.where(pop.open_second < month_end[k], earned, 0)
        balance += interest[:, k]
    return {key: v[keep] for key, v in rows.items()}, interest


def _month_end_rows(acc, month, cents, cal: _Calendar, time: int, kind: Kind) -> dict:
    second = (cal.starts[month + 1] - 1) * DAY + time
    n = len(acc)
    return {
        "account": acc.astype(np.int64),
        "second": second.astype(np.int64),
        "cents": cents.astype(np.int64),
        "kind": np.full(n, kind, np.int8),
        "partner": np.zeros(n, np.int64),
    }


def _concat(*parts: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _running_balance(rows: dict[str, np.ndarray]) -> np.ndarray:
    """Balance after each row in hellers; rows must be sorted by account then time."""
    starts, segment = _segments(rows["account"])
    return _segment_prefix(_signed(rows), starts, segment)


def _add_interest_and_penalties(
    rows: dict[str, np.ndarray],
    interest: np.ndarray,
    cal: _Calendar,
    config: SyntheticConfig,
) -> dict[str, np.ndarray]:
    acc, month = np.nonzero(interest)
    credited = _month_end_rows(acc, month, interest[acc, month], cal, INTEREST_TIME,
                               Kind.INTEREST)  # fmt: skip
    rows = _sorted(_concat(rows, credited))
    balance = _running_balance(rows)
    month_of = cal.month_of_second(rows["second"])
    starts, _ = _segments(rows["account"] * cal.months + month_of)
    lowest = np.minimum.reduceat(balance, starts)
    negative = lowest < 0
    g = starts[negative]
    penalty = np.maximum(-lowest[negative] * (config.penalty_rate / 12) // 10 * 10, 10)
    charged = _month_end_rows(rows["account"][g], month_of[g], penalty, cal, PENALTY_TIME,
                              Kind.PENALTY)  # fmt: skip
    return _sorted(_concat(rows, charged))


# --- frames ---------------------------------------------------------------------------------


def _trans_frame(rows: dict[str, np.ndarray], cal: _Calendar, partners: _Partners) -> pd.DataFrame:
    """The trans relation in time order, trans_id increasing with time."""
    balance = _running_balance(rows)
    order = np.argsort(rows["second"] * (1 << 27) + rows["account"], kind="stable")
    by_time = {k: v[order] for k, v in rows.items()}
    kind = by_time["kind"]
    banks, numbers = partners.columns()
    start = np.datetime64(cal.first_day, "ns")
    return pd.DataFrame(
        {
            "trans_id": np.arange(1, len(order) + 1, dtype=np.int64),
            "account_id": by_time["account"] + 1,
            "ts": start + (by_time["second"] * 1_000_000_000).astype("timedelta64[ns]"),
            "type": _TYPE_OF[kind],
            "operation": _OPERATION_OF[kind],
            "amount": by_time["cents"] / 100.0,
            "balance": balance[order] / 100.0,
            "k_symbol": _PURPOSE_OF[kind],
            "bank": banks[by_time["partner"]],
            "account": numbers[by_time["partner"]],
        }
    )


def _order_frames(
    orders: dict[str, np.ndarray], cal: _Calendar, partners: _Partners, rng: np.random.Generator
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """order and loan relations (loans are the LOAN orders: payments x term)."""
    banks, numbers = partners.columns()
    purposes = np.array([str(p) for p, _, _, _ in ORDER_PURPOSES], dtype=object)
    order = pd.DataFrame(
        {
            "order_id": np.arange(1, len(orders["account"]) + 1),
            "account_id": orders["account"] + 1,
            "bank_to": banks[orders["partner"]],
            "account_to": numbers[orders["partner"]],
            "amount": orders["amount"],
            "k_symbol": purposes[orders["purpose"]],
        }
    )
    loans = np.flatnonzero(orders["is_loan"])
    ended = orders["end_month"][loans] <= cal.months
    status = np.where(ended, "A", "C").astype(object)
    status[rng.random(len(loans)) < 0.08] = "D"  # running, client in debt
    status[ended & (rng.random(len(loans)) < 0.1)] = "B"  # finished, not fully repaid
    granted = cal.first_day + orders["granted_day"][loans].astype("timedelta64[D]")
    loan = pd.DataFrame(
        {
            "loan_id": np.arange(1, len(loans) + 1),
            "account_id": orders["account"][loans] + 1,
            "granted": granted.astype("datetime64[ns]"),
            "amount": orders["amount"][loans] * orders["term"][loans],
            "duration": orders["term"][loans],
            "payments": orders["amount"][loans],
            "status": status,
        }
    )
    return order, loan


def _card_frame(
    pop: _Population, cal: _Calendar, owner_disp: np.ndarray, rng: np.random.Generator
) -> pd.DataFrame:
    holders = np.flatnonzero(pop.card)
    kind = np.where(rng.random(len(holders)) < 0.1, "gold", "classic").astype(object)
    kind[pop.age[holders] < 25] = "junior"
    issued = cal.first_day + pop.card_issued_day[holders].astype("timedelta64[D]")
    return pd.DataFrame(
        {
            "card_id": np.arange(1, len(holders) + 1),
            "disp_id": owner_disp[holders],
            "card_type": kind,
            "issued": issued.astype("datetime64[ns]"),
        }
    )


# --- public API -----------------------------------------------------------------------------


def generate_bank(config: SyntheticConfig, progress: Progress | None = None) -> RawTables:
    """Generate the whole bank (normal behaviour only) as ``RawTables``; same config, same bank."""
    say = progress or (lambda _msg: None)
    if config.n_accounts < 1:
        raise ValueError("n_accounts must be >= 1")
    cal = _Calendar.of(config.start, config.months)
    rng = _streams(config.seed, 10)
    say("districts")
    district = _districts(rng[0])
    say(f"clients and accounts ({config.n_accounts:,} accounts)")
    pop = _population(config, cal, district, rng[1])
    client, account, disp, owner_disp = _clients_accounts(pop, cal, config, rng[2])
    partners = _Partners(rng[3])
    events = _Events()
    say("income: opening deposits, salaries, pensions, cash income")
    _income_events(pop, cal, partners, events, rng[4])
    say("permanent orders")
    orders = _orders(pop, cal, partners, rng[5])
    _order_events(pop, cal, orders, events)
    say("card and cash withdrawals, cash credits, statement fees")
    spend = _monthly_spend(pop, orders, rng[6])
    habits = _card_events(pop, cal, config, spend, events, rng[7])
    _cash_events(pop, cal, config, spend, habits["card_part"], events, rng[8])
    _statement_events(pop, cal, events)
    say("capping spending by balance, month by month")
    rows, interest = _cap_and_interest(_sorted(events.arrays()), pop, cal, config)
    say("interest and penalty interest")
    rows = _add_interest_and_penalties(rows, interest, cal, config)
    say(f"building frames ({len(rows['account']):,} transactions)")
    trans = _trans_frame(rows, cal, partners)
    order, loan = _order_frames(orders, cal, partners, rng[9])
    card = _card_frame(pop, cal, owner_disp, rng[9])
    say("done")
    return RawTables(
        district=district, client=client, account=account, disp=disp, trans=trans,
        order=order, loan=loan, card=card,
    )  # fmt: skip


def generate_files(
    config: SyntheticConfig,
    directory: str | Path,
    form: str = "asc",
    progress: Progress | None = None,
) -> list[Path]:
    """Generate the bank and write it in a public file form (``asc`` or ``tsv``)."""
    from finsentry.datasets import czech

    raw = generate_bank(config, progress=progress)
    if progress is not None:
        progress(f"writing {form} files to {directory}")
    return list(czech.write_tables(raw, Path(directory), form=form))


# Transactions per account per open month with the default knobs, and the shortfall per account
# (the first month: card not yet issued, little money), fitted on banks of 6 to 36 months.
TRANSACTIONS_PER_ACCOUNT_MONTH = 13.1
TRANSACTIONS_SHORTFALL_PER_ACCOUNT = 5.0


def expected_transactions(config: SyntheticConfig) -> float:
    """Roughly how many transactions ``generate_bank(config)`` produces (default knobs)."""
    open_months = config.months * (1 - 0.5 * config.opening_spread)
    per_account = open_months * TRANSACTIONS_PER_ACCOUNT_MONTH - TRANSACTIONS_SHORTFALL_PER_ACCOUNT
    return config.n_accounts * max(per_account, 2.0)


def config_for_transactions(
    n_transactions: int, months: int = 24, seed: int = 7, **knobs
) -> SyntheticConfig:
    """A config whose bank has roughly ``n_transactions`` transactions.

    Within ~3% from 100,000 transactions up; small banks (tens of accounts) vary by ~10%
    because clients differ a lot (card holders make most of the rows).
    """
    probe = SyntheticConfig(n_accounts=1, months=months, seed=seed, **knobs)
    per_account = expected_transactions(probe)
    probe.n_accounts = max(1, round(n_transactions / per_account))
    return probe
