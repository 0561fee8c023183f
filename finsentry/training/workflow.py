"""The data scientist's loop on a deployment, with the SageMaker Python SDK v3 (sagemaker-core
resources and ``sagemaker.train.ModelTrainer``): list the model registry, promote, roll back, and
run an experiment with the image and entry points the training state machine runs.

The registry is the deployment's model package group, which the state machine fills
(``RegisterModel``: approved, ``CustomerMetadataProperties`` detector, threshold, execution,
training job and the ``evaluation.json`` URI). What the scorer serves is the SSM pointer
(``layout.model_parameter_name``) holding ``{"model_uri", "version" (the package ARN),
"threshold"}``: ``promote`` writes exactly what ``PointScorerAtModel`` writes.

* ``promote(VERSION)``: approve the version (if it is not) and point the scorer at it.
* ``rollback()``: reject the version the scorer serves and point the scorer at the newest approved
  version older than it: repeated, it walks back through the approved history.

The SDK is an optional extra (``finsentry[sagemaker]``, in ``dev``): imported when a function runs.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass, field
from typing import Any

FIGURES = ("recall", "auc_pr", "precision", "alerts", "threshold")  # from evaluation.json, per model
APPROVED, REJECTED = "Approved", "Rejected"


class WorkflowError(ValueError):
    """A request the registry cannot honour (unknown version, nothing to roll back to, ...)."""


@dataclass
class ModelVersion:
    """One version of the model package group, with what the evaluation said of it."""

    version: int
    arn: str
    detector: str
    approval: str
    model_uri: str
    threshold: float | None
    created: dt.datetime | None
    execution: str = ""
    evaluation_uri: str = ""
    figures: dict[str, Any] = field(default_factory=dict)
    serving: bool = False

    def pointer(self) -> dict[str, Any]:
        """The SSM value that makes the scorer serve this version (``PointScorerAtModel``'s)."""
        if self.threshold is None or not math.isfinite(self.threshold):
            raise WorkflowError(f"version {self.version} has no numeric threshold in its metadata: cannot serve it")
        return {"model_uri": self.model_uri, "version": self.arn, "threshold": self.threshold}


def sdk_missing() -> WorkflowError:
    return WorkflowError("the SageMaker Python SDK is not installed: pip install 'finsentry[sagemaker]'")


def _package_cls():
    try:
        from sagemaker.core.resources import ModelPackage
    except ImportError:
        raise sdk_missing() from None
    return ModelPackage


def _float(text: Any) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def current_pointer(deployment) -> dict[str, Any] | None:
    """What the scorer serves (the SSM value), or None before the first promotion."""
    ssm = deployment.client("ssm")
    try:
        value = ssm.get_parameter(Name=deployment.model_parameter)["Parameter"]["Value"]
    except ssm.exceptions.ParameterNotFound:
        return None
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        raise WorkflowError(f"SSM {deployment.model_parameter} is not JSON: {value[:80]!r}") from None


def read_json(deployment, uri: str) -> dict[str, Any] | None:
    """A JSON document on S3, or None when it is absent or unreadable."""
    if not uri.startswith("s3://"):
        return None
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    try:
        body = deployment.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
        return json.loads(body)
    except Exception:  # noqa: BLE001 - figures are optional: a missing evaluation shows as blanks
        return None


def figures_of(document: dict[str, Any] | None, name: str, role: str = "candidate") -> dict[str, Any]:
    """The figures of model ``name`` in an ``evaluation.json`` (its selection table's row)."""
    rows = ((document or {}).get("selection") or {}).get("table") or []
    row = next((r for r in rows if r.get("name") == name and r.get("role", role) == role), None)
    return {k: row.get(k) for k in FIGURES} if row else {}


def list_versions(deployment, with_figures: bool = True) -> list[ModelVersion]:
    """Every version of the deployment's group, oldest first; ``serving`` marks the scorer's."""
    packages = _package_cls().get_all(model_package_group_name=deployment.model_package_group,
                                      model_package_type="Versioned", session=deployment.session,
                                      region=deployment.region)  # fmt: skip
    pointer = current_pointer(deployment) or {}
    documents: dict[str, dict | None] = {}
    out = []
    for package in packages:
        meta = dict(_value(package, "customer_metadata_properties") or {})
        spec = _value(package, "inference_specification")
        containers = _value(spec, "containers") or []
        model_uri = str(_value(containers[0], "model_data_url") or "") if containers else ""
        version = ModelVersion(
            version=int(_value(package, "model_package_version") or 0), arn=str(package.model_package_arn),
            detector=meta.get("detector", ""), approval=str(_value(package, "model_approval_status") or ""),
            model_uri=model_uri, threshold=_float(meta.get("threshold")), created=_value(package, "creation_time"),
            execution=meta.get("execution", ""), evaluation_uri=meta.get("evaluation", ""),
            serving=pointer.get("version") == package.model_package_arn,
        )  # fmt: skip
        if with_figures and version.evaluation_uri:
            if version.evaluation_uri not in documents:
                documents[version.evaluation_uri] = read_json(deployment, version.evaluation_uri)
            version.figures = figures_of(documents[version.evaluation_uri], version.detector)
        out.append(version)
    return sorted(out, key=lambda v: v.version)


def _value(obj: Any, name: str) -> Any:
    """An attribute of an SDK shape, None when the SDK left it ``Unassigned``."""
    from sagemaker.core.utils.utils import Unassigned

    value = getattr(obj, name, None)
    return None if isinstance(value, Unassigned) else value


def _set_approval(deployment, version: ModelVersion, status: str, why: str) -> None:
    package = _package_cls().get(version.arn, session=deployment.session, region=deployment.region)
    package.update(model_approval_status=status, approval_description=why)
    version.approval = status


def _point(deployment, version: ModelVersion) -> int:
    response = deployment.client("ssm").put_parameter(Name=deployment.model_parameter, Type="String", Overwrite=True,
                                                      Value=json.dumps(version.pointer()))  # fmt: skip
    return int(response.get("Version", 0))


@dataclass
class Change:
    """What ``promote`` or ``rollback`` did."""

    served: ModelVersion  # the version the scorer serves now
    before: ModelVersion | None  # the one it served before (None: nothing or an unregistered model)
    parameter_version: int  # the SSM parameter's new version
    rejected: ModelVersion | None = None  # rollback: the version taken out


def promote(deployment, number: int) -> Change:
    """Approve version ``number`` (if needed) and point the scorer at it."""
    versions = list_versions(deployment, with_figures=False)
    target = next((v for v in versions if v.version == number), None)
    if target is None:
        known = ", ".join(str(v.version) for v in versions) or "none"
        raise WorkflowError(f"no version {number} in {deployment.model_package_group} (versions: {known})")
    before = next((v for v in versions if v.serving), None)
    target.pointer()  # refuse before changing anything
    if target.approval != APPROVED:
        _set_approval(deployment, target, APPROVED, "promoted with `finsentry promote`")
    parameter_version = _point(deployment, target)
    target.serving = True
    return Change(served=target, before=before, parameter_version=parameter_version)


def rollback(deployment) -> Change:
    """Reject the served version and serve the newest approved version older than it."""
    versions = list_versions(deployment, with_figures=False)
    current = next((v for v in versions if v.serving), None)
    if current is None:
        raise WorkflowError("the scorer serves no version of the registry: nothing to roll back "
                            "(use `finsentry promote VERSION`)")  # fmt: skip
    older = [v for v in versions if v.version < current.version and v.approval == APPROVED]
    if not older:
        raise WorkflowError(f"no approved version older than {current.version} to roll back to")
    target = older[-1]
    target.pointer()
    parameter_version = _point(deployment, target)
    _set_approval(deployment, current, REJECTED, f"rolled back to version {target.version} with `finsentry promote`")
    current.serving, target.serving = False, True
    return Change(served=target, before=current, parameter_version=parameter_version, rejected=current)
