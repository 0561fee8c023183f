"""The training state machine's fifth branch, the supervised candidate, executed by moto's interpreter.

Three ways through it: no verdict stored yet (skipped before any job), verdicts stored but fewer
than the documented minimum on the training rows (the job fails saying "not enough verdicts", the
branch skips the candidate, the run goes on), and enough (the candidate joins the evaluation with
the verdicts and can be promoted). Any other failure of its job fails the run like the others'.
"""

from __future__ import annotations

import json

import pytest
from moto.sagemaker.models import SageMakerModelBackend

from finsentry.evaluation import select_model
from finsentry.layout import PREFIXES
from finsentry.pipeline_definition import CANDIDATES, SUPERVISED, job_names
from tests.stepfunctions.conftest import Pipeline
from tests.stepfunctions.test_training_pipeline_runs import report

# what sagemaker/train.py writes to /opt/ml/output/failure below the minimum (SageMaker's FailureReason)
TOO_FEW = ("AlgorithmError: supervised: not enough verdicts on the training rows (12 confirmed fraud(s) and "
           "80 dismissed alert(s): below the minimum (30 and 30); ...)")  # fmt: skip


@pytest.fixture
def failing_supervised(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The failure reason the supervised training job ends with in moto's SageMaker backend (empty:
    it completes), as the container's failure file would set it."""
    reason: list[str] = []
    create = SageMakerModelBackend.create_training_job

    def create_then_fail(self, training_job_name: str, hyper_parameters: dict, *args, **kwargs):  # type: ignore[no-untyped-def]
        job = create(self, training_job_name, hyper_parameters, *args, **kwargs)
        if hyper_parameters.get("detector") == SUPERVISED and reason:
            job.training_job_status = "Failed"
            job.failure_reason = reason[0]
        return job

    monkeypatch.setattr(SageMakerModelBackend, "create_training_job", create_then_fail)
    return reason


def put_labels(pipeline: Pipeline) -> None:
    """One day of the label history, as the S3 door (finsentry.feedback) stores it."""
    key = f"{PREFIXES.feedback_labels}dt=2026-11-30/part-0.parquet"
    pipeline.s3.put_object(Bucket=pipeline.subs["DataBucket"], Key=key, Body=b"PAR1")


def evaluation_with(best: str | None) -> dict:
    """evaluation.json over the four candidates (+ the supervised one when ``best`` names it)."""
    names = [*CANDIDATES, SUPERVISED] if best == SUPERVISED else list(CANDIDATES)
    reports = [report(n, 0.9 if n == best else 0.4 + i / 100, threshold=0.80 + i / 100) for i, n in enumerate(names)]
    return {"selection": select_model(reports, None).to_dict(), "candidates": [r.to_dict() for r in reports]}


def processing_inputs(pipeline: Pipeline, execution: str) -> dict[str, str]:
    job = pipeline.sagemaker.describe_processing_job(ProcessingJobName=job_names(execution)["evaluation"])
    return {i["InputName"]: i["S3Input"]["S3Uri"] for i in job["ProcessingInputs"]}


def test_without_any_verdict_the_branch_is_skipped_before_any_job(pipeline: Pipeline) -> None:
    pipeline.put_evaluation("fb-none", evaluation_with("lof"))

    run = pipeline.run("fb-none")

    assert run.status == "SUCCEEDED", (run.error, run.cause)
    entered = run.entered()
    assert "NoLabelsYet" in entered and "TrainSupervised" not in entered
    jobs = [j["TrainingJobName"] for j in pipeline.sagemaker.list_training_jobs()["TrainingJobSummaries"]]
    assert job_names("fb-none")[SUPERVISED] not in jobs and len(jobs) == len(CANDIDATES)
    assert set(processing_inputs(pipeline, "fb-none")) == {"validation", *CANDIDATES}
    body = json.loads(run.messages[0]["Message"])
    assert body["supervised"] == {"detector": SUPERVISED, "skipped": "no analysts' verdicts under feedback/labels/ yet"}


def test_too_few_verdicts_skip_the_candidate_and_the_run_goes_on(pipeline: Pipeline,
                                                                 failing_supervised: list[str]) -> None:
    old = {"model_uri": "s3://old/model.tar.gz", "version": "v1", "threshold": 0.9}
    pipeline.set_champion(old)
    put_labels(pipeline)
    failing_supervised.append(TOO_FEW)
    pipeline.put_evaluation("fb-few", evaluation_with("lof"))

    run = pipeline.run("fb-few")

    assert run.status == "SUCCEEDED", (run.error, run.cause)
    entered = run.entered()
    for state in ("FindLabels", "TrainSupervised", "SupervisedTrainingOutcome", "NotEnoughLabels",
                  "ListInputsWithChampion", "EvaluateCandidates", "UseLof", "RegisterModel"):
        assert state in entered, state
    assert "SupervisedTrainingFailed" not in entered and "NotifyFailure" not in entered
    assert set(processing_inputs(pipeline, "fb-few")) == {"validation", *CANDIDATES, "champion"}
    body = json.loads(run.messages[0]["Message"])
    assert body["supervised"]["skipped"].startswith("not enough analysts' verdicts")
    assert body["supervised"]["job_name"] == job_names("fb-few")[SUPERVISED]


def test_enough_verdicts_add_the_candidate_and_the_verdicts_to_the_evaluation(pipeline: Pipeline) -> None:
    put_labels(pipeline)
    doc = evaluation_with(SUPERVISED)
    assert doc["selection"]["best"] == SUPERVISED and doc["selection"]["promoted"]
    pipeline.put_evaluation("fb-enough", doc)

    run = pipeline.run("fb-enough")

    assert run.status == "SUCCEEDED", (run.error, run.cause)
    entered = run.entered()
    for state in ("TrainSupervised", "DescribeSupervisedInputs", "ListInputsWithSupervised", "UseSupervised",
                  "PointScorerAtModel"):  # fmt: skip
        assert state in entered, state
    names, bucket = job_names("fb-enough"), pipeline.subs["DataBucket"]
    job = pipeline.sagemaker.describe_training_job(TrainingJobName=names[SUPERVISED])
    assert job["HyperParameters"]["detector"] == SUPERVISED
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in job["InputDataConfig"]}
    assert channels == {"train": f"s3://{bucket}/curated/features/", "validation": f"s3://{bucket}/curated/validation/",
                        "labels": f"s3://{bucket}/{PREFIXES.feedback_labels}"}  # fmt: skip
    model_uri = f"s3://{bucket}/models/training/{names[SUPERVISED]}/output/model.tar.gz"
    inputs = processing_inputs(pipeline, "fb-enough")
    assert inputs["supervised"] == model_uri and inputs["labels"] == f"s3://{bucket}/{PREFIXES.feedback_labels}"
    assert "champion" not in inputs  # first run: no champion
    assert pipeline.champion()["model_uri"] == model_uri
    body = json.loads(run.messages[0]["Message"])
    assert body["serving"] == SUPERVISED and body["supervised"]["model_uri"] == model_uri


def test_enough_verdicts_with_a_champion_list_both(pipeline: Pipeline) -> None:
    pipeline.set_champion({"model_uri": "s3://old/model.tar.gz", "version": "v1", "threshold": 0.9})
    put_labels(pipeline)
    pipeline.put_evaluation("fb-champion", evaluation_with("lof"))

    run = pipeline.run("fb-champion")

    assert run.status == "SUCCEEDED", (run.error, run.cause)
    assert "ListInputsWithChampionAndSupervised" in run.entered()
    assert set(processing_inputs(pipeline, "fb-champion")) == {"validation", *CANDIDATES, SUPERVISED, "labels",
                                                              "champion"}  # fmt: skip


def test_any_other_supervised_failure_fails_the_run(pipeline: Pipeline, failing_supervised: list[str]) -> None:
    put_labels(pipeline)
    failing_supervised.append("AlgorithmError: ExecuteUserScriptError: out of memory")

    run = pipeline.run("fb-crash")

    assert (run.status, run.error) == ("FAILED", "PipelineFailed")
    assert run.cause.startswith("TrainingFailed: supervised training failed with States.TaskFailed")
    assert "out of memory" in run.cause
    assert "SupervisedTrainingFailed" in run.entered() and "EvaluateCandidates" not in run.entered()
