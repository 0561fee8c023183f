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
