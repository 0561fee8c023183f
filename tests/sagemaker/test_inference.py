"""sagemaker/inference.py in-process: the four handlers and the container's HTTP contract."""

from __future__ import annotations

import contextlib
import http.client
import json
import threading
from collections.abc import Iterator

import pandas as pd
import pytest

from finsentry.features import CURATED_COLUMNS, DETECTOR_COLUMNS
from finsentry.training.batch_inference import UnsupportedContentType
from finsentry.training.model_server import make_server
from tests.sagemaker.conftest import entry_point, training_env

train, inference = entry_point("train"), entry_point("inference")


@pytest.fixture(scope="module", params=["isolation_forest", "lstm"])
def model_dir(request, channels, tmp_path_factory):
    job = tmp_path_factory.mktemp(f"job-{request.param}")
    assert train.main(training_env(job, channels, request.param)) == 0  # validation channel: threshold recorded
    return job / "model"


@contextlib.contextmanager
def serving(model_dir) -> Iterator[http.client.HTTPConnection]:
    """The container's HTTP server (``model_server``) on a free local port, and a connection."""
    server = make_server(inference.model_fn, inference.input_fn, inference.predict_fn, inference.output_fn,
                         model_dir=str(model_dir), host="127.0.0.1", port=0)  # fmt: skip
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=60)
    finally:
        server.shutdown()
        server.server_close()


def _records(labelled, n: int = 40) -> pd.DataFrame:
    validation = labelled[1]
    anomalies = validation[validation["is_anomaly"]].head(n // 2)
    return pd.concat([anomalies, validation[~validation["is_anomaly"]].head(n - len(anomalies))])


def _run(model, body, content_type, accept="application/jsonlines"):
    out, kind = inference.output_fn(inference.predict_fn(inference.input_fn(body, content_type), model), accept)
    return out, kind


def test_json_lines_in_scores_verdicts_and_reasons_out(model_dir, labelled):
    model = inference.model_fn(str(model_dir))
    records = _records(labelled)
    body = records.drop(columns=["is_anomaly", "anomaly_type"]).to_json(orient="records", lines=True, date_format="iso")
    out, kind = _run(model, body.encode(), "application/jsonlines")
    rows = [json.loads(line) for line in out.splitlines()]
    assert kind == "application/jsonlines" and len(rows) == len(records)
    assert [r["trans_id"] for r in rows] == records["trans_id"].astype(str).tolist()
    assert all(0 <= r["score"] <= 1 and r["verdict"] in ("alert", "normal") for r in rows)
    alerts = [r for r in rows if r["verdict"] == "alert"]
    assert alerts and all(r["reasons"] and r["anomaly_type"] for r in alerts)
    assert all(r["reasons"] == [] and r["anomaly_type"] == "" for r in rows if r["verdict"] == "normal")
    assert {r["model_version"] for r in rows} == {model.version} and model.version.startswith("finsentry-")


def test_csv_with_and_without_header_give_the_same_scores(model_dir, labelled):
    model = inference.model_fn(str(model_dir))
    records = _records(labelled)[list(model.csv_columns)]
    with_header, _ = _run(model, records.to_csv(index=False), "text/csv", accept="text/csv")
    without, _ = _run(model, records.to_csv(index=False, header=False), "text/csv; charset=utf-8", accept="text/csv")
    a, b = pd.read_csv(pd.io.common.StringIO(with_header)), pd.read_csv(pd.io.common.StringIO(without))
    pd.testing.assert_series_equal(a["score"], b["score"])
    assert list(a.columns[:4]) == ["trans_id", "account_id", "ts", "score"]


def test_bad_records_are_marked_not_dropped(model_dir, labelled):
    model = inference.model_fn(str(model_dir))
    records = _records(labelled, 4).drop(columns=["is_anomaly", "anomaly_type"]).astype({"ts": str})
    rows = records.to_dict(orient="records")
    rows[1]["amount_z"] = "not a number"
    out, _ = _run(model, "\n".join(json.dumps(r) for r in rows), "application/jsonlines")
    result = [json.loads(line) for line in out.splitlines()]
    assert len(result) == 4 and result[1]["verdict"] == "invalid" and "not numbers" in result[1]["error"]
    assert result[0]["verdict"] in ("alert", "normal")
    missing, _ = _run(model, json.dumps({"trans_id": "t1", "log_amount": 3.0}), "application/json")
    assert json.loads(missing)["verdict"] == "invalid" and "missing features" in json.loads(missing)["error"]


def test_unsupported_types_and_a_model_without_threshold_are_refused(model_dir, tmp_path, monkeypatch):
    model = inference.model_fn(str(model_dir))
    with pytest.raises(UnsupportedContentType):
        _run(model, b"x", "application/x-protobuf")
    monkeypatch.setenv("FINSENTRY_THRESHOLD", "0.5")
    assert inference.model_fn(str(model_dir)).threshold == 0.5
    monkeypatch.delenv("FINSENTRY_THRESHOLD")
    from finsentry.detectors import make_detector
    from finsentry.detectors.artifact import save_model
    from tests.detectors import planted_frame

    save_model(make_detector("isolation_forest", n_estimators=10).fit(planted_frame()), tmp_path / "bare")
    with pytest.raises(ValueError, match="no alert threshold"):
        inference.model_fn(str(tmp_path / "bare"))


def test_the_container_answers_ping_and_invocations(model_dir, labelled):
    with serving(model_dir) as conn:
        conn.request("GET", "/ping")
        assert conn.getresponse().read() == b"{}"
        body = _records(labelled, 6).drop(columns=["is_anomaly", "anomaly_type"]).to_json(
            orient="records", lines=True, date_format="iso")  # fmt: skip
        conn.request("POST", "/invocations", body=body, headers={"Content-Type": "application/jsonlines"})
        response = conn.getresponse()
        assert response.status == 200 and len(response.read().decode().splitlines()) == 6
        conn.request("POST", "/invocations", body=b"a,b", headers={"Content-Type": "text/csv"})
        response = conn.getresponse()
        assert response.status == 400 and b"header-less CSV" in response.read()
        conn.request("POST", "/invocations", body=b"{}", headers={"Content-Type": "image/png"})
        assert conn.getresponse().status == 400


def test_feature_columns_come_first_in_header_less_csv(model_dir):
    model = inference.model_fn(str(model_dir))
    assert model.csv_columns[:3] == ("trans_id", "account_id", "ts")
    features = tuple(model.detector.feature_columns)
    assert model.csv_columns[3:3 + len(features)] == features
    assert tuple(c for c in CURATED_COLUMNS if c in features) == features  # in the curated row's order


def test_a_whole_curated_parquet_file_is_one_request(model_dir, labelled):
    import io

    model = inference.model_fn(str(model_dir))
    records = _records(labelled, 10)
    buffer = io.BytesIO()
    records.to_parquet(buffer, index=False)
    out, _ = _run(model, buffer.getvalue(), "application/x-parquet")
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["trans_id"] for r in rows] == records["trans_id"].astype(str).tolist()
    assert all(r["verdict"] in ("alert", "normal") for r in rows)


def test_parquet_out_is_rows_of_the_scored_table_also_through_the_container(model_dir, labelled):
    """What BackfillScores asks for (ContentType and Accept application/x-parquet): a file the Glue
    ``scored`` table reads: exactly SCORED_COLUMNS with their types, every record kept."""
    import io
    import json as _json

    from finsentry.pipeline_definition import read_definition
    from finsentry.scoring import SCORED_COLUMNS

    backfill = _json.loads(read_definition())["States"]["BackfillScores"]["Parameters"]
    content_type, accept = backfill["TransformInput"]["ContentType"], backfill["TransformOutput"]["Accept"]
    model = inference.model_fn(str(model_dir))
    records = _records(labelled, 12).reset_index(drop=True)
    records[DETECTOR_COLUMNS[0]] = records[DETECTOR_COLUMNS[0]].astype(str)
    records.loc[3, DETECTOR_COLUMNS[0]] = "not a number"
    records["amount"] = 100.0 + records.index  # a transaction attribute the request happens to carry
    buffer = io.BytesIO()
    records.to_parquet(buffer, index=False)
    out, kind = _run(model, buffer.getvalue(), content_type, accept)
    assert kind == "application/x-parquet" and isinstance(out, bytes)
    scored = pd.read_parquet(io.BytesIO(out))
    assert list(scored.columns) == list(SCORED_COLUMNS)
    assert scored["trans_id"].tolist() == records["trans_id"].astype(str).tolist()
    assert str(scored["ts"].dtype).startswith("datetime64") and scored["ts"].notna().all()
    assert scored["score"].dtype == "float64" and scored["amount"].tolist() == records["amount"].tolist()
    assert scored["region"].isna().all()  # not in curated features: null, not invented
    assert scored.loc[3, "verdict"] == "invalid" and "not numbers" in scored.loc[3, "reasons"]
    assert set(scored.drop(index=3)["verdict"]) <= {"alert", "normal"} and scored.drop(index=3)["score"].notna().all()
    with serving(model_dir) as conn:
        conn.request("POST", "/invocations", body=buffer.getvalue(),
                     headers={"Content-Type": content_type, "Accept": accept})  # fmt: skip
        response = conn.getresponse()
        assert response.status == 200 and response.getheader("Content-Type") == "application/x-parquet"
        assert pd.read_parquet(io.BytesIO(response.read()))["trans_id"].tolist() == scored["trans_id"].tolist()
