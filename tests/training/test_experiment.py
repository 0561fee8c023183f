"""The data scientist's loop on moto: experiment -> compare -> promote -> roll back.

``finsentry experiment`` drives the SageMaker SDK (``ModelTrainer``, sagemaker-core's
``ProcessingJob``) against moto; the jobs run the image's entry points in this process
(``tests/moto_sagemaker.jobs_run_in_process``) on curated features and a labelled validation
period the demo's preparation builds.
"""

from __future__ import annotations

import io
import json

import boto3
import pandas as pd
import pytest

from finsentry.cli import main
from finsentry.layout import PREFIXES
from finsentry.local.pipeline import DemoConfig, prepare
from finsentry.local.training_run import ID_COLUMNS, LABELS
from tests.factories import small_bank
from tests.moto_deployment import ENV, REGION, deploy, moto_account


@pytest.fixture(scope="module")
def curated() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Training rows and the labelled validation period, as the features job writes them."""
    prep = prepare(small_bank(), DemoConfig(anomaly_rate=0.02, seed=3))
    frame = pd.concat([prep.transactions[list(ID_COLUMNS)], prep.features], axis=1)
    labelled = pd.concat([frame, prep.transactions[list(LABELS)]], axis=1)
    return frame[prep.split.train], labelled[prep.split.validation]


@pytest.fixture
def deployed(curated):
    with moto_account():
        subs = deploy()
        s3 = boto3.client("s3", region_name=REGION)
        for prefix, frame in ((PREFIXES.curated, curated[0]), (PREFIXES.validation, curated[1])):
            buffer = io.BytesIO()
            frame.to_parquet(buffer, index=False)
            s3.put_object(Bucket=subs["DataBucket"], Key=f"{prefix}part-00000.parquet", Body=buffer.getvalue())
        yield subs


def _jobs(kind: str) -> list[dict]:
    sm = boto3.client("sagemaker", region_name=REGION)
    if kind == "training":
        names = [j["TrainingJobName"] for j in sm.list_training_jobs()["TrainingJobSummaries"]]
        return [sm.describe_training_job(TrainingJobName=n) for n in names]
    names = [j["ProcessingJobName"] for j in sm.list_processing_jobs()["ProcessingJobSummaries"]]
    return [sm.describe_processing_job(ProcessingJobName=n) for n in names]


def test_experiment_compare_promote_roll_back(deployed, capsys):
    subs = deployed
    fast = ["--poll", "0"]
    # 1. a first experiment: no champion yet; the candidate is registered, pending approval
    argv = ["experiment", "--env", ENV, "--detector", "isolation_forest", "--param", "n_estimators=60", *fast]
    assert main(argv) == 0
    first = capsys.readouterr().out
    print(first)
    assert "isolation_forest (this experiment)" in first and "there is no champion in production" in first
    assert "registered as version 1 (PendingManualApproval)" in first
    [training] = _jobs("training")
    assert training["AlgorithmSpecification"]["TrainingImage"] == subs["TrainingImageUri"]
    assert training["RoleArn"] == subs["SageMakerRoleArn"]
    assert training["HyperParameters"]["detector"] == "isolation_forest"
    assert training["HyperParameters"]["n_estimators"] == "60"
    assert [c["ChannelName"] for c in training["InputDataConfig"]] == ["train", "validation"]
    assert training["OutputDataConfig"]["KmsKeyId"] == subs["KmsKeyArn"]
    [evaluation] = _jobs("processing")
    assert evaluation["AppSpecification"] == {"ImageUri": subs["TrainingImageUri"], "ContainerEntrypoint": ["evaluate"]}

    # 2. promote it: the scorer's pointer is what the state machine writes
    assert main(["promote", "--env", ENV, "1"]) == 0
    ssm = boto3.client("ssm", region_name=REGION)
    pointer = json.loads(ssm.get_parameter(Name=subs["ModelParameterName"])["Parameter"]["Value"])
    assert pointer["model_uri"] == training["ModelArtifacts"]["S3ModelArtifacts"]
    assert pointer["version"].endswith("/1") and isinstance(pointer["threshold"], float)

    # 3. a challenger is evaluated beside the champion
    capsys.readouterr()
    assert main(["experiment", "--env", ENV, "--detector", "lof", *fast]) == 0
    second = capsys.readouterr().out
    print(second)
    assert "lof (this experiment)" in second and "│ champion" in second and "version 2" in second
    inputs = {i["InputName"] for i in _jobs("processing")[-1]["ProcessingInputs"]}
    assert inputs == {"validation", "lof", "champion"}

    # 4. promote the challenger, then roll back to the first
    assert main(["promote", "--env", ENV, "2"]) == 0
    assert main(["models", "--env", ENV]) == 0
    assert main(["promote", "--env", ENV, "--rollback"]) == 0
    pointer = json.loads(ssm.get_parameter(Name=subs["ModelParameterName"])["Parameter"]["Value"])
    assert pointer["version"].endswith("/1")
    print(capsys.readouterr().out)


@pytest.mark.parametrize(("argv", "message"), [
    (["--detector", "xgboost"], "unknown detector 'xgboost'"),
    (["--detector", "lof", "--param", "n_neighbors"], "expected name=value"),
    (["--detector", "lof", "--param", "detector=tails"], "set by finsentry experiment itself"),
])  # fmt: skip
def test_experiment_bad_input_is_one_line(deployed, capsys, argv, message):
    assert main(["experiment", "--env", ENV, *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert _jobs("training") == []
