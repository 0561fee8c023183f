"""The data-quality report of a batch run: counts that add up, and a gate that fails loudly.

Per run: rows in, rows out and rows quarantined by reason (``rows_in == rows_out +
quarantined`` is checked, not assumed), null rates of the output columns, balance integrity
violations and duplicates. The report is written as JSON beside the output and as CloudWatch
metrics (``finsentry.monitoring.Metric.ETL_*``); ``QualityReport.check`` raises
``DataQualityError`` when the quarantined share exceeds the configured maximum, and
``EmptyInputError`` when there was no input row or no valid one.

Counting is per chunk (``chunk_counts``) and merged by summing, so that Spark computes it per
partition and the pandas engine once, with the same function.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from finsentry.monitoring import METRIC_NAMESPACE, Metric
from finsentry.schema import TRANSACTION_SCHEMA, Direction

BALANCE_TOLERANCE = 0.005  # CZK: balances are kept to the heller (0.01)
DEFAULT_MAX_REJECTED_SHARE = 0.05
ROW_FLAGS = ("dq_balance_error", "dq_balance_gap", "dq_duplicate_posting")
POSTING_KEY = ("account_id", "ts", "amount", "direction", "operation", "k_symbol", "partner_bank", "partner_account")


class DataQualityError(RuntimeError):
    """A run rejected more rows than allowed, or lost rows; the job must fail."""


class EmptyInputError(DataQualityError):
    """A run had no input rows, or no valid one: there is nothing to publish."""


class RowsLostError(DataQualityError):
    """rows in != rows out + quarantined: a bug, never a data problem."""


def row_flags(valid: pd.DataFrame) -> pd.DataFrame:
    """Per valid canonical row: balance arithmetic error, balance continuity gap with the
    account's previous posting, and duplicate posting (an identical earlier posting).

    ``valid`` holds whole accounts in posting order (as the loader orders them).
    """
    amount = valid["amount"].to_numpy(dtype=float)
    before = valid["balance_before"].to_numpy(dtype=float)
    after = valid["balance_after"].to_numpy(dtype=float)
    signed = np.where(valid["direction"].astype(str).to_numpy() == Direction.DEBIT, -amount, amount)
    previous = valid.groupby("account_id", sort=False)["balance_after"].shift().to_numpy(dtype=float)
    gap = ~np.isnan(previous) & (np.abs(before - np.nan_to_num(previous)) > BALANCE_TOLERANCE)
    return pd.DataFrame({
        "dq_balance_error": np.abs(before + signed - after) > BALANCE_TOLERANCE,
        "dq_balance_gap": gap,
        "dq_duplicate_posting": valid.duplicated(list(POSTING_KEY), keep="first").to_numpy(),
    }, index=valid.index)  # fmt: skip


def _is_null(s: pd.Series, kind: str) -> np.ndarray:
    if kind == "str":
        return (s.isna() | (s.astype(str) == "")).to_numpy()
    if kind == "int":
        return (s.isna() | (s == -1)).to_numpy()
    return s.isna().to_numpy()


def chunk_counts(chunk: pd.DataFrame) -> dict[str, int]:
    """Counts of one chunk of canonical rows (``transforms.CANONICAL_SCHEMA``), to be summed."""
    valid = chunk[chunk["status"] == "valid"]
    counts: Counter[str] = Counter()
    counts["rows_out"] = len(valid)
    for f in ROW_FLAGS:
        counts[f] = int(valid[f].sum())
    for col in TRANSACTION_SCHEMA:
        counts[f"null:{col.name}"] = int(_is_null(valid[col.name], col.kind).sum())
    for reason, n in chunk.loc[chunk["status"] != "valid", "reason"].value_counts().items():
        counts[f"reason:{reason}"] += int(n)
    return dict(counts)


NON_FINITE_FEATURE = "non_finite_feature"  # features job: a feature came out NaN or infinite


def finite_rows(features: pd.DataFrame, columns: Iterable[str]) -> np.ndarray:
    """Mask of feature rows whose every feature is a finite number."""
    return np.isfinite(features[list(columns)].to_numpy(dtype=float)).all(axis=1)


def feature_counts(chunk: pd.DataFrame, columns: Iterable[str]) -> dict[str, int]:
    """Counts of one chunk of feature rows, to be summed: rows out (finite), rows quarantined
    (non-finite), NaN per feature, and the balance/duplicate findings the features carry."""
    columns = list(columns)
    ok = finite_rows(chunk, columns)
    good = chunk[ok]
    counts: Counter[str] = Counter()
    counts["rows_out"] = int(ok.sum())
    if (~ok).any():
        counts[f"reason:{NON_FINITE_FEATURE}"] = int((~ok).sum())
    for c in columns:
        counts[f"null:{c}"] = int(chunk[c].isna().sum())
    counts["dq_balance_error"] = int((good["balance_error"] > BALANCE_TOLERANCE).sum())
    counts["dq_balance_gap"] = int((good["balance_gap"] > BALANCE_TOLERANCE).sum())
    counts["dq_duplicate_posting"] = int((good["duplicate_recent"] > 0).sum())
    return dict(counts)


def merge_counts(parts: Iterable[Mapping[str, int]]) -> dict[str, int]:
    total: Counter[str] = Counter()
    for p in parts:
        total.update({k: int(v) for k, v in p.items()})
    return dict(total)


@dataclass
class QualityReport:
    """One run's figures. Reason keys: ``read:<reason>`` for unreadable lines, else the
    validator's ``schema.Reason`` code."""

    job: str
    run_id: str
    rows_in: int
    rows_out: int
    quarantined_by_reason: dict[str, int]
    null_rates: dict[str, float] = field(default_factory=dict)
    balance_errors: int = 0  # balance_before +/- amount != balance_after
    balance_gaps: int = 0  # balance_before != the account's previous balance_after
    duplicate_ids: int = 0  # trans_id seen before (quarantined)
    duplicate_postings: int = 0  # identical posting (account, time, amount, partner...) kept, flagged
    other_tables: dict[str, dict[str, int]] = field(default_factory=dict)  # unreadable lines per table
    max_rejected_share: float = DEFAULT_MAX_REJECTED_SHARE
    outputs: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)  # wall time per stage of the run

    @property
    def rows_quarantined(self) -> int:
        return int(sum(self.quarantined_by_reason.values()))

    @property
    def rejected_share(self) -> float:
        return self.rows_quarantined / self.rows_in if self.rows_in else 0.0

    @property
    def passed(self) -> bool:
        return self.rows_out > 0 and self.rejected_share <= self.max_rejected_share

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(rows_quarantined=self.rows_quarantined, rejected_share=round(self.rejected_share, 6),
                   passed=self.passed)  # fmt: skip
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def check(self) -> None:
        """Raise when rows went missing or when too many rows were rejected."""
        if self.rows_in != self.rows_out + self.rows_quarantined:
            raise RowsLostError(
                f"{self.job}: {self.rows_in:,} rows in but {self.rows_out:,} out + "
                f"{self.rows_quarantined:,} quarantined"
            )
        if self.rows_in == 0:
            raise EmptyInputError(f"{self.job} run {self.run_id}: no input rows (an empty or header-only file?). "
                                  "Nothing was published to curated/.")  # fmt: skip
        if self.rows_out == 0:
            raise EmptyInputError(f"{self.job} run {self.run_id}: none of the {self.rows_in:,} rows is valid "
                                  f"({self._top_reasons()}). Nothing was published to curated/.")  # fmt: skip
        if not self.passed:
            raise DataQualityError(
                f"{self.job} run {self.run_id}: {self.rows_quarantined:,} of {self.rows_in:,} rows "
                f"({self.rejected_share:.2%}) quarantined, above the allowed {self.max_rejected_share:.2%}; "
                f"{self._top_reasons()}. Nothing was published to curated/."
            )

    def _top_reasons(self) -> str:
        top = sorted(self.quarantined_by_reason.items(), key=lambda kv: -kv[1])[:3]
        return f"top reasons: {', '.join(f'{k}={v:,}' for k, v in top)}"


def unread_reason_key(reason: str) -> str:
    """Report key of a row quarantined before validation: ``read:<reason>`` for an unreadable
    line, the plain code for a repeated trans_id (as the validator names it)."""
    return reason if reason == "duplicate_id" else f"read:{reason}"


def report_from_counts(job: str, run_id: str, rows_in: int, counts: Mapping[str, int],
                       read_reasons: Mapping[str, int], max_rejected_share: float,
                       other_tables: Mapping[str, Mapping[str, int]] | None = None,
                       null_base: int | None = None) -> QualityReport:  # fmt: skip
    """Assemble the report from merged ``chunk_counts`` and the unreadable trans lines.

    Null rates are shares of ``null_base`` rows (default: the rows out)."""
    rows_out = int(counts.get("rows_out", 0))
    reasons: Counter[str] = Counter({unread_reason_key(k): int(v) for k, v in read_reasons.items() if v})
    reasons.update({k.split(":", 1)[1]: int(v) for k, v in counts.items() if k.startswith("reason:") and v})
    reasons = dict(reasons)
    base = rows_out if null_base is None else null_base
    nulls = {k.split(":", 1)[1]: round(v / base, 6) if base else 0.0
             for k, v in counts.items() if k.startswith("null:")}  # fmt: skip
    return QualityReport(
        job=job, run_id=run_id, rows_in=int(rows_in), rows_out=rows_out, quarantined_by_reason=reasons,
        null_rates=nulls, balance_errors=int(counts.get("dq_balance_error", 0)),
        balance_gaps=int(counts.get("dq_balance_gap", 0)), duplicate_ids=int(reasons.get("duplicate_id", 0)),
        duplicate_postings=int(counts.get("dq_duplicate_posting", 0)),
        other_tables={t: dict(r) for t, r in (other_tables or {}).items()},
        max_rejected_share=max_rejected_share,
    )  # fmt: skip


# --- CloudWatch ------------------------------------------------------------------------------


def metric_data(report: QualityReport, env: str) -> list[dict[str, Any]]:
    """The run's figures as CloudWatch ``MetricData`` (dimensions Job and Env; Reason too)."""
    dims = [{"Name": "Job", "Value": report.job}, {"Name": "Env", "Value": env}]

    def datum(name: str, value: float, unit: str = "Count", extra: list | None = None) -> dict[str, Any]:
        return {"MetricName": str(name), "Dimensions": dims + (extra or []), "Value": float(value), "Unit": unit}

    data = [
        datum(Metric.ETL_ROWS_IN, report.rows_in),
        datum(Metric.ETL_ROWS_OUT, report.rows_out),
        datum(Metric.ETL_QUARANTINED, report.rows_quarantined),
        datum(Metric.ETL_REJECTED_SHARE, 100.0 * report.rejected_share, "Percent"),
        datum(Metric.ETL_BALANCE_BREAKS, report.balance_errors + report.balance_gaps),
        datum(Metric.ETL_DUPLICATES, report.duplicate_ids + report.duplicate_postings),
    ]
    for reason, n in sorted(report.quarantined_by_reason.items()):
        data.append(datum(Metric.ETL_QUARANTINED, n, extra=[{"Name": "Reason", "Value": reason}]))
    return data


def publish_metrics(report: QualityReport, env: str, cloudwatch=None) -> int:
    """Put the run's metrics in namespace ``METRIC_NAMESPACE``; returns how many were sent."""
    if cloudwatch is None:
        import boto3

        cloudwatch = boto3.client("cloudwatch")
    data = metric_data(report, env)
    for start in range(0, len(data), 20):
        cloudwatch.put_metric_data(Namespace=METRIC_NAMESPACE, MetricData=data[start:start + 20])
    return len(data)
