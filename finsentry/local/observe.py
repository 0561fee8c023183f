"""The demo's monitoring stage: what the report, CloudWatch and /metrics show about a run.

One call from ``run_demo`` after scoring: drift of the test period against the training
window (whole period and per week), published to (in-process) CloudWatch as ``ScorePsi`` /
``FeaturePsi``; every candidate's score distribution on the test period; the top alerts' SHAP
reasons with their contributions; district names; quarantine counts by reason.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from finsentry import drift
from finsentry.explain import Reason
from finsentry.scoring import ScoredBatch

DISTRIBUTION_SAMPLE = 20_000  # normal test rows scored per candidate for the distribution plot


@dataclass
class Observations:
    """What a run looked like, beyond its scores: drift, distributions, reasons."""

    drift: drift.DriftMeasurement  # the whole test period vs the training window
    drift_windows: list[drift.DriftMeasurement]  # per week of the test period
    detector_scores: pd.DataFrame  # detector, score, is_anomaly (all anomalies + a normal sample)
    top_reasons: list[list[Reason]]  # aligned with DemoResult.top_alerts rows
    districts: pd.DataFrame  # district_id, district_name, region
    quarantine_reasons: dict[str, int] = field(default_factory=dict)
    published: int = 0  # CloudWatch data points put
    normal_sample: int = 0  # normal rows in detector_scores (per detector)


def _detector_scores(models: Mapping, features: pd.DataFrame, is_anomaly: np.ndarray, seed: int) -> tuple[
        pd.DataFrame, int]:  # fmt: skip
    normal = np.flatnonzero(~is_anomaly)
    if len(normal) > DISTRIBUTION_SAMPLE:
        normal = np.random.default_rng(seed).choice(normal, DISTRIBUTION_SAMPLE, replace=False)
    rows = np.sort(np.r_[normal, np.flatnonzero(is_anomaly)])
    sample = features.iloc[rows]
    parts = [pd.DataFrame({"detector": name, "score": model.score(sample), "is_anomaly": is_anomaly[rows]})
             for name, model in models.items()]  # fmt: skip
    return pd.concat(parts, ignore_index=True), len(normal)


def observe_run(models: Mapping, reference: drift.DriftReference, transactions: pd.DataFrame,
                features: pd.DataFrame, batch: ScoredBatch, top_positions: list[int], districts: pd.DataFrame,
                quarantined: pd.DataFrame, cloudwatch_region: str | None = None, seed: int = 7,
                progress: Callable[[str], None] = lambda _: None) -> Observations:  # fmt: skip
    """Measure and gather; ``transactions``/``features``/``batch`` are the scored test period
    (aligned rows), ``top_positions`` the row positions of the top alerts in it. With
    ``cloudwatch_region`` the drift is published to CloudWatch there."""
    progress("measuring drift vs the training window; scoring every candidate for the report")
    whole = drift.measure_drift(reference, features, batch.scores,
                                start=transactions["ts"].min(), end=transactions["ts"].max())  # fmt: skip
    windows = drift.drift_by_window(reference, features, batch.scores, transactions["ts"])
    published = 0
    if cloudwatch_region is not None:  # the run's (in-process) CloudWatch, as the scorer publishes
        import boto3

        cloudwatch = boto3.client("cloudwatch", region_name=cloudwatch_region)
        published = drift.publish_drift(cloudwatch, whole, dimensions={"Environment": "local"})
    labels = transactions["is_anomaly"].to_numpy(dtype=bool) if "is_anomaly" in transactions else np.zeros(
        len(transactions), dtype=bool)  # fmt: skip
    scores, normal = _detector_scores(models, features, labels, seed)
    reasons = quarantined["reason"].astype(str).value_counts() if "reason" in quarantined else pd.Series(dtype=int)
    return Observations(
        drift=whole,
        drift_windows=windows,
        detector_scores=scores,
        top_reasons=[batch.reasons[i] for i in top_positions],
        districts=districts[["district_id", "district_name", "region"]].drop_duplicates("district_id"),
        quarantine_reasons={str(k): int(v) for k, v in reasons.items()},
        published=published,
        normal_sample=normal,
    )
