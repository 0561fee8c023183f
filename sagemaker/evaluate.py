"""SageMaker processing entry point: score every candidate on the labelled validation period.

Folders (under /opt/ml/processing, or ``FINSENTRY_PROCESSING_DIR``):
``models/<candidate>/`` one per candidate (a model.tar.gz from its training job, or the
artifact's files), ``validation/`` labelled curated features (or canonical transactions),
``champion/`` the model in production (optional; empty or absent = none), ``labels/`` analysts'
verdicts (optional: ranked on them when enough, ``finsentry.labels``), ``evaluation/`` the
output: ``evaluation.json`` with recall per type at the alert budget, AUC-PR, threshold, scoring
cost per 1,000 records per candidate, and ``selection`` (``promote``, ``best``, ``best_threshold``).
The decision in short JSON also goes to /opt/ml/output/message (the job's ExitMessage), and on
failure the reason does, with exit code 1 (``FINSENTRY_OUTPUT_DIR`` moves that folder).
Arguments (ContainerArguments) or environment: ``--budget`` / ``ALERT_BUDGET`` (0.01),
``--margin`` / ``SELECTION_MARGIN`` (0.01), ``--metric`` / ``SELECTION_METRIC`` (recall),
``--price-per-hour`` / ``INSTANCE_PRICE_PER_HOUR`` (USD); ``FINSENTRY_WINDOW_START`` /
``FINSENTRY_WINDOW_END`` keep the validation rows inside the training window. Logic: ``finsentry.training.jobs``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence

from finsentry.training.jobs import DEFAULT_BUDGET, DEFAULT_PRICE_PER_HOUR, evaluate_job, exit_message
from finsentry.training.sagemaker_env import exit_message_path, processing_dir, write_failure
from finsentry.training.validation_set import window_from_env


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    parser = argparse.ArgumentParser(description="finsentry evaluation processing job")
    parser.add_argument("--budget", type=float, default=float(env.get("ALERT_BUDGET", DEFAULT_BUDGET)))
    parser.add_argument("--margin", type=float, default=float(env.get("SELECTION_MARGIN", 0.01)))
    parser.add_argument("--metric", default=env.get("SELECTION_METRIC", "recall"))
    parser.add_argument("--price-per-hour", type=float,
                        default=float(env.get("INSTANCE_PRICE_PER_HOUR", DEFAULT_PRICE_PER_HOUR)))
    args = parser.parse_args(argv)
    root, message = processing_dir(env), exit_message_path(env)
    try:
        result = evaluate_job(root / "models", root / "validation", root / "evaluation",
                              champion_dir=root / "champion", budget=args.budget, margin=args.margin,
                              metric=args.metric, price_per_hour=args.price_per_hour,
                              window=window_from_env(env), labels_dir=root / "labels")  # fmt: skip
    except Exception as exc:
        write_failure(message, exc)  # the job's ExitMessage says why it failed
        print(f"evaluation failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    message.parent.mkdir(parents=True, exist_ok=True)
    message.write_text(exit_message(result))
    print(json.dumps(result["selection"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
