"""Features: point-in-time semantics and batch/incremental parity."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from finsentry.features import (
    FEATURE_COLUMNS,
    HISTORY_CAP,
    AccountProfile,
    compute_features,
    update_profiles,
)
from finsentry.schema import validate_frame
from tests.factories import small_bank


def txn(trans_id, account, ts, amount, direction="debit", operation="card_withdrawal",
        k_symbol="none", partner_bank="", partner_account="", before=None, after=None):
    """One canonical transaction; balances consistent unless given."""
    if before is None:
        before = 10_000.0
    signed = -amount if direction == "debit" else amount
    if after is None:
        after = before + signed
    ttype = {"debit": "cash_withdrawal" if operation == "card_withdrawal" else "debit",
             "credit": "credit"}[direction]
    channel = {"card_withdrawal": "card", "cash_credit": "branch", "cash_withdrawal": "branch",
               "collection_other_bank": "transfer", "remittance_other_bank": "transfer",
               "none": "system"}[operation]
    return {
        "trans_id": str(trans_id), "account_id": str(account), "client_id": f"c{account}",
        "ts": pd.Timestamp(ts), "amount": float(amount), "direction": direction, "type": ttype,
        "operation": operation, "k_symbol": k_symbol, "partner_bank": partner_bank,
        "partner_account": partner_account, "balance_before": before, "balance_after": after,
        "channel": channel, "frequency": "monthly", "client_age": 40.0, "client_gender": "F",
        "district_id": 1, "region": "Prague",
    }


def random_history(n_accounts=5, n=120, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    tid = 0
    ops = ["card_withdrawal", "cash_withdrawal", "remittance_other_bank", "cash_credit",
           "collection_other_bank", "none"]
    for a in range(n_accounts):
        t = pd.Timestamp("1996-01-01 08:00")
        balance = 5000.0
        for _ in range(n):
            t += pd.Timedelta(minutes=int(rng.integers(1, 4000)))
            op = ops[int(rng.integers(0, len(ops)))]
            direction = "credit" if op in ("cash_credit", "collection_other_bank") else "debit"
            if op == "none":
                direction = "credit" if rng.random() < 0.5 else "debit"
            amount = float(np.round(rng.lognormal(6, 1), 2))
            partner = ("", "")
            if op in ("remittance_other_bank", "collection_other_bank"):
                bank = ["AB", "CD", "EF"][int(rng.integers(0, 3))]
                partner = (bank, str(int(rng.integers(0, 6))))
            row = txn(tid, a, t, amount, direction, op, partner_bank=partner[0],
                      partner_account=partner[1], before=balance)
            balance = row["balance_after"]
            rows.append(row)
            tid += 1
    frame = pd.DataFrame(rows)
    return frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)  # shuffled input


def test_batch_and_incremental_forms_agree_on_the_same_sequence():
    frame = random_history()
    batch = compute_features(frame)
    # one transaction at a time, in each account's time order
    profiles: dict[str, AccountProfile] = {}
    incremental = pd.DataFrame(index=frame.index, columns=list(FEATURE_COLUMNS), dtype=float)
    for idx in frame.sort_values(["account_id", "ts"]).index:
        row = frame.loc[idx]
        profile = profiles.setdefault(row["account_id"], AccountProfile(row["account_id"]))
        # round-trip through the stored form, as the scorer does between invocations
        profile = AccountProfile.from_dict(profile.to_dict())
        profiles[row["account_id"]] = profile
        incremental.loc[idx] = pd.Series(profile.update(row.to_dict()))
    np.testing.assert_array_equal(batch.to_numpy(), incremental.to_numpy(dtype=float))


def test_batches_of_any_split_give_the_batch_features():
    frame = random_history(seed=3).sort_values("ts").reset_index(drop=True)
    batch = compute_features(frame)
    profiles: dict[str, AccountProfile] = {}
    chunks = np.array_split(np.arange(len(frame)), 7)
    parts = [update_profiles(profiles, frame.iloc[chunk]) for chunk in chunks]
    streamed = pd.concat(parts)
    np.testing.assert_array_equal(batch.to_numpy(), streamed.loc[batch.index].to_numpy())


def test_features_use_only_the_past():
    frame = random_history(n_accounts=2, n=60, seed=5)
    full = compute_features(frame)
    cut = frame["ts"].quantile(0.5)
    past = frame[frame["ts"] <= cut]
    np.testing.assert_array_equal(full.loc[past.index].to_numpy(),
                                  compute_features(past).to_numpy())


def test_amount_spike_and_novel_partner_and_balance_error_show():
    rows = [txn(i, 1, pd.Timestamp("1996-01-01 12:00") + pd.Timedelta(days=i), 100.0 + i % 3)
            for i in range(30)]
    rows.append(txn(99, 1, "1996-02-05 12:00", 2000.0))  # 20x the usual card amount
    rows.append(txn(100, 1, "1996-02-06 12:00", 300.0, operation="remittance_other_bank",
                    partner_bank="XY", partner_account="123"))
    rows.append(txn(101, 1, "1996-02-07 12:00", 50.0, before=1000.0, after=960.0))
    feats = compute_features(pd.DataFrame(rows))
    spike = feats.iloc[30]
    assert spike["amount_z"] > 10
    assert np.exp(spike["amount_ratio_log"]) == pytest.approx(2001 / 102, rel=0.05)
    assert feats.iloc[31]["new_partner_account"] == 1.0
    assert feats.iloc[31]["new_partner_bank"] == 1.0
    assert feats.iloc[32]["balance_error"] == pytest.approx(10.0)
    assert feats.iloc[:30]["balance_error"].max() == 0.0


def test_velocity_hour_duplicate_decimal_and_pass_through():
    base = pd.Timestamp("1996-03-01")
    rows = [txn(i, 7, base + pd.Timedelta(days=i, hours=18), 100.0) for i in range(20)]
    t = base + pd.Timedelta(days=25, hours=3)
    rows += [txn(100 + k, 7, t + pd.Timedelta(minutes=5 * k), 20.0 + k) for k in range(4)]
    rows.append(txn(200, 7, base + pd.Timedelta(days=26, hours=18), 100.0))
    rows.append(txn(201, 7, base + pd.Timedelta(days=26, hours=18, minutes=1), 100.0))  # duplicate
    rows.append(txn(202, 7, base + pd.Timedelta(days=27, hours=18), 1000.0))  # 10x the last
    rows.append(txn(203, 7, base + pd.Timedelta(days=28, hours=9), 5000.0, direction="credit",
                    operation="cash_credit"))
    rows.append(txn(204, 7, base + pd.Timedelta(days=28, hours=10), 4800.0,
                    operation="remittance_other_bank", partner_bank="QQ", partner_account="9"))
    feats = compute_features(pd.DataFrame(rows))
    assert list(feats.iloc[20:24]["n_last_hour"]) == [0.0, 1.0, 2.0, 3.0]
    assert feats.iloc[20]["hour_rarity"] > feats.iloc[19]["hour_rarity"] + 1.5
    assert feats.iloc[20]["hour_distance"] == 9.0  # 03:00 vs a habit of 18:00 (circular)
    assert feats.iloc[19]["hour_distance"] == 0.0
    assert feats.iloc[25]["duplicate_recent"] == 1.0
    assert feats.iloc[24]["duplicate_recent"] == 0.0
    assert feats.iloc[26]["decimal_shift"] == 1.0
    assert feats.iloc[:26]["decimal_shift"].max() == 0.0
    assert feats.iloc[28]["rapid_pass_through"] == 1.0
    assert feats.iloc[:28]["rapid_pass_through"].max() == 0.0


def test_profile_is_small_and_rejects_a_foreign_layout():
    profile = AccountProfile("1")
    profile.update(txn(1, 1, "1996-01-01", 10.0))
    item = profile.to_dict()
    assert sum(len(v) for v in item.values()) < 8_000
    assert AccountProfile.from_dict(item).seen == 1
    with pytest.raises(ValueError, match="foreign layout"):
        AccountProfile.from_dict({"account_id": "1", "f": "AAAA", "i": "AAAA"})


def test_test_fixture_rows_are_valid_canonical_records():
    result = validate_frame(random_history(n_accounts=1, n=20))
    assert len(result.rejected) == 0


def test_history_count_saturates_so_account_age_is_no_clock():
    history = random_history(n_accounts=1, n=150, seed=4)
    feats = compute_features(history)
    order = np.argsort(history["ts"].to_numpy(), kind="stable")
    counts = np.expm1(feats["history_count_log"].to_numpy()[order])
    np.testing.assert_allclose(counts[:100], np.arange(100))
    np.testing.assert_allclose(counts[100:], HISTORY_CAP)


def test_the_sequence_columns_from_stored_profiles_are_the_batch_ones_whatever_the_batches():
    """The LSTM's inputs in the stream: ``update_profiles_with_sequence`` over random batch
    boundaries, through the stored item (``q`` and the ring round-trip), equals
    ``sequence_columns`` over the whole history, bit for bit."""
    from finsentry.features import SEQUENCE_COLUMNS, sequence_columns, update_profiles_with_sequence
    from finsentry.stream.state import AccountItem, decode, encode_account

    v = small_bank().transactions.valid.sort_values("ts", kind="stable").reset_index(drop=True)
    rng = np.random.default_rng(3)
    cuts = np.r_[0, np.sort(rng.choice(np.arange(1, len(v)), 25, replace=False)), len(v)]
    profiles: dict = {}
    outs = []
    for a, b in zip(cuts[:-1], cuts[1:], strict=True):
        outs.append(update_profiles_with_sequence(profiles, v.iloc[a:b]))
        profiles = {k: decode(encode_account(AccountItem(p), 1)).profile for k, p in profiles.items()}
    got = pd.concat(outs)[list(SEQUENCE_COLUMNS)].to_numpy()
    np.testing.assert_array_equal(got, sequence_columns(v).to_numpy())
    assert (got[:, 3 + 4 * 7] > 0).any()  # rows with a full window of eight earlier steps


def test_the_sequence_fold_of_a_whole_batch_equals_the_per_account_reference():
    """``update_sequences`` folds every account of a batch at once; the per-account reference
    (``_fold_sequences_per_account``, also what a damaged stored state goes through) gives the
    same columns and the same ``q``, bit for bit, over random batches of random histories."""
    from finsentry import features as F

    v = random_history(n_accounts=9, n=60, seed=5)
    v = v.sort_values("ts", kind="stable").reset_index(drop=True)
    rng = np.random.default_rng(11)
    cuts = np.r_[0, np.sort(rng.choice(np.arange(1, len(v)), 30, replace=False)), len(v)]
    fast: dict = {}
    slow: dict = {}
    for a, b in zip(cuts[:-1], cuts[1:], strict=True):
        part = v.iloc[a:b]
        got = F.update_sequences(fast, part)
        batch = F._Batch(slow, part)
        want = F._fold_sequences_per_account(batch, *F._sequence_inputs(batch.rows))
        np.testing.assert_array_equal(got.to_numpy(), want.to_numpy())
        assert list(got.index) == list(part.index)
        for acc in slow:
            np.testing.assert_array_equal(fast[acc].q, slow[acc].q)
        update_profiles(fast, part)
        update_profiles(slow, part)
    assert max(int(np.count_nonzero(p.q[:8])) for p in fast.values()) == 8


def test_a_damaged_sequence_state_takes_the_per_account_path():
    """A stored ``q`` with more steps than the account has transactions cannot be laid out: the
    batch goes through the per-account reference, which refuses it as it always did."""
    from finsentry.features import update_sequences

    v = random_history(n_accounts=2, n=5, seed=1)
    profiles: dict = {}
    update_sequences(profiles, v.iloc[:4])
    update_profiles(profiles, v.iloc[:4])
    damaged = next(iter(profiles.values()))
    damaged.q[:8] = 17.0  # eight steps, fewer transactions
    damaged.f[0] = 1.0
    with pytest.raises(ValueError):
        update_sequences(profiles, v.iloc[4:])
