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
import time
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


# --- experiments ------------------------------------------------------------------------------------------

INSTANCE_TYPE = "ml.m5.xlarge"  # the state machine's training and evaluation instances
VOLUME_GB = 30
POLL_S = 15.0
TERMINAL = {"Completed", "Failed", "Stopped"}
EXPERIMENTS = "experiments/"  # under models/ (artifacts) and reports/ (evaluation.json)


@dataclass
class Experiment:
    """One experiment: its jobs, its candidate's model, the evaluation and the version it registered."""

    name: str
    detector: str
    training_job: str
    model_uri: str
    evaluation_job: str
    evaluation_uri: str
    evaluation: dict[str, Any]
    registered: ModelVersion | None = None

    def rows(self) -> list[dict[str, Any]]:
        """The evaluation's table: the candidate, then the champion when there was one."""
        return list((self.evaluation.get("selection") or {}).get("table") or [])


def parse_params(pairs: list[str]) -> dict[str, str]:
    """``--param k=v`` pairs as the training job's hyperparameters (strings, as SageMaker passes them)."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise WorkflowError(f"--param {pair!r}: expected name=value, e.g. n_estimators=300")
        if key.strip() in ("detector", "training_data_uri"):
            raise WorkflowError(f"--param {key.strip()} is set by finsentry experiment itself")
        out[key.strip()] = value.strip()
    return out


def _wait(resource, status_attr: str, what: str, progress, poll_s: float) -> None:
    """Refresh ``resource`` until a terminal status, reporting each change; raise on failure."""
    last = None
    while True:
        resource.refresh()
        status = str(getattr(resource, status_attr))
        secondary = _value(resource, "secondary_status") if status_attr == "training_job_status" else None
        shown = f"{status}" + (f" ({secondary})" if secondary and secondary != status else "")
        if shown != last:
            progress(f"{what}: {shown}")
            last = shown
        if status in TERMINAL:
            break
        time.sleep(poll_s)
    if status != "Completed":
        reason = _value(resource, "failure_reason") or _value(resource, "exit_message") or "no reason given"
        raise WorkflowError(f"{what} {status.lower()}: {reason}")


def experiment(deployment, detector: str, params: dict[str, str] | None = None, budget: float = 0.01,
               progress=lambda _m: None, poll_s: float = POLL_S, register: bool = True) -> Experiment:
    """Train ``detector`` with ``params`` on the deployment's curated features and evaluate it
    against the served champion, with the state machine's image, entry points, channels and
    instance sizes; register the candidate (PendingManualApproval) so ``promote`` can serve it."""
    from finsentry.layout import PREFIXES
    from finsentry.training.jobs import DETECTORS

    if detector not in DETECTORS:
        raise WorkflowError(f"unknown detector {detector!r}; the training image trains {', '.join(DETECTORS)}")
    if not 0 < budget <= 1:
        raise WorkflowError(f"alert budget must be a share in (0, 1], got {budget}")
    try:
        from sagemaker.core import shapes
        from sagemaker.core.helper.session_helper import Session
        from sagemaker.core.resources import ProcessingJob
        from sagemaker.core.training.configs import Compute, InputData, OutputDataConfig, StoppingCondition

        from sagemaker.train import ModelTrainer
    except ImportError:
        raise sdk_missing() from None
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    short = {"isolation_forest": "iforest"}.get(detector, detector)
    name = f"finsentry-exp-{short}-{stamp}"
    key, region, session = deployment.kms_key_arn, deployment.region, deployment.session
    sm_session = Session(boto_session=session, default_bucket=deployment.bucket)
    trainer = ModelTrainer(
        training_image=deployment.training_image, role=deployment.sagemaker_role_arn, sagemaker_session=sm_session,
        base_job_name=f"finsentry-exp-{short}",
        compute=Compute(instance_type=INSTANCE_TYPE, instance_count=1, volume_size_in_gb=VOLUME_GB,
                        volume_kms_key_id=key),
        stopping_condition=StoppingCondition(max_runtime_in_seconds=4 * 3600),
        output_data_config=OutputDataConfig(s3_output_path=deployment.uri(f"{PREFIXES.models}{EXPERIMENTS}"),
                                            kms_key_id=key),
        hyperparameters={"detector": detector, "alert_budget": f"{budget:g}",
                         "training_data_uri": deployment.uri(PREFIXES.curated), **(params or {})},
        environment={"FINSENTRY_RUN_ID": name},
        input_data_config=[InputData(channel_name="train", data_source=deployment.uri(PREFIXES.curated)),
                           InputData(channel_name="validation", data_source=deployment.uri(PREFIXES.validation))],
    )  # fmt: skip
    progress(f"training job for {detector} with {deployment.training_image.rsplit('/', 1)[-1]}")
    trainer.train(wait=False, logs=False)
    job = trainer._latest_training_job  # the SDK's TrainingJob resource of this train() call
    _wait(job, "training_job_status", f"training job {job.training_job_name}", progress, poll_s)
    model_uri = str(job.model_artifacts.s3_model_artifacts)

    champion = (current_pointer(deployment) or {}).get("model_uri", "")
    prefix = deployment.uri(f"{PREFIXES.reports}{EXPERIMENTS}{name}/")

    def s3_input(input_name: str, uri: str, local: str):
        return shapes.ProcessingInput(input_name=input_name, s3_input=shapes.ProcessingS3Input(
            s3_uri=uri, local_path=f"/opt/ml/processing/{local}", s3_data_type="S3Prefix", s3_input_mode="File"))

    inputs = [s3_input("validation", deployment.uri(PREFIXES.validation), "validation"),
              s3_input(detector, model_uri, f"models/{detector}")]  # fmt: skip
    if str(champion).startswith("s3://"):
        inputs.append(s3_input("champion", champion, "champion"))
    evaluation_job = f"finsentry-exp-eval-{stamp}"
    progress(f"evaluation job against {'the champion ' + champion if champion else 'no champion (none served)'}")
    processing = ProcessingJob.create(
        processing_job_name=evaluation_job, role_arn=deployment.sagemaker_role_arn,
        app_specification=shapes.AppSpecification(image_uri=deployment.training_image,
                                                   container_entrypoint=["evaluate"]),
        processing_inputs=inputs,
        processing_output_config=shapes.ProcessingOutputConfig(kms_key_id=key, outputs=[shapes.ProcessingOutput(
            output_name="evaluation", s3_output=shapes.ProcessingS3Output(
                s3_uri=prefix, local_path="/opt/ml/processing/evaluation", s3_upload_mode="EndOfJob"))]),
        processing_resources=shapes.ProcessingResources(cluster_config=shapes.ProcessingClusterConfig(
            instance_count=1, instance_type=INSTANCE_TYPE, volume_size_in_gb=VOLUME_GB, volume_kms_key_id=key)),
        environment={"ALERT_BUDGET": f"{budget:g}", "FINSENTRY_RUN_ID": name},
        stopping_condition=shapes.ProcessingStoppingCondition(max_runtime_in_seconds=3600),
        session=session, region=region,
    )  # fmt: skip
    _wait(processing, "processing_job_status", f"evaluation job {evaluation_job}", progress, poll_s)
    evaluation_uri = f"{prefix}evaluation.json"
    document = read_json(deployment, evaluation_uri)
    if document is None:
        raise WorkflowError(f"the evaluation job wrote no readable {evaluation_uri}")
    result = Experiment(name=name, detector=detector, training_job=str(job.training_job_name), model_uri=model_uri,
                        evaluation_job=evaluation_job, evaluation_uri=evaluation_uri, evaluation=document)  # fmt: skip
    if register:
        result.registered = _register(deployment, result)
    return result


def _register(deployment, result: Experiment) -> ModelVersion:
    """The candidate as a version of the group, pending approval, with RegisterModel's metadata."""
    figures = figures_of(result.evaluation, result.detector)
    if figures.get("threshold") is None:
        raise WorkflowError(f"{result.evaluation_uri} has no threshold for {result.detector}: not registered")
    arn = deployment.client("sagemaker").create_model_package(
        ModelPackageGroupName=deployment.model_package_group, ModelApprovalStatus="PendingManualApproval",
        ModelPackageDescription=f"experiment {result.name}",
        InferenceSpecification={"Containers": [{"Image": deployment.training_image, "ModelDataUrl": result.model_uri}],
                                "SupportedContentTypes": ["application/x-parquet", "application/jsonlines", "text/csv"],
                                "SupportedResponseMIMETypes": ["application/x-parquet", "application/jsonlines"],
                                "SupportedTransformInstanceTypes": [INSTANCE_TYPE]},
        CustomerMetadataProperties={"detector": result.detector, "execution": result.name,
                                    "training_job": result.training_job, "threshold": f"{figures['threshold']}",
                                    "evaluation": result.evaluation_uri},
    )["ModelPackageArn"]  # fmt: skip
    return next(v for v in list_versions(deployment, with_figures=False) if v.arn == arn)
