"""SageMaker processing entry point: score every candidate on the labelled validation period.

Folders (under /opt/ml/processing, or ``FINSENTRY_PROCESSING_DIR``):
``models/<candidate>/`` one per candidate (a model.tar.gz from its training job, or the
artifact's files), ``validation/`` labelled curated features (or canonical transactions),
``champion/`` the model in production (optional; empty or absent = none), ``evaluation/`` the
output: ``evaluation.json`` with recall per type at the alert budget, AUC-PR, threshold, scoring
cost per 1,000 records per candidate, and ``selection`` (``promote``, ``best``, ``best_threshold``).
Arguments (ContainerArguments) or environment: ``--budget`` / ``ALERT_BUDGET`` (0.01),
``--margin`` / ``SELECTION_MARGIN`` (0.01), ``--metric`` / ``SELECTION_METRIC`` (recall),
``--price-per-hour`` / ``INSTANCE_PRICE_PER_HOUR`` (USD). Logic: ``finsentry.training``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence

from finsentry.sagemaker_env import processing_dir
from finsentry.training import DEFAULT_BUDGET, DEFAULT_PRICE_PER_HOUR, evaluate_job


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    parser = argparse.ArgumentParser(description="finsentry evaluation processing job")
    parser.add_argument("--budget", type=float, default=float(env.get("ALERT_BUDGET", DEFAULT_BUDGET)))
    parser.add_argument("--margin", type=float, default=float(env.get("SELECTION_MARGIN", 0.01)))
    parser.add_argument("--metric", default=env.get("SELECTION_METRIC", "recall"))
    parser.add_argument("--price-per-hour", type=float,
                        default=float(env.get("INSTANCE_PRICE_PER_HOUR", DEFAULT_PRICE_PER_HOUR)))
    args = parser.parse_args(argv)
    root = processing_dir(env)
    result = evaluate_job(root / "models", root / "validation", root / "evaluation", champion_dir=root / "champion",
                          budget=args.budget, margin=args.margin, metric=args.metric,
                          price_per_hour=args.price_per_hour)  # fmt: skip
    print(json.dumps(result["selection"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
