"""The command line: clear errors for bad arguments and bad input, and the local run end to end."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from finsentry.cli import build_parser, main


@pytest.mark.parametrize(
    "argv",
    [
        ["demo", "--budget", "2"],
        ["demo", "--accounts", "0"],
        ["demo", "--data", "/no/such/dir"],
        ["generate"],
        ["nonsense"],
        ["score", "--data", ".", "--model", ".", "--out", "x.parquet", "--explain", "-1"],
    ],
)
def test_bad_arguments_exit_with_usage_not_a_traceback(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: finsentry") and "--help" in err and len(err.splitlines()) == 1


def test_train_on_a_folder_without_bank_files_is_a_clear_error(tmp_path, capsys):
    code = main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "m")])
    assert code == 2
    assert "error:" in capsys.readouterr().err


@pytest.mark.parametrize("detector", ["isolation_forest", "lstm"])
def test_generate_train_score_round_trip(detector, tmp_path, capsys):
    data = tmp_path / "bank"
    assert main(["generate", "--out", str(data), "--accounts", "40", "--months", "4"]) == 0
    assert (data / "trans.asc").is_file()
    assert main(["train", "--data", str(data), "--detector", detector,
                 "--out", str(tmp_path / "model")]) == 0  # fmt: skip
    out = tmp_path / "scored.parquet"
    assert main(["score", "--data", str(data), "--model", str(tmp_path / "model"),
                 "--out", str(out)]) == 0  # fmt: skip
    import pandas as pd

    scored = pd.read_parquet(out)
    assert {"score", "verdict", "anomaly_type", "reasons", "client_ref"} <= set(scored.columns)
    assert scored["score"].between(0, 1).all()
    alerts = scored[scored["verdict"] == "alert"]
    assert len(alerts) == int(0.01 * len(scored)) > 0 and (alerts["reasons"] != "").all()  # the budget, exactly
    summary = json.loads((tmp_path / "scored.summary.json").read_text())
    assert summary["alerts"] == len(alerts) and summary["explained_with_shap"] == min(10, len(alerts))
    assert summary["drift"]["rows"] == len(scored)  # train stored the drift reference


def test_score_warns_when_the_data_is_far_from_the_training_window(tmp_path, capsys):
    data, model = tmp_path / "bank", tmp_path / "model"
    assert main(["generate", "--out", str(data), "--accounts", "40", "--months", "4"]) == 0
    assert main(["train", "--data", str(data), "--detector", "isolation_forest", "--out", str(model)]) == 0
    meta = json.loads((model / "metadata.json").read_text())
    bins = meta["drift_reference"]["features"]["log_amount"]
    bins["edges"] = [e + 100.0 for e in bins["edges"]]  # training amounts "were" e^100 times larger
    (model / "metadata.json").write_text(json.dumps(meta))
    capsys.readouterr()
    out = tmp_path / "scored.parquet"
    assert main(["score", "--data", str(data), "--model", str(model), "--out", str(out), "--budget", "0.02",
                 "--explain", "0"]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "warning:" in printed and "far from the model's training window" in printed and "log_amount" in printed
    summary = json.loads((tmp_path / "scored.summary.json").read_text())
    assert summary["explained_with_shap"] == 0 and "log_amount" in summary["drifting_features"]
    assert summary["warnings"] and summary["alerts"] == int(0.02 * summary["rows"])


def test_evaluate_runs_the_adbench_protocol_on_an_npz(tmp_path, capsys):
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(0, 1, (300, 4)), rng.normal(6, 1, (15, 4))])
    y = np.r_[np.zeros(300), np.ones(15)]
    path = tmp_path / "toy.npz"
    np.savez(path, X=X, y=y)
    assert main(["evaluate", "--npz", str(path), "--seeds", "1", "--detector", "isolation_forest",
                 "--detector", "lof"]) == 0  # fmt: skip
    last = capsys.readouterr().out.strip().splitlines()[-1]
    results = json.loads(last)["results"]
    assert results["isolation_forest"]["auc_roc"] > 90


def test_evaluate_npz_by_default_runs_every_label_free_table_detector_and_the_ensemble(tmp_path, capsys):
    rng = np.random.default_rng(0)
    path = tmp_path / "toy.npz"
    np.savez(path, X=np.vstack([rng.normal(0, 1, (300, 4)), rng.normal(6, 1, (15, 4))]),
             y=np.r_[np.zeros(300), np.ones(15)])  # fmt: skip
    assert main(["evaluate", "--npz", str(path), "--seeds", "1"]) == 0
    results = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["results"]
    assert {"isolation_forest", "lof", "ensemble"} <= set(results)


def test_demo_runs_end_to_end_on_a_small_bank(tmp_path, capsys):
    code = main(["demo", "--accounts", "120", "--months", "10", "--out", str(tmp_path), "--stream-records", "300"])
    out = capsys.readouterr().out
    assert code == 0
    for text in ("Validation period", "Selected:", "Test period", "Top alerts", "scored/", "State machine choice:",
                 "stream replay: 300", "Feedback round:", "recorded with `finsentry label"):
        assert text in out
    assert (tmp_path / "model" / "metadata.json").is_file()
    assert f"report: {(tmp_path / 'report.html').resolve()}" in out


def test_demo_on_partly_bad_files_reports_the_quarantine(tmp_path, capsys):
    data = tmp_path / "bank"
    assert main(["generate", "--out", str(data), "--accounts", "80", "--months", "8"]) == 0
    with (data / "trans.asc").open("a") as fh:
        fh.write('99999991;1;960101;"VYDAJ"\n')  # too few fields
        fh.write('99999992;1;96AB01;"VYDAJ";"VYBER";1.00;1.00;"";;;120000\n')  # bad date
        fh.write('99999993;424242;960101;"VYDAJ";"VYBER";1.00;1.00;"";;;120000\n')  # unknown account
    code = main(["demo", "--data", str(data), "--out", str(tmp_path / "out"), "--stream-records", "0",
                 "--no-sagemaker"])
    out = capsys.readouterr().out
    assert code == 0
    assert "3 quarantined" in out


def test_generate_with_labelled_anomalies_round_trips_through_the_loader(tmp_path):
    from finsentry.anomalies import AnomalyType
    from finsentry.datasets import czech

    out = tmp_path / "bank"
    args = ["generate", "--out", str(out), "--accounts", "60", "--months", "8", "--anomaly-rate", "0.01"]
    assert main([*args, "--form", "tsv"]) == 0
    import pandas as pd

    labels = pd.read_csv(out / "labels.csv", dtype=str, keep_default_na=False)
    assert set(labels["anomaly_type"]) == {str(t) for t in AnomalyType}
    bank = czech.load(out)
    assert bank.transactions.rejected.empty
    ids = set(bank.transactions.valid["trans_id"])
    assert set(labels.loc[labels["trans_id"] != "", "trans_id"]) <= ids


# --- foreign tables: train | evaluate | score on docs/examples/card_fraud.csv (issue 11) --------

def _card_args():
    from tests.foreign import CARD_CSV, CARD_MAPPING

    return ["--data", str(CARD_CSV), "--mapping", str(CARD_MAPPING)]


def test_train_and_score_a_card_table_without_ids_or_balances(tmp_path, capsys, monkeypatch):
    from finsentry.detectors.base import Detector

    seen: list[list[str]] = []
    original = Detector.fit

    def spy(self, features):
        seen.append(list(features.columns))
        return original(self, features)

    monkeypatch.setattr(Detector, "fit", spy)
    assert main(["train", *_card_args(), "--detector", "isolation_forest", "--out", str(tmp_path / "model")]) == 0
    out = capsys.readouterr().out
    assert "could not feed" in out and "balance_error, balance_gap, drain_share" in out
    assert "2 quarantined" in out and (tmp_path / "model.quarantine.csv").is_file()
    meta = json.loads((tmp_path / "model" / "metadata.json").read_text())
    assert meta["unfed_features"] == ["balance_error", "balance_gap", "drain_share"]
    # the label columns never reach training
    assert seen and not any({"TX_FRAUD", "TX_FRAUD_SCENARIO", "is_anomaly", "anomaly_type"} & set(c) for c in seen)

    scored_path = tmp_path / "scored.parquet"
    assert main(["score", *_card_args(), "--model", str(tmp_path / "model"), "--out", str(scored_path)]) == 0
    import pandas as pd

    scored = pd.read_parquet(scored_path)
    assert len(scored) == 1980 and scored["trans_id"].is_unique
    assert scored["score"].between(0, 1).all()


def test_evaluate_a_labelled_table_prints_figures_per_detector_and_per_label_type(tmp_path, capsys):
    report = tmp_path / "eval.json"
    code = main(["evaluate", *_card_args(), "--detector", "isolation_forest", "--detector", "lof",
                 "--train-until", "2018-05-10", "--test-from", "2018-05-12", "--budget", "0.05", "--out", str(report)])
    out = capsys.readouterr().out
    assert code == 0, out
    for text in ("recall", "precision", "AUC-PR", "AUC-ROC", "recall per label type", "model selection"):
        assert text in out
    results = json.loads(out.strip().splitlines()[-1])["results"]
    assert set(results) == {"isolation_forest", "lof"}
    assert all(set(r) == {"recall", "precision", "auc_pr", "auc_roc"} for r in results.values())
    saved = json.loads(report.read_text())
    assert set(saved["results"]["lof"]["recall_by_type"]) <= {"1", "2", "3", "all"}
    assert saved["test"]["from"].startswith("2018-05-12") and saved["train"]["before"].startswith("2018-05-10")


def test_evaluate_a_table_without_labels_is_a_clear_error(tmp_path, capsys):
    from tests.foreign import CARD_CSV, CARD_MAPPING

    unlabelled = tmp_path / "map.yaml"
    unlabelled.write_text("\n".join(line for line in CARD_MAPPING.read_text().splitlines()
                                    if not line.startswith("label")))  # fmt: skip
    code = main(["evaluate", "--data", str(CARD_CSV), "--mapping", str(unlabelled), "--out", str(tmp_path / "e.json")])
    assert code == 2 and "has no labels" in capsys.readouterr().err


def test_a_mapped_table_with_only_a_header_says_it_is_empty(tmp_path, capsys):
    from tests.foreign import CARD_CSV, CARD_MAPPING

    header_only = tmp_path / "t.csv"
    header_only.write_text(CARD_CSV.read_text().splitlines()[0] + "\n")
    code = main(["train", "--data", str(header_only), "--mapping", str(CARD_MAPPING), "--out", str(tmp_path / "m")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == ["error: finsentry train: no rows in t.csv: the table is empty (a header at most)"]


def test_evaluate_npz_runs_the_chosen_detectors(tmp_path, capsys):
    rng = np.random.default_rng(0)
    path = tmp_path / "toy.npz"
    X = np.vstack([rng.normal(0, 1, (200, 3)), rng.normal(6, 1, (10, 3))])
    np.savez(path, X=X, y=np.r_[np.zeros(200), np.ones(10)])
    assert main(["evaluate", "--npz", str(path), "--seeds", "1", "--detector", "lof"]) == 0
    assert set(json.loads(capsys.readouterr().out.strip().splitlines()[-1])["results"]) == {"lof"}


def test_evaluate_runs_every_label_free_table_detector_and_the_default_by_default():
    from finsentry.table_evaluation import detector_names

    names = detector_names(None)
    assert {"isolation_forest", "lof", "ensemble"} <= set(names) and "lstm" not in names
    assert "supervised" not in names  # it needs verdicts: never a label-free default
    with pytest.raises(ValueError, match="unknown detector"):
        detector_names(["nope"])
    assert detector_names(["lstm"]) == ["lstm"]  # a transaction table has the sequences


@pytest.mark.parametrize(("detector", "message"), [
    ("lstm", "lstm reads each account's previous transactions, which an \\(X, y\\) table does not have"),
    ("supervised", "supervised learns from analysts' verdicts"),
])  # fmt: skip
def test_evaluate_npz_refuses_a_detector_it_cannot_fit_in_one_line(tmp_path, capsys, detector, message):
    path = tmp_path / "toy.npz"
    np.savez(path, X=np.zeros((20, 2)), y=np.r_[np.zeros(19), 1.0])
    assert main(["evaluate", "--npz", str(path), "--detector", "isolation_forest", "--detector", detector]) == 2
    err = capsys.readouterr().err.strip()
    assert re.search(message, err) and len(err.splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize(("content", "message"), [
    (b"# a markdown file\n", "is not an .npz archive of numeric arrays X and y"),
    (b"PK\x03\x04 truncated zip", "is not a readable .npz archive"),
    (None, "is a single .npy array, not an .npz archive"),
    ("other", "must hold arrays X and y \\(it holds a, b\\)"),
])  # fmt: skip
def test_evaluate_npz_says_what_a_bad_file_is_not(tmp_path, capsys, content, message):
    path = tmp_path / "data.npz"
    if content is None:
        with path.open("wb") as f:
            np.save(f, np.zeros(3))
    elif content == "other":
        np.savez(path, a=np.zeros(2), b=np.ones(2))
    else:
        path.write_bytes(content)
    assert main(["evaluate", "--npz", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert re.search(message, err) and len(err.splitlines()) == 1, err


_ROWS = np.random.default_rng(0).normal(size=(1_200, 3))


@pytest.mark.parametrize(("X", "y", "message"), [
    (_ROWS, np.r_[np.zeros(1_199), 1], "at least 2 anomalies and 2 normal rows for a stratified split, has 1 and 1199"),
    (_ROWS, np.zeros(1_200), "has 0 and 1200"),
    (np.where(np.arange(3_600).reshape(1_200, 3) % 97 == 0, np.nan, _ROWS), np.r_[np.zeros(1_150), np.ones(50)],
     "X holds 38 values that are not finite numbers"),
    (_ROWS, np.r_[np.zeros(1_150), np.full(50, 2)], "y must be 0 \\(normal\\) or 1 \\(anomaly\\), found 0.0, 2.0"),
    (_ROWS, np.zeros(1_000), "one label per row of X \\(1200\\)"),
    (_ROWS[:, 0], np.zeros(1_200), "X must be a matrix"),
])  # fmt: skip
def test_evaluate_npz_refuses_a_table_it_cannot_score_fairly_in_one_line(tmp_path, capsys, X, y, message):
    path = tmp_path / "data.npz"
    np.savez(path, X=X, y=y)
    assert main(["evaluate", "--npz", str(path), "--detector", "isolation_forest"]) == 2
    err = capsys.readouterr().err.strip()
    assert re.search(message, err) and len(err.splitlines()) == 1 and "Traceback" not in err, err


def test_generated_npz_tables_give_finite_figures_or_one_error_line(tmp_path_factory):
    """Property: any (X, y) archive ends in finite figures on one valid JSON line (exit 0) or in
    one error line (exit 2); never NaN figures, a traceback or a NaN silently scored as 0."""
    import contextlib
    import io

    from hypothesis import given, settings
    from hypothesis import strategies as st

    root = tmp_path_factory.mktemp("npz")

    @settings(max_examples=12, deadline=None)
    @given(rows=st.sampled_from([5, 40, 1_000, 1_100]), cols=st.sampled_from([0, 1, 3]),
           anomalies=st.sampled_from([0, 1, 2, 30]), labels=st.sampled_from(["int", "bool", "float", "two", "text"]),
           holes=st.sampled_from([0, 1]), short_y=st.booleans(), seed=st.integers(0, 9))  # fmt: skip
    def check(rows, cols, anomalies, labels, holes, short_y, seed):
        rng = np.random.default_rng(seed)
        X = rng.normal(size=(rows, cols))
        if holes and X.size:
            X.flat[rng.integers(X.size)] = np.nan
        y = (np.arange(rows) < anomalies).astype(int)
        y = {"int": y, "bool": y.astype(bool), "float": y.astype(float), "two": y * 2, "text": y.astype(str)}[labels]
        if short_y:
            y = y[:-1]
        path = root / "t.npz"
        np.savez(path, X=X, y=y)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["evaluate", "--npz", str(path), "--seeds", "1", "--detector", "isolation_forest"])
        errors = err.getvalue().strip().splitlines()
        assert "Traceback" not in out.getvalue() + err.getvalue()
        if code == 0:
            figures = json.loads(out.getvalue().strip().splitlines()[-1])["results"]["isolation_forest"]
            assert all(np.isfinite(v) for v in figures.values()) and not errors
            assert not holes and not short_y and cols and labels in ("int", "bool", "float") and anomalies >= 2
        else:
            assert code == 2 and len(errors) == 1 and errors[0].startswith("error: finsentry evaluate: "), errors

    check()


def test_demo_runs_on_a_mapped_card_table_and_names_what_it_could_not_feed(tmp_path, capsys):
    code = main(["demo", *_card_args(), "--out", str(tmp_path), "--stream-records", "0", "--no-sagemaker"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "could not feed" in out and "balance_error, balance_gap, drain_share" in out
    assert "features the data could not feed" in (tmp_path / "report.html").read_text()
    assert json.loads((tmp_path / "model" / "metadata.json").read_text())["unfed_features"] == [
        "balance_error", "balance_gap", "drain_share"]


# --- misuse and bad input: one line on stderr, a documented exit status, never a traceback ----

EXIT_CODES = {0, 1, 2}  # docs/user_guide.md#exit-statuses (130 = interrupted, not reachable here)


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    """A tiny bank and an isolation forest trained on it (a few seconds)."""
    from tests.factories import trained_bank

    return trained_bank(tmp_path_factory.mktemp("small"), accounts=6, months=2)


def one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: finsentry"), captured.err
    return lines[0]


MAPPING_MISTAKES = {
    "date_format: 5": "date_format must be a strptime format",
    "csv: {encoding: klingon}": "csv.encoding 'klingon' is not a known encoding",
    "csv: {quotechar: ab}": "csv.quotechar must be one character",
    "csv: {sep: '[;'}": "csv.sep '[;' is longer than one character",
    "date_format: '%Q'": "date_format '%Q' is not a valid format",
    "{columns: [a, b]}": "columns must be a mapping",
}


@pytest.mark.parametrize("case", [
    (["score", "--out", "{dir}"], "argument --out: {dir} is a folder: expected a file name"),
    (["train", "--out", "{file}"], "argument --out: {file} is a file: expected a folder"),
    (["generate", "--out", "{file}"], "argument --out: {file} is a file: expected a folder"),
    (["rules", "--out", "{dir}"], "argument --out: {dir} is a folder"),
    (["cost", "--tps", "inf"], "argument --tps: 'inf' is not a finite number"),
    (["cost", "--tps", "nan"], "argument --tps: 'nan' is not a finite number"),
    (["demo", "--metrics-port", "99999"], "argument --metrics-port: must be a TCP port from 0 to 65535"),
    (["demo", "--metrics-hold", "-1"], "argument --metrics-hold: must be a number of seconds"),
    (["demo", "--seed", "-3"], "argument --seed: must be a seed from 0"),
    (["demo", "--stream-records", "-5"], "argument --stream-records: must be an integer from 0"),
    (["generate", "--out", "{dir}", "--accounts", "ten"], "argument --accounts: 'ten' is not an integer"),
    *[(["score", "--mapping", f"{{mapping:{text}}}"], message) for text, message in MAPPING_MISTAKES.items()],
    (["evaluate", "--npz", "{file}"], "finsentry evaluate: "),
    (["cost", "--tps", "5", "--prices", "{file}"], "expected a mapping at the top level"),
])  # fmt: skip
def test_misuse_is_one_line_on_stderr_with_status_2(case, small_model, tmp_path, capsys):
    argv, message = case
    paths = {"{dir}": str(tmp_path), "{file}": str(tmp_path / "a_file")}
    (tmp_path / "a_file").write_text("not what it should be\n")
    if argv[0] == "score":
        argv = ["score", "--data", str(small_model / "bank"), "--model", str(small_model / "model"),
                "--out", str(tmp_path / "s.parquet"), *argv[1:]]  # fmt: skip
    argv = [_fill(a, paths, tmp_path) for a in argv]
    if argv[0] in ("train",):
        argv += ["--data", str(small_model / "bank")]
    code = main(argv)
    line = one_error_line(capsys)
    assert code == 2
    assert _fill(message, paths, tmp_path) in line


def _fill(text: str, paths: dict[str, str], tmp_path) -> str:
    if text.startswith("{mapping:"):
        path = tmp_path / "map.yaml"
        path.write_text(text[len("{mapping:"):-1] + "\n")
        return str(path)
    for key, value in paths.items():
        text = text.replace(key, value)
    return text


def test_score_with_no_valid_row_exits_2_and_writes_the_rejects_beside_the_output(small_model, tmp_path, capsys):
    import shutil

    import pandas as pd

    data = Path(shutil.copytree(small_model / "bank", tmp_path / "bank"))
    header = (data / "trans.asc").read_text().splitlines()[0]
    (data / "trans.asc").write_text(header + '\ngarbage\n1;2;99AB01;"VYDAJ";"VYBER";1.00;1.00;"";;;120000\n')
    out = tmp_path / "out" / "scored.parquet"
    code = main(["score", "--data", str(data), "--model", str(small_model / "model"), "--out", str(out)])
    line = one_error_line(capsys)
    assert code == 2 and not out.exists()
    assert "no valid transactions" in line and "all 2 quarantined" in line and "scored.quarantine.csv" in line
    rejects = pd.read_csv(out.parent / "scored.quarantine.csv")
    assert rejects["reason"].tolist() == ["malformed", "unparseable_date"] and rejects["line"].tolist() == [2, 3]


def test_score_of_partly_bad_files_keeps_the_rejects_beside_the_output(small_model, tmp_path, capsys):
    import shutil

    import pandas as pd

    data = Path(shutil.copytree(small_model / "bank", tmp_path / "bank"))
    with (data / "trans.asc").open("ab") as fh:
        fh.write(b'99999991;1;960101;"VYDAJ";"VYBER";1.00;1.00;"";"\xff";;120000\n')  # not UTF-8
    out = tmp_path / "scored.parquet"
    assert main(["score", "--data", str(data), "--model", str(small_model / "model"), "--out", str(out)]) == 0
    rejects = pd.read_csv(tmp_path / "scored.quarantine.csv")
    assert rejects[["stage", "reason", "detail"]].values.tolist() == [["read", "malformed", "not valid UTF-8"]]
    assert out.is_file()


def test_an_unexpected_error_is_one_line_with_a_hint_and_status_1(monkeypatch, capsys):
    import finsentry.cli as cli

    def broken(args):
        raise KeyError("boom")

    monkeypatch.setitem(cli.COMMANDS, "cost", broken)
    monkeypatch.delenv("FINSENTRY_DEBUG", raising=False)
    assert main(["cost", "--tps", "1"]) == 1
    line = one_error_line(capsys)
    assert "unexpected KeyError" in line and "FINSENTRY_DEBUG=1" in line
    monkeypatch.setenv("FINSENTRY_DEBUG", "1")
    with pytest.raises(KeyError):
        main(["cost", "--tps", "1"])


def test_generated_argument_lists_and_bad_files_never_reach_the_user_as_a_traceback(small_model, tmp_path_factory):
    """Property: any argument list (bad numbers, paths of the wrong kind, damaged bank folders,
    garbage mappings) gives a documented exit status and no traceback, only one error line."""
    import contextlib
    import io
    import shutil
    import tempfile

    from hypothesis import given, settings
    from hypothesis import strategies as st

    from tests.datasets.test_czech import bad_bank_strategy, damage

    root = tmp_path_factory.mktemp("fuzz")
    (root / "a_file").write_bytes(b"\x00\xffnot a model, a bank or a mapping")
    numbers = st.sampled_from(["inf", "-inf", "nan", "-1", "0", "1", "0.5", "3", "99999", "1e400", "", "x", "1e9"])
    paths = st.sampled_from([str(root / "a_file"), str(root), str(root / "missing"), str(small_model / "bank"),
                             str(small_model / "model"), str(root / "a_file" / "below")])  # fmt: skip
    mappings = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                                st.sampled_from(["columns", "csv", "date_format", "ts_unit", "ts_origin",
                                                 "sep", "encoding", "quotechar", "amount", "ts", "constants"]),
                                inner, max_size=3), max_leaves=6)  # fmt: skip
    options = {
        "cost": {"--tps": numbers, "--retention-days": numbers, "--prices": paths},
        "rules": {"--out": paths, "--env": st.text(max_size=4)},
        "evaluate": {"--npz": paths, "--seeds": st.just("1")},
        "demo": {"--metrics-port": numbers, "--metrics-hold": numbers, "--budget": numbers, "--data": paths},
        "generate": {"--out": paths, "--accounts": st.sampled_from(["0", "-2", "x", "nan"])},
        "train": {"--data": paths, "--out": paths, "--detector": st.sampled_from(["lof", "nope"])},
    }

    @settings(max_examples=20, deadline=None)
    @given(st.data())
    def check(data):
        command = data.draw(st.sampled_from([*options, "score", "score"]))
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            if command == "score":
                bank = Path(shutil.copytree(small_model / "bank", tmp / "bank"))
                damage(bank, *data.draw(bad_bank_strategy()))
                argv = ["score", "--data", str(bank), "--model", str(small_model / "model"),
                        "--out", str(tmp / "s.parquet")]  # fmt: skip
                if data.draw(st.booleans()):
                    (tmp / "m.yaml").write_text(yaml_dump(data.draw(mappings)))
                    argv += ["--mapping", str(tmp / "m.yaml"), "--data", str(root / "a_file")]
            else:
                chosen = data.draw(st.lists(st.sampled_from(sorted(options[command])), unique=True, max_size=3))
                argv = [command] + [x for o in chosen for x in (o, data.draw(options[command][o]))]
                if command in ("demo", "train"):  # these would run for minutes: end each in a bad value
                    argv += ["--budget", "2"] if command == "demo" else ["--detector", "nope", "--out", str(tmp / "m")]
            out, err = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = main(argv)
            assert code in EXIT_CODES - {1}, (argv, err.getvalue())
            assert "Traceback" not in out.getvalue() + err.getvalue()
            errors = err.getvalue().strip().splitlines()
            assert (code == 0) == (not errors), (argv, errors)
            assert len(errors) <= 1 and all(e.startswith("error: finsentry") for e in errors), errors

    check()


def yaml_dump(value) -> str:
    import yaml

    return yaml.safe_dump(value)


def test_a_rule_firing_on_most_training_rows_is_suspended_and_the_budget_holds(tmp_path, capsys):
    """A table whose balances do not add up on most rows (a source artefact): the balance rule is
    suspended for the model with a warning, and scoring still alerts exactly the budget."""
    import pandas as pd

    from tests.foreign import CARD_CSV, CARD_MAPPING

    table = pd.read_csv(CARD_CSV)
    rng = np.random.default_rng(0)
    table["before"] = np.round(rng.uniform(100, 5000, len(table)), 2)
    off = rng.random(len(table)) < 0.6
    table["after"] = np.round(table["before"] - pd.to_numeric(table["TX_AMOUNT"], errors="coerce")
                              + np.where(off, rng.uniform(5, 50, len(table)), 0.0), 2)
    path = tmp_path / "balances.csv"
    table.to_csv(path, index=False)
    mapping = tmp_path / "map.yaml"
    mapping.write_text(CARD_MAPPING.read_text().replace("columns:", "columns:\n  balance_before: before\n"
                                                        "  balance_after: after", 1))
    args = ["--data", str(path), "--mapping", str(mapping)]
    assert main(["train", *args, "--detector", "ensemble", "--out", str(tmp_path / "model")]) == 0
    out = capsys.readouterr().out
    assert "rule balance_mismatch suspended" in out
    meta = json.loads((tmp_path / "model" / "metadata.json").read_text())
    assert any("balance_mismatch suspended" in w for w in meta["warnings"])
    scored_path = tmp_path / "scored.parquet"
    argv = ["score", *args, "--model", str(tmp_path / "model"), "--out", str(scored_path), "--budget", "0.01"]
    assert main(argv) == 0
    scored = pd.read_parquet(scored_path)
    assert (scored["verdict"] == "alert").sum() == int(0.01 * len(scored))
    assert not (scored["anomaly_type"] == "balance_mismatch").any()
