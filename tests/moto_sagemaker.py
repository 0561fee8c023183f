"""The two gaps of moto 5.2's SageMaker that the workflow commands run into, filled.

1. Metadata lost on update (``registry_metadata_kept``).
2. Jobs that run nothing (``jobs_run_in_process``, below).


``UpdateModelPackage`` sets every field the request leaves out to nothing in moto: without
``CustomerMetadataProperties`` (e.g. only a new approval status) the metadata is gone, without
``ModelApprovalStatus`` the status is. AWS leaves them as they are (it adds or replaces the
metadata keys given and removes those in ``CustomerMetadataPropertiesToRemove``). The
registry keeps the detector, threshold and evaluation there, so an approval in moto would lose
them. ``registry_metadata_kept`` keeps them when the request has none; the guard test in
``tests/test_moto_sagemaker.py`` fails when moto does it itself.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

import boto3
from moto.sagemaker.models import SageMakerModelBackend

from finsentry.local import training_run


@contextlib.contextmanager
def registry_metadata_kept() -> Iterator[None]:
    original = SageMakerModelBackend.update_model_package

    def update(self, model_package_arn, model_approval_status, approval_description, customer_metadata_properties,
               customer_metadata_properties_to_remove, additional_inference_specifications_to_add):  # noqa: ANN001
        name = self.model_package_name_mapping.get(model_package_arn, model_package_arn)
        package = self.model_packages.get(name)
        if package is not None:
            customer_metadata_properties = {**(package.customer_metadata_properties or {}),
                                            **(customer_metadata_properties or {})}  # fmt: skip
            model_approval_status = model_approval_status or package.model_approval_status
            approval_description = approval_description or package.approval_description
        return original(self, model_package_arn, model_approval_status, approval_description,
                        customer_metadata_properties, customer_metadata_properties_to_remove or [],
                        additional_inference_specifications_to_add)  # fmt: skip

    SageMakerModelBackend.update_model_package = update
    try:
        yield
    finally:
        SageMakerModelBackend.update_model_package = original


# --- the containers: moto records training and processing jobs but runs nothing -----------------------------

_PROCESSING = "/opt/ml/processing/"


def _download(s3, uri: str, into: Path) -> None:
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    into.mkdir(parents=True, exist_ok=True)
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    for key in (o["Key"] for page in pages for o in page.get("Contents", []) if not o["Key"].endswith("/")):
        name = key[len(prefix):].lstrip("/") or key.rsplit("/", 1)[-1]
        (into / name).parent.mkdir(parents=True, exist_ok=True)
        (into / name).write_bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def _upload(s3, folder: Path, uri: str) -> None:
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        s3.put_object(Bucket=bucket, Key=f"{prefix.rstrip('/')}/{path.relative_to(folder).as_posix()}",
                      Body=path.read_bytes())  # fmt: skip


def _train_in_process(region: str, name: str, hyperparameters: dict, channels: list[dict], output: dict) -> None:
    """What the training image does with this job: ``sagemaker/train.py`` on the channels, the
    model folder tarred to ``<S3OutputPath>/<job>/output/model.tar.gz``."""
    s3 = boto3.client("s3", region_name=region)
    with tempfile.TemporaryDirectory(prefix="moto-training-") as tmp:
        root = Path(tmp)
        env = {"SM_ROOT": str(root), "SM_MODEL_DIR": str(root / "model"), "TRAINING_JOB_NAME": name}
        for channel in channels:
            folder = root / "input" / "data" / channel["ChannelName"]
            _download(s3, channel["DataSource"]["S3DataSource"]["S3Uri"], folder)
            env[f"SM_CHANNEL_{channel['ChannelName'].upper()}"] = str(folder)
        (root / "input" / "config").mkdir(parents=True)
        (root / "input" / "config" / "hyperparameters.json").write_text(json.dumps(hyperparameters))
        training_run._train(env)
        archive = root / "model.tar.gz"
        training_run._tar(root / "model", archive)
        bucket, _, prefix = output["S3OutputPath"].removeprefix("s3://").partition("/")
        s3.put_object(Bucket=bucket, Key=f"{prefix.rstrip('/')}/{name}/output/model.tar.gz", Body=archive.read_bytes())


def _process_in_process(region: str, inputs: list[dict], outputs: dict) -> None:
    """What the image's ``evaluate`` entry point does with this job's inputs and outputs."""
    s3 = boto3.client("s3", region_name=region)
    with tempfile.TemporaryDirectory(prefix="moto-processing-") as tmp:
        root = Path(tmp)
        for item in inputs:
            local = item["S3Input"]["LocalPath"].removeprefix(_PROCESSING)
            _download(s3, item["S3Input"]["S3Uri"], root / "processing" / local)
        training_run._evaluate({"FINSENTRY_PROCESSING_DIR": str(root / "processing"),
                                "FINSENTRY_OUTPUT_DIR": str(root / "output")}, budget=0.01)  # fmt: skip
        for item in outputs["Outputs"]:
            local = item["S3Output"]["LocalPath"].removeprefix(_PROCESSING)
            _upload(s3, root / "processing" / local, item["S3Output"]["S3Uri"])


@contextlib.contextmanager
def jobs_run_in_process() -> Iterator[list[str]]:
    """Training and processing jobs created in moto run their entry points in this process, as
    the image would (``finsentry.local.training_run``, the demo's in-process SageMaker), before
    moto reports them Completed. Yields the names of the jobs run."""
    create_training, create_processing = SageMakerModelBackend.create_training_job, \
        SageMakerModelBackend.create_processing_job  # fmt: skip
    ran: list[str] = []

    def training(self, training_job_name, hyper_parameters, algorithm_specification, role_arn, input_data_config,
                 output_data_config, *args, **kwargs):  # noqa: ANN001
        _train_in_process(self.region_name, training_job_name, hyper_parameters or {}, input_data_config,
                          output_data_config)  # fmt: skip
        ran.append(training_job_name)
        return create_training(self, training_job_name, hyper_parameters, algorithm_specification, role_arn,
                               input_data_config, output_data_config, *args, **kwargs)  # fmt: skip

    def processing(self, app_specification, experiment_config, network_config, processing_inputs,
                   processing_job_name, processing_output_config, *args, **kwargs):  # noqa: ANN001
        assert app_specification.get("ContainerEntrypoint") == ["evaluate"], app_specification
        _process_in_process(self.region_name, processing_inputs, processing_output_config)
        ran.append(processing_job_name)
        return create_processing(self, app_specification, experiment_config, network_config, processing_inputs,
                                 processing_job_name, processing_output_config, *args, **kwargs)  # fmt: skip

    SageMakerModelBackend.create_training_job, SageMakerModelBackend.create_processing_job = training, processing
    try:
        yield ran
    finally:
        SageMakerModelBackend.create_training_job = create_training
        SageMakerModelBackend.create_processing_job = create_processing
