"""The app's pure parts: environments, ASL substitution and integration parsing, missing deployables."""

from __future__ import annotations

import pytest

from infra.config import CONFIGS, load_config
from infra.constructs.asl import AslError, parse_resource, task_resources
from infra.paths import MissingDeployableError, require


def test_prod_is_bigger_and_keeps_its_data():
    dev, prod = CONFIGS["dev"], CONFIGS["prod"]
    assert prod.scorer_memory_mb > dev.scorer_memory_mb
    assert prod.log_retention_days > dev.log_retention_days
    assert not prod.destroy_on_removal and dev.destroy_on_removal


def test_safe_defaults_reserve_no_concurrency_and_name_no_address():
    # a reservation fails on accounts at the new-account Lambda quota; a placeholder address swallows alarms
    for config in CONFIGS.values():
        assert config.scorer_reserved_concurrency == 0 and config.alarm_email == ""


def test_prod_refuses_to_synthesize_without_an_oncall_address():
    with pytest.raises(ValueError, match="env=prod needs an on-call address: -c alarm_email="):
        load_config("prod")
    with pytest.raises(ValueError, match="got 'oncall'"):
        load_config("prod", {"alarm_email": "oncall"})
    assert load_config("prod", {"alarm_email": "team@bank.example"}).alarm_email == "team@bank.example"
    assert load_config("dev").alarm_email == ""  # dev may run without one
    with pytest.raises(ValueError, match="scorer_reserved_concurrency must be >= 0"):
        load_config("dev", {"scorer_reserved_concurrency": "-1"})


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


def test_the_freshness_alarm_leaves_room_for_the_firehose_buffer():
    # the oldest scored row is about one buffer interval old at every flush: an alarm at or under
    # the interval would fire on a healthy stream
    from finsentry.monitoring import ALARMS, SERVICE_ALARMS

    freshness = next(a for a in ALARMS + SERVICE_ALARMS if a.name == "firehose-freshness")
    for config in CONFIGS.values():
        assert freshness.threshold >= config.firehose_buffer_s + 240
