"""The training state machine executed by moto's Step Functions interpreter, path by path.

What runs where (see moto_sync for the three interpreter gaps filled):
- Glue ingest/features (``glue:startJobRun.sync``): moto's Glue backend; the job runs end
  SUCCEEDED (moto's job-run state model).
- Training (three ``sagemaker:createTrainingJob.sync`` in a Parallel), evaluation
  (``createProcessingJob.sync``), ``createModel``, Batch Transform (``createTransformJob.sync``):
  moto's SageMaker backend; jobs complete at once, a failed training is made by setting the job's
  status to Failed in that backend, as a crashed container would.
- Reading evaluation.json (``aws-sdk:s3:getObject``): moto S3; the test uploads the document the
  evaluation job would write, built with ``select_model`` itself.
- Registry (``aws-sdk:sagemaker:createModelPackage``), SSM, SNS, Athena: moto's backends,
  asserted on afterwards (package in the group, parameter value, messages, query text).
"""

from __future__ import annotations

import json

import pytest
from moto.sagemaker.models import SageMakerModelBackend

from finsentry.evaluation import ModelReport, select_model
from finsentry.pipeline_definition import CANDIDATES, job_names
from tests.stepfunctions.conftest import Pipeline

TRAINING = ["TrainIsolationForest", "TrainLof", "TrainLstm"]


def report(name: str, recall: float, threshold: float) -> ModelReport:
    """A detector's validation figures, as sagemaker/evaluate.py computes them."""
    return ModelReport(name=name, threshold=threshold, alerts=12, precision=0.5, recall=recall,
                       recall_by_type={"amount_spike": recall, "all": recall}, auc_roc=0.9, auc_pr=recall / 2,
                       budget=0.01, rows=1200, anomalies=10)  # fmt: skip


def evaluation(champion: ModelReport | None, **recalls: float) -> dict:
    """The evaluation.json document: select_model's outcome over the three candidates."""
    reports = [report(n, recalls.get(n, 0.5), threshold=0.80 + i / 100) for i, n in enumerate(CANDIDATES)]
    return {"selection": select_model(reports, champion).to_dict(), "candidates": [r.to_dict() for r in reports]}


def test_challenger_promoted_registers_points_scorer_backfills_and_notifies(pipeline: Pipeline) -> None:
    old = {"model_uri": "s3://old/model.tar.gz", "version": "old", "threshold": 0.5}
    pipeline.set_champion(old)
    doc = evaluation(report("isolation_forest", 0.40, 0.7), lof=0.81, lstm=0.62, isolation_forest=0.55)
    assert doc["selection"]["promoted"] and doc["selection"]["best"] == "lof"
    pipeline.put_evaluation("nightly-1", doc)

    run = pipeline.run("nightly-1", {"training_window": {"start": "1996-01-01"}, "alert_budget": 0.02})

    assert run.status == "SUCCEEDED", (run.error, run.cause)
    entered = run.entered()
    for state in ["RunIngestJob", "RunFeaturesJob", *TRAINING, "EvaluateCandidates", "ReadEvaluation",
                  "UseLof", "RegisterModel", "PointScorerAtModel", "CreateScoringModel", "BackfillScores",
                  "AddScoredPartitions", "NotifyResult", "Done"]:  # fmt: skip
        assert state in entered
    assert "NotifyFailure" not in entered and "SummariseChampionKept" not in entered

    names = job_names("nightly-1")
    bucket = pipeline.subs["DataBucket"]
    lof_uri = f"s3://{bucket}/models/training/{names['lof']}/output/model.tar.gz"
    # the registry holds the promoted model, approved, with its lineage
    packages = pipeline.sagemaker.list_model_packages(ModelPackageGroupName=pipeline.subs["ModelPackageGroupName"])
    (summary,) = packages["ModelPackageSummaryList"]
    package = pipeline.sagemaker.describe_model_package(ModelPackageName=summary["ModelPackageArn"])
    assert package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"] == lof_uri
    assert package["ModelApprovalStatus"] == "Approved"
    assert package["CustomerMetadataProperties"]["training_job"] == names["lof"]
    # the scorer's parameter names the new model, its registry version and select_model's threshold
    assert pipeline.champion() == {"model_uri": lof_uri, "version": summary["ModelPackageArn"], "threshold": 0.81}
    # the jobs got the overrides merged into the defaults, and per-execution names
    for detector in CANDIDATES:
        job = pipeline.sagemaker.describe_training_job(TrainingJobName=names[detector])
        assert job["HyperParameters"] == {"detector": detector, "alert_budget": "0.02",
                                          "training_data_uri": f"s3://{bucket}/curated/features/"}  # fmt: skip
    processing = pipeline.sagemaker.describe_processing_job(ProcessingJobName=names["evaluation"])
    inputs = {i["InputName"]: i["S3Input"]["S3Uri"] for i in processing["ProcessingInputs"]}
    assert inputs == {"validation": f"s3://{bucket}/curated/validation/", "lof": lof_uri, "champion": old["model_uri"],
                      "isolation_forest": lof_uri.replace(names["lof"], names["isolation_forest"]),
                      "lstm": lof_uri.replace(names["lof"], names["lstm"]),
                      "ensemble": lof_uri.replace(names["lof"], names["ensemble"])}  # fmt: skip
    assert processing["AppSpecification"]["ContainerEntrypoint"] == ["evaluate"]
    (evaluation_request,) = run.requests("createProcessingJob.sync")
    assert evaluation_request["Environment"] == {
        "ALERT_BUDGET": "0.02", "FINSENTRY_WINDOW_START": "1996-01-01", "FINSENTRY_WINDOW_END": "9999-12-31",
        "FINSENTRY_RUN_ID": "nightly-1"}  # fmt: skip
    for request in run.requests("createTrainingJob.sync"):
        assert request["Environment"]["FINSENTRY_WINDOW_START"] == "1996-01-01"
    transform = pipeline.sagemaker.describe_transform_job(TransformJobName=names["transform"])
    assert transform["ModelName"] == names["model"]
    assert transform["TransformOutput"]["S3OutputPath"] == f"s3://{bucket}/scored/"
    # the partitions query ran in the workgroup, on the catalog database
    (query_id,) = pipeline.athena.list_query_executions(WorkGroup=pipeline.subs["AthenaWorkgroup"])[
        "QueryExecutionIds"]  # fmt: skip
    query = pipeline.athena.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]
    assert query["Query"] == "MSCK REPAIR TABLE scored"
    assert query["QueryExecutionContext"]["Database"] == pipeline.subs["GlueDatabase"]
    # one notification, with the comparison table; the execution's output is the same report
    (message,) = run.messages
    assert message["Subject"] == "finsentry training: new model promoted"
    body = json.loads(message["Message"])
    assert body["outcome"] == "promoted" and body["serving"] == "lof"
    assert body["table"] == doc["selection"]["table"]
    assert body["model"] == pipeline.champion()
    assert run.output == body


def test_champion_kept_leaves_the_scorer_alone_and_notifies_the_table(pipeline: Pipeline) -> None:
    old = {"model_uri": "s3://old/model.tar.gz", "version": "v1", "threshold": 0.9}
    pipeline.set_champion(old)
    doc = evaluation(report("lof", 0.80, 0.9), lof=0.805, lstm=0.6, isolation_forest=0.5)
    assert not doc["selection"]["promoted"]
    pipeline.put_evaluation("nightly-2", doc)

    scheduled_event = {"version": "0", "id": "e1", "detail-type": "Scheduled Event", "source": "aws.events",
                       "time": "2026-11-25T03:00:00Z", "resources": [], "detail": {}}  # fmt: skip
    run = pipeline.run("nightly-2", scheduled_event)  # a schedule without input passes its event

    assert run.status == "SUCCEEDED", (run.error, run.cause)
    entered = run.entered()
    assert "SummariseChampionKept" in entered
    for state in ["RegisterModel", "PointScorerAtModel", "BackfillScores", "AddScoredPartitions", "NotifyFailure"]:
        assert state not in entered
    assert pipeline.champion() == old
    packages = pipeline.sagemaker.list_model_packages(ModelPackageGroupName=pipeline.subs["ModelPackageGroupName"])
    assert packages["ModelPackageSummaryList"] == []
    (message,) = run.messages
    assert message["Subject"] == "finsentry training: champion kept"
    body = json.loads(message["Message"])
    assert body["outcome"] == "champion kept" and body["serving"] == "lof"
    assert body["reason"] == doc["selection"]["reason"]
    assert [row["role"] for row in body["table"]] == ["candidate"] * len(CANDIDATES) + ["champion"]
    # defaults applied when the input gives no override
    job = pipeline.sagemaker.describe_training_job(TrainingJobName=job_names("nightly-2")["lstm"])
    assert job["HyperParameters"]["alert_budget"] == "0.01"


@pytest.fixture
def failing_trainings(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """Detectors whose training job ends Failed in moto's SageMaker backend, as a crashed container's
    would; the test fills the set."""
    failing: set[str] = set()
    create = SageMakerModelBackend.create_training_job

    def create_then_fail(self, training_job_name: str, hyper_parameters: dict, *args, **kwargs):  # type: ignore[no-untyped-def]
        job = create(self, training_job_name, hyper_parameters, *args, **kwargs)
        if hyper_parameters.get("detector") in failing:
            job.training_job_status = "Failed"
            job.failure_reason = "AlgorithmError: ExecuteUserScriptError: out of memory"
        return job

    monkeypatch.setattr(SageMakerModelBackend, "create_training_job", create_then_fail)
    return failing


def test_training_failure_is_notified_and_fails_the_execution(pipeline: Pipeline, failing_trainings: set[str]) -> None:
    old = {"model_uri": "s3://old/model.tar.gz", "version": "v1", "threshold": 0.9}
    pipeline.set_champion(old)
    failing_trainings.add("lstm")

    run = pipeline.run("nightly-3")

    assert (run.status, run.error) == ("FAILED", "PipelineFailed")
    assert run.cause.startswith("TrainingFailed: lstm training failed with States.TaskFailed: ")
    names = job_names("nightly-3")
    assert names["lstm"] in run.cause and "out of memory" in run.cause
    entered = run.entered()
    assert "LstmTrainingFailed" in entered and "NotifyFailure" in entered and "PipelineFailed" in entered
    assert "EvaluateCandidates" not in entered and "RegisterModel" not in entered
    assert pipeline.champion() == old
    (message,) = run.messages
    assert message["Subject"] == "finsentry training pipeline FAILED"
    assert "nightly-3" in message["Message"] and "TrainingFailed" in message["Message"]
    assert names["lstm"] in message["Message"]
    # no retry of a failed training (it would fail the same way again): one attempt
    failed = [e for e in run.events if e["type"] == "TaskFailed"]
    assert len(failed) == 1


BAD_OVERRIDES = [
    {"alert_budget": 2},
    {"alert_budget": 0},
    {"alert_budget": "1%"},
    {"training_window": {"start": "1998-01-01", "end": "1997-01-01"}},
    {"training_window": {"start": "yesterday"}},
    {"training_window": "1998"},
]


def test_invalid_overrides_are_refused_before_any_job(pipeline: Pipeline) -> None:
    for i, overrides in enumerate(BAD_OVERRIDES):
        run = pipeline.run(f"manual-bad-{i}", overrides)

        assert (run.status, run.error) == ("FAILED", "PipelineFailed"), overrides
        assert run.cause.startswith("InvalidInput: "), overrides
        assert "RunIngestJob" not in run.entered()
        (message,) = run.messages
        assert "InvalidInput" in message["Message"] and "alert_budget" in message["Message"]
    assert pipeline.sagemaker.list_training_jobs()["TrainingJobSummaries"] == []


def test_evaluation_without_a_decision_fails_clearly(pipeline: Pipeline) -> None:
    pipeline.put_evaluation("nightly-4", {"selection": {"best": "lof", "table": []}})

    run = pipeline.run("nightly-4")

    assert (run.status, run.error, run.cause.split(":")[0]) == ("FAILED", "PipelineFailed", "InvalidEvaluation")
    assert "RegisterModel" not in run.entered()
    (message,) = run.messages
    assert "InvalidEvaluation" in message["Message"]


@pytest.fixture
def evaluation_job_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    """The evaluation processing job ends Failed in moto's SageMaker backend."""
    create = SageMakerModelBackend.create_processing_job

    def create_then_fail(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        job = create(self, *args, **kwargs)
        job.processing_job_status = "Failed"
        job.failure_reason = "ClientError: no labelled validation period"
        return job

    monkeypatch.setattr(SageMakerModelBackend, "create_processing_job", create_then_fail)


def test_evaluation_job_failure_is_caught_at_the_task(pipeline: Pipeline, evaluation_job_fails: None) -> None:
    run = pipeline.run("nightly-5")

    assert (run.status, run.error) == ("FAILED", "PipelineFailed")
    assert run.cause.startswith("States.TaskFailed: ") and "no labelled validation period" in run.cause
    entered = run.entered()
    assert entered[entered.index("EvaluateCandidates") + 1] == "NotifyFailure"
    # first run: no SSM parameter yet, so no champion folder for the evaluation
    assert "ListInputsWithoutChampion" in entered
    processing = pipeline.sagemaker.describe_processing_job(ProcessingJobName=job_names("nightly-5")["evaluation"])
    assert [i["InputName"] for i in processing["ProcessingInputs"]] == ["validation", *CANDIDATES]
    (message,) = run.messages
    assert "nightly-5" in message["Message"] and "no labelled validation period" in message["Message"]


def test_each_candidate_can_fail_and_be_promoted(pipeline: Pipeline, failing_trainings: set[str]) -> None:
    """The other branches' Fail states and Use<Candidate> states, run once each."""
    for detector, state in (("isolation_forest", "IsolationForest"), ("lof", "Lof"), ("ensemble", "Ensemble")):
        failing_trainings.clear()
        failing_trainings.add(detector)
        run = pipeline.run(f"fail-{detector.replace('_', '-')}")
        assert (run.status, run.error) == ("FAILED", "PipelineFailed")
        assert f"{state}TrainingFailed" in run.entered()
        assert run.cause.startswith(f"TrainingFailed: {detector} training failed with States.TaskFailed")
    failing_trainings.clear()
    bucket = pipeline.subs["DataBucket"]
    for detector in ("isolation_forest", "lstm", "ensemble"):
        execution = f"promote-{detector.replace('_', '-')}"
        pipeline.put_evaluation(execution, evaluation(None, **{detector: 0.9}))
        run = pipeline.run(execution)
        assert run.status == "SUCCEEDED", (run.error, run.cause)
        job = job_names(execution)[detector]
        assert pipeline.champion()["model_uri"] == f"s3://{bucket}/models/training/{job}/output/model.tar.gz"
        assert json.loads(run.messages[0]["Message"])["best"] == detector
