"""The wiring that matters: event source settings, the scorer, Firehose, Glue, the ASL, alarm targets."""

from __future__ import annotations

import json
import re

from finsentry.layout import PARTITION_KEY, PREFIXES, RESOURCES, SCORER_ENV, model_parameter_name
from finsentry.monitoring import ALARMS, SERVICE_ALARMS
from finsentry.pipeline_definition import PLACEHOLDERS, placeholders_in
from finsentry.scoring import SCORED_COLUMNS
from infra.paths import REPO_ROOT, TRAINING_ASL


def one(synth, cfn_type):
    found = synth.resources(cfn_type)
    assert len(found) == 1, f"expected one {cfn_type}, found {len(found)}"
    return found[0][2]["Properties"]


def scorer(synth):
    """The scorer's function (the deployment's other function is CDK's custom-resource provider)."""
    [fn] = [r["Properties"] for _, _, r in synth.resources("AWS::Lambda::Function")
            if r["Properties"].get("FunctionName", "").endswith(RESOURCES.scorer_function)]  # fmt: skip
    return fn


def refers_to(value, logical_id_prefix: str) -> bool:
    return logical_id_prefix in json.dumps(value)


def literal_parts(value):
    """The plain strings of a resolved value, skipping Fn::Sub (CloudFormation's own ${} syntax)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for v in value:
            yield from literal_parts(v)
    elif isinstance(value, dict) and "Fn::Sub" not in value:
        for v in value.values():
            yield from literal_parts(v)


def test_kinesis_event_source_reports_failures_bisects_and_caps_retries(dev):
    cfg = dev.deployment.config
    esm = one(dev, "AWS::Lambda::EventSourceMapping")
    assert esm["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert esm["BisectBatchOnFunctionError"] is True
    assert esm["MaximumRetryAttempts"] == cfg.scorer_retry_attempts > 0
    assert esm["MaximumRecordAgeInSeconds"] == cfg.scorer_max_record_age_s
    assert esm["BatchSize"] == cfg.scorer_batch_size
    assert refers_to(esm["EventSourceArn"], "Stream")
    assert refers_to(esm["DestinationConfig"]["OnFailure"]["Destination"], "ScorerDlq")


def test_scorer_is_an_image_without_reserved_concurrency_and_with_the_contract_env(dev):
    fn = scorer(dev)
    assert fn["PackageType"] == "Image"
    assert "ReservedConcurrentExecutions" not in fn  # off by default: scorer_reserved_concurrency=0
    assert fn["FunctionName"] == f"finsentry-dev-{RESOURCES.scorer_function}"
    env = fn["Environment"]["Variables"]
    assert set(vars(SCORER_ENV).values()) <= set(env)
    assert env[SCORER_ENV.model_parameter] == model_parameter_name("dev")
    assert fn["TracingConfig"]["Mode"] == "Active"


def test_scorer_image_asset_is_built_from_the_contract_dockerfile(dev):
    assets = json.loads((dev.outdir / "ingestion.assets.json").read_text())["dockerImages"]
    [image] = assets.values()
    assert image["source"]["dockerFile"] == "lambdas/stream_scorer/Dockerfile"
    staged = dev.outdir / image["source"]["directory"]
    assert (staged / "finsentry" / "scoring.py").exists() and not (staged / ".venv").exists()


def test_profiles_table_is_keyed_by_account_with_pitr(dev):
    table = one(dev, "AWS::DynamoDB::Table")
    assert table["KeySchema"] == [{"AttributeName": "account_id", "KeyType": "HASH"}]
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert table["SSESpecification"]["SSEType"] == "KMS"


def test_firehose_writes_parquet_by_date_from_the_scored_table(dev):
    fh = one(dev, "AWS::KinesisFirehose::DeliveryStream")["ExtendedS3DestinationConfiguration"]
    assert fh["Prefix"].startswith(f"{PREFIXES.scored}{PARTITION_KEY}=!{{partitionKeyFromQuery:{PARTITION_KEY}}}")
    conversion = fh["DataFormatConversionConfiguration"]
    assert conversion["Enabled"] is True and "ParquetSerDe" in conversion["OutputFormatConfiguration"]["Serializer"]
    assert conversion["SchemaConfiguration"]["TableName"] == "scored"
    assert fh["DynamicPartitioningConfiguration"]["Enabled"] is True


def test_scored_table_columns_are_the_published_schema(dev):
    [table] = [r["Properties"]["TableInput"] for _, _, r in dev.resources("AWS::Glue::Table")
               if r["Properties"]["TableInput"]["Name"] == "scored"]  # fmt: skip
    columns = {c["Name"]: c["Type"] for c in table["StorageDescriptor"]["Columns"]}
    assert columns == SCORED_COLUMNS
    assert table["PartitionKeys"] == [{"Name": PARTITION_KEY, "Type": "string"}]


def test_glue_jobs_are_glue5_with_scripts_and_library_as_assets(dev):
    jobs = {r["Properties"]["Name"]: r["Properties"] for _, _, r in dev.resources("AWS::Glue::Job")}
    assert set(jobs) == {f"finsentry-dev-{RESOURCES.ingest_job}", f"finsentry-dev-{RESOURCES.features_job}"}
    for job in jobs.values():
        assert job["GlueVersion"] == "5.0"
        args = job["DefaultArguments"]
        assert {"--data_bucket", "--env", "--extra-py-files"} <= set(args) and args["--env"] == "dev"
        assert "cdk-" in json.dumps(job["Command"]["ScriptLocation"])  # an asset in the bootstrap bucket
    library = [a for a in json.loads((dev.outdir / "processing.assets.json").read_text())["files"].values()
               if a["displayName"] == "FinsentryLibrary"]  # fmt: skip (the other zip: the jobs' wheels)
    assert len(library) == 1 and library[0]["source"]["packaging"] == "zip"
    assert (dev.outdir / library[0]["source"]["path"] / "finsentry" / "features.py").exists()


def test_asl_placeholders_are_the_contract_and_all_substituted(dev):
    text = (REPO_ROOT / TRAINING_ASL).read_text()
    assert placeholders_in(text) == set(PLACEHOLDERS)
    definition = one(dev, "AWS::StepFunctions::StateMachine")["DefinitionString"]
    literal = "".join(literal_parts(definition))  # the ASL text around the CloudFormation references
    assert "${" not in literal and '"StartAt"' in literal
    subs = dev.deployment.ml_pipeline.substitutions
    assert set(subs) == set(PLACEHOLDERS)
    assert subs["ModelParameterName"] == model_parameter_name("dev")
    assert subs["GlueIngestJobName"] == f"finsentry-dev-{RESOURCES.ingest_job}"


def test_state_machine_logs_all_and_traces(dev):
    sm = one(dev, "AWS::StepFunctions::StateMachine")
    assert sm["LoggingConfiguration"]["Level"] == "ALL"
    assert sm["TracingConfiguration"]["Enabled"] is True


def test_training_runs_on_a_daily_schedule(dev):
    rules = [r["Properties"] for stack, _, r in dev.resources("AWS::Events::Rule")
             if "ScheduleExpression" in r["Properties"] and stack == "ml-pipeline"]  # fmt: skip
    assert [r["ScheduleExpression"] for r in rules] == [dev.deployment.config.training_schedule_cron]
    assert refers_to(rules[0]["Targets"], "TrainingPipeline")


def test_state_machine_role_covers_every_task_of_the_asl(dev):
    granted = set(dev.deployment.ml_pipeline.granted_actions)
    for integration in dev.deployment.ml_pipeline.integrations:
        if integration.service != "glue" or integration.sdk:
            assert integration.iam_action in granted, integration


def test_one_alarm_per_spec_to_the_oncall_topic(dev):
    alarms = {r["Properties"]["AlarmName"]: r["Properties"] for _, _, r in dev.resources("AWS::CloudWatch::Alarm")}
    specs = ALARMS + SERVICE_ALARMS
    assert len({a.name for a in specs}) == len(specs)
    assert set(alarms) == {f"finsentry-dev-{a.name}" for a in specs}
    for spec in specs:
        alarm = alarms[f"finsentry-dev-{spec.name}"]
        assert alarm["Threshold"] == spec.threshold and alarm["ComparisonOperator"] == str(spec.comparison)
        assert alarm["EvaluationPeriods"] == spec.evaluation_periods
        stats = [m for m in alarm.get("Metrics", []) if "MetricStat" in m]
        if stats:  # metric math over named series (each label door's count): their sum, or a share
            [expression] = [m["Expression"] for m in alarm["Metrics"] if m["ReturnData"]]
            names = {str(spec.metric)} | ({str(spec.share_of)} if spec.share_of else set())
            assert {m["MetricStat"]["Metric"]["MetricName"] for m in stats} == names, spec.name
            for m in stats:
                stat = m["MetricStat"]
                assert stat["Metric"]["Namespace"] == spec.namespace and stat["Metric"]["Dimensions"], spec.name
                assert stat["Period"] == spec.period_seconds and stat["Stat"] == spec.statistic
                assert re.search(rf"\b{m['Id']}\b", expression), (spec.name, m["Id"])
        elif "Metrics" in alarm:  # a Metrics Insights query over every series of a per-dimension metric
            [query] = alarm["Metrics"]
            assert f'FROM SCHEMA("{spec.namespace}"' in query["Expression"] and str(spec.metric) in query["Expression"]
            assert query["Period"] == spec.period_seconds
            # such an alarm evaluates only the latest 3 hours of data (CloudWatch's limits of alarms):
            # a longer period would never be evaluated whole
            assert query["Period"] * alarm["EvaluationPeriods"] <= 3 * 3600, spec.name
        else:
            assert alarm["Namespace"] == spec.namespace and alarm["MetricName"] == str(spec.metric)
            assert alarm["Period"] == spec.period_seconds and alarm["Dimensions"], spec.name
        [action] = alarm["AlarmActions"]
        assert refers_to(action, "OncallTopic"), spec.name
        assert f"#{spec.runbook}" in alarm["AlarmDescription"]


def test_scorer_metric_alarms_watch_the_series_the_scorer_emits(dev):
    alarms = {r["Properties"]["AlarmName"]: r["Properties"] for _, _, r in dev.resources("AWS::CloudWatch::Alarm")}
    rules_only = alarms["finsentry-dev-rules-only"]
    assert rules_only["Dimensions"] == [{"Name": "service", "Value": RESOURCES.scorer_function}]
    quarantine = alarms["finsentry-dev-quarantine-rate"]["Metrics"][0]["Expression"]
    expected = 'SELECT SUM("RecordsQuarantined") FROM SCHEMA("finsentry", Reason, service) WHERE service = '
    assert quarantine == f"{expected}'{RESOURCES.scorer_function}'"
    fn = scorer(dev)
    assert fn["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"] == RESOURCES.scorer_function


def test_every_runbook_anchor_is_a_section_of_operations_md():
    text = (REPO_ROOT / "docs" / "operations.md").read_text()
    anchors = {re.sub(r"[^a-z0-9 -]", "", h.strip().lower()).replace(" ", "-")
               for h in re.findall(r"^#+ (.+)$", text, flags=re.M)}  # fmt: skip
    explicit = set(re.findall(r'<a id="([^"]+)"', text))
    missing = {a.runbook for a in ALARMS + SERVICE_ALARMS} - anchors - explicit
    assert not missing, f"docs/operations.md lacks runbook sections {sorted(missing)}"


def test_athena_workgroup_enforces_kms_results(dev):
    wg = one(dev, "AWS::Athena::WorkGroup")
    config = wg["WorkGroupConfiguration"]
    assert config["EnforceWorkGroupConfiguration"] is True
    assert config["ResultConfiguration"]["EncryptionConfiguration"]["EncryptionOption"] == "SSE_KMS"
    assert PREFIXES.athena_results in json.dumps(config["ResultConfiguration"]["OutputLocation"])


def test_views_are_catalog_views_over_scored(dev):
    import base64

    views = [r["Properties"]["TableInput"] for _, _, r in dev.resources("AWS::Glue::Table")
             if r["Properties"]["TableInput"]["TableType"] == "VIRTUAL_VIEW"]  # fmt: skip
    names = sorted(p.stem for p in (REPO_ROOT / "infra" / "athena" / "views").glob("*.sql"))
    assert sorted(v["Name"] for v in views) == names
    for view in views:
        encoded = view["ViewOriginalText"].removeprefix("/* Presto View: ").removesuffix(" */")
        payload = json.loads(base64.b64decode(encoded))
        assert "scored" in payload["originalSql"].lower() and "account_id" not in payload["originalSql"]
        assert [c["name"] for c in payload["columns"]] == [c["Name"] for c in view["StorageDescriptor"]["Columns"]]


def test_prod_keeps_data_pages_by_email_and_provisions_the_stream(synth):
    cfg = synth.deployment.config
    stream = one(synth, "AWS::Kinesis::Stream")
    table = [r for _, _, r in synth.resources("AWS::DynamoDB::Table")][0]
    subscriptions = [r["Properties"] for _, _, r in synth.resources("AWS::SNS::Subscription")]
    if cfg.env == "prod":
        assert stream["StreamModeDetails"]["StreamMode"] == "PROVISIONED" and stream["ShardCount"] == cfg.stream_shards
        assert table["DeletionPolicy"] == "Retain" and table["Properties"]["DeletionProtectionEnabled"] is True
        assert [(s["Protocol"], s["Endpoint"]) for s in subscriptions] == [("email", cfg.alarm_email)]
    else:
        assert stream["StreamModeDetails"]["StreamMode"] == "ON_DEMAND"
        assert table["DeletionPolicy"] == "Delete" and not subscriptions
    groups = synth.resources("AWS::Logs::LogGroup")
    assert groups and all(r["Properties"]["RetentionInDays"] == cfg.log_retention_days for _, _, r in groups)


def test_msk_source_replaces_the_stream_and_passes_the_gates(tmp_path):
    from aws_cdk import App

    from infra.app import build, cdk_json_context
    from tests.infra.conftest import read_synth

    arn = "arn:aws:kafka:eu-west-1:111111111111:cluster/bank/11111111-2222-3333-4444-555555555555-1"
    app = App(outdir=str(tmp_path), context={**cdk_json_context(), "source": "msk", "kafka_cluster_arn": arn})
    build(app)
    msk = read_synth(app, tmp_path)
    assert msk.error is None, msk.report
    assert not msk.resources("AWS::Kinesis::Stream")
    esm = one(msk, "AWS::Lambda::EventSourceMapping")
    assert esm["EventSourceArn"] == arn and esm["Topics"] == ["transactions"]
    assert refers_to(esm["DestinationConfig"]["OnFailure"]["Destination"], "ScorerDlq")


def _s3_uris(node):
    if isinstance(node, dict):
        for k, v in node.items():
            if k in ("S3Uri", "S3DataSource") and isinstance(v, str):
                yield v
            yield from _s3_uris(v)
    elif isinstance(node, list):
        for v in node:
            yield from _s3_uris(v)


def test_sagemaker_role_reads_every_data_prefix_the_asl_jobs_read(dev):
    """Training and evaluation read curated/features/ and the labelled curated/validation/."""
    asl = json.loads((REPO_ROOT / TRAINING_ASL).read_text())
    prefixes = {u.split("${DataBucket}/", 1)[1] for u in _s3_uris(asl) if "${DataBucket}/curated/" in u}
    assert prefixes == {PREFIXES.curated, PREFIXES.validation}
    roles = [r for _, lid, r in dev.resources("AWS::IAM::ManagedPolicy") if lid.startswith("SageMakerRole")]
    assert roles
    text = json.dumps([r["Properties"]["PolicyDocument"] for r in roles])
    for prefix in prefixes:
        assert f"/{prefix}*" in text, prefix


def test_model_pointer_is_created_only_if_absent_and_never_rewritten_by_updates(synth):
    """The pipeline owns the pointer once it exists: a stack update must not reset it to "no model"."""
    assert not synth.resources("AWS::SSM::Parameter")
    [(_, _, resource)] = synth.resources("Custom::AWS")
    props = resource["Properties"]
    create = props["Create"]
    create = json.loads(create if isinstance(create, str) else "".join(
        p if isinstance(p, str) else "X" for p in create["Fn::Join"][1]))  # fmt: skip
    assert create["action"] == "putParameter" and create["parameters"]["Overwrite"] is False
    assert create["parameters"]["Name"] == model_parameter_name(synth.deployment.config.env)
    assert json.loads(create["parameters"]["Value"])["version"] == "none"
    assert create["ignoreErrorCodesMatching"] == "ParameterAlreadyExists"
    assert "Update" not in props  # an update of the stack leaves the value alone
    # dev is torn down with its data (the pointer goes too); prod keeps it
    assert ("Delete" in props) == synth.deployment.config.destroy_on_removal


def test_scorer_runs_on_graviton_and_the_profiles_table_on_the_capacity_of_its_environment(synth):
    cfg = synth.deployment.config
    fn = scorer(synth)
    assert fn["Architectures"] == ["arm64"]
    assets = json.loads((synth.outdir / "ingestion.assets.json").read_text())["dockerImages"]
    assert [image["source"].get("platform") for image in assets.values()] == ["linux/arm64"]
    table = one(synth, "AWS::DynamoDB::Table")
    targets = [r["Properties"] for _, _, r in synth.resources("AWS::ApplicationAutoScaling::ScalableTarget")]
    policies = [r["Properties"] for _, _, r in synth.resources("AWS::ApplicationAutoScaling::ScalingPolicy")]
    if cfg.env == "prod":  # provisioned, auto scaled on reads and writes at the target utilization
        assert "BillingMode" not in table or table["BillingMode"] == "PROVISIONED"
        assert table["ProvisionedThroughput"] == {"ReadCapacityUnits": cfg.profiles_min_capacity,
                                                  "WriteCapacityUnits": cfg.profiles_min_capacity}
        assert sorted(t["ScalableDimension"] for t in targets) == ["dynamodb:table:ReadCapacityUnits",
                                                                   "dynamodb:table:WriteCapacityUnits"]
        assert all(p["TargetTrackingScalingPolicyConfiguration"]["TargetValue"] == cfg.profiles_target_utilization
                   for p in policies) and len(policies) == 2
    else:  # dev: on-demand, nothing provisioned while idle
        assert table["BillingMode"] == "PAY_PER_REQUEST" and not targets
    assert one(synth, "AWS::Lambda::EventSourceMapping").get("ParallelizationFactor", 1) == 1  # one writer per shard


def test_scored_rows_and_curated_features_cool_to_standard_ia_as_the_cost_model_prices(dev):
    from finsentry.cost import StackProfile
    from finsentry.layout import PREFIXES

    rules = [rule for _, _, bucket in dev.resources("AWS::S3::Bucket")
             for rule in bucket["Properties"].get("LifecycleConfiguration", {}).get("Rules", [])]  # fmt: skip
    cooling = {r["Prefix"]: r["Transitions"] for r in rules if r.get("Transitions")}
    priced = [{"StorageClass": "STANDARD_IA", "TransitionInDays": StackProfile().s3_cool_after_days}]
    assert cooling[PREFIXES.scored] == priced and cooling[PREFIXES.curated] == priced
