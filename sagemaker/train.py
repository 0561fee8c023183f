"""SageMaker training entry point: fit one finsentry detector, write its artifact (model.tar.gz layout).

Hyperparameters (``hyperparameters.json`` / ``SM_HPS`` / ``SM_HP_*``): ``detector`` in
{isolation_forest, lof, lstm, ensemble}; ``training_data_uri`` (S3 location of the train channel,
recorded as lineage); ``alert_budget``; anything else goes to the detector (e.g. ``epochs``).
Channels: ``train`` (curated features or canonical transactions), optional ``validation``
(labelled: the figures are recorded in the artifact's metadata, and its period is dropped
from the training data). Environment ``FINSENTRY_WINDOW_START`` / ``FINSENTRY_WINDOW_END``:
only rows inside the training window are used. Output: the files of
``SM_MODEL_DIR`` (/opt/ml/model), which SageMaker uploads as ``model.tar.gz``. On failure the
reason goes to /opt/ml/output/failure and the exit code is 1. Logic: ``finsentry.training.jobs``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from finsentry.training.jobs import metric_lines, train_job
from finsentry.training.sagemaker_env import TrainingEnv, write_failure


def main(env: Mapping[str, str] | None = None) -> int:
    job = TrainingEnv.from_environ(os.environ if env is None else env)
    try:
        metadata = train_job(job)
    except Exception as exc:
        write_failure(job.failure_file, exc)
        print(f"training failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    for line in metric_lines(metadata):  # parsed by the training job's metric definitions
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
