"""Batch Transform: the logic behind ``sagemaker/inference.py`` (model_fn, input_fn, predict_fn, output_fn).

Records in are curated feature rows (``DETECTOR_COLUMNS``, plus ``SEQUENCE_COLUMNS`` when the
model is the LSTM or an ensemble holding it), with optional identifiers ``trans_id``,
``account_id`` and ``ts`` passed through to the output:

* ``application/jsonlines`` (one JSON object per line) or ``application/json`` (one object, a
  list of objects, or JSON lines);
* ``text/csv``: with a header line naming the columns, or without one (Batch Transform's
  ``SplitType=Line`` sends header-less chunks), the columns then being ``csv_columns`` of the
  model: ``trans_id, account_id, ts`` then the model's feature columns in its order;
* ``application/x-parquet``: one whole curated Parquet file per request (``SplitType=None``;
  files up to the job's ``MaxPayloadInMB``).

Out, one per record in input order: ``trans_id``, ``account_id``, ``ts``, ``score`` [0, 1],
``verdict`` (alert/normal), ``anomaly_type``, ``reasons`` (top reasons in words), ``model_version``;
as JSON lines (default) or CSV (``reasons`` " ; "-joined). A record whose features are missing or
not numbers gets ``verdict`` = ``invalid`` and its ``error``: nothing is dropped silently.

``application/x-parquet`` out (what the state machine's Batch Transform asks for): one Parquet
file with exactly the Glue ``scored`` table's columns (``finsentry.scoring.SCORED_COLUMNS``, their
types; the ``dt`` partition comes from the output path ``scored/dt=D/<file>.out``). Curated
features carry only ``trans_id``, ``account_id`` and ``ts`` of the transaction: the other
transaction columns (``client_ref``, ``amount``, ``direction``, ``operation``, ``district_id``,
``region``) are copied when the request has them and are null otherwise; an invalid record keeps
``verdict`` = ``invalid`` with its error in ``reasons``.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from finsentry.detectors.artifact import load_model
from finsentry.scoring import SCORED_COLUMNS, score_transactions

ID_COLUMNS = ("trans_id", "account_id", "ts")
OUTPUT_COLUMNS = (*ID_COLUMNS, "score", "verdict", "anomaly_type", "reasons", "model_version", "error")
JSON_TYPES = ("application/jsonlines", "application/x-jsonlines", "application/json")
CSV_TYPES = ("text/csv",)
PARQUET_TYPES = ("application/x-parquet", "application/vnd.apache.parquet")
PASSTHROUGH_COLUMNS = tuple(c for c in SCORED_COLUMNS if c not in (*ID_COLUMNS, *OUTPUT_COLUMNS))
_PANDAS_TYPES = {"string": "string", "double": "float64", "int": "Int32", "bigint": "Int64"}


class UnsupportedContentType(ValueError):
    """The request's content type is not one this model server reads or writes."""


@dataclass
class LoadedModel:
    """A detector ready to serve: its alert threshold and the version recorded in the output."""

    detector: Any
    metadata: dict
    threshold: float
    version: str

    @property
    def csv_columns(self) -> tuple[str, ...]:
        return (*ID_COLUMNS, *(self.detector.feature_columns or ()))


def load(model_dir: str | Path, threshold: float | str | None = None) -> LoadedModel:
    """The artifact in ``model_dir`` (SageMaker extracts model.tar.gz there), checked on load.

    The alert threshold: ``threshold`` when given (the container's ``FINSENTRY_THRESHOLD``, set
    from evaluation.json's ``selection.best_threshold``), else the one recorded at training on
    the validation channel (``metadata.metrics.threshold``); a model without one is refused.
    """
    detector, meta = load_model(Path(model_dir), allow_sequence=True)
    if threshold in (None, ""):
        threshold = meta.get("threshold", (meta.get("metrics") or {}).get("threshold"))
    if threshold is None or not math.isfinite(float(threshold)):
        raise ValueError(f"{model_dir}: the model has no alert threshold in its metadata (metrics.threshold)")
    lineage = meta.get("lineage") or {}
    version = meta.get("version") or (lineage.get("training_job") or {}).get("name") or \
        f"{meta['detector']}-{meta.get('created_at')}"  # fmt: skip
    return LoadedModel(detector, meta, float(threshold), str(version))


def _base(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def _csv_has_header(first_line: str, known: set[str]) -> bool:
    return bool(first_line) and first_line.split(",")[0].strip().strip('"') in known


def parse(body: bytes | str, content_type: str | None, model: LoadedModel) -> pd.DataFrame:
    """A request body as a frame of records (columns as sent)."""
    kind = _base(content_type)
    if kind in PARQUET_TYPES:  # a whole curated file per request (Batch Transform SplitType=None)
        return pd.read_parquet(io.BytesIO(body if isinstance(body, bytes | bytearray) else str(body).encode()))
    text = body.decode("utf-8") if isinstance(body, bytes | bytearray) else str(body)
    if kind in CSV_TYPES:
        if not text.strip():
            return pd.DataFrame(columns=list(model.csv_columns))
        first = text.lstrip().splitlines()[0]
        if _csv_has_header(first, set(model.csv_columns)):
            return pd.read_csv(io.StringIO(text), dtype={"trans_id": str, "account_id": str})
        frame = pd.read_csv(io.StringIO(text), header=None, dtype={0: str, 1: str})
        if frame.shape[1] != len(model.csv_columns):
            raise ValueError(f"header-less CSV needs {len(model.csv_columns)} columns (trans_id, account_id, "
                             f"ts, then the model's features), got {frame.shape[1]}")  # fmt: skip
        frame.columns = list(model.csv_columns)
        return frame
    if kind in JSON_TYPES:
        stripped = text.strip()
        if not stripped:
            return pd.DataFrame()
        if stripped[0] == "[" or (stripped[0] == "{" and "\n" not in stripped):
            loaded = json.loads(stripped)
            return pd.DataFrame(loaded if isinstance(loaded, list) else [loaded])
        return pd.DataFrame([json.loads(line) for line in stripped.splitlines() if line.strip()])
    raise UnsupportedContentType(f"content type {content_type!r} is not supported; send JSON lines or CSV")


def predict(frame: pd.DataFrame, model: LoadedModel, top_k: int = 3) -> pd.DataFrame:
    """Score the records; invalid ones (missing or non-numeric features) are marked, not dropped.

    Alerts are ``score > model.threshold`` (a request is a slice of the job: no budget over the
    whole job is possible here, see ``finsentry.scoring``); the request's highest alerts get
    SHAP reasons (``scoring.EXPLAIN_TOP``), the others the fast path's."""
    columns = list(model.detector.feature_columns or ())
    out = pd.DataFrame({c: frame[c].astype(str) if c in frame.columns else "" for c in ID_COLUMNS},
                       index=frame.index)  # fmt: skip
    out["score"], out["verdict"], out["anomaly_type"] = np.nan, "invalid", ""
    out["reasons"] = [[] for _ in range(len(frame))]
    out["model_version"], out["error"] = model.version, ""
    for c in PASSTHROUGH_COLUMNS:  # transaction attributes of the scored table, when the request has them
        if c in frame.columns:
            out[c] = frame[c]
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        out["error"] = f"missing features {missing[:5]}"
        return out
    values = frame[columns].apply(pd.to_numeric, errors="coerce")
    bad = values.isna().any(axis=1).to_numpy() & frame[columns].notna().all(axis=1).to_numpy()
    out.loc[bad, "error"] = "features that are not numbers"
    ok = ~bad
    if ok.any():
        batch = score_transactions(model.detector, values[ok], budget_threshold=model.threshold,
                                   model_version=model.version, top_k=top_k)  # fmt: skip
        out.loc[ok, "score"] = batch.scores
        out.loc[ok, "verdict"] = np.where(batch.alerts, "alert", "normal")
        out.loc[ok, "anomaly_type"] = batch.anomaly_types
        out.loc[ok, "reasons"] = pd.Series([[r.text for r in rs] for rs in batch.reasons],
                                           index=out.index[ok], dtype=object)  # fmt: skip
    return out


def scored_table_frame(result: pd.DataFrame) -> pd.DataFrame:
    """``predict``'s result as rows of the Glue ``scored`` table: ``SCORED_COLUMNS`` in order, with
    their types (missing transaction attributes null, an invalid record's error in ``reasons``)."""
    reasons = [" ; ".join(r) for r in result["reasons"]]
    errors = result["error"].fillna("").astype(str).to_numpy()
    out = pd.DataFrame(index=result.index)
    for name, kind in SCORED_COLUMNS.items():
        if name == "reasons":
            values = pd.Series([e or r for e, r in zip(errors, reasons, strict=True)], index=result.index)
        elif name in result.columns:
            values = result[name]
        else:
            values = pd.Series(pd.NA, index=result.index, dtype="object")
        if kind == "timestamp":
            out[name] = pd.to_datetime(values, errors="coerce").astype("datetime64[us]")
        elif kind in ("double", "int", "bigint"):
            out[name] = pd.to_numeric(values, errors="coerce").astype(_PANDAS_TYPES[kind])
        else:
            out[name] = values.astype("string")
    return out.reset_index(drop=True)


def render(result: pd.DataFrame, accept: str | None) -> tuple[str | bytes, str]:
    """The response body and its content type: JSON lines (default), CSV, or Parquet rows of
    the ``scored`` table."""
    kind = _base(accept) or "application/jsonlines"
    if kind in PARQUET_TYPES:
        buffer = io.BytesIO()
        scored_table_frame(result).to_parquet(buffer, index=False)
        return buffer.getvalue(), "application/x-parquet"
    if kind in CSV_TYPES:
        flat = result.assign(reasons=[" ; ".join(r) for r in result["reasons"]])
        return flat.to_csv(index=False, columns=list(OUTPUT_COLUMNS)), "text/csv"
    if kind in (*JSON_TYPES, "*/*"):
        rows = []
        for rec in result[list(OUTPUT_COLUMNS)].to_dict(orient="records"):
            score = rec["score"]
            rec["score"] = None if score is None or not math.isfinite(score) else float(score)
            rows.append(json.dumps(rec, ensure_ascii=False))
        return "\n".join(rows) + ("\n" if rows else ""), "application/jsonlines"
    raise UnsupportedContentType(f"accept type {accept!r} is not supported; ask for JSON lines, CSV or Parquet")

