"""Counterparty features: point-in-time semantics, no-partner rows, batch/incremental parity."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finsentry.partners import (
    PARTNER_FEATURE_COLUMNS,
    PartnerProfile,
    compute_partner_features,
    key_time_order,
    partner_key,
    update_partner_profiles,
)
from tests.test_features import random_history, txn


def shared_partners(n: int = 300, seed: int = 0) -> pd.DataFrame:
    """Many accounts paying a few shared partners (and some rows without a partner), shuffled."""
    rng = np.random.default_rng(seed)
    rows = []
    t = pd.Timestamp("1997-03-01 08:00")
    for k in range(n):
        t += pd.Timedelta(minutes=int(rng.integers(0, 900)))  # 0: ties in time across accounts
        partner = ("", "") if rng.random() < 0.2 else (["AB", "CD"][int(rng.integers(0, 2))], str(rng.integers(0, 4)))
        rows.append(txn(k, int(rng.integers(0, 40)), t, float(np.round(rng.lognormal(6, 1), 2)),
                        operation="remittance_other_bank", partner_bank=partner[0], partner_account=partner[1]))
    return pd.DataFrame(rows).sample(frac=1.0, random_state=seed).reset_index(drop=True)


FRAME = shared_partners()
HISTORY = random_history(n_accounts=4, n=60)


def test_rows_without_partner_are_zero_and_keys_follow_the_account_features():
    frame = FRAME
    got = compute_partner_features(frame)
    assert list(got.columns) == list(PARTNER_FEATURE_COLUMNS) and got.index.equals(frame.index)
    none = partner_key(frame) == ""
    assert none.any() and (got[none] == 0.0).all().all()
    assert not got.isna().any().any() and np.isfinite(got.to_numpy()).all()
    only_account = pd.DataFrame([txn(1, 1, "1997-01-01", 10.0, partner_account="9")])
    assert partner_key(only_account).tolist() == ["/9"]


def test_features_use_only_the_partners_past():
    frame = FRAME
    full = compute_partner_features(frame)
    cut = frame["ts"].sort_values().iloc[len(frame) // 2]
    early = frame[frame["ts"] < cut]
    np.testing.assert_array_equal(compute_partner_features(early).to_numpy(), full.loc[early.index].to_numpy())


def test_new_partner_age_volume_and_senders():
    rows = [txn(1, 1, "1997-01-01 09:00", 100.0, partner_bank="AB", partner_account="7"),
            txn(2, 2, "1997-01-01 10:00", 100.0, partner_bank="AB", partner_account="7"),
            txn(3, 3, "1997-01-03 10:00", 100.0, partner_bank="AB", partner_account="7"),
            txn(4, 4, "1997-01-03 11:00", 5000.0, partner_bank="AB", partner_account="7"),
            txn(5, 1, "1997-01-30 11:00", 100.0, partner_bank="AB", partner_account="7")]  # fmt: skip
    got = compute_partner_features(pd.DataFrame(rows)).set_axis(range(1, 6))
    assert got["partner_new"].tolist() == [1.0, 0.0, 0.0, 0.0, 0.0]
    assert got.loc[1].drop("partner_new").abs().sum() == 0.0  # a new partner: nothing known
    assert got.loc[3, "partner_age_log"] == pytest.approx(math.log1p(2.0 + 1 / 24))
    assert got.loc[2, "partner_senders_recent_log"] == pytest.approx(math.log1p(1.0), rel=0.01)
    assert got.loc[4, "partner_senders_recent_log"] == pytest.approx(math.log1p(3.0), rel=0.01)
    assert got.loc[5, "partner_senders_recent_log"] == 0.0  # nobody in the last 7 days
    assert got.loc[2, "partner_volume_ratio"] == 0.0  # no full day yet
    assert got.loc[4, "partner_volume_ratio"] == pytest.approx(math.log1p(5100.0 / 200.0))
    assert got.loc[5, "partner_senders_ratio"] < 0 < got.loc[4, "partner_senders_ratio"]


def test_profile_round_trips_and_rejects_a_foreign_layout():
    profiles: dict[str, PartnerProfile] = {}
    update_partner_profiles(profiles, FRAME)
    p = next(iter(profiles.values()))
    back = PartnerProfile.from_dict(p.to_dict())
    assert np.array_equal(back.f, p.f) and np.array_equal(back.i, p.i) and back.partner == p.partner
    assert len(str(p.to_dict())) < 1000
    with pytest.raises(ValueError, match="foreign layout"):
        PartnerProfile.from_dict({**p.to_dict(), "f": "AAAA"})


@settings(max_examples=25, deadline=None)
@given(cuts=st.lists(st.integers(1, len(FRAME) - 1), max_size=8, unique=True), history=st.booleans())
def test_batches_of_any_split_give_the_batch_features(cuts, history):
    """The stream's batches (in time order, profiles stored between them) = the batch form."""
    frame = HISTORY if history else FRAME
    cuts = sorted(c for c in cuts if c < len(frame))
    expected = compute_partner_features(frame)
    replay = frame.sort_values("ts", kind="stable")
    stored: dict[str, dict] = {}
    parts = []
    for start, end in zip([0, *cuts], [*cuts, len(replay)], strict=True):
        chunk = replay.iloc[start:end]
        keys = set(partner_key(chunk))
        profiles = {k: PartnerProfile.from_dict(stored[k]) for k in keys if k in stored}
        parts.append(update_partner_profiles(profiles, chunk))
        stored.update({k: p.to_dict() for k, p in profiles.items()})
    streaming = pd.concat(parts).loc[frame.index]
    np.testing.assert_array_equal(streaming.to_numpy(), expected.to_numpy())


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FFFF,
                                                         exclude_categories=["Cs"]), max_size=3),
                          st.integers(-3, 3)), max_size=40))  # fmt: skip
def test_key_time_order_is_the_stable_pandas_sort(rows):
    """The lexsort of the stream's batches orders rows as pandas' stable sort by key (any text:
    accents, other planes, ""), time (ties), then position."""
    keys = np.array([k for k, _ in rows], dtype=object)
    ts = (np.array([t for _, t in rows], dtype=np.int64) * 60 * 10**9).astype("datetime64[ns]")
    frame = pd.DataFrame({"k": pd.Series(keys, dtype="str"), "t": ts, "p": np.arange(len(rows))})
    expected = frame.sort_values(["k", "t", "p"], kind="stable")["p"].to_numpy()
    assert key_time_order(keys, ts).tolist() == expected.tolist()


def test_key_time_order_leaves_missing_values_to_pandas():
    ts = np.array(["1998-01-01", "NaT"], dtype="datetime64[ns]")
    assert key_time_order(np.array(["a", "b"], dtype=object), ts) is None
    assert key_time_order(np.array(["a", None], dtype=object), ts[:1].repeat(2)) is None
    assert key_time_order(np.array(["a", "b"], dtype=object), np.array(["x", "y"], dtype=object)) is None
