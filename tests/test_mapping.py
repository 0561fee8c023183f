"""Foreign tables mapped onto the canonical record, and `finsentry score --mapping` end to end."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from finsentry.cli import main
from finsentry.features import compute_features
from finsentry.mapping import (
    MappingError,
    apply_mapping,
    load_mapped,
    load_mapping,
    parse_mapping,
    quarantine_path,
    read_table,
)
from finsentry.schema import NOT_UTF8, validate_frame
from tests.factories import small_bank
from tests.foreign import CARD_CSV, CARD_MAPPING, EXAMPLE_CSV, EXAMPLE_MAPPING, card_table, to_foreign


@pytest.fixture(scope="module")
def canonical() -> pd.DataFrame:
    return small_bank().transactions.valid


def _mapped_from(canonical: pd.DataFrame, tmp_path) -> pd.DataFrame:
    path = tmp_path / "export.csv"
    to_foreign(canonical).to_csv(path, sep=";", index=False)
    mapped = load_mapped(path, EXAMPLE_MAPPING)
    assert mapped.result.rejected.empty, mapped.result.rejected.head()
    return mapped.result.valid


def test_the_example_mapping_round_trips_the_canonical_record(canonical, tmp_path):
    valid = _mapped_from(canonical, tmp_path)
    assert len(valid) == len(canonical)
    assert (valid["trans_id"] == "T" + canonical["trans_id"]).all()
    assert (valid["account_id"] == "AC-" + canonical["account_id"]).all()
    for col in ("direction", "operation", "k_symbol", "channel", "partner_bank", "partner_account", "region"):
        assert (valid[col] == canonical[col]).all(), col
    # minute resolution in the export's date format
    assert (valid["ts"] == canonical["ts"].dt.floor("min")).all()
    for col in ("amount", "balance_after", "balance_before"):  # balance_before derived
        np.testing.assert_allclose(valid[col], canonical[col], atol=0.006, err_msg=col)
    # type is derived from direction: it differs from the source only for the rare Czech VYBER
    # type (cash withdrawal), which becomes a debit
    same_type = valid["type"] == canonical["type"]
    assert same_type.mean() > 0.98
    assert set(canonical.loc[~same_type, "type"]) == {"cash_withdrawal"}


def test_features_of_a_mapped_table_equal_those_of_the_canonical_one(canonical, tmp_path):
    same_minute = canonical.assign(ts=canonical["ts"].dt.floor("min"))
    expected = compute_features(same_minute)
    got = compute_features(_mapped_from(canonical, tmp_path))
    pd.testing.assert_frame_equal(got, expected, check_exact=False, atol=1e-6)


def test_the_shipped_example_quarantines_its_three_bad_rows_with_reasons():
    mapped = load_mapped(EXAMPLE_CSV, EXAMPLE_MAPPING)
    rows_in = len(pd.read_csv(EXAMPLE_CSV, sep=";", dtype=str))
    assert mapped.received == rows_in == len(mapped.result.valid) + len(mapped.result.rejected)
    assert mapped.result.reason_counts() == {"unparseable_date": 1, "invalid_value": 1, "wrong_type": 1}
    assert set(mapped.derived) == {"type", "channel", "balance_before"}
    warned = {w.split()[2] for w in mapped.warnings}
    assert warned == {"frequency", "client_age", "client_gender", "district_id"}


def test_an_unmapped_required_field_is_a_clear_error():
    data = yaml.safe_load(EXAMPLE_MAPPING.read_text())
    del data["columns"]["client_id"], data["columns"]["k_symbol"], data["values"]["k_symbol"]
    raw = pd.read_csv(EXAMPLE_CSV, sep=";", dtype=str, keep_default_na=False)
    with pytest.raises(MappingError, match="required fields not mapped: client_id, k_symbol"):
        apply_mapping(raw, parse_mapping(data))


def test_a_constant_can_stand_in_for_a_required_field():
    data = yaml.safe_load(EXAMPLE_MAPPING.read_text())
    del data["columns"]["k_symbol"], data["values"]["k_symbol"]
    data["constants"] = {"k_symbol": "none"}
    raw = pd.read_csv(EXAMPLE_CSV, sep=";", dtype=str, keep_default_na=False)
    frame, _, _ = apply_mapping(raw, parse_mapping(data))
    assert set(frame["k_symbol"]) == {"none"}


@pytest.mark.parametrize(("edit", "message"), [
    (lambda d: d["columns"].update(iban="X"), "iban not in the canonical record"),
    (lambda d: d.update(amount_scale=-1), "positive"),
    (lambda d: d.update(ts_unit="h"), "ts_origin"),
    (lambda d: d.update(colums={}), "unknown keys colums"),
    (lambda d: d["csv"].update(engine="python"), "csv options engine"),
    (lambda d: d.update(constants={"trans_id": "x"}), "both mapped"),
    (lambda d: d.update(date_format=5), "date_format must be a strptime format"),
    (lambda d: d.update(date_format="%d.%m.%Y %"), "date_format '%d.%m.%Y %' is not a valid format"),
    (lambda d: d["csv"].update(encoding="klingon"), "csv.encoding 'klingon' is not a known encoding"),
    (lambda d: d["csv"].update(encoding="base64"), "csv.encoding 'base64' is not a text encoding"),
    (lambda d: d["csv"].update(quotechar="''"), "csv.quotechar must be one character"),
    (lambda d: d["csv"].update(sep="(;"), "csv.sep '\\(;' is longer than one character"),
    (lambda d: d["csv"].update(sep=5), "csv.sep must be non-empty text"),
    (lambda d: d["csv"].update(thousands=","), "csv.decimal and csv.thousands must differ"),
    (lambda d: d.update(signed_amount="no"), "signed_amount must be true or false"),
    (lambda d: d.update(date_format=None, ts_unit="h", ts_origin="someday"), "ts_origin 'someday' is not a date"),
    (lambda d: d.update(constants={"frequency": ["a"]}), "constants.frequency must be one value"),
    (lambda d: d.update(values={1: {}}), "values: 1 not in the canonical record"),
    (lambda d: d.update(columns=[]), "columns must be a mapping, got list"),
])  # fmt: skip
def test_mapping_files_with_mistakes_are_rejected_by_name(edit, message):
    data = yaml.safe_load(EXAMPLE_MAPPING.read_text())
    edit(data)
    with pytest.raises(MappingError, match=message):
        parse_mapping(data)


def test_a_mapping_naming_a_missing_source_column_is_an_error():
    raw = pd.read_csv(EXAMPLE_CSV, sep=";", dtype=str, keep_default_na=False).drop(columns=["Region"])
    with pytest.raises(MappingError, match="no column Region"):
        apply_mapping(raw, load_mapping(EXAMPLE_MAPPING))


def test_paysim_like_parquet_with_signed_cents_and_hour_steps(tmp_path):
    """Signed amounts in cents, time as hours after an origin, a Parquet file, integer ids."""
    table = pd.DataFrame({
        "step": [1, 2, 2, 30], "id": [10, 11, 12, 13], "acct": [7, 7, 8, 8],
        "cents": [-12_345, 50_000, -100, None], "kind": ["PAYMENT", "CASH_IN", "CASH_OUT", "PAYMENT"],
        "old": [1000.0, 876.0, 20.0, 19.0], "dest": ["M1", "", "", "M2"],
    })  # fmt: skip
    path = tmp_path / "paysim.parquet"
    table.to_parquet(path)
    mapping = parse_mapping({
        "columns": {"trans_id": "id", "account_id": "acct", "client_id": "acct", "ts": "step",
                    "amount": "cents", "operation": "kind", "balance_before": "old", "partner_account": "dest"},
        "values": {"operation": {"PAYMENT": "remittance_other_bank", "CASH_IN": "cash_credit",
                                 "CASH_OUT": "cash_withdrawal"}},
        "constants": {"k_symbol": "none"},
        "ts_unit": "h", "ts_origin": "2024-01-01", "amount_scale": 0.01, "signed_amount": True,
    })  # fmt: skip
    mapped = load_mapped(path, mapping)
    v = mapped.result.valid
    assert list(v["trans_id"]) == ["10", "11", "12"]
    assert list(v["direction"]) == ["debit", "credit", "debit"]
    assert list(v["type"]) == ["debit", "credit", "debit"]
    np.testing.assert_allclose(v["amount"], [123.45, 500.0, 1.0])
    # balance_before is scaled like the amount (both in cents): 1000.0 cents = 10.00
    np.testing.assert_allclose(v["balance_after"], [10.0 - 123.45, 8.76 + 500.0, 0.2 - 1.0])
    assert list(v["ts"]) == list(pd.to_datetime(["2024-01-01 01:00", "2024-01-01 02:00", "2024-01-01 02:00"]))
    assert mapped.result.reason_counts() == {"missing_field": 1}  # the row without an amount
    assert "direction" in mapped.derived and "balance_after" in mapped.derived


def test_validation_of_a_mapped_frame_is_the_schema_validator(canonical, tmp_path):
    raw = pd.read_csv(EXAMPLE_CSV, sep=";", dtype=str, keep_default_na=False)
    frame, _, _ = apply_mapping(raw, load_mapping(EXAMPLE_MAPPING))
    direct = validate_frame(frame)
    mapped = load_mapped(EXAMPLE_CSV, EXAMPLE_MAPPING)
    pd.testing.assert_frame_equal(direct.valid, mapped.result.valid)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from tests.factories import trained_bank

    return trained_bank(tmp_path_factory.mktemp("trained"), accounts=40, months=4) / "model"


def test_score_a_foreign_csv_end_to_end(model_dir, tmp_path, capsys):
    out = tmp_path / "scored.parquet"
    code = main(["score", "--data", str(EXAMPLE_CSV), "--mapping", str(EXAMPLE_MAPPING),
                 "--model", str(model_dir), "--out", str(out)])  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0, printed
    scored = pd.read_parquet(out)
    quarantined = pd.read_csv(quarantine_path(out))
    rows_in = len(pd.read_csv(EXAMPLE_CSV, sep=";", dtype=str))
    assert len(scored) + len(quarantined) == rows_in
    assert set(quarantined["reason"]) == {"unparseable_date", "invalid_value", "wrong_type"}
    assert scored["score"].between(0, 1).all() and set(scored["verdict"]) <= {"alert", "normal"}
    assert not set(scored["client_ref"]) & set(pd.read_csv(EXAMPLE_CSV, sep=";", dtype=str)["CustomerNo"])
    assert "warning:" in printed and "district_id not mapped" in printed
    assert "3 quarantined" in printed


def test_score_a_file_without_a_mapping_is_a_clear_error(model_dir, tmp_path, capsys):
    code = main(["score", "--data", str(EXAMPLE_CSV), "--model", str(model_dir), "--out", str(tmp_path / "s.parquet")])
    assert code == 2
    assert "needs --mapping" in capsys.readouterr().err


def test_score_with_a_broken_mapping_file_is_a_clear_error(model_dir, tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("columns: {trans_id: NoSuchColumn}\n")
    code = main(["score", "--data", str(EXAMPLE_CSV), "--mapping", str(bad), "--model", str(model_dir),
                 "--out", str(tmp_path / "s.parquet")])  # fmt: skip
    assert code == 2
    assert "no column NoSuchColumn" in capsys.readouterr().err


def test_value_maps_apply_to_integer_codes_of_a_parquet_file(tmp_path):
    table = pd.DataFrame({"id": [1, 2], "acct": [5, 5], "ts": ["2024-01-01T10:00:00", "2024-01-02T10:00:00"],
                          "amt": [10.0, 20.0], "dc": [1, 2], "op": [7, 7], "bal": [100.0, 80.0]})  # fmt: skip
    path = tmp_path / "codes.parquet"
    table.to_parquet(path)
    mapping = parse_mapping({
        "columns": {"trans_id": "id", "account_id": "acct", "client_id": "acct", "ts": "ts", "amount": "amt",
                    "direction": "dc", "operation": "op", "balance_after": "bal"},
        "values": {"direction": {1: "credit", 2: "debit"}, "operation": {7: "card_withdrawal"}},
        "constants": {"k_symbol": "none"},
    })  # fmt: skip
    v = load_mapped(path, mapping).result.valid
    assert list(v["direction"]) == ["credit", "debit"] and set(v["operation"]) == {"card_withdrawal"}
    np.testing.assert_allclose(v["balance_before"], [90.0, 100.0])


def test_a_table_with_no_valid_row_is_a_clear_error_and_keeps_its_quarantine(model_dir, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    raw = pd.read_csv(EXAMPLE_CSV, sep=";", dtype=str, keep_default_na=False).head(5).assign(TxnCode="CRYPTO")
    raw.to_csv(bad, sep=";", index=False)
    out = tmp_path / "s.parquet"
    code = main(["score", "--data", str(bad), "--mapping", str(EXAMPLE_MAPPING), "--model", str(model_dir),
                 "--out", str(out)])  # fmt: skip
    assert code == 2
    assert "no valid rows" in capsys.readouterr().err
    assert len(pd.read_csv(quarantine_path(out))) == 5 and not out.exists()


# --- tables without ids or balances, with labels (issue 11) --------------------------------------

CARD = {"columns": {"account_id": "CUSTOMER_ID", "client_id": "CUSTOMER_ID", "ts": "TX_DATETIME",
                    "amount": "TX_AMOUNT", "partner_account": "TERMINAL_ID"},
        "constants": {"direction": "debit", "operation": "card_withdrawal", "k_symbol": "none"}}  # fmt: skip


def _card_file(tmp_path, table: pd.DataFrame, name: str = "cards.csv"):
    path = tmp_path / name
    if name.endswith(".parquet"):
        table.to_parquet(path)
    else:
        table.to_csv(path, index=False)
    return path


def test_a_derived_trans_id_is_deterministic_unique_and_keeps_true_duplicates(tmp_path):
    table = card_table(customers=5, days=10)
    table = pd.concat([table, table.iloc[[3, 3]]]).sort_index(kind="stable").reset_index(drop=True)  # posted 3x
    path = _card_file(tmp_path, table)
    first, again = load_mapped(path, parse_mapping(CARD)), load_mapped(path, parse_mapping(CARD))
    ids = first.result.valid["trans_id"]
    assert "trans_id" in first.derived
    assert ids.is_unique and len(ids) == len(table)  # the three identical rows: three ids
    assert list(ids) == list(again.result.valid["trans_id"])
    assert ids.str.fullmatch(r"h[0-9a-f]{20}").all()
    # an id depends on its row only (and its occurrence among identical rows), not on its neighbours
    shuffled = _card_file(tmp_path, table.sample(frac=1.0, random_state=1), "shuffled.csv")
    assert set(load_mapped(shuffled, parse_mapping(CARD)).result.valid["trans_id"]) == set(ids)


def test_the_derived_trans_id_follows_the_documented_recipe(tmp_path):
    import hashlib

    path = _card_file(tmp_path, card_table(customers=2, days=3).head(1))
    v = load_mapped(path, parse_mapping(CARD)).result.valid.iloc[0]
    fields = [repr(float(v["amount"])) if f == "amount" else str(v[f]) for f in
              ("account_id", "client_id", "ts", "amount", "direction", "type", "operation", "k_symbol",
               "partner_account", "channel")]  # fmt: skip
    fields[2] = str(pd.read_csv(path, dtype=str)["TX_DATETIME"].iloc[0])  # ISO text as in the file
    key = "\x1f".join(fields) + "\x1e0"
    assert v["trans_id"] == "h" + hashlib.sha256(key.encode()).hexdigest()[:20]


def test_a_table_without_balances_gets_nan_balances_never_invented_ones(tmp_path):
    mapped = load_mapped(_card_file(tmp_path, card_table(customers=3, days=5)), parse_mapping(CARD))
    v = mapped.result.valid
    assert v["balance_before"].isna().all() and v["balance_after"].isna().all()
    assert any("balance_before, balance_after not mapped" in w for w in mapped.warnings)
    features = compute_features(v)
    assert features["balance_error"].isna().all() and features["balance_gap"].isna().all()
    others = [c for c in features.columns if c not in ("balance_error", "balance_gap", "drain_share")]
    assert features[others].notna().all().all()


def test_labels_come_apart_from_the_canonical_rows_and_bad_labels_are_quarantined(tmp_path):
    table = card_table(customers=5, days=20).astype(str)
    table.loc[7, "TX_FRAUD"] = "maybe"
    mapped = load_mapped(_card_file(tmp_path, table),
                         parse_mapping({**CARD, "label": "TX_FRAUD", "label_type": "TX_FRAUD_SCENARIO"}))  # fmt: skip
    v, labels = mapped.result.valid, mapped.labels
    assert not {"TX_FRAUD", "TX_FRAUD_SCENARIO", "is_anomaly", "anomaly_type"} & set(v.columns)
    assert len(labels) == len(v) == len(table) - 1
    assert mapped.result.reason_counts() == {"invalid_value": 1}
    assert mapped.result.rejected["detail"].tolist() == ["label"]
    expected = table.drop(index=7)
    assert labels["is_anomaly"].tolist() == (expected["TX_FRAUD"] == "1").tolist()
    assert set(labels.loc[labels["is_anomaly"], "anomaly_type"]) <= {"1", "2", "3"}
    assert (labels.loc[~labels["is_anomaly"], "anomaly_type"] == "").all()


def test_a_gzipped_csv_and_a_parquet_file_map_alike(tmp_path):
    table = card_table(customers=3, days=5)
    plain = load_mapped(_card_file(tmp_path, table), parse_mapping(CARD)).result.valid
    gz = load_mapped(_card_file(tmp_path, table, "cards.csv.gz"), parse_mapping(CARD)).result.valid
    pd.testing.assert_frame_equal(plain, gz)
    pq = load_mapped(_card_file(tmp_path, table.astype(str), "cards.parquet"), parse_mapping(CARD)).result.valid
    pd.testing.assert_frame_equal(plain, pq)


@pytest.mark.parametrize(("edit", "message"), [
    (lambda d: d.update(label_type="TX_FRAUD_SCENARIO"), "label_type needs label"),
    (lambda d: d.update(label=["a", "b"]), "label must name one source column"),
    (lambda d: d.update(label="NoSuchColumn"), "no column NoSuchColumn"),
])  # fmt: skip
def test_label_entries_with_mistakes_are_clear_errors(edit, message, tmp_path):
    data = {**CARD}
    edit(data)
    with pytest.raises(MappingError, match=message):
        load_mapped(_card_file(tmp_path, card_table(customers=2, days=3)), parse_mapping(data))


def test_the_shipped_card_example_maps_with_its_labels_and_two_bad_rows():
    mapped = load_mapped(CARD_CSV, CARD_MAPPING)
    assert mapped.result.reason_counts() == {"unparseable_date": 1, "wrong_type": 1}
    assert set(mapped.derived) == {"type", "channel", "trans_id"}
    assert mapped.result.valid["trans_id"].is_unique
    assert mapped.labels is not None and mapped.labels["is_anomaly"].sum() > 50
    assert CARD_CSV.stat().st_size < 100_000


@pytest.mark.parametrize(("name", "content", "mapping", "message"), [
    ("t.parquet", b"PAR1 not really", {}, "t.parquet: cannot be read as Parquet"),
    ("t.csv", b"a,b\n1,2\n\xff\xfe,3\n", {"encoding": "ascii"}, "t.csv: not ascii text"),
    ("t.csv", b'a,b\n1,"2\n', {}, "t.csv: cannot be read as CSV"),
    ("t.csv.gz", gzip.compress(b"a,b\n1,2\n" * 100)[:-20], {}, "t.csv.gz: cannot be read as CSV"),
])  # fmt: skip
def test_a_file_the_reader_cannot_read_is_a_mapping_error_naming_it(tmp_path, name, content, mapping, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(MappingError, match=message):
        load_mapped(path, parse_mapping({**yaml.safe_load(EXAMPLE_MAPPING.read_text()), "csv": mapping}))


def test_a_line_too_long_or_not_utf8_is_quarantined_malformed_and_the_others_are_read(tmp_path):
    """One bad line never fails the file (the Czech parser's rule, the same details): a line with
    more fields than the header and one with bytes that are not UTF-8 are quarantined as
    malformed with their reason; every other row is read and the counts add up."""
    good = CARD_CSV.read_bytes().splitlines()[:40]
    path = tmp_path / "t.csv"
    path.write_bytes(b"\n".join([*good[:10], b"2018-04-02 10:00:00,5,7,12.5,0,0,EXTRA,FIELD", *good[10:20],
                                 b"2018-04-02 10:00:00,5\xff,7,12.5,0,0", *good[20:]]) + b"\n")  # fmt: skip
    mapped = load_mapped(path, CARD_MAPPING)
    clean = load_mapped(_write(tmp_path / "clean.csv", b"\n".join(good) + b"\n"), CARD_MAPPING)
    malformed = mapped.result.rejected[mapped.result.rejected["reason"] == "malformed"]
    assert malformed["detail"].tolist() == ["8 fields, expected 6", NOT_UTF8]
    assert malformed["raw"].iloc[0] == "2018-04-02 10:00:00,5,7,12.5,0,0,EXTRA,FIELD"
    assert mapped.received == clean.received + 2 == len(mapped.result.valid) + len(mapped.result.rejected)
    pd.testing.assert_frame_equal(mapped.result.valid, clean.result.valid)  # same rows, same derived ids
    pd.testing.assert_frame_equal(mapped.labels, clean.labels)
    latin = tmp_path / "latin.csv"  # the mapping's own encoding: the same bytes are text, not malformed
    latin.write_bytes(b"a,b\n1,\xe9\n")
    assert read_table(latin, parse_mapping({"columns": {}, "csv": {"encoding": "latin-1"}})).rows["b"].tolist() == ["é"]


def _write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


def test_garbage_mappings_and_files_give_rows_that_add_up_or_a_mapping_error(tmp_path_factory):
    """Property: whatever the mapping and the file, ``load_mapped`` returns rows that add up
    (received = valid + rejected) or raises ``MappingError``, nothing else."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    folder = tmp_path_factory.mktemp("garbage")
    good = yaml.safe_load(EXAMPLE_MAPPING.read_text())
    scalars = st.none() | st.booleans() | st.integers(-5, 5) | st.floats() | st.text(max_size=4)
    keys = st.sampled_from(["date_format", "amount_scale", "signed_amount", "ts_unit", "ts_origin", "csv",
                            "constants", "values", "columns", "nonsense"])  # fmt: skip
    edits = st.dictionaries(keys, scalars | st.dictionaries(st.text(max_size=8), scalars, max_size=2), max_size=2)
    lines = EXAMPLE_CSV.read_bytes().splitlines()

    @settings(max_examples=40, deadline=None)
    @given(edits, st.lists(st.binary(max_size=30), max_size=3), st.integers(0, len(lines)))
    def check(edit, noise, cut):
        path = folder / "t.csv"
        path.write_bytes(b"\n".join([*lines[:cut], *noise]) + b"\n")
        try:
            mapped = load_mapped(path, parse_mapping({**good, **edit}))
        except MappingError as err:
            assert str(err)
            return
        assert mapped.received == len(mapped.result.valid) + len(mapped.result.rejected)

    check()
