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
    assert len(alerts) > 0 and (alerts["reasons"] != "").all()


def test_evaluate_runs_the_adbench_protocol_on_an_npz(tmp_path, capsys):
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(0, 1, (300, 4)), rng.normal(6, 1, (15, 4))])
    y = np.r_[np.zeros(300), np.ones(15)]
    path = tmp_path / "toy.npz"
    np.savez(path, X=X, y=y)
    assert main(["evaluate", "--npz", str(path), "--seeds", "1"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    results = json.loads(last)["results"]
    assert results["isolation_forest"]["auc_roc"] > 90


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
