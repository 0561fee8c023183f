"""SageMaker's container conventions, read in one place (training and processing jobs).

Training (script mode and bring-your-own containers alike):

* hyperparameters: ``/opt/ml/input/config/hyperparameters.json`` (SageMaker writes every value
  as a string; the SageMaker Python SDK JSON-encodes them, so ``"\\"lstm\\""`` and ``"lstm"``
  both mean ``lstm``), ``SM_HPS`` (the training toolkit's JSON of all of them) and
  ``SM_HP_<NAME>`` (one each); later sources override earlier ones, in that order;
* channels: ``SM_CHANNEL_<NAME>``, else the folders of ``/opt/ml/input/data/``;
* model directory: ``SM_MODEL_DIR`` (default ``/opt/ml/model``; SageMaker tars it into
  ``model.tar.gz``), output data ``SM_OUTPUT_DATA_DIR`` (``/opt/ml/output/data``), failure
  reason file ``/opt/ml/output/failure`` (shown as the job's FailureReason);
* ``TRAINING_JOB_NAME`` / ``TRAINING_JOB_ARN``: set by SageMaker in every training container.

Processing: inputs and outputs are folders under ``/opt/ml/processing/`` chosen by the job
definition; ``FINSENTRY_PROCESSING_DIR`` moves that root (tests, the local run).
The ``/opt/ml`` root itself can be moved with ``SM_ROOT`` (tests, the local run).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def _root(env: Mapping[str, str]) -> Path:
    return Path(env.get("SM_ROOT", "/opt/ml"))


def _value(text: Any) -> Any:
    """A hyperparameter value: JSON when it parses (numbers, quoted strings, lists), else the text."""
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def read_hyperparameters(env: Mapping[str, str]) -> dict[str, Any]:
    """The job's hyperparameters from the file, ``SM_HPS`` and ``SM_HP_*`` (later wins); keys lower-case."""
    found: dict[str, Any] = {}
    config_dir = Path(env.get("SM_INPUT_CONFIG_DIR", _root(env) / "input" / "config"))
    path = config_dir / "hyperparameters.json"
    if path.is_file():
        loaded = json.loads(path.read_text() or "{}")
        if not isinstance(loaded, dict):
            raise ValueError(f"{path} must hold a JSON object")
        found.update({str(k).lower(): _value(v) for k, v in loaded.items()})
    if env.get("SM_HPS"):
        hps = json.loads(env["SM_HPS"])
        if not isinstance(hps, dict):
            raise ValueError("SM_HPS must hold a JSON object")
        found.update({str(k).lower(): v for k, v in hps.items()})
    for key, value in env.items():
        if key.startswith("SM_HP_"):
            found[key[len("SM_HP_"):].lower()] = _value(value)
    return found


def read_channels(env: Mapping[str, str]) -> dict[str, Path]:
    """Input channel folders by lower-case name: ``SM_CHANNEL_*``, else ``/opt/ml/input/data/*``."""
    channels = {k[len("SM_CHANNEL_"):].lower(): Path(v) for k, v in env.items() if k.startswith("SM_CHANNEL_")}
    data_dir = _root(env) / "input" / "data"
    if not channels and data_dir.is_dir():
        channels = {p.name.lower(): p for p in sorted(data_dir.iterdir()) if p.is_dir()}
    return channels


@dataclass
class TrainingEnv:
    """Where a training job reads and writes, and with which hyperparameters."""

    hyperparameters: dict[str, Any]
    channels: dict[str, Path]
    model_dir: Path
    output_data_dir: Path
    failure_file: Path
    job_name: str | None = None
    job_arn: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_environ(cls, env: Mapping[str, str] | None = None) -> TrainingEnv:
        env = dict(os.environ if env is None else env)
        root = _root(env)
        return cls(
            hyperparameters=read_hyperparameters(env),
            channels=read_channels(env),
            model_dir=Path(env.get("SM_MODEL_DIR", root / "model")),
            output_data_dir=Path(env.get("SM_OUTPUT_DATA_DIR", root / "output" / "data")),
            failure_file=Path(env.get("SM_OUTPUT_DIR", root / "output")) / "failure",
            job_name=env.get("TRAINING_JOB_NAME"),
            job_arn=env.get("TRAINING_JOB_ARN"),
            extra={k: v for k, v in env.items() if k.startswith("FINSENTRY_")},
        )


def processing_dir(env: Mapping[str, str] | None = None) -> Path:
    """The root of a processing job's inputs and outputs (``/opt/ml/processing``)."""
    env = os.environ if env is None else env
    return Path(env.get("FINSENTRY_PROCESSING_DIR", "/opt/ml/processing"))


def exit_message_path(env: Mapping[str, str] | None = None) -> Path:
    """Where a processing job leaves its ExitMessage (first 1 kB shown by DescribeProcessingJob,
    on success and on failure): ``/opt/ml/output/message``; ``FINSENTRY_OUTPUT_DIR`` moves it."""
    env = os.environ if env is None else env
    return Path(env.get("FINSENTRY_OUTPUT_DIR", "/opt/ml/output")) / "message"


def write_failure(path: Path, exc: BaseException) -> None:
    """Record why the job failed where SageMaker reads it (first 1 kB is shown)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{type(exc).__name__}: {exc}"[:1024])
    except OSError:  # the failure file is best effort: the exit code already says "failed"
        pass
