"""The scorer's current model: located through an SSM parameter, cached, reloaded on change.

The parameter (``finsentry.layout.model_parameter_name(env)``) holds JSON
``{"model_uri": ..., "version": ..., "threshold": ...}``; the training pipeline rewrites it.
``model_uri`` is a local directory, ``s3://bucket/prefix/`` holding ``model.joblib`` and
``metadata.json``, or ``s3://.../model.tar.gz`` (a SageMaker model archive holding them).

``ModelLocator.current()`` asks SSM at most every ``refresh_s`` seconds; the artifact is loaded
only when the parameter's SSM version changes. When no model can be used (no parameter, bad
JSON, unreadable or tampered artifact) it returns a rules-only ``ServingModel`` and says why;
it never raises. A model that loaded once keeps serving if its successor cannot be loaded (or
the parameter cannot be read): the ``ServingModel`` is then the old one with ``problem`` set,
for as long as the pointer stays unusable (the scorer emits ``ModelLoadFailures`` per batch).
The model's drift reference (``finsentry.drift``, in its metadata) comes along as ``drift``.
"""

from __future__ import annotations

import json
import logging
import math
import tarfile
import tempfile
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from finsentry.detectors.artifact import METADATA_FILE, MODEL_FILE, ModelArtifactError, load_model
from finsentry.drift import DriftReference, reference_from_metadata

log = logging.getLogger(__name__)

REFRESH_S = 60.0


@dataclass(frozen=True)
class ServingModel:
    """What the scorer uses now. ``detector`` None = rules-only (``problem`` says why); a
    ``detector`` with a ``problem``: the model keeps serving because its successor (or the
    parameter) could not be loaded. ``drift``: the training window's bins, None if the
    artifact has none."""

    detector: Any
    version: str
    threshold: float
    problem: str = ""
    drift: DriftReference | None = None

    @property
    def rules_only(self) -> bool:
        return self.detector is None

    @property
    def successor_failed(self) -> bool:
        """A model serves, but the pointer's newer model (or the pointer itself) is unusable."""
        return self.detector is not None and bool(self.problem)


RULES_ONLY = ServingModel(detector=None, version="rules-only", threshold=1.0, problem="no model located yet")


def _split_s3(uri: str) -> tuple[str, str]:
    bucket, _, key = uri[len("s3://"):].partition("/")  # fmt: skip
    if not bucket:
        raise ModelArtifactError(f"bad S3 URI {uri!r}")
    return bucket, key


def fetch_artifact(uri: str, s3, workdir: Path) -> Path:
    """A local directory holding the artifact at ``uri`` (downloaded from S3 when needed)."""
    if not uri.startswith("s3://"):
        return Path(uri.removeprefix("file://"))
    if s3 is None:
        raise ModelArtifactError("an S3 model URI needs an S3 client")
    bucket, key = _split_s3(uri)
    try:
        if key.endswith((".tar.gz", ".tgz")):
            archive = workdir / "model.tar.gz"
            s3.download_file(bucket, key, str(archive))
            with tarfile.open(archive) as tar:
                tar.extractall(workdir / "model", filter="data")  # refuses links and paths outside
            found = sorted(p.parent for p in (workdir / "model").rglob(MODEL_FILE))
            if not found:
                raise ModelArtifactError(f"{uri} holds no {MODEL_FILE}")
            return found[0]
        prefix = key if key.endswith("/") or not key else key + "/"
        target = workdir / "model"
        target.mkdir(parents=True, exist_ok=True)
        for name in (MODEL_FILE, METADATA_FILE):
            s3.download_file(bucket, prefix + name, str(target / name))
        return target
    except (ClientError, BotoCoreError, OSError, EOFError, zlib.error, tarfile.TarError) as exc:  # EOF: truncated
        raise ModelArtifactError(f"{uri} cannot be fetched: {type(exc).__name__}: {exc}") from exc


def _pointer(value: str) -> tuple[str, str, float]:
    try:
        doc = json.loads(value)
        uri, version, threshold = str(doc["model_uri"]), str(doc["version"]), float(doc["threshold"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelArtifactError(f"model parameter is not {{model_uri, version, threshold}} JSON: {exc}") from exc
    if not math.isfinite(threshold) or not 0.0 <= threshold <= 1.0:
        raise ModelArtifactError(f"model threshold {threshold} is outside [0, 1]")
    return uri, version, threshold


class ModelLocator:
    """Cached view of the SSM model pointer. ``on_load(version)`` is called on every (re)load."""

    def __init__(self, ssm, s3, parameter: str, refresh_s: float = REFRESH_S,
                 clock: Callable[[], float] = time.monotonic,
                 on_load: Callable[[ServingModel], None] | None = None) -> None:  # fmt: skip
        self.ssm, self.s3, self.parameter = ssm, s3, parameter
        self.refresh_s = refresh_s
        self.clock = clock
        self.on_load = on_load
        self.serving: ServingModel = RULES_ONLY
        self._loaded: ServingModel | None = None  # the last model that loaded (serves while its successor fails)
        self._pointer_problem = ""  # why the parameter's current version could not be loaded
        self._ssm_version: int | None = None
        self._checked_at: float | None = None

    def current(self) -> ServingModel:
        now = self.clock()
        if self._checked_at is not None and now - self._checked_at < self.refresh_s:
            return self.serving
        self._checked_at = now
        try:
            param = self.ssm.get_parameter(Name=self.parameter)["Parameter"]
        except (ClientError, BotoCoreError) as exc:
            return self._unusable(f"model parameter {self.parameter} cannot be read: {exc}")
        if param.get("Version") == self._ssm_version and self._loaded is not None:
            # the same pointer as last time: its outcome stands (its model, or its failure to load)
            self.serving = replace(self._loaded, problem=self._pointer_problem)
            return self.serving
        self._ssm_version = param.get("Version")
        try:
            uri, version, threshold = _pointer(param["Value"])
            with tempfile.TemporaryDirectory(prefix="finsentry-model-") as tmp:
                detector, meta = load_model(fetch_artifact(uri, self.s3, Path(tmp)), allow_sequence=True)
        except ModelArtifactError as exc:
            self._pointer_problem = str(exc)
            return self._unusable(str(exc))
        self._pointer_problem = ""
        self._loaded = self.serving = ServingModel(detector=detector, version=version, threshold=threshold,
                                                   drift=_drift_reference(meta, version))  # fmt: skip
        log.info("model %s loaded from %s (threshold %.4f)", version, uri, threshold)
        if self.on_load is not None:
            self.on_load(self.serving)
        return self.serving

    def _unusable(self, problem: str) -> ServingModel:
        if self._loaded is not None:
            log.error("%s; the model %s keeps serving", problem, self._loaded.version)
            self.serving = replace(self._loaded, problem=problem)
            return self.serving
        log.error("%s; scoring with the rules only", problem)
        self.serving = ServingModel(detector=None, version="rules-only", threshold=1.0, problem=problem)
        return self.serving


def _drift_reference(meta: dict[str, Any], version: str) -> DriftReference | None:
    """The artifact's drift bins; a malformed reference costs the drift metrics, never the model."""
    try:
        return reference_from_metadata(meta)
    except (KeyError, TypeError, ValueError) as exc:
        log.error("model %s: drift reference unreadable (%s); no drift metrics for it", version, exc)
        return None


class StaticModel:
    """A fixed model (tests, the benchmark's core path): the same interface as ``ModelLocator``."""

    def __init__(self, serving: ServingModel) -> None:
        self.serving = serving

    def current(self) -> ServingModel:
        return self.serving
