"""The label doors' stack as synthesized: triggers, DLQ, the labels table, the IAM-authorized REST API."""

from __future__ import annotations

import json

from finsentry.lake import TABLES
from finsentry.layout import FEEDBACK_ENV, LABELS_API_STAGE, PARTITION_KEY, PREFIXES, RESOURCES
from infra.stacks.feedback import HANDLERS


def feedback(synth, cfn_type: str) -> list[tuple[str, dict]]:
    return [(lid, r["Properties"]) for stack, lid, r in synth.resources(cfn_type) if stack == "feedback"]


def named(synth, cfn_type: str, prefix: str) -> dict:
    [props] = [p for lid, p in feedback(synth, cfn_type) if lid.startswith(prefix)]
    return props


def statements(synth, policy_prefix: str) -> list[dict]:
    return named(synth, "AWS::IAM::ManagedPolicy", policy_prefix)["PolicyDocument"]["Statement"]


def s3_resources(synth, policy_prefix: str) -> list[str]:
    out = []
    for st in statements(synth, policy_prefix):
        if any(a.startswith("s3:") for a in ([st["Action"]] if isinstance(st["Action"], str) else st["Action"])):
            out += [json.dumps(r) for r in (st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]])]
    return out


def test_both_doors_run_the_scorer_image_with_their_own_handler(dev):
    for prefix, handler in (("IngestFunction", HANDLERS["ingest"]), ("ApiFunction", HANDLERS["api"])):
        fn = named(dev, "AWS::Lambda::Function", prefix)
        assert fn["PackageType"] == "Image" and fn["ImageConfig"]["Command"] == [handler]
        assert fn["Architectures"] == ["arm64"] and fn["TracingConfig"]["Mode"] == "Active"
        assert set(vars(FEEDBACK_ENV).values()) <= set(fn["Environment"]["Variables"])
    module, _, func = HANDLERS["api"].rpartition(".")
    assert callable(getattr(__import__(module, fromlist=[func]), func))


def test_an_export_or_the_hourly_schedule_invokes_the_ingest_with_retries_then_the_dlq(dev):
    ingest = named(dev, "AWS::Lambda::Function", "IngestFunction")
    assert "FeedbackDlq" in json.dumps(ingest["DeadLetterConfig"])
    invoke = named(dev, "AWS::Lambda::EventInvokeConfig", "IngestFunction")
    assert invoke["MaximumRetryAttempts"] == 2
    export = named(dev, "AWS::Events::Rule", "ExportArrived")
    pattern = export["EventPattern"]
    assert pattern["source"] == ["aws.s3"] and pattern["detail-type"] == ["Object Created"]
    assert pattern["detail"]["object"]["key"] == [{"prefix": PREFIXES.feedback_inbox}]
    sweep = named(dev, "AWS::Events::Rule", "FeedbackSweep")
    assert sweep["ScheduleExpression"] == dev.deployment.config.feedback_sweep_schedule
    for rule in (export, sweep):
        [target] = rule["Targets"]
        assert "IngestFunction" in json.dumps(target["Arn"]) and "FeedbackDlq" in json.dumps(target["DeadLetterConfig"])
    [(_, _, bucket)] = [r for r in dev.resources("AWS::S3::Bucket") if r[1].startswith("Data")]
    assert bucket["Properties"]["NotificationConfiguration"]["EventBridgeConfiguration"]["EventBridgeEnabled"] is True
    assert not dev.resources("Custom::S3BucketNotifications")


def test_the_labels_table_is_the_lakes_schema_partitioned_by_day_received(dev):
    table = named(dev, "AWS::Glue::Table", "LabelsTable")["TableInput"]
    columns = {c["Name"]: c["Type"] for c in table["StorageDescriptor"]["Columns"]}
    assert columns == TABLES["labels"][1]
    assert table["PartitionKeys"] == [{"Name": PARTITION_KEY, "Type": "string"}]
    assert PREFIXES.feedback_labels in json.dumps(table["StorageDescriptor"]["Location"])


def test_each_function_touches_only_its_prefixes(dev):
    api = [r for r in s3_resources(dev, "ApiRolePermissions") if "/" in r.split("s3:::")[-1]]  # objects
    assert api and all(f"/{PREFIXES.feedback_labels}*" in r for r in api), api
    ingest = s3_resources(dev, "IngestRolePermissions")
    objects = [r for r in ingest if "/" in r.split("s3:::")[-1]]
    assert objects and all("/feedback/*" in r or f"/{PREFIXES.feedback_rejected}*" in r for r in objects), objects


def test_post_labels_is_the_only_method_iam_authorized_validated_and_proxied(dev):
    methods = feedback(dev, "AWS::ApiGateway::Method")
    assert [m["HttpMethod"] for _, m in methods] == ["POST"]
    [(_, method)] = methods
    assert method["AuthorizationType"] == "AWS_IAM"
    assert method["Integration"]["Type"] == "AWS_PROXY" and "ApiFunction" in json.dumps(method["Integration"]["Uri"])
    assert method["RequestParameters"] == {"method.request.header.Content-Type": True}
    validator = named(dev, "AWS::ApiGateway::RequestValidator", "LabelsApi")
    assert validator["ValidateRequestBody"] is True and validator["ValidateRequestParameters"] is True
    model = named(dev, "AWS::ApiGateway::Model", "LabelsApi")
    assert model["Schema"]["type"] == ["object", "array"]
    [(_, resource)] = feedback(dev, "AWS::ApiGateway::Resource")
    assert resource["PathPart"] == "labels"
    [(_, api)] = feedback(dev, "AWS::ApiGateway::RestApi")
    assert api["Name"] == f"finsentry-dev-{RESOURCES.labels_api}"
    assert api["EndpointConfiguration"]["Types"] == ["REGIONAL"]


def test_the_stage_is_throttled_logged_on_the_cmk_and_traced(synth):
    cfg = synth.deployment.config
    [(_, stage)] = feedback(synth, "AWS::ApiGateway::Stage")
    assert stage["StageName"] == LABELS_API_STAGE and stage["TracingEnabled"] is True
    [settings] = stage["MethodSettings"]
    assert (settings["ThrottlingRateLimit"], settings["ThrottlingBurstLimit"]) == (
        cfg.labels_api_rate_limit, cfg.labels_api_burst_limit)
    assert settings["LoggingLevel"] == "ERROR" and settings["DataTraceEnabled"] is False
    assert "ApiAccessLogs" in json.dumps(stage["AccessLogSetting"]["DestinationArn"])
    assert "$context.identity.user" in stage["AccessLogSetting"]["Format"]
    groups = {lid: p for lid, p in feedback(synth, "AWS::Logs::LogGroup")}
    [execution] = [p for lid, p in groups.items() if lid.startswith("ApiExecutionLogs")]
    assert "API-Gateway-Execution-Logs_" in json.dumps(execution["LogGroupName"])
    assert all("DataKey" in json.dumps(p["KmsKeyId"]) for p in groups.values()) and len(groups) == 4


def test_the_submitter_role_may_post_labels_and_nothing_else(dev):
    [statement] = statements(dev, "SubmitLabels")
    assert statement["Action"] == "execute-api:Invoke"
    assert json.dumps(statement["Resource"]).endswith('"/POST/labels"]]}')
    role = named(dev, "AWS::IAM::Role", "LabelSubmitterRole")
    assert role["RoleName"] == f"finsentry-dev-{RESOURCES.label_submitter}"
    assert "root" in json.dumps(role["AssumeRolePolicyDocument"])


def test_the_doors_write_only_the_streams_risk_items_of_the_profiles_table(dev):
    """Both doors feed the stream's label-derived risk: they read the alert index and the risk
    items, write the risk items, with every key held to those prefixes (dynamodb:LeadingKeys),
    and the function knows the table."""
    from finsentry.stream.risk import INDEX_EXPIRY, INDEX_PREFIX, RISK_PREFIX

    for prefix, fn in (("ApiRolePermissions", "ApiFunction"), ("IngestRolePermissions", "IngestFunction")):
        ddb = [st for st in statements(dev, prefix)
               if any(str(a).startswith("dynamodb:") for a in ([st["Action"]] if isinstance(st["Action"], str)
                                                                else st["Action"]))]  # fmt: skip
        by_action = {json.dumps(sorted([st["Action"]] if isinstance(st["Action"], str) else st["Action"])):
                     st["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"] for st in ddb}  # fmt: skip
        assert by_action == {json.dumps(["dynamodb:BatchGetItem"]): [f"{INDEX_PREFIX}*", f"{RISK_PREFIX}*"],
                             json.dumps(["dynamodb:PutItem"]): [f"{RISK_PREFIX}*"]}
        assert all(f"table/finsentry-dev-{RESOURCES.profiles_table}" in json.dumps(st["Resource"]) for st in ddb)
        variables = named(dev, "AWS::Lambda::Function", fn)["Environment"]["Variables"]
        assert variables[FEEDBACK_ENV.profiles_table] == f"finsentry-dev-{RESOURCES.profiles_table}"
    [table] = [r["Properties"] for stack, _, r in dev.resources("AWS::DynamoDB::Table") if stack == "ingestion"]
    assert table["TimeToLiveSpecification"] == {"AttributeName": INDEX_EXPIRY, "Enabled": True}
