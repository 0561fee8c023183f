"""Analyst labels: one validator with reasons, idempotent re-sends, latest verdict wins with history."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finsentry.cli import main
from finsentry.labels import (
    LabelInputError,
    LabelStore,
    current_verdicts,
    empty_history,
    labels_suffice,
    merge_labels,
    parse_label_bytes,
    validate_labels,
)

NOW = pd.Timestamp("2026-12-01 12:00")


def _label(trans_id="T1", verdict="confirmed_fraud", who="ana", when="2026-11-30T10:00:00", note=""):
    return {"trans_id": trans_id, "verdict": verdict, "who": who, "when": when, "note": note}


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (_label(trans_id=" "), "missing_trans_id"),
        (_label(verdict=""), "missing_verdict"),
        (_label(verdict="fraudish"), "unknown_verdict"),
        (_label(who=None), "missing_who"),
        (_label(when=""), "missing_when"),
        (_label(when="yesterday-ish"), "bad_when"),
        (_label(when="2027-01-01"), "future_when"),
        (_label(note="x" * 2001), "too_long"),
        (_label(who="ana\ud800"), "bad_text"),  # a lone surrogate (JSON "\ud800"): no UTF-8 for it
        (_label(note=b"caf\xe9".decode("utf-8", errors="surrogateescape")), "bad_text"),  # latin-1 bytes
        ("not a record", "malformed"),
    ],
)
def test_each_bad_label_is_rejected_with_its_reason(record, reason):
    batch = validate_labels([_label(), record], now=NOW)
    assert len(batch.valid) == 1 and batch.received == 2
    assert batch.rejected["reason"].tolist() == [reason]
    assert batch.rejected["row"].tolist() == [1] and batch.rejected["detail"].iloc[0]


def test_verdicts_are_normalised_and_times_with_a_zone_become_utc():
    batch = validate_labels([_label(verdict=" Dismissed ", when="2026-11-30T11:00:00+01:00"),
                             _label(trans_id="T2", verdict="amount_spike")], now=NOW)  # fmt: skip
    assert batch.valid["verdict"].tolist() == ["dismissed", "amount_spike"]
    assert batch.valid["when"].iloc[0] == pd.Timestamp("2026-11-30 10:00")


def test_a_frame_without_a_required_column_is_one_clear_error():
    with pytest.raises(LabelInputError, match="verdict"):
        validate_labels(pd.DataFrame({"trans_id": ["T1"], "who": ["a"], "when": ["2026-01-01"]}))


def test_re_sending_labels_is_idempotent_and_the_latest_verdict_wins_with_history_kept():
    first = validate_labels([_label(), _label(trans_id="T2", verdict="dismissed")], now=NOW).valid
    merged = merge_labels(empty_history(), first)
    assert (merged.new, merged.repeated) == (2, 0)
    again = merge_labels(merged.history, first)
    assert (again.new, again.repeated) == (0, 2) and len(again.history) == 2
    # a later correction, then an older verdict arriving late: the later 'when' wins
    correction = validate_labels([_label(verdict="dismissed", who="bob", when="2026-12-01T09:00:00"),
                                  _label(verdict="burst", who="eve", when="2026-11-29T09:00:00")],
                                 now=NOW).valid  # fmt: skip
    merged = merge_labels(again.history, correction)
    current = current_verdicts(merged.history).set_index("trans_id")
    assert len(merged.history) == 4
    assert current.loc["T1", "verdict"] == "dismissed" and current.loc["T1", "who"] == "bob"
    assert current.loc["T1", "verdicts"] == 3 and not current.loc["T1", "is_fraud"]


def test_labels_suffice_needs_the_documented_minimum_of_both_kinds():
    rows = [_label(trans_id=f"F{i}") for i in range(30)] + [_label(trans_id=f"D{i}", verdict="dismissed")
                                                            for i in range(29)]  # fmt: skip
    current = current_verdicts(merge_labels(empty_history(), validate_labels(rows, now=NOW).valid).history)
    assert labels_suffice(current)[0] is False
    rows.append(_label(trans_id="D29", verdict="dismissed"))
    current = current_verdicts(merge_labels(empty_history(), validate_labels(rows, now=NOW).valid).history)
    assert labels_suffice(current)[0] is True


def test_cli_label_file_and_single_label_share_one_history(tmp_path, capsys):
    csv = tmp_path / "labels.csv"
    pd.DataFrame([_label(), _label(trans_id="T2", verdict="bogus")]).to_csv(csv, index=False)
    out = tmp_path / "out"
    assert main(["label", "--labels", str(csv), "--out", str(out)]) == 0
    assert main(["label", "--labels", str(csv), "--out", str(out)]) == 0  # idempotent
    text = capsys.readouterr().out
    assert "1 new" in text and "1 already known" in text and "unknown_verdict" in text
    assert len(pd.read_csv(out / "feedback" / "rejected.csv")) == 2  # both sends' rejects, with reasons
    assert main(["label", "--trans-id", "T1", "--verdict", "dismissed", "--who", "bob", "--out", str(out)]) == 0
    store = LabelStore(out)
    assert len(store.history()) == 2
    assert store.current().set_index("trans_id").loc["T1", "verdict"] == "dismissed"


def test_cli_single_bad_label_is_a_one_line_error_status(tmp_path, capsys):
    code = main(["label", "--trans-id", "T1", "--verdict", "nope", "--who", "a", "--out", str(tmp_path)])
    assert code == 2
    assert main(["label", "--trans-id", "T1", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: finsentry label: --trans-id needs --verdict") and len(err.splitlines()) == 1


def test_cli_reads_json_lines_with_a_malformed_line(tmp_path, capsys):
    path = tmp_path / "labels.jsonl"
    path.write_text('{"trans_id": "T1", "verdict": "dismissed", "who": "a", "when": "2026-01-01"}\n{oops\n')
    assert main(["label", "--labels", str(path), "--out", str(tmp_path / "o")]) == 0
    assert "malformed" in capsys.readouterr().out


def test_a_label_file_is_judged_row_by_row_whatever_one_row_holds():
    """One bad row (bytes that are not UTF-8, a lone surrogate, more fields than the header, a
    line that is not JSON) is rejected with its reason; the file's other rows are accepted."""
    good = b"T1,dismissed,ana,2026-11-30T10:00:00\n"
    csv_body = (b"\xef\xbb\xbftrans_id,verdict,who,when,note\n" + good + b"T2,dismissed,\xff\xfe,2026-11-30\n"
                b"T3,dismissed,ana,2026-11-30,a note,one field too many\n\n")  # fmt: skip
    batch = validate_labels(parse_label_bytes("export.csv", csv_body), now=NOW)
    assert batch.valid["trans_id"].tolist() == ["T1"] and batch.valid["note"].tolist() == [""]
    assert batch.rejected["reason"].tolist() == ["bad_text", "malformed"] and batch.received == 3
    json_body = (b'{"trans_id": "T1", "verdict": "dismissed", "who": "ana", "when": "2026-11-30"}\n'
                 b'{"trans_id": "T2\\ud800", "verdict": "dismissed", "who": "ana", "when": "2026-11-30"}\n'
                 b'{"trans_id": "T3\xff", "verdict": "dismissed", "who": "ana", "when": "2026-11-30"}\n{oops\n')
    batch = validate_labels(parse_label_bytes("export.jsonl", json_body), now=NOW)
    assert batch.valid["trans_id"].tolist() == ["T1"]
    assert batch.rejected["reason"].tolist() == ["bad_text", "bad_text", "malformed"]
    assert batch.rejected["raw"].map(lambda r: r.encode("utf-8") and True).all()  # the reasons file is writable
    with pytest.raises(LabelInputError, match="lack the column"):
        parse_label_bytes("export.csv", b"trans_id;verdict;who\nT1;dismissed;a\n")


@pytest.mark.parametrize("sep", [",", ";", "\t", "|"])
def test_a_label_csv_is_read_with_the_separator_its_header_uses(sep):
    """A case system's export separated by ';' (European exports), a tab or '|' reads as one by
    ','; a quoted note holding a comma stays one field."""
    body = sep.join(["trans_id", "verdict", "who", "when", "note"]) + "\n"
    body += sep.join(["T1", "dismissed", "ana", "2026-11-30", '"known, trusted"']) + "\n"
    batch = validate_labels(parse_label_bytes("export.csv", body.encode()), now=NOW)
    assert batch.valid[["trans_id", "note"]].values.tolist() == [["T1", "known, trusted"]] and batch.rejected.empty


@settings(max_examples=150, deadline=None)
@given(body=st.binary(max_size=300) | st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass")),
       suffix=st.sampled_from([".csv", ".jsonl"]))  # fmt: skip
def test_any_label_file_ends_in_labels_rejections_or_one_clear_error(body, suffix):
    header = b"trans_id,verdict,who,when,note\n" if suffix == ".csv" else b""
    try:
        batch = validate_labels(parse_label_bytes("x" + suffix, header + body), now=NOW)
    except LabelInputError:
        return
    assert len(batch.valid) + len(batch.rejected) == batch.received
    for frame in (batch.valid, batch.rejected):  # what is stored and what is reported must be UTF-8
        for column in frame.columns:
            frame[column].map(lambda v: str(v).encode("utf-8"))
