"""The Czech dataset loader: both public forms, code translation, joins, quarantine."""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd
import pytest

from finsentry.datasets import czech

BERKA = Path(__file__).resolve().parents[3] / "shared" / "data" / "berka"

ASC = {
    "district.asc": 'A1;A2;A3;A4;A5;A6;A7;A8;A9;A10;A11;A12;A13;A14;A15;A16\n'
    '1;"Hl.m. Praha";"Prague";1204953;0;0;0;1;1;100.0;12541;0.29;0.43;167;85677;99107\n'
    '2;"Benesov";"central Bohemia";88884;80;26;6;2;5;46.7;8507;?;1.85;132;2159;2674\n',
    "client.asc": '"client_id";"birth_number";"district_id"\n1;"706213";2\n2;"450204";1\n'
    '3;"800101";1\n',
    "account.asc": '"account_id";"district_id";"frequency";"date"\n'
    '10;1;"POPLATEK MESICNE";930101\n20;2;"POPLATEK TYDNE";930105\n',
    "disp.asc": '"disp_id";"client_id";"account_id";"type"\n1;3;10;"DISPONENT"\n'
    '2;1;10;"OWNER"\n3;2;20;"OWNER"\n',
    "order.asc": '"order_id";"account_id";"bank_to";"account_to";"amount";"k_symbol"\n'
    '1;10;"YZ";"87144583";2452.00;"SIPO"\n2;20;"ST";"89597016";3372.70;"UVER"\n',
    "trans.asc": '"trans_id";"account_id";"date";"type";"operation";"amount";"balance";'
    '"k_symbol";"bank";"account"\n'
    '1;10;930101;"PRIJEM";"VKLAD";1000.00;1000.00;"";;\n'
    '2;10;930110;"VYDAJ";"PREVOD NA UCET";2452.00;-1452.00;"SIPO";"YZ";87144583\n'
    '3;10;930111;"PRIJEM";"PREVOD Z UCTU";5000.00;3548.00;"DUCHOD";"AB";1234\n'
    '4;10;930112;"VYDAJ";"VYBER KARTOU";300.00;3248.00;"";;\n'
    '5;10;930131;"PRIJEM";"";12.50;3260.50;"UROK";;\n'
    '6;10;930131;"VYDAJ";"VYBER";14.60;3245.90;"SLUZBY";;\n'
    '7;20;930105;"PRIJEM";"VKLAD";700.00;700.00;"";;\n'
    '8;20;930115;"VYBER";"VYBER";200.00;500.00;"";;\n'
    '9;20;930120;"VYDAJ";"PREVOD NA UCET";300.00;200.00;"UVER";"ST";89597016\n'
    '10;20;930125;"VYDAJ";"PREVOD NA UCET";50.00;150.00;"POJISTNE";"CD";1\n'
    '11;20;930126;"VYDAJ";"VYBER";5.00;145.00;"SANKC. UROK";;\n'
    '12;20;930127;"VYDAJ";"PREVOD NA UCET";45.00;100.00;"LEASING";"EF";2\n',
}


def write_asc(directory: Path, extra_trans: str = "") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in ASC.items():
        (directory / name).write_text(text + (extra_trans if name == "trans.asc" else ""))
    return directory


def test_asc_codes_joins_and_balances(tmp_path):
    bank = czech.load(write_asc(tmp_path))
    v = bank.transactions.valid.set_index("trans_id")
    assert len(v) == 12 and bank.transactions.rejected.empty
    assert v.loc["2", ["operation", "k_symbol", "partner_bank", "partner_account"]].tolist() == [
        "remittance_other_bank", "household", "YZ", "87144583"]  # fmt: skip
    assert v.loc["2", "balance_before"] == 1000.0 and v.loc["2", "direction"] == "debit"
    assert v.loc["3", "k_symbol"] == "pension" and v.loc["3", "operation"] == "collection_other_bank"
    assert v.loc["4", "channel"] == "card" and v.loc["5", "operation"] == "none"
    assert v.loc["8", "type"] == "cash_withdrawal"
    assert v.loc["11", "k_symbol"] == "penalty_interest" and v.loc["12", "k_symbol"] == "leasing"
    # the OWNER is the client, not the disponent; a woman's birth month carries +50
    assert v.loc["1", "client_id"] == "1" and v.loc["1", "client_gender"] == "F"
    assert v.loc["1", "client_age"] == pytest.approx(22.1, abs=0.05)  # born 1970-12-13
    assert v.loc["1", "region"] == "central Bohemia"  # the client's district, not the account's
    assert v.loc["7", "client_gender"] == "M" and v.loc["7", "frequency"] == "weekly"
    assert bank.districts["region"].nunique() == 2
    assert bank.orders["k_symbol"].tolist() == ["household", "loan_payment"]


def test_teradata_form_gives_the_same_records(tmp_path):
    tables, _ = czech.read_tables(write_asc(tmp_path / "asc"))
    czech.write_tables(tables, tmp_path / "tsv", form="tsv")
    line = (tmp_path / "tsv" / "fin_trans.tsv").read_text().splitlines()[1]
    assert line.split("\t")[:8] == ["2", "10", "2013-01-10", "245.20", "-145.20", "D", "ROB", "HH"]
    a = czech.load(tmp_path / "asc").transactions.valid
    t = czech.load(tmp_path / "tsv").transactions.valid
    pd.testing.assert_frame_equal(a, t)


def test_asc_round_trip_and_gzip(tmp_path):
    tables, _ = czech.read_tables(write_asc(tmp_path / "a"))
    czech.write_tables(tables, tmp_path / "b", form="asc", compress=True)
    assert (tmp_path / "b" / "trans.asc.gz").is_file()
    back, quarantine = czech.read_tables(tmp_path / "b")
    assert quarantine.empty
    pd.testing.assert_frame_equal(tables.trans, back.trans)
    pd.testing.assert_frame_equal(tables.client, back.client)


def test_bad_lines_are_quarantined_with_reasons_and_counts_add_up(tmp_path):
    bad = ('13;10;930201;"VYDAJ";"VYBER";1.00\n'  # too few fields
           '14;10;99AB01;"VYDAJ";"VYBER";1.00;1.00;"";;\n'
           '15;10;930202;"VYDAJ";"VYBER";abc;1.00;"";;\n'
           '16;999;930203;"VYDAJ";"VYBER";1.00;1.00;"";;\n')  # fmt: skip
    bank = czech.load(write_asc(tmp_path, extra_trans=bad))
    reasons = sorted(bank.quarantine["reason"]) + sorted(bank.transactions.rejected["reason"])
    assert reasons == ["malformed", "unparseable_date", "wrong_type", "unknown_account"]
    summary = bank.summary()
    assert summary["transactions_received"] == 16
    assert summary["valid"] + summary["rejected"] == 16


def test_missing_folder_and_files_are_clear_errors(tmp_path):
    with pytest.raises(czech.DatasetError, match="no such directory"):
        czech.load(tmp_path / "nope")
    with pytest.raises(czech.DatasetError, match="neither trans.asc"):
        czech.load(tmp_path)
    write_asc(tmp_path)
    (tmp_path / "client.asc").unlink()
    with pytest.raises(czech.DatasetError, match="client.asc"):
        czech.load(tmp_path)


def test_gzip_of_the_trans_prefix_is_found(tmp_path):
    write_asc(tmp_path)
    src = tmp_path / "trans.asc"
    (tmp_path / "trans_PARTIAL_prefix.asc.gz").write_bytes(gzip.compress(src.read_bytes()))
    src.unlink()
    assert len(czech.load(tmp_path).transactions.valid) == 12


@pytest.mark.slow
@pytest.mark.skipif(not BERKA.is_dir(), reason="the real sample is not on this machine")
def test_real_sample_loads_whole():
    bank = czech.load(BERKA)
    tables, _ = czech.read_tables(BERKA)
    assert len(tables.account) == 4500 and len(tables.client) == 5369
    assert len(bank.transactions.valid) == 49_102 and bank.transactions.rejected.empty
    assert len(bank.districts) == 77 and bank.districts["region"].nunique() == 8
    v = bank.transactions.valid
    prev_after = v.groupby("account_id")["balance_after"].shift()
    continuous = ((v["balance_before"] - prev_after).abs() < 0.01)[prev_after.notna()].mean()
    assert continuous > 0.94  # 60 % before same-day postings were chained by balance


def test_same_day_postings_are_ordered_so_that_balances_chain(tmp_path):
    # trans 21 is posted first by id, but its balance follows trans 22's
    extra = ('21;10;930301;"VYDAJ";"VYBER";100.00;3045.90;"";;\n'
             '22;10;930301;"VYDAJ";"VYBER";100.00;3145.90;"";;\n')  # fmt: skip
    v = czech.load(write_asc(tmp_path, extra_trans=extra)).transactions.valid
    day = v[(v["account_id"] == "10") & (v["ts"] == "1993-03-01")]
    assert day["trans_id"].tolist() == ["22", "21"]
    assert day["balance_before"].iloc[1] == day["balance_after"].iloc[0]


# --- bad files: clear errors or quarantine with a reason, never a crash ----------------------


def test_a_truncated_or_corrupt_gzip_is_a_clear_error(tmp_path):
    write_asc(tmp_path)
    data = gzip.compress((tmp_path / "trans.asc").read_bytes())
    (tmp_path / "trans.asc").unlink()
    for damaged in (data[: len(data) // 2], b"not gzip at all"):
        (tmp_path / "trans.asc.gz").write_bytes(damaged)
        with pytest.raises(czech.DatasetError, match=r"trans.asc.gz: truncated or corrupt gzip"):
            czech.load(tmp_path)


def test_a_non_utf8_line_is_quarantined_with_its_reason(tmp_path):
    write_asc(tmp_path)
    path = tmp_path / "trans.asc"
    lines = path.read_bytes().splitlines()
    lines[2] = lines[2].replace(b'"YZ"', b'"Y\xff"')  # the partner bank: a free-text field
    path.write_bytes(b"\n".join(lines) + b"\n")
    bank = czech.load(tmp_path)
    assert bank.quarantine[["table", "line", "reason", "detail"]].values.tolist() == [
        ["trans", 3, "malformed", czech.NOT_UTF8]]
    summary = bank.summary()
    assert summary["valid"] == 11 and summary["transactions_received"] == 12


@pytest.mark.parametrize("content", ["", "A1;A2;A3\n", "A1;A2\ngarbage\n"])
def test_a_required_table_with_no_readable_row_is_an_error(tmp_path, content):
    write_asc(tmp_path)
    (tmp_path / "district.asc").write_text(content)
    with pytest.raises(czech.DatasetError, match=r"district.asc: no readable district rows"):
        czech.load(tmp_path)


@pytest.mark.parametrize(("trans", "message"), [
    ("", "the trans file has no data lines"),
    (ASC["trans.asc"].splitlines()[0] + "\n", "the trans file has no data lines"),
    (ASC["trans.asc"].splitlines()[0] + "\ngarbage\n", r"all 1 quarantined \(read:malformed 1\)"),
])  # fmt: skip
def test_a_bank_without_a_valid_transaction_says_so(tmp_path, trans, message):
    write_asc(tmp_path)
    (tmp_path / "trans.asc").write_text(trans)
    bank = czech.load(tmp_path)
    assert bank.transactions.valid.empty
    with pytest.raises(czech.DatasetError, match=message):
        bank.require_valid("the folder")


def test_rejects_gather_unreadable_lines_and_invalid_rows_with_reasons(tmp_path):
    bank = czech.load(write_asc(tmp_path, extra_trans='x;y\n16;999;930203;"VYDAJ";"VYBER";1.00;1.00;"";;\n'))
    rejects = bank.rejects()
    assert rejects[["stage", "table", "reason"]].values.tolist() == [
        ["read", "trans", "malformed"], ["validate", "trans", "unknown_account"]]
    assert rejects["line"].iloc[0] == 14 and rejects["detail"].notna().all()


DAMAGES = ("truncated_gz", "random_bytes", "non_utf8_line", "empty", "header_only", "random_line")


def damage(directory: Path, table: str, how: str, noise: bytes, where: float) -> None:
    """Damage one file of an asc bank in ``directory`` in one of the ways of ``DAMAGES``."""
    path = directory / f"{table}.asc"
    data = path.read_bytes()
    lines = data.splitlines()
    at = 1 + int(where * (len(lines) - 1))
    if how == "truncated_gz":
        packed = gzip.compress(data)
        path.unlink()
        (directory / f"{table}.asc.gz").write_bytes(packed[: int(where * (len(packed) - 1))])
    elif how == "random_bytes":
        path.write_bytes(noise)
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "header_only":
        path.write_bytes(lines[0] + b"\n")
    else:  # a line of noise (non-UTF-8 for sure, or any bytes) among the good ones
        bad = noise.replace(b"\n", b"") + (b"\xff\xfe" if how == "non_utf8_line" else b"")
        path.write_bytes(b"\n".join([*lines[:at], bad, *lines[at:]]) + b"\n")


def bad_bank_strategy():
    from hypothesis import strategies as st

    return st.tuples(st.sampled_from(("trans", "trans", "district", "client", "account", "disp")),
                     st.sampled_from(DAMAGES), st.binary(max_size=80), st.floats(0, 1))  # fmt: skip


def test_any_damaged_bank_folder_loads_with_counts_that_add_up_or_is_a_clear_error(tmp_path_factory):
    import shutil
    import tempfile

    from hypothesis import given, settings

    clean = write_asc(tmp_path_factory.mktemp("clean"))

    @settings(max_examples=15, deadline=None)
    @given(bad_bank_strategy())
    def check(case):
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(shutil.copytree(clean, Path(tmp) / "bank"))
            damage(folder, *case)
            try:
                bank = czech.load(folder)
            except czech.DatasetError as err:
                assert str(err) and "\n" not in str(err)
                return
            s = bank.summary()
            assert s["valid"] + s["rejected"] == s["transactions_received"]
            assert s["valid"] == len(bank.transactions.valid)
            assert bank.quarantine["reason"].notna().all() and (bank.quarantine["reason"] != "").all()

    check()
