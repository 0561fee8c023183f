"""The command line: clear errors for bad arguments and bad input, and the local run end to end."""

from __future__ import annotations

import json

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
    ],
)
def test_bad_arguments_exit_with_usage_not_a_traceback(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(argv)
    assert exc.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_train_on_a_folder_without_bank_files_is_a_clear_error(tmp_path, capsys):
    code = main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "m")])
    assert code == 2
    assert "error:" in capsys.readouterr().out


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
    assert len(alerts) > 0 and (alerts["reasons"] != "").all()


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


@pytest.mark.xfail(raises=KeyError, strict=False,
                   reason="the ensemble's rules need the canonical features (KeyError 'duplicate_recent' on a "
                          "generic table): being fixed in the ensemble itself")  # fmt: skip
def test_evaluate_npz_by_default_runs_every_stream_capable_detector_and_the_ensemble(tmp_path, capsys):
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
                 "stream replay: 300"):
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
    assert code == 2 and "has no labels" in capsys.readouterr().out


def test_evaluate_npz_runs_the_chosen_detectors(tmp_path, capsys):
    rng = np.random.default_rng(0)
    path = tmp_path / "toy.npz"
    X = np.vstack([rng.normal(0, 1, (200, 3)), rng.normal(6, 1, (10, 3))])
    np.savez(path, X=X, y=np.r_[np.zeros(200), np.ones(10)])
    assert main(["evaluate", "--npz", str(path), "--seeds", "1", "--detector", "lof"]) == 0
    assert set(json.loads(capsys.readouterr().out.strip().splitlines()[-1])["results"]) == {"lof"}


def test_evaluate_runs_every_stream_capable_detector_and_the_default_by_default():
    from finsentry.table_evaluation import detector_names

    names = detector_names(None)
    assert {"isolation_forest", "lof", "ensemble"} <= set(names) and "lstm" not in names
    with pytest.raises(ValueError, match="unknown detector"):
        detector_names(["nope"])


def test_demo_runs_on_a_mapped_card_table_and_names_what_it_could_not_feed(tmp_path, capsys):
    code = main(["demo", *_card_args(), "--out", str(tmp_path), "--stream-records", "0", "--no-sagemaker"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "could not feed" in out and "balance_error, balance_gap, drain_share" in out
    assert "features the data could not feed" in (tmp_path / "report.html").read_text()
    assert json.loads((tmp_path / "model" / "metadata.json").read_text())["unfed_features"] == [
        "balance_error", "balance_gap", "drain_share"]
