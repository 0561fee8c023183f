"""The synthetic bank: deterministic, exact balances, per-client habits, valid vocabularies."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from finsentry.datasets import synthetic
from finsentry.datasets.raw import TABLE_COLUMNS
from finsentry.datasets.synthetic import (
    DISTRICTS,
    PARTNER_BANKS,
    REGIONS,
    SyntheticConfig,
    config_for_transactions,
    generate_bank,
)
from finsentry.schema import Frequency, Operation, Purpose, TxnType

SMALL = SyntheticConfig(n_accounts=30, months=6, seed=11)


@pytest.fixture(scope="module")
def bank():
    return generate_bank(SMALL)


@pytest.fixture(scope="module")
def trans(bank) -> pd.DataFrame:
    """Transactions in each account's posting order."""
    return bank.trans.sort_values(["account_id", "ts", "trans_id"]).reset_index(drop=True)


def test_same_seed_gives_identical_tables(bank):
    again = generate_bank(SyntheticConfig(n_accounts=30, months=6, seed=11))
    for name in TABLE_COLUMNS:
        pd.testing.assert_frame_equal(bank.table(name), again.table(name))


def test_different_seed_gives_a_different_bank(bank):
    other = generate_bank(SyntheticConfig(n_accounts=30, months=6, seed=12))
    assert not bank.trans["amount"].equals(other.trans["amount"])
    assert not bank.client["birth_date"].equals(other.client["birth_date"])


def test_tables_have_the_raw_columns(bank):
    for name, columns in TABLE_COLUMNS.items():
        assert tuple(bank.table(name).columns) == columns, name
    assert not bank.order.empty and not bank.card.empty


def test_balances_are_exact_running_sums(trans):
    sign = np.where(trans["type"] == str(TxnType.CREDIT), 1.0, -1.0)
    previous = trans.groupby("account_id")["balance"].shift(1).fillna(0.0)
    expected = (previous + sign * trans["amount"]).round(2)
    np.testing.assert_allclose(trans["balance"], expected, atol=1e-6)
    np.testing.assert_allclose(trans["balance"], trans["balance"].round(2), atol=1e-9)


def test_first_transaction_is_an_opening_cash_credit(bank, trans):
    first = trans.groupby("account_id").head(1)
    assert len(first) == len(bank.account)
    assert (first["operation"] == str(Operation.CASH_CREDIT)).all()
    assert (first["balance"] == first["amount"]).all()
    created = bank.account.set_index("account_id")["created"]
    assert (first["ts"].dt.normalize().to_numpy() == created[first["account_id"]].to_numpy()).all()


def test_most_balances_stay_positive_and_overdrafts_pay_penalty(trans):
    assert (trans["balance"] >= 0).mean() > 0.97
    month = trans["ts"].dt.to_period("M")
    went_negative = set(trans.loc[trans["balance"] < 0].groupby(["account_id", month]).groups)
    penalised = trans["k_symbol"] == str(Purpose.PENALTY_INTEREST)
    charged = set(trans.loc[penalised].groupby(["account_id", month[penalised]]).groups)
    assert charged <= went_negative
    # a penalty can itself tip the next month below zero; that month is charged a month later
    assert len(went_negative - charged) <= 0.1 * max(len(went_negative), 1)


def test_ids_are_unique_and_follow_time(bank):
    t = bank.trans
    assert t["trans_id"].is_unique
    assert t["ts"].is_monotonic_increasing
    assert t["trans_id"].is_monotonic_increasing
    for name, key in (("client", "client_id"), ("account", "account_id"), ("order", "order_id")):
        assert bank.table(name)[key].is_unique
        assert pd.api.types.is_integer_dtype(bank.table(name)[key])


def test_each_account_has_exactly_one_owner(bank):
    disp = bank.disp
    owners = disp[disp["disp_type"] == "OWNER"]
    assert owners["account_id"].is_unique
    assert set(owners["account_id"]) == set(bank.account["account_id"])
    assert set(disp["disp_type"]) <= {"OWNER", "DISPONENT"}
    assert set(disp["client_id"]) == set(bank.client["client_id"])
    assert disp["client_id"].is_unique


def test_about_a_fifth_of_accounts_have_a_disponent():
    bank = generate_bank(SyntheticConfig(n_accounts=400, months=1, seed=3))
    share = (bank.disp["disp_type"] == "DISPONENT").sum() / len(bank.account)
    assert 0.14 < share < 0.26


def test_standing_orders_are_paid_every_month_with_same_amount_and_partner(bank, trans):
    last_month = trans["ts"].max().to_period("M")
    remittances = trans[trans["operation"] == str(Operation.REMITTANCE)]
    paid = bank.order.merge(
        remittances,
        left_on=["account_id", "bank_to", "account_to"],
        right_on=["account_id", "bank", "account"],
        suffixes=("_order", ""),
    )
    assert len(paid) == len(remittances)  # every remittance belongs to an order
    assert (paid["amount"] == paid["amount_order"]).all()
    assert (paid["k_symbol"] == paid["k_symbol_order"]).all()
    for order_id, rows in paid.groupby("order_id"):
        months = rows["ts"].dt.to_period("M")
        assert months.is_unique, order_id
        span = pd.period_range(months.min(), months.max(), freq="M")
        assert len(span) == len(months), f"order {order_id} skipped a month"
        if rows["k_symbol"].iloc[0] not in (str(Purpose.LOAN), str(Purpose.LEASING)):
            assert months.max() == last_month, f"order {order_id} stopped early"


def test_salary_comes_from_a_fixed_employer_on_the_pay_day(trans):
    salary = trans[trans["k_symbol"] == str(Purpose.SALARY)]
    assert len(salary) > 0
    assert (salary["operation"] == str(Operation.COLLECTION)).all()
    per_account = salary.groupby("account_id")
    assert (per_account["account"].nunique() == 1).all()
    assert (per_account["bank"].nunique() == 1).all()
    assert (per_account["ts"].agg(lambda ts: ts.dt.time.nunique()) == 1).all()
    # weekends move the pay day by at most two days
    spread = per_account["ts"].agg(lambda ts: ts.dt.day.max() - ts.dt.day.min())
    assert (spread <= 3).all()


def test_pensions_go_to_older_clients(bank, trans):
    owners = bank.disp[bank.disp["disp_type"] == "OWNER"].merge(bank.client, on="client_id")
    start = trans["ts"].min()
    age = (start - owners.set_index("account_id")["birth_date"]).dt.days / 365.25
    pension_accounts = trans.loc[trans["k_symbol"] == str(Purpose.PENSION), "account_id"].unique()
    salary_accounts = trans.loc[trans["k_symbol"] == str(Purpose.SALARY), "account_id"].unique()
    assert (age[pension_accounts] >= 57).all()
    assert (age[salary_accounts] < 60).all()


def test_card_withdrawals_concentrate_on_each_clients_preferred_hours():
    bank = generate_bank(SyntheticConfig(n_accounts=40, months=6, seed=5))
    card = bank.trans[bank.trans["operation"] == str(Operation.CARD_WITHDRAWAL)]
    hours = card.assign(hour=card["ts"].dt.hour)
    shares = []
    for _, rows in hours.groupby("account_id"):
        if len(rows) < 15:
            continue
        top = rows["hour"].value_counts().index[:2].to_numpy()
        near = (np.abs(rows["hour"].to_numpy()[:, None] - top[None, :]) <= 1).any(axis=1)
        shares.append(near.mean())
    assert len(shares) >= 10
    assert min(shares) >= 0.6
    assert np.mean(shares) >= 0.8


def test_card_amounts_are_typical_per_client():
    bank = generate_bank(SyntheticConfig(n_accounts=40, months=6, seed=5))
    card = bank.trans[bank.trans["operation"] == str(Operation.CARD_WITHDRAWAL)]
    log_amount = np.log(card["amount"])
    within = log_amount.groupby(card["account_id"]).std().mean()
    between = log_amount.groupby(card["account_id"]).mean().std()
    assert within < 0.8  # lognormal per client, sigma 0.25..0.6
    assert between > 0.3  # clients differ


def test_every_value_is_in_the_vocabularies(bank):
    t = bank.trans
    assert set(t["type"]) <= set(TxnType)
    assert set(t["operation"]) <= set(Operation)
    assert set(t["k_symbol"]) <= set(Purpose)
    assert set(bank.order["k_symbol"]) <= set(Purpose)
    assert set(bank.account["frequency"]) <= set(Frequency)
    assert set(bank.client["gender"]) <= {"M", "F"}
    assert set(t["bank"]) <= set(PARTNER_BANKS) | {""}
    assert set(bank.order["bank_to"]) <= set(PARTNER_BANKS)
    assert set(bank.card["card_type"]) <= {"classic", "junior", "gold"}
    assert set(bank.loan["status"]) <= {"A", "B", "C", "D"}
    assert (t["amount"] > 0).all()


def test_type_operation_purpose_combinations_mirror_the_real_data(bank):
    t = bank.trans
    combos = set(zip(t["type"], t["operation"], t["k_symbol"], strict=True))
    allowed = {(str(a), str(b), str(c)) for a, b, c, _ in synthetic.KIND_CODES.values()}
    assert combos <= allowed
    card = t[t["operation"] == str(Operation.CARD_WITHDRAWAL)]
    assert (card["type"] == str(TxnType.DEBIT)).all()  # VYDAJ + VYBER KARTOU
    fees = t[t["k_symbol"] == str(Purpose.STATEMENT)]
    assert (fees["operation"] == str(Operation.CASH_WITHDRAWAL)).all()  # VYDAJ + VYBER + SLUZBY
    interest = t[t["k_symbol"] == str(Purpose.INTEREST)]
    assert (interest["operation"] == str(Operation.NONE)).all()
    transfer = t["operation"].isin([str(Operation.REMITTANCE), str(Operation.COLLECTION)])
    assert (t.loc[transfer, "bank"] != "").all() and (t.loc[~transfer, "bank"] == "").all()


def test_month_end_postings(trans):
    system = trans[trans["k_symbol"].isin([str(Purpose.INTEREST), str(Purpose.STATEMENT)])]
    assert system["ts"].dt.is_month_end.all()
    counts = system.groupby(["account_id", system["ts"].dt.to_period("M"), "k_symbol"]).size()
    assert (counts == 1).all()


def test_transactions_carry_a_time_of_day(bank):
    hours = bank.trans["ts"].dt.hour
    assert hours.nunique() >= 18
    assert (bank.trans["ts"].dt.second != 0).mean() > 0.5


def test_districts_are_the_77_in_8_regions(bank):
    d = bank.district
    assert len(d) == 77 and d["district_id"].tolist() == list(range(1, 78))
    assert set(d["region"]) == set(REGIONS)
    assert d.loc[0, "district_name"] == "Hl.m. Praha" and d.loc[0, "region"] == "Prague"
    assert d["district_name"].tolist() == [name for name, _ in DISTRICTS]
    assert d["average_salary"].between(8000, 13000).all()
    assert d["average_salary"].idxmax() == 0
    assert d["num_inhabitants"].idxmax() == 0


def test_clients_and_accounts_are_plausible():
    bank = generate_bank(SyntheticConfig(n_accounts=300, months=1, seed=2))
    born = bank.client["birth_date"]
    assert born.min() >= pd.Timestamp("1920-01-01") and born.max() <= pd.Timestamp("1980-12-31")
    assert 0.4 < (bank.client["gender"] == "F").mean() < 0.6
    assert (bank.account["frequency"] == str(Frequency.MONTHLY)).mean() > 0.85
    assert bank.client["district_id"].between(1, 77).all()


def test_row_count_scales_with_accounts_and_months():
    base = len(generate_bank(SyntheticConfig(n_accounts=60, months=6, seed=1)).trans)
    more_accounts = len(generate_bank(SyntheticConfig(n_accounts=120, months=6, seed=1)).trans)
    more_months = len(generate_bank(SyntheticConfig(n_accounts=60, months=12, seed=1)).trans)
    assert base * 1.6 < more_accounts < base * 2.4
    assert base * 1.6 < more_months < base * 2.6


def test_config_for_transactions_hits_the_target():
    config = config_for_transactions(20_000)
    assert config.months == 24 and config.seed == 7
    produced = len(generate_bank(config).trans)
    assert abs(produced - 20_000) <= 0.15 * 20_000


def test_a_window_may_start_mid_month():
    bank = generate_bank(SyntheticConfig(n_accounts=20, months=3, start="1996-03-15", seed=4))
    ts = bank.trans["ts"]
    assert ts.min() >= pd.Timestamp("1996-03-15") and ts.max() < pd.Timestamp("1996-06-01")


def test_progress_reports_each_stage():
    seen: list[str] = []
    generate_bank(SyntheticConfig(n_accounts=5, months=2), progress=seen.append)
    assert len(seen) >= 6 and seen[-1] == "done"


@pytest.mark.parametrize("form", ["asc", "tsv"])
def test_round_trip_through_the_czech_files_is_all_valid(bank, tmp_path, form):
    try:
        from finsentry.datasets import czech
    except ImportError as exc:  # must fail loudly, not skip: the round trip is the contract
        pytest.fail(f"finsentry.datasets.czech is not available: {exc}")
    paths = czech.write_tables(bank, tmp_path, form=form)
    assert paths
    tables, quarantine = czech.read_tables(tmp_path)
    assert quarantine.empty, quarantine.head()
    result = czech.to_canonical(tables)
    assert len(result.rejected) == 0, result.reason_counts()
    assert len(result.valid) == len(bank.trans)
