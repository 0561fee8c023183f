"""Model artifacts: one directory with ``model.joblib`` and ``metadata.json``.

The metadata records what any alert needs for tracing: detector name and parameters, feature
list, training window, metrics, finsentry version, creation time (UTC), and the SHA-256 of the
model file, checked on every load together with the feature list. Any problem on load is a
``ModelArtifactError``: the scorer then falls back to the catalog's rules.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib
import numpy as np

from finsentry import __version__
from finsentry.detectors.base import Detector
from finsentry.features import SCORING_COLUMNS, SEQUENCE_COLUMNS

MODEL_FILE = "model.joblib"
METADATA_FILE = "metadata.json"
RESERVED = ("detector", "finsentry_version", "feature_columns", "params", "created_at", "sha256")


class ModelArtifactError(Exception):
    """The artifact is missing, unreadable, tampered with, or does not fit this code's features."""


def _sha256(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _plain(value: Any) -> Any:
    """Strict-JSON form: numpy scalars to Python, NaN/inf to None, other objects to str."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def save_model(detector: Detector, directory: Path | str, metadata: Mapping[str, Any] | None = None) -> Path:
    """Write ``model.joblib`` and ``metadata.json`` into ``directory``; return the directory.

    ``metadata`` adds the caller's facts, by convention ``training_window`` ([first, last]
    timestamp) and ``metrics`` (a ``ModelReport.to_dict()``); the keys in ``RESERVED`` are
    written here and cannot be overridden. The metadata is strict JSON (NaN becomes null).
    """
    if not detector.fitted:
        raise ValueError(f"{detector.name} is not fitted: nothing to save")
    extra = dict(metadata or {})
    clash = sorted(set(extra) & set(RESERVED))
    if clash:
        raise ValueError(f"metadata keys {clash} are written by save_model itself")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model_path = directory / MODEL_FILE
    joblib.dump(detector, model_path, compress=3)
    meta = {
        "detector": detector.name,
        "finsentry_version": __version__,
        "feature_columns": list(detector.feature_columns or ()),
        "params": detector.params,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "training_window": None,
        "metrics": {},
        **extra,
        "sha256": _sha256(model_path),
    }
    tmp = directory / f".{METADATA_FILE}.tmp"
    tmp.write_text(json.dumps(_plain(meta), indent=2, allow_nan=False))
    os.replace(tmp, directory / METADATA_FILE)
    return directory


def _read_metadata(path: Path) -> dict:
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelArtifactError(f"{path} cannot be read as JSON: {exc}") from exc
    if not isinstance(meta, dict) or not isinstance(meta.get("sha256"), str):
        raise ModelArtifactError(f"{path} is not finsentry model metadata (no sha256)")
    return meta


def load_model(directory: Path | str, expected_features: tuple[str, ...] | None = SCORING_COLUMNS,
               allow_sequence: bool = False) -> tuple[Detector, dict]:  # fmt: skip
    """Load a saved detector and its metadata after checking integrity and the feature list.

    ``expected_features`` is the feature list this code computes (None: accept any, as for
    benchmark models). With ``allow_sequence`` the caller also computes the sequence columns
    (``finsentry.features.SEQUENCE_COLUMNS``), so a model reading ``expected_features`` plus
    those (the LSTM, an ensemble holding it) is accepted too: batch scoring and the
    streaming scorer (its profiles keep the last steps, ``features.update_sequences``) do. Raises
    ``ModelArtifactError`` on a missing file, unreadable content, a checksum mismatch, or a
    feature list other than expected.
    """
    directory = Path(directory)
    model_path, meta_path = directory / MODEL_FILE, directory / METADATA_FILE
    if not model_path.is_file() or not meta_path.is_file():
        raise ModelArtifactError(f"{directory} is not a model artifact ({MODEL_FILE} + {METADATA_FILE})")
    meta = _read_metadata(meta_path)
    try:
        digest = _sha256(model_path)
    except OSError as exc:
        raise ModelArtifactError(f"{model_path} cannot be read: {exc}") from exc
    if meta["sha256"] != digest:
        raise ModelArtifactError(f"{model_path} does not match the checksum in {METADATA_FILE}")
    features = tuple(meta.get("feature_columns") or ())
    accepted = [tuple(expected_features or ())]
    if allow_sequence:
        accepted.append((*accepted[0], *(c for c in SEQUENCE_COLUMNS if c not in accepted[0])))
    # the supervised candidate also reads the label-derived risk and its base's score, which
    # this code computes too (finsentry.label_risk; the detector adds the score itself)
    from finsentry.detectors.supervised import SUPERVISED_EXTRA_COLUMNS

    accepted += [(*a, *SUPERVISED_EXTRA_COLUMNS) for a in list(accepted)]
    # a model trained without the columns its data could not feed (``unfed_features_``, e.g. the
    # balance features of a card table) reads the rest, in order: a subsequence of what we compute
    if expected_features is not None and not any(features and features == tuple(c for c in a if c in features)
                                                 and set(features) <= set(a) for a in accepted):  # fmt: skip
        raise ModelArtifactError(
            f"the model was trained on other features than this code computes: {list(features)} "
            f"vs {list(expected_features)}"
        )
    try:
        # joblib unpickles: artifacts are produced only by our own training and read only
        # from our own encrypted bucket, and their integrity is checked first by the SHA-256
        # recorded in metadata.json (above).
        detector = joblib.load(model_path)  # noqa: S301
    except Exception as exc:  # unreadable or foreign pickle: the scorer falls back to rules
        raise ModelArtifactError(f"{model_path} cannot be loaded: {exc}") from exc
    if not isinstance(detector, Detector):
        raise ModelArtifactError(f"{model_path} holds a {type(detector).__name__}, not a detector")
    if tuple(detector.feature_columns or ()) != features or detector.name != meta.get("detector"):
        raise ModelArtifactError(f"{model_path} does not match its {METADATA_FILE} (detector or features)")
    return detector, meta
