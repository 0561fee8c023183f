"""One feedback round on a small demo run: alerts -> scripted verdicts through `finsentry label`
-> the supervised candidate retrained through the SageMaker entry point -> its effect; and the
local alerts listing with the verdicts."""

from __future__ import annotations

import pandas as pd
import pytest

from finsentry.cli import main
from finsentry.labels import CONFIRMED_FRAUD, DISMISSED, LabelStore
from finsentry.local.alerts import local_alerts, write_scored
from finsentry.local.aws import DataBucket, local_aws
from finsentry.local.feedback_round import ANALYST, run_round, scripted_verdicts, split_test_period
from finsentry.local.pipeline import DemoConfig, run_demo


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """A small demo with many injected anomalies and a generous budget, so that the first half of
    its test period holds more than the minimum of confirmed and dismissed alerts."""
    out = tmp_path_factory.mktemp("demo")
    config = DemoConfig(accounts=150, months=10, anomaly_rate=0.06, budget=0.08, out_dir=out, sagemaker_jobs=False,
                        stream_records=0, candidates=("isolation_forest",))  # fmt: skip
    with local_aws():
        result = run_demo(config, DataBucket.create())
    write_scored(result.scored, out)
    return result, config


def _record(out):
    def record(path) -> None:
        assert main(["label", "--labels", str(path), "--out", str(out)]) == 0

    return record


def test_scripted_verdicts_follow_the_injected_truth():
    alerts = pd.DataFrame({"trans_id": ["1", "2", "3"], "ts": pd.to_datetime(["1996-03-01 10:00", "1996-03-01 23:00",
                                                                              "1996-03-02 01:00"])})  # fmt: skip
    truth = pd.DataFrame({"trans_id": [1, 2, 3], "is_anomaly": [True, False, False],
                          "anomaly_type": ["burst", "", ""]})  # fmt: skip
    out = scripted_verdicts(alerts, truth)
    assert out["verdict"].tolist() == [CONFIRMED_FRAUD, DISMISSED, DISMISSED]
    assert out["when"].tolist() == ["1996-03-02T09:00:00", "1996-03-02T09:00:00", "1996-03-03T09:00:00"]
    assert out["note"].tolist() == ["injected burst", "", ""] and set(out["who"]) == {ANALYST}


def test_one_round_trains_the_supervised_candidate_on_the_verdicts_and_measures_it_later(demo):
    result, config = demo
    out = config.out_dir
    fb = run_round(result.prepared, out, config.budget, _record(out))

    tx, test = result.prepared.transactions, result.prepared.split.test
    cut = split_test_period(tx.loc[test, "ts"])
    reviewed_alerts = result.scored[(result.scored["verdict"] == "alert") & (result.scored["ts"] < cut)]
    assert fb.alerts_reviewed == len(reviewed_alerts) > 0
    # every verdict went through `finsentry label` into the store, and says what was injected
    current = LabelStore(out).current().set_index("trans_id")
    assert set(current.index) == set(reviewed_alerts["trans_id"].astype(str))
    injected = tx.set_index(tx["trans_id"].astype(str))["is_anomaly"]
    assert (current["is_fraud"] == injected.loc[current.index]).all()
    assert fb.confirmed == int(current["is_fraud"].sum()) and fb.dismissed == len(current) - fb.confirmed
    # no verdict is dated on or after the days the effect is measured on
    assert pd.to_datetime(current["when"]).max() <= cut + pd.Timedelta(hours=9)
    assert fb.evaluation_days[0] == cut.strftime("%Y-%m-%d") > fb.reviewed_days[1]
    assert fb.outcome == "trained", fb.reason
    assert fb.after["name"] == "supervised" and 0 <= fb.after["recall"] <= 1
    # the stream serves its risk (finsentry.stream.risk): ranked against the champion like any candidate
    assert fb.after["promotable"] is True and "not_promotable" not in fb.after
    assert "not promoted: it" not in fb.reason
    assert fb.before is not None and fb.before["name"].startswith("champion")
    assert fb.before["rows"] == fb.after["rows"] == int((test & (tx["ts"] >= cut)).sum())
    # the listing shows the verdicts next to the alerts; precision by day counts them
    listed = local_alerts(out, limit=None)
    assert listed.reviewed == fb.alerts_reviewed and listed.total == int((result.scored["verdict"] == "alert").sum())
    daily = listed.precision
    assert daily["confirmed"].sum() == fb.confirmed and daily["dismissed"].sum() == fb.dismissed
    assert (daily.loc[daily["dt"] >= fb.evaluation_days[0], "unreviewed"] == daily.loc[
        daily["dt"] >= fb.evaluation_days[0], "alerts"]).all()  # fmt: skip
    # re-running the round records nothing new (idempotent labels)
    again = run_round(result.prepared, out, config.budget, _record(out))
    assert len(LabelStore(out).history()) == fb.alerts_reviewed and again.outcome == "trained"


def test_too_few_verdicts_skip_the_candidate_with_the_jobs_reason(demo, tmp_path):
    result, config = demo
    out = tmp_path / "few"
    (out / "model").parent.mkdir(parents=True, exist_ok=True)
    write_scored(result.scored, out)

    def record_some(path) -> None:  # the analyst got through five alerts only
        pd.read_csv(path).head(5).to_csv(path, index=False)
        _record(out)(path)

    fb = run_round(result.prepared, out, config.budget, record_some)
    assert fb.outcome == "skipped" and "not enough verdicts" in fb.reason and fb.after is None


def test_alerts_local_lists_verdicts_and_refuses_a_folder_without_a_run(demo, tmp_path, capsys):
    _, config = demo
    assert main(["alerts", "--local", str(config.out_dir), "--limit", "5", "--out", str(tmp_path / "a.csv")]) == 0
    printed = capsys.readouterr().out
    assert "verdict" in printed and "precision of the alerts by day" in printed
    listed = pd.read_csv(tmp_path / "a.csv")
    assert len(listed) == 5 and list(listed["score"]) == sorted(listed["score"], reverse=True)
    assert main(["alerts", "--local", str(tmp_path / "nothing")]) == 2
    assert "run `finsentry demo" in capsys.readouterr().err
