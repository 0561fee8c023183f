"""The streaming core: counts add up, redeliveries are no-ops, rules-only fallback, parity."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from finsentry.detectors import make_detector
from finsentry.features import AccountProfile, features_with_sequence
from finsentry.partners import PartnerProfile
from finsentry.schema import to_record
from finsentry.scoring import score_transactions
from finsentry.stream.scorer import StreamScorer
from tests.factories import small_bank


def records_and_model():
    v = small_bank().transactions.valid
    cut = v["ts"].quantile(0.7)
    train, test = v[v["ts"] < cut], v[v["ts"] >= cut].sort_values("ts", kind="stable")
    model = make_detector("ensemble").fit(features_with_sequence(train))
    profiles: dict[str, AccountProfile] = {}
    partners: dict[str, PartnerProfile] = {}
    StreamScorer(None).score_batch([to_record(r) for _, r in train.iterrows()], profiles, partners=partners)
    return v, train, test, model, profiles, partners


def test_stream_flags_what_batch_scoring_flags_and_counts_add_up():
    """Parity: the stream's features (account and partner profiles, the sequence columns) and
    scores are the batch's."""
    v, train, test, model, profiles, partners = records_and_model()
    scorer = StreamScorer(model, threshold=0.99, model_version="m1")
    chunks = [test.iloc[idx] for idx in np.array_split(np.arange(len(test)), 5)]
    outcomes = [scorer.score_batch([to_record(r) for _, r in chunk.iterrows()], profiles, partners=partners)
                for chunk in chunks]  # fmt: skip
    streamed = pd.concat([o.scored for o in outcomes]).set_index("trans_id")
    features = features_with_sequence(v).loc[test.index]  # every curated column, the LSTM's sequence ones too
    stream_features = pd.concat([o.features for o in outcomes]).set_axis(
        pd.concat([o.scored["trans_id"] for o in outcomes]))
    np.testing.assert_array_equal(stream_features.loc[test["trans_id"]].to_numpy(), features.to_numpy())
    assert features["partner_age_log"].gt(0).any() and features["partner_senders_recent_log"].gt(0).any()
    batch = score_transactions(model, features, budget_threshold=0.99, model_version="m1")
    expected = pd.Series(batch.scores, index=test["trans_id"].to_numpy())
    np.testing.assert_allclose(streamed.loc[expected.index, "score"].to_numpy(), expected.to_numpy())
    assert sum(o.received for o in outcomes) == len(test)
    assert all(o.mode == "model" for o in outcomes)


def test_a_redelivered_batch_changes_nothing_and_alerts_nothing():
    v, train, test, model, profiles, partners = records_and_model()
    scorer = StreamScorer(model, threshold=0.5)
    batch = [to_record(r) for _, r in test.head(40).iterrows()]
    first = scorer.score_batch(batch, profiles, partners=partners)
    state = {a: p.to_dict() for a, p in profiles.items()}
    partner_state = {k: p.to_dict() for k, p in partners.items()}
    again = scorer.score_batch(batch, profiles, partners=partners)
    assert len(again.scored) == 0 and len(again.redelivered) == 40 and not again.touched_partners
    assert {a: p.to_dict() for a, p in profiles.items()} == state
    assert {k: p.to_dict() for k, p in partners.items()} == partner_state and first.touched_partners
    assert len(first.alerts) > 0 and len(again.alerts) == 0


def test_bad_records_are_quarantined_with_reasons_and_rules_only_mode_still_scores():
    v = small_bank().transactions.valid
    good = [to_record(r) for _, r in v.head(5).iterrows()]
    dup_in_batch = dict(good[0])
    bad = [{"amount": "NaN"}, "not an object", {**good[1], "trans_id": "x1", "amount": -3},
           {**good[2], "trans_id": "x2", "account_id": "nope"}, {**good[3], "trans_id": "x" * 2_000_000},
           dup_in_batch]  # fmt: skip
    out = StreamScorer(None).score_batch(good + bad, {}, known_accounts=v["account_id"].unique())
    assert out.mode == "rules_only"
    assert out.counts()["received"] == 11 and len(out.scored) == 5 and len(out.quarantined) == 6
    assert set(out.quarantined["reason"]) == {"missing_field", "malformed", "negative_amount",
                                              "unknown_account", "too_long", "duplicate_id"}  # fmt: skip
    assert (out.scored["score"].isin([0.0, 1.0])).all()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(
    st.binary(max_size=50).map(lambda b: b.decode("latin-1")),
    st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=20),
                 lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=12), kids, max_size=6),
                 max_leaves=20),
), max_size=12))  # fmt: skip
def test_arbitrary_input_never_crashes_and_counts_add_up(payloads):
    records = []
    for p in payloads:
        try:
            records.append(json.loads(p) if isinstance(p, str) else p)
        except ValueError:
            records.append(p)
    out = StreamScorer(None).score_batch(records, {})
    assert out.received == len(records)


def test_partner_profiles_keep_their_own_redelivery_guard():
    """A retry after a lost partner write folds the partner in without rescoring; a retry after
    a lost account write rescores without folding the partner twice."""
    import copy

    v, train, test, model, profiles, partners = records_and_model()
    scorer = StreamScorer(model, threshold=0.5)
    batch = [to_record(r) for _, r in test.head(60).iterrows()]
    accounts_before, partners_before = copy.deepcopy(profiles), copy.deepcopy(partners)
    first = scorer.score_batch(batch, profiles, partners=partners)
    assert first.touched_partners
    after = {k: p.to_dict() for k, p in partners.items()}
    lost_partner_write = copy.deepcopy(partners_before)
    retry = scorer.score_batch(batch, profiles, partners=lost_partner_write)
    assert len(retry.redelivered) == 60 and len(retry.folded) == len(first.folded)
    assert {k: p.to_dict() for k, p in lost_partner_write.items()} == after
    lost_account_write = copy.deepcopy(accounts_before)
    rescored = scorer.score_batch(batch, lost_account_write, partners=partners)
    assert len(rescored.scored) == 60 and rescored.folded.empty
    assert {k: p.to_dict() for k, p in partners.items()} == after


def test_the_model_input_row_built_as_one_block_equals_the_concatenation():
    """``_curated`` builds the model's input as one float block when its parts share the index:
    the same frame (columns, order, index, values bit for bit) as ``pd.concat`` of the parts;
    parts on another index or of another dtype take ``pd.concat`` itself."""
    from finsentry.features import FEATURE_COLUMNS, SEQUENCE_COLUMNS
    from finsentry.partners import PARTNER_FEATURE_COLUMNS
    from finsentry.stream.scorer import _curated

    rng = np.random.default_rng(3)
    account = pd.DataFrame(rng.normal(size=(7, len(FEATURE_COLUMNS) + len(SEQUENCE_COLUMNS))),
                           columns=[*SEQUENCE_COLUMNS, *FEATURE_COLUMNS])  # fmt: skip
    account.iloc[2, 4] = np.nan
    partner = pd.DataFrame(rng.normal(size=(7, len(PARTNER_FEATURE_COLUMNS))), columns=list(PARTNER_FEATURE_COLUMNS))
    want = pd.concat([account[list(FEATURE_COLUMNS)], partner, account[list(SEQUENCE_COLUMNS)]], axis=1)
    got = _curated(account, partner)
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    assert np.array_equal(got.to_numpy().view(np.int64), want.to_numpy().view(np.int64))
    shifted = partner.set_axis(range(10, 17))  # another index: aligned by pd.concat, as before
    pd.testing.assert_frame_equal(_curated(account, shifted),
                                  pd.concat([account[list(FEATURE_COLUMNS)], shifted,
                                             account[list(SEQUENCE_COLUMNS)]], axis=1))  # fmt: skip
