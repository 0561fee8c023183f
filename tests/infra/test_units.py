"""The app's pure parts: environments, ASL substitution and integration parsing, missing deployables."""

from __future__ import annotations

import pytest

from infra.config import CONFIGS, load_config
from infra.constructs.asl import AslError, parse_resource, task_resources
from infra.paths import MissingDeployableError, require


def test_prod_is_bigger_and_keeps_its_data():
    dev, prod = CONFIGS["dev"], CONFIGS["prod"]
    assert prod.scorer_reserved_concurrency > dev.scorer_reserved_concurrency
    assert prod.log_retention_days > dev.log_retention_days
    assert not prod.destroy_on_removal and dev.destroy_on_removal
    assert prod.alarm_email


def test_context_overrides_fields_with_their_types():
    config = load_config("dev", {"scorer_reserved_concurrency": "12", "stream_on_demand": "false",
                                 "alarm_email": "a@b.c", "unrelated": "x"})  # fmt: skip
    assert config.scorer_reserved_concurrency == 12 and config.stream_on_demand is False
    assert config.alarm_email == "a@b.c"


def test_bad_environment_and_sources_fail_clearly():
    with pytest.raises(ValueError, match="known: dev, prod"):
        load_config("staging")
    with pytest.raises(ValueError, match="kafka_cluster_arn"):
        load_config("dev", {"source": "msk"})
    with pytest.raises(ValueError, match="source="):
        load_config("dev", {"source": "pigeon"})
    with pytest.raises(ValueError, match="not an integer"):
        load_config("dev", {"scorer_batch_size": "many"})


def test_task_resources_reach_into_parallel_branches_and_maps():
    definition = {"States": {
        "P": {"Type": "Parallel", "Branches": [{"States": {"T": {"Type": "Task", "Resource": "r1"}}}]},
        "M": {"Type": "Map", "ItemProcessor": {"States": {"U": {"Type": "Task", "Resource": "r2"}}}},
        "X": {"Type": "Pass"},
    }}  # fmt: skip
    assert sorted(task_resources(definition)) == ["r1", "r2"]


def test_parse_resource_understands_optimized_and_sdk_integrations():
    sync = parse_resource("arn:aws:states:::sagemaker:createTrainingJob.sync")
    assert (sync.service, sync.api, sync.pattern, sync.sdk) == ("sagemaker", "createTrainingJob", "sync", False)
    sdk = parse_resource("arn:aws:states:::aws-sdk:ssm:putParameter")
    assert sdk.sdk and sdk.iam_action == "ssm:PutParameter"
    with pytest.raises(AslError, match="not a Step Functions service integration"):
        parse_resource("arn:aws:lambda:eu-west-1:1:function:f")


def test_a_missing_deployable_fails_with_its_path():
    with pytest.raises(MissingDeployableError, match="glue_jobs/nope.py is missing"):
        require("glue_jobs/nope.py")
