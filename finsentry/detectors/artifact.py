"""Model artifacts: one directory with ``model.joblib`` and ``metadata.json``.

The metadata records what any alert needs for tracing: detector, parameters, feature list,
training window, metrics, finsentry version, creation time, and the SHA-256 of the model file,
checked on every load.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import joblib

from finsentry import __version__
from finsentry.detectors.base import Detector
from finsentry.features import FEATURE_COLUMNS

MODEL_FILE = "model.joblib"
METADATA_FILE = "metadata.json"


class ModelArtifactError(Exception):
    """The artifact is missing, tampered with, or does not fit this code's features."""


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save_model(detector: Detector, directory: Path | str, metadata: dict | None = None) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model_path = directory / MODEL_FILE
    joblib.dump(detector, model_path, compress=3)
    meta = {
        "detector": detector.name,
        "finsentry_version": __version__,
        "feature_columns": list(detector.feature_columns or ()),
        "params": getattr(detector, "params", {}),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        **(metadata or {}),
        "sha256": _sha256(model_path),
    }
    (directory / METADATA_FILE).write_text(json.dumps(meta, indent=2, default=str))
    return directory


def load_model(directory: Path | str, expected_features: tuple[str, ...] | None = FEATURE_COLUMNS
               ) -> tuple[Detector, dict]:  # fmt: skip
    directory = Path(directory)
    model_path, meta_path = directory / MODEL_FILE, directory / METADATA_FILE
    if not model_path.is_file() or not meta_path.is_file():
        raise ModelArtifactError(f"{directory} is not a model artifact ({MODEL_FILE} + {METADATA_FILE})")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise ModelArtifactError(f"{meta_path} is not valid JSON: {exc}") from exc
    if meta.get("sha256") != _sha256(model_path):
        raise ModelArtifactError(f"{model_path} does not match the checksum in {METADATA_FILE}")
    if expected_features is not None and tuple(meta.get("feature_columns", ())) != tuple(expected_features):
        raise ModelArtifactError("the model was trained on other features than this code computes")
    try:
        # Artifacts come only from our own training, read from our own encrypted bucket, and
        # their integrity is checked by the SHA-256 above before unpickling.
        detector = joblib.load(model_path)  # noqa: S301
    except Exception as exc:  # unreadable or foreign pickle: the scorer falls back to rules
        raise ModelArtifactError(f"{model_path} cannot be loaded: {exc}") from exc
    if not isinstance(detector, Detector):
        raise ModelArtifactError(f"{model_path} holds a {type(detector).__name__}, not a detector")
    return detector, meta
