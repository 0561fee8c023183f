"""The stream validator's fast path gives exactly the reference validator's result."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from finsentry.schema import TRANSACTION_COLUMNS, to_record, validate_records
from finsentry.stream.validation import validate_stream_records
from tests.factories import small_bank

GOOD = [to_record(r) for _, r in small_bank().transactions.valid.head(8).iterrows()]
values = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**17), st.floats(), st.text(max_size=6),
                   st.sampled_from(["", "debit", "credit", "1998-01-03", "1998-01-03T10:11:12", "1998-13-01",
                                    "x" * 300, "12.5", "card_withdrawal", "M"]),
                   st.lists(st.integers(), max_size=2))  # fmt: skip
mutation = st.dictionaries(st.sampled_from([*TRANSACTION_COLUMNS, "extra"]), values, max_size=3)
record = st.one_of(
    st.tuples(st.integers(0, len(GOOD) - 1), mutation, st.lists(st.sampled_from(TRANSACTION_COLUMNS), max_size=2))
    .map(lambda t: {**{k: v for k, v in GOOD[t[0]].items() if k not in t[2]}, **t[1]}),
    st.integers(), st.text(max_size=5), st.lists(st.integers(), max_size=2),
)


def same(records, known=None):
    ref, fast = validate_records(records, known), validate_stream_records(records, known)
    cols = list(TRANSACTION_COLUMNS)
    pd.testing.assert_frame_equal(fast.valid[cols], ref.valid[cols])
    np.testing.assert_array_equal(fast.valid_positions, ref.valid_positions)
    def reasons(r):
        pairs = zip(r.rejected["reason"], r.rejected["detail"], strict=True)
        return dict(zip(r.rejected_positions.tolist(), pairs, strict=True))

    by_ref, by_fast = reasons(ref), reasons(fast)
    assert by_fast == by_ref
    assert len(fast.valid) + len(fast.rejected) == len(records)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(record, max_size=10), st.booleans())
def test_fast_path_equals_the_reference_validator(records, restrict):
    records = json.loads(json.dumps(records, default=str).replace("Infinity", "1e999"))  # as decoded from a stream
    same(records, known=[GOOD[0]["account_id"], GOOD[3]["account_id"]] if restrict else None)


def test_fast_path_on_clean_records_and_duplicates_across_paths():
    records = [*GOOD, {**GOOD[2], "amount": "7.5"}, dict(GOOD[2]), {**GOOD[4], "trans_id": GOOD[1]["trans_id"]}]
    same(records)
    out = validate_stream_records(records)
    assert len(out.valid) == 8 and sorted(out.rejected["reason"]) == ["duplicate_id", "duplicate_id", "duplicate_id"]


# --- the column-wise fast path (validation._columns) against the per-record check -------------

POISON_VALUES = [
    None, True, False, 2**53, 2**53 - 1, -(2**53), 10**400, -(10**309), 1e300, -0.0, 0.0, 2.5, float("nan"),
    float("inf"),
        "inf", "Infinity", "12", "12.5", "", " ", "c-\ud800", "\udfff", "r\ud83d", "x" * 257, "x" * 256,
        "1998-01-03T10:11:12Z", "1998-01-03T10:11:12+02:00", "1998-01-03 10:11:12-05:30", "9999-12-31T23:59:59",
        "1677-09-21T00:00:00", "1678-01-01T00:00:00", "2261-12-31T23:59:59", "2262-04-12", "1998-13-01",
        "1998-01-03T10:11:12.1234567", "1998-01-03T10:11:12.123456", "\u0661\u0669\u0669\u0668-01-03", "1998-01-03\n",
        "debit", "credit", "card_withdrawal", "M", "F", [1], {"a": 1}, 7, -1, 12.0, "1998-01-03",
        "1998-01-03T10:11", "1998-01-03 10:11:12", "1998-02-30T00:00:00", "2000-01-01T00:00:00.5",
]  # fmt: skip
POISON = st.one_of(
    st.none(), st.booleans(), st.floats(), st.integers(-(2**70), 2**70), st.sampled_from(POISON_VALUES),
    st.text(alphabet=st.characters(codec=None, categories=["Cs", "Nd", "Ll", "Zs"]), max_size=4),
)  # fmt: skip
poisoned = st.tuples(st.integers(0, len(GOOD) - 1),
                     st.dictionaries(st.sampled_from([*TRANSACTION_COLUMNS, "extra"]), POISON, max_size=2),
                     st.lists(st.sampled_from(TRANSACTION_COLUMNS), max_size=1)).map(
    lambda t: {**{k: v for k, v in GOOD[t[0]].items() if k not in t[2]}, **t[1]})  # fmt: skip


def _same_value(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return np.float64(a).tobytes() == np.float64(b).tobytes()
    return type(a) is type(b) and a == b


def _agrees(records, known=None) -> None:
    from finsentry.stream.validation import _columns, _fast_row

    cols, ok = _columns(records, known)
    for j, rec in enumerate(records):
        if ok[j]:
            row = _fast_row(rec, known)
            assert row is not None, rec
            for name in TRANSACTION_COLUMNS:
                v = cols[name][j]
                assert _same_value(v.item() if hasattr(v, "item") else v, row[name]), (name, rec)


def test_columns_accept_no_poison_value_in_any_column():
    """Every poison value in every column, alone and beside clean records of the batch."""
    for name in [*TRANSACTION_COLUMNS, "extra"]:
        for value in POISON_VALUES:
            bad = {**GOOD[1], name: value}
            _agrees([bad])
            _agrees([GOOD[0], bad, GOOD[2]])
            _agrees([GOOD[0], {k: v for k, v in bad.items() if k != "region"}])  # another record lacks a column


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(poisoned, st.sampled_from(GOOD)), min_size=1, max_size=12), st.booleans())
def test_columns_accept_only_what_the_per_record_check_accepts_unchanged(records, restrict):
    """A record the column check accepts is one ``_fast_row`` (screen_record first) accepts,
    with the very same canonical values: the fast path never admits a poison value."""
    _agrees(records, {GOOD[0]["account_id"], GOOD[3]["account_id"]} if restrict else None)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(poisoned, st.sampled_from(GOOD), st.integers(), st.text(max_size=3)), max_size=25),
       st.booleans())  # fmt: skip
def test_batches_with_poison_values_equal_the_reference_validator(records, restrict):
    """Mostly clean batches with poison values (huge integers, surrogates, offsets, extreme dates,
    non-text ids, NaN and infinities): the same result as ``validate_records``."""
    same([dict(r) if isinstance(r, dict) else r for r in records],
         known=[GOOD[0]["account_id"], GOOD[3]["account_id"]] if restrict else None)  # fmt: skip
