"""Label-derived risk in the stream's state: one definition with the batch, point-in-time, bounded, idempotent.

The risk items live in the profiles table (moto DynamoDB); the doors write them through
``record_verdicts``, the scorer reads them and computes ``RISK_COLUMNS`` with ``stream_risk``.
"""

from __future__ import annotations

import boto3
import numpy as np
import pandas as pd
import pytest

from finsentry.label_risk import RISK_COLUMNS, risk_features
from finsentry.local.aws import LOCAL_REGION, local_aws
from finsentry.local.stream_resources import create_scorer_resources
from finsentry.stream.profiles import ProfileStore
from finsentry.stream.risk import (
    RISK_KEEP_DAYS,
    IndexEntry,
    RiskItem,
    encode_index,
    frame_resolver,
    index_item_key,
    record_verdicts,
    risk_item_key,
    risk_keys,
    stream_risk,
)
from tests.factories import card_world


@pytest.fixture
def store():
    with local_aws():
        res = create_scorer_resources()
        yield ProfileStore(boto3.client("dynamodb", region_name=LOCAL_REGION), res.env["PROFILES_TABLE"])


def _with_corrections(history: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """The world's verdicts plus corrections two days later (a fraud dismissed, a dismissal
    confirmed) and re-sent labels (the same label twice): what real doors receive."""
    rng = np.random.default_rng(seed)
    pick = history.sample(frac=0.15, random_state=seed)
    corrected = pick.assign(verdict=np.where(pick["verdict"] == "dismissed", "confirmed_fraud", "dismissed"),
                            when=pick["when"] + pd.Timedelta(days=2))  # fmt: skip
    corrected["label_id"] = corrected["trans_id"] + "/fix"
    resent = history.sample(frac=0.1, random_state=seed + 1)
    out = pd.concat([history, corrected, resent], ignore_index=True)
    return out.iloc[rng.permutation(len(out))].sort_values("when", kind="stable").reset_index(drop=True)


def _stream(store: ProfileStore, rows: pd.DataFrame) -> pd.DataFrame:
    read, unreadable, corrupt = store.load(risk_keys(rows))
    assert not unreadable and not corrupt
    return stream_risk(rows.reset_index(drop=True), read)


def test_same_verdict_history_gives_the_stream_the_batch_risk(store):
    """Parity: labels fed to the doors' write path, then read as the scorer reads them, give
    ``label_risk.risk_features`` of every row, corrections and re-sent labels included."""
    rows, history = card_world(customers=60, terminals=20, days=40, seed=3)
    history = _with_corrections(history)
    run = record_verdicts(store, history, now=rows["ts"].min(), resolve=frame_resolver(rows))
    assert run.resolved == len(history) and not run.unresolved and not run.failed
    batch = risk_features(rows, history)
    assert (batch["partner_frauds_known_log"] > 0).mean() > 0.05  # verdicts do mark partners
    stream = _stream(store, rows)
    np.testing.assert_allclose(stream[list(RISK_COLUMNS)].to_numpy(), batch[list(RISK_COLUMNS)].to_numpy(),
                               rtol=0, atol=1e-12)  # fmt: skip


def test_the_stream_never_uses_a_verdict_known_after_the_transaction(store):
    """No leakage, as the batch's test: the items hold EVERY verdict (the ones given after the
    transaction too); each sampled row's stream risk equals the risk from the verdicts before it."""
    rows, history = card_world(customers=60, terminals=20, days=40, seed=4)
    history = _with_corrections(history, seed=4)
    record_verdicts(store, history, now=rows["ts"].min(), resolve=frame_resolver(rows))
    stream = _stream(store, rows)
    assert (stream["partner_frauds_known_log"] > 0).any()
    for i in np.random.default_rng(0).choice(len(rows), 40, replace=False):
        t = rows.loc[i, "ts"]
        known = risk_features(rows, history[history["when"] < t])
        np.testing.assert_allclose(stream.loc[i].to_numpy(), known.loc[i].to_numpy(), err_msg=f"row {i} at {t}")


def test_verdicts_arriving_day_by_day_with_pruning_give_each_day_the_batch_risk(store):
    """The deployment's order: the doors record the verdicts of three days as they come (pruning
    what left the window, their clock at the period's end), the scorer scores the transactions
    of those days: always the batch's risk, and items stay bounded (no transaction whose latest
    verdict is older than RISK_KEEP_DAYS before the item's last write)."""
    rows, history = card_world(customers=40, terminals=12, days=60, seed=5)
    history = _with_corrections(history, seed=5)
    batch = risk_features(rows, history)
    resolve = frame_resolver(rows)
    day0 = rows["ts"].min().normalize()
    for d in range(0, 60, 3):
        start, end = day0 + pd.Timedelta(days=d), day0 + pd.Timedelta(days=d + 3)
        given = history[(history["when"] >= start) & (history["when"] < end)]
        record_verdicts(store, given, now=end, resolve=resolve)
        today = rows[(rows["ts"] >= start) & (rows["ts"] < end)]
        np.testing.assert_allclose(_stream(store, today).to_numpy(), batch.loc[today.index].to_numpy(),
                                   atol=1e-12, err_msg=f"days {d}..{d + 3}")  # fmt: skip
    read, _, _ = store.load(risk_keys(rows))
    for item in read.values():  # pruned at each write: at most RISK_KEEP_DAYS (+ the 3-day write clock) held
        latest = item.labels.groupby("tid")["when_us"].max()
        assert (latest.max() - latest.min()) / 86_400e6 <= RISK_KEEP_DAYS + 3, item.item_key


def test_a_resent_label_counts_once_and_the_latest_verdict_wins(store):
    rows = pd.DataFrame({"trans_id": ["A", "B", "C"], "account_id": "C1", "partner_bank": "",
                         "partner_account": "T1", "ts": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-20"])})
    labels = pd.DataFrame({"trans_id": ["A", "B"], "verdict": ["confirmed_fraud", "confirmed_fraud"], "who": "x",
                           "when": pd.to_datetime(["2024-01-05", "2024-01-05"]), "note": "",
                           "label_id": ["la", "lb"]})  # fmt: skip
    resolve = frame_resolver(rows)
    first = record_verdicts(store, labels, now=pd.Timestamp("2024-01-06"), resolve=resolve)
    assert first.written == 2  # the account's item and the partner's
    again = record_verdicts(store, labels, now=pd.Timestamp("2024-01-06"), resolve=resolve)
    assert again.written == 0 and not again.failed  # nothing new: no write at all
    fix = pd.DataFrame({"trans_id": ["B"], "verdict": ["dismissed"], "who": "y",
                        "when": pd.to_datetime(["2024-01-10"]), "note": "", "label_id": ["lb2"]})  # fmt: skip
    record_verdicts(store, fix, now=pd.Timestamp("2024-01-10"), resolve=resolve)
    risk = _stream(store, rows.iloc[[2]])
    assert risk.loc[0, "account_frauds_known_log"] == pytest.approx(np.log1p(1))  # A stays, B corrected
    assert risk.loc[0, "account_fraud_share_known"] == pytest.approx(1 / 3)  # 1 fraud of 2 labelled, +1
    history = pd.concat([labels, labels, fix], ignore_index=True)
    np.testing.assert_allclose(risk.to_numpy(), risk_features(rows, history).iloc[[2]].to_numpy())


def test_the_doors_resolve_through_the_scorers_index_and_count_what_they_cannot(store):
    rows = pd.DataFrame({"trans_id": ["A"], "account_id": "C1", "partner_bank": "B", "partner_account": "T1",
                         "ts": pd.to_datetime(["2024-01-20"])})  # fmt: skip
    store.put_plain([encode_index(IndexEntry("A", "C1", "B/T1"), expires=2_000_000_000)])
    labels = pd.DataFrame({"trans_id": ["A", "NEVER-ALERTED"], "verdict": ["confirmed_fraud"] * 2, "who": "x",
                           "when": pd.to_datetime(["2024-01-05"] * 2), "note": "",
                           "label_id": ["l1", "l2"]})  # fmt: skip
    run = record_verdicts(store, labels, now=pd.Timestamp("2024-01-06"))
    assert (run.resolved, run.unresolved, run.written) == (1, ["NEVER-ALERTED"], 2)
    assert run.counts()["risk_labels"] == run.resolved + run.counts()["unresolved"]
    read, _, _ = store.load([risk_item_key("account", "C1"), risk_item_key("partner", "B/T1"), index_item_key("A")])
    assert isinstance(read[risk_item_key("partner", "B/T1")], RiskItem)
    assert read[index_item_key("A")] == IndexEntry("A", "C1", "B/T1")
    assert _stream(store, rows).loc[0, "partner_frauds_known_log"] == pytest.approx(np.log1p(1))


def test_a_corrupt_risk_item_is_replaced_by_the_next_door_write(store):
    key = risk_item_key("account", "C1")
    store.client.put_item(TableName=store.table, Item={"account_id": {"S": key}, "v": {"N": "3"}, "l": {"B": b"junk"}})
    rows = pd.DataFrame({"trans_id": ["A"], "account_id": "C1", "partner_bank": "", "partner_account": "",
                         "ts": pd.to_datetime(["2024-01-20"])})  # fmt: skip
    labels = pd.DataFrame({"trans_id": ["A"], "verdict": ["confirmed_fraud"], "who": "x",
                           "when": pd.to_datetime(["2024-01-05"]), "note": "", "label_id": ["l1"]})  # fmt: skip
    run = record_verdicts(store, labels, now=pd.Timestamp("2024-01-06"), resolve=frame_resolver(rows))
    assert run.written == 1 and not run.failed
    read, _, corrupt = store.load([key])
    assert not corrupt and len(read[key].labels) == 1


def test_a_record_whose_risk_cannot_be_read_fails_and_its_redelivery_scores_it_with_its_risk(tmp_path):
    """While the served model reads risk, a risk item the read could not return fails its
    records (never scored as "nothing known"); the redelivery scores them with the risk."""
    from finsentry.detectors import make_detector
    from finsentry.features import FEATURE_COLUMNS, features_with_sequence
    from finsentry.stream.events import decode_event
    from finsentry.stream.model_source import ServingModel, StaticModel
    from tests.stream.world import bank, event_of, payloads, service, setup_world

    b = bank()
    reads_risk_too = (*FEATURE_COLUMNS, *RISK_COLUMNS)
    rng = np.random.default_rng(0)  # risk that varies in training: the model's trees split on it
    train = features_with_sequence(b.train).assign(**{c: rng.exponential(0.3, len(b.train)) for c in RISK_COLUMNS})
    model = make_detector("isolation_forest", n_estimators=20, feature_columns=reads_risk_too).fit(train)
    test = b.test.head(30)
    target = str(test["account_id"].iloc[0])
    with local_aws():
        res = setup_world(tmp_path, with_model=False)
        store = ProfileStore(boto3.client("dynamodb", region_name=LOCAL_REGION), res.env["PROFILES_TABLE"])
        verdict = pd.DataFrame({"trans_id": [str(b.train["trans_id"].iloc[0])], "verdict": ["confirmed_fraud"],
                                "who": "x", "when": [test["ts"].min() - pd.Timedelta(days=1)], "note": "",
                                "label_id": ["l1"]})  # fmt: skip
        history = b.train.assign(account_id=target).head(1)  # the verdict is about one of the target's transactions
        record_verdicts(store, verdict, now=test["ts"].min(), resolve=frame_resolver(history))
        svc = service(res, models=StaticModel(ServingModel(model, "risk-1", 0.99)))
        real, calls = svc.profiles.load, []

        def flaky(keys):  # the first read loses the target's risk item
            found, unreadable, corrupt = real(keys)
            key = risk_item_key("account", target)
            calls.append(key in set(keys))
            if len(calls) == 1:
                found.pop(key, None)
                unreadable = unreadable | {key}
            return found, unreadable, corrupt

        svc.profiles.load = flaky
        _, records = decode_event(event_of(payloads(test), first=10))
        first = svc.process(records)
        mine = {r.key for r, acc in zip(records, test["account_id"], strict=True) if str(acc) == target}
        assert set(first.failed) >= mine and all("risk read failed" in first.failed[k] or "behind" in first.failed[k]
                                                 for k in mine)  # fmt: skip
        failed = {f["itemIdentifier"] for f in first.response(records)["batchItemFailures"]}
        start = min(i for i, r in enumerate(records) if r.item_identifier in failed)
        second = svc.process(records[start:])
        assert not second.failed and calls[0]
        rows = pd.DataFrame(res.scored_rows()).set_index("trans_id")
    assert len(rows) == len(test)  # every record scored once
    got = rows.loc[test["trans_id"].astype(str), "score"].to_numpy(dtype=float)
    features = features_with_sequence(b.valid).loc[test.index]
    risk = risk_features(b.valid.assign(account_id=b.valid["account_id"].where(
        b.valid.index != b.train.index[0], target)), verdict).loc[test.index]  # fmt: skip
    assert (risk.loc[test["account_id"].astype(str) == target, "account_frauds_known_log"] > 0).all()
    expected = model.score(pd.concat([features, risk], axis=1))
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    blind = model.score(pd.concat([features, risk * 0.0], axis=1))
    assert not np.allclose(blind, expected)  # scored as "nothing known", the comparison above would fail


def test_an_unwritten_alert_index_costs_no_alert_and_names_its_transactions(tmp_path, caplog):
    """The alert index is written after the outputs are decided: when DynamoDB refuses it, every
    record is still scored and every alert still delivered, and the loss is counted
    (AlertIndexFailures, the alarm) and logged with the trans_ids whose verdicts will come back
    unresolved (docs/operations.md, "Alert index failures")."""
    import logging

    from finsentry.detectors import make_detector
    from finsentry.features import features_with_sequence
    from finsentry.monitoring import Metric
    from finsentry.stream.events import decode_event
    from finsentry.stream.model_source import ServingModel, StaticModel
    from tests.stream.world import bank, event_of, payloads, service, setup_world

    b = bank()
    model = make_detector("isolation_forest", n_estimators=20).fit(features_with_sequence(b.train))
    test = b.test.head(40)
    with local_aws():
        res = setup_world(tmp_path, with_model=False)
        svc = service(res, models=StaticModel(ServingModel(model, "idx-1", 0.0)))  # every row alerts
        svc.profiles.put_plain = lambda items: {i["account_id"]["S"] for i in items}  # nothing written
        _, records = decode_event(event_of(payloads(test), first=10))
        with caplog.at_level(logging.ERROR):
            report = svc.process(records)
        rows = pd.DataFrame(res.scored_rows())
    alerts = rows.loc[rows["verdict"] == "alert", "trans_id"].astype(str)
    assert not report.failed and len(rows) == len(test) and len(alerts) >= 30
    assert svc.metrics.total(Metric.INDEX_WRITE_FAILED) == len(alerts)
    [logged] = [r.getMessage() for r in caplog.records if "alert index not written" in r.getMessage()]
    assert set(logged.split("trans_ids: ")[1].split(", ")) == set(alerts)
