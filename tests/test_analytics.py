"""The Athena views, executed on DuckDB (after sqlglot transpilation) over the pipeline's Parquet."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlglot import exp

from finsentry import analytics
from finsentry.analytics import VIEW_COLUMNS, AthenaView, ViewDefinitionError, check_view, load_views
from finsentry.detectors import make_detector
from finsentry.evaluation import threshold_for_budget
from finsentry.labels import (
    HISTORY_COLUMNS,
    current_verdicts,
    empty_history,
    is_fraud_verdict,
    merge_labels,
    validate_labels,
)
from finsentry.layout import PARTITION_KEY, PREFIXES
from finsentry.local.aws import DataBucket, local_aws
from finsentry.local.pipeline import DemoConfig, prepare
from finsentry.privacy import mask_ids
from finsentry.scoring import SCORED_COLUMNS, score_transactions, scored_frame
from tests.factories import small_bank


@pytest.fixture(scope="module")
def scored_output(tmp_path_factory) -> tuple[pd.DataFrame, pd.DataFrame, Path]:
    """Labelled transactions scored as the demo scores them, written by the demo's S3 writer
    (moto) and copied to a local folder with the same ``scored/dt=.../`` keys."""
    prep = prepare(small_bank(), DemoConfig(anomaly_rate=0.02, seed=3))
    model = make_detector("isolation_forest").fit(prep.features[prep.split.train])
    rows = ~prep.split.train
    scores = model.score(prep.features[rows])
    batch = score_transactions(model, prep.features[rows], budget_threshold=threshold_for_budget(scores, 0.02),
                               model_version="isolation_forest-test")  # fmt: skip
    transactions = prep.transactions[rows].reset_index(drop=True)
    scored = scored_frame(transactions, batch)
    with local_aws():
        bucket = DataBucket.create()
        bucket.write_partitioned(scored, PREFIXES.scored)
        root = _download(bucket, PREFIXES.scored, tmp_path_factory.mktemp("bucket"))
    scored[PARTITION_KEY] = scored["ts"].dt.strftime("%Y-%m-%d")
    return transactions, scored, root


@pytest.fixture(scope="module")
def con(scored_output):
    return analytics.duckdb_connection(scored_output[2])


def _view(con, name: str) -> pd.DataFrame:
    return con.execute(f"SELECT * FROM {name}").df()  # noqa: S608 - view names from the repo


def test_every_view_file_is_loaded_checked_and_declared():
    views = load_views()
    assert [v.name for v in views] == sorted(VIEW_COLUMNS)
    for v in views:
        assert v.statement.startswith(f"CREATE OR REPLACE VIEW {v.name} AS SELECT")
        assert "--" not in v.statement and "/*" not in v.statement  # Athena gets no comments
        assert v.select_sql.startswith("SELECT")


def test_views_read_only_columns_the_scored_table_has():
    known = set(SCORED_COLUMNS) | {PARTITION_KEY}
    labels = set(HISTORY_COLUMNS) | {"latest", "verdicts"}  # + the labels subquery's own aliases
    for v in load_views():
        body = analytics._parse(v.sql, v.path).expression
        used = {c.name for c in body.find_all(exp.Column)} - set(v.columns)  # minus aliases of outputs
        reads_labels = analytics.LABELS_TABLE in {t.name for t in body.find_all(exp.Table)}
        assert used <= known | (labels if reads_labels else set()), (v.name, used - known)


@pytest.mark.parametrize(
    ("name", "sql", "message"),
    [
        ("scored_transactions", "CREATE OR REPLACE VIEW scored_transactions AS SELECT trans_id, account_id "
         "FROM scored", "raw identifiers"),
        ("daily_anomaly_summary", "CREATE OR REPLACE VIEW other AS SELECT dt FROM scored", "expected"),
        ("daily_anomaly_summary", "CREATE VIEW daily_anomaly_summary AS SELECT dt FROM scored", "OR REPLACE"),
        ("daily_anomaly_summary", "CREATE OR REPLACE VIEW daily_anomaly_summary AS SELECT dt FROM transactions",
         "must read only"),
        ("daily_anomaly_summary", "CREATE OR REPLACE VIEW daily_anomaly_summary AS SELECT dt FROM scored; "
         "SELECT 1", "one statement"),
        ("daily_anomaly_summary", "CREATE OR REPLACE VIEW daily_anomaly_summary AS SELECT dt FROM scored",
         "declared"),
        ("unknown_view", "CREATE OR REPLACE VIEW unknown_view AS SELECT dt FROM scored", "no declared columns"),
    ],
)  # fmt: skip
def test_check_view_rejects_files_that_break_the_contract(name, sql, message):
    with pytest.raises(ViewDefinitionError, match=message):
        check_view(AthenaView(name=name, sql=sql, path=Path(f"{name}.sql")))


def test_a_folder_without_views_is_an_error(tmp_path):
    with pytest.raises(ViewDefinitionError, match="no view files"):
        load_views(tmp_path)


FAMILY = {"varchar": "VARCHAR", "date": "DATE", "timestamp": "TIMESTAMP", "double": "DOUBLE",
          "bigint": "INT", "integer": "INT"}  # fmt: skip


def _family(duck_type: str) -> str:
    t = duck_type.upper()
    if t.startswith("TIMESTAMP"):
        return "TIMESTAMP"
    return "INT" if t in {"BIGINT", "INTEGER", "HUGEINT", "SMALLINT"} else t


def test_views_run_on_duckdb_with_the_declared_columns_and_types(con):
    for name, declared in VIEW_COLUMNS.items():
        described = con.execute(f"SELECT * FROM {name} LIMIT 0").description  # noqa: S608
        assert [d[0] for d in described] == list(declared)
        assert [_family(str(d[1])) for d in described] == [FAMILY[t] for t in declared.values()], name


def test_scored_transactions_has_every_row_once_with_the_client_masked(con, scored_output):
    transactions, scored, _ = scored_output
    view = _view(con, "scored_transactions")
    assert len(view) == len(scored)
    assert sorted(view["trans_id"]) == sorted(scored["trans_id"])
    assert not set(view.columns) & {"account_id", "client_id"}
    raw_ids = set(transactions["client_id"]) | set(transactions["account_id"])
    assert not set(view["client_ref"]) & raw_ids
    expected = dict(zip(transactions["trans_id"], mask_ids(transactions["client_id"]), strict=True))
    assert (view["client_ref"] == view["trans_id"].map(expected)).all()
    # every other text column is free of raw client and account ids too
    for col in ("direction", "operation", "region", "verdict", "anomaly_type", "reasons", "model_version"):
        assert not set(view[col]) & raw_ids, col
    assert set(view.loc[view["verdict"] == "normal", "anomaly_type"]) == {"none"}
    assert (view["txn_date"].astype(str) == view["dt"]).all()
    assert (view["hour_of_day"] == pd.to_datetime(view["ts"]).dt.hour).all()


def test_daily_summary_matches_a_pandas_groupby(con, scored_output):
    scored = scored_output[1]
    view = _view(con, "daily_anomaly_summary").set_index("dt").sort_index()
    alert = scored["verdict"] == "alert"
    g = scored.assign(alert=alert, alerted_amount=np.where(alert, scored["amount"], 0.0),
                      alerted_client=scored["client_ref"].where(alert)).groupby("dt")  # fmt: skip
    expected = pd.DataFrame({
        "transactions": g.size(), "alerts": g["alert"].sum(), "clients_alerted": g["alerted_client"].nunique(),
        "clients": g["client_ref"].nunique(), "mean_score": g["score"].mean(), "max_score": g["score"].max(),
        "amount_total": g["amount"].sum(), "amount_alerted": g["alerted_amount"].sum(),
    }).sort_index()  # fmt: skip
    assert list(view.index) == list(expected.index)
    assert view["alerts"].sum() > 0, "the fixture must raise alerts for the test to mean anything"
    for col in expected.columns:
        np.testing.assert_allclose(view[col].astype(float), expected[col].astype(float), rtol=1e-9, err_msg=col)
    np.testing.assert_allclose(view["alert_rate"], expected["alerts"] / expected["transactions"])


def test_counts_by_type_and_region_add_up_to_the_input(con, scored_output):
    scored = scored_output[1]
    view = _view(con, "anomaly_counts_by_type_region")
    assert view["transactions"].sum() == len(scored)
    assert view["alerts"].sum() == (scored["verdict"] == "alert").sum()
    assert not view.duplicated(["dt", "region", "district_id", "anomaly_type"]).any()
    alerts = scored[scored["verdict"] == "alert"]
    by_type = view[view["anomaly_type"] != "none"].groupby("anomaly_type")["alerts"].sum()
    expected = alerts["anomaly_type"].replace("", "unclassified").value_counts()
    assert by_type.sort_index().to_dict() == expected.sort_index().to_dict()
    by_region = view.groupby("region")["transactions"].sum()
    expected_regions = scored["region"].replace("", "unknown").value_counts()
    assert by_region.sort_index().to_dict() == expected_regions.sort_index().to_dict()


def _download(bucket: DataBucket, prefix: str, root: Path) -> Path:
    for key in bucket.list_keys(prefix):
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(bucket.client.get_object(Bucket=bucket.name, Key=key)["Body"].read())
    return root / prefix


def test_the_views_on_the_local_pipelines_own_output(tmp_path):
    """`run_demo` end to end (one candidate to stay quick), then the views on its scored/ prefix."""
    from finsentry.local.pipeline import run_demo

    config = DemoConfig(accounts=80, months=8, anomaly_rate=0.02, candidates=("isolation_forest",),
                        out_dir=tmp_path / "out")  # fmt: skip
    with local_aws():
        bucket = DataBucket.create()
        result = run_demo(config, bucket)
        root = _download(bucket, PREFIXES.scored, tmp_path / "bucket")
    con = analytics.duckdb_connection(root)
    daily = _view(con, "daily_anomaly_summary")
    assert daily["transactions"].sum() == result.counts["test_transactions"] == len(result.scored)
    assert daily["alerts"].sum() == result.counts["alerts"]
    assert _view(con, "anomaly_counts_by_type_region")["transactions"].sum() == len(result.scored)
    view = _view(con, "scored_transactions")
    assert sorted(view["trans_id"]) == sorted(result.scored["trans_id"])
    assert len(daily) == result.keys["scored"]  # one partition object per day


def test_glue_view_input_is_accepted_by_glue_and_decodes_to_the_view():
    import base64
    import json

    import boto3

    with local_aws():
        glue = boto3.client("glue", region_name="eu-west-1")
        glue.create_database(DatabaseInput={"Name": "finsentry_test"})
        for view in load_views():
            table_input = analytics.glue_view_input(view, "finsentry_test")
            glue.create_table(DatabaseName="finsentry_test", TableInput=table_input)
        tables = {t["Name"]: t for t in glue.get_tables(DatabaseName="finsentry_test")["TableList"]}
    assert set(tables) == set(VIEW_COLUMNS)
    for view in load_views():
        table = tables[view.name]
        assert table["TableType"] == "VIRTUAL_VIEW"
        text = table["ViewOriginalText"]
        assert text.startswith("/* Presto View: ") and text.endswith(" */")
        spec = json.loads(base64.b64decode(text[len("/* Presto View: "):-3]))
        assert spec["schema"] == "finsentry_test" and spec["originalSql"] == view.select_sql
        assert [(c["name"], c["type"]) for c in spec["columns"]] == list(view.columns.items())
        assert [c["Name"] for c in table["StorageDescriptor"]["Columns"]] == list(view.columns)


def _verdicts(alerts: pd.DataFrame, normal: pd.DataFrame) -> pd.DataFrame:
    """A label history over the alerts: 12 confirmed, 8 dismissed, one confirmed then corrected to
    dismissed a day later, one confirmed anomaly type; and a verdict on a transaction that raised
    no alert (not an alert: the views leave it out)."""
    ids = alerts["trans_id"].astype(str).tolist()
    rows = [(i, "confirmed_fraud") for i in ids[:12]] + [(i, "dismissed") for i in ids[12:20]]
    rows += [(ids[20], "confirmed_fraud"), (ids[21], "amount_spike"), (str(normal["trans_id"].iloc[0]), "dismissed")]
    frame = pd.DataFrame(rows, columns=["trans_id", "verdict"]).assign(who="analyst-1", when=pd.Timestamp("1997-06-01"),
                                                                       note="")  # fmt: skip
    later = pd.DataFrame({"trans_id": [ids[20]], "verdict": ["dismissed"], "who": ["analyst-2"],
                          "when": [pd.Timestamp("1997-06-02")], "note": ["refund confirmed"]})  # fmt: skip
    history = merge_labels(empty_history(), validate_labels(frame).valid).history
    return merge_labels(history, validate_labels(later).valid).history


@pytest.fixture(scope="module")
def verdict_con(scored_output):
    _, scored, root = scored_output
    alerts = scored[scored["verdict"] == "alert"].sort_values("score", ascending=False)
    assert len(alerts) > 25
    history = _verdicts(alerts, scored[scored["verdict"] != "alert"])
    return analytics.duckdb_connection(root, labels=history), history, scored


def test_alert_verdicts_show_the_current_verdict_next_to_each_alert(verdict_con):
    con, history, scored = verdict_con
    view = _view(con, "alert_verdicts").set_index("trans_id")
    alerts = scored[scored["verdict"] == "alert"]
    assert sorted(view.index) == sorted(alerts["trans_id"].astype(str))  # every alert once, nothing else
    current = current_verdicts(history).set_index("trans_id")
    reviewed = view[view["analyst_verdict"] != "unreviewed"]
    assert len(reviewed) == 22 and set(reviewed.index) <= set(current.index)
    assert (reviewed["analyst_verdict"] == current.loc[reviewed.index, "verdict"]).all()
    corrected = view.loc[history.loc[history["note"] == "refund confirmed", "trans_id"].iloc[0]]
    assert (corrected["analyst_verdict"], corrected["outcome"], corrected["verdicts"]) == ("dismissed", "dismissed", 2)
    assert corrected["verdict_by"] == "analyst-2" and corrected["note"] == "refund confirmed"
    typed = view[view["analyst_verdict"] == "amount_spike"]
    assert typed["outcome"].tolist() == ["confirmed"]  # a confirmed anomaly type counts as confirmed
    assert (view.loc[view["analyst_verdict"] == "unreviewed", "verdicts"] == 0).all()


def test_precision_by_day_adds_up_and_matches_the_verdicts(verdict_con):
    con, history, scored = verdict_con
    daily = _view(con, "alert_precision_daily").set_index("dt").sort_index()
    alerts = scored[scored["verdict"] == "alert"].astype({"trans_id": str})
    current = current_verdicts(history)
    joined = alerts.merge(current[["trans_id", "verdict"]].rename(columns={"verdict": "analyst"}), on="trans_id",
                          how="left")  # fmt: skip
    reviewed_rows = joined["analyst"].notna()
    positive = pd.Series(False, index=joined.index)
    positive[reviewed_rows] = is_fraud_verdict(joined.loc[reviewed_rows, "analyst"])
    expected = joined.assign(confirmed=positive, dismissed=joined["analyst"] == "dismissed",
                             unreviewed=joined["analyst"].isna()).groupby(PARTITION_KEY)[
        ["confirmed", "dismissed", "unreviewed"]].sum()  # fmt: skip
    assert (daily["alerts"] == daily["confirmed"] + daily["dismissed"] + daily["unreviewed"]).all()
    assert daily["alerts"].sum() == len(alerts)
    for column in ("confirmed", "dismissed", "unreviewed"):
        assert daily[column].astype(int).to_dict() == expected[column].astype(int).to_dict(), column
    assert (daily["confirmed"].sum(), daily["dismissed"].sum()) == (12 + 1, 8 + 1)  # the correction is dismissed
    reviewed = daily["confirmed"] + daily["dismissed"]
    assert np.allclose(daily.loc[reviewed > 0, "precision"], (daily["confirmed"] / reviewed)[reviewed > 0])
    assert daily.loc[reviewed == 0, "precision"].isna().all()


def test_each_view_names_the_scored_columns_it_reads():
    by_name = {v.name: v.scored_columns for v in load_views()}
    # a join: only the columns qualified with scored's alias, not the labels subquery's
    assert by_name["alert_precision_daily"] == ("dt", "trans_id", "verdict")
    assert "who" not in by_name["alert_verdicts"] and "client_ref" in by_name["alert_verdicts"]
    # one table: its bare names; the masked view never reads the raw account id
    assert "account_id" not in by_name["scored_transactions"]
    assert set(by_name["daily_anomaly_summary"]) == {"dt", "verdict", "client_ref", "score", "amount"}
