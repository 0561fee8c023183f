"""A deployment ``test`` in a moto account, as the CDK app leaves it for the CLI's AWS commands.

The training state machine (the ASL with the test substitutions the state machine's own tests
use), the data bucket, the Glue database with the masked views (``analytics.glue_view_input``,
as the analytics stack registers them), the Athena workgroup with its enforced, KMS-encrypted
result location, and the model package group. ``finsentry.deployment.resolve`` finds all of it.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

import boto3
import pandas as pd
import pytest
from moto import mock_aws

from finsentry import analytics, lake
from finsentry.layout import PREFIXES
from finsentry.pipeline_definition import load_definition
from tests.moto_athena import athena_on_duckdb
from tests.moto_sagemaker import jobs_run_in_process, registry_metadata_kept
from tests.stepfunctions.conftest import ACCOUNT, ENV, REGION, substitutions

__all__ = ["ACCOUNT", "ENV", "REGION", "deploy", "moto_account", "scored_rows"]


@contextlib.contextmanager
def moto_account() -> Iterator[list[str]]:
    """Credentials and region for boto3, awswrangler and the SageMaker SDK; moto with its fills
    (Athena answering on DuckDB; the registry's metadata kept on update; jobs run in-process)."""
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION,
           "AWS_REGION": REGION,
           # the SageMaker SDK checks a role with iam:SimulatePrincipalPolicy, which moto does not
           # implement (tests/test_moto_sagemaker.py guards it); the SDK's own switch turns the check off
           "SAGEMAKER_VALIDATE_ROLE": "false"}  # fmt: skip
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        mp.delenv("AWS_PROFILE", raising=False)
        with mock_aws(), athena_on_duckdb() as ran, registry_metadata_kept(), jobs_run_in_process():
            yield ran


def deploy() -> dict[str, str]:
    """Create the deployment's resources; returns the substitutions it was built with."""
    subs = substitutions()
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=subs["DataBucket"], CreateBucketConfiguration={"LocationConstraint": REGION})
    boto3.client("stepfunctions", region_name=REGION).create_state_machine(
        name=f"finsentry-{ENV}-training-pipeline", definition=load_definition(subs),
        roleArn=f"arn:aws:iam::{ACCOUNT}:role/finsentry-{ENV}-pipeline")  # fmt: skip
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                     "Principal": {"Service": "sagemaker.amazonaws.com"}}]}
    boto3.client("iam", region_name=REGION).create_role(RoleName=subs["SageMakerRoleArn"].rsplit("/", 1)[-1],
                                                        AssumeRolePolicyDocument=json.dumps(trust))  # fmt: skip
    glue = boto3.client("glue", region_name=REGION)
    glue.create_database(DatabaseInput={"Name": subs["GlueDatabase"]})
    for view in analytics.load_views():
        view_input = analytics.glue_view_input(view, subs["GlueDatabase"])
        glue.create_table(DatabaseName=subs["GlueDatabase"], TableInput=view_input)
    boto3.client("athena", region_name=REGION).create_work_group(
        Name=subs["AthenaWorkgroup"],
        Configuration={"EnforceWorkGroupConfiguration": True, "ResultConfiguration": {
            "OutputLocation": f"s3://{subs['DataBucket']}/{PREFIXES.athena_results}",
            "EncryptionConfiguration": {"EncryptionOption": "SSE_KMS", "KmsKey": subs["KmsKeyArn"]}}})  # fmt: skip
    boto3.client("sagemaker", region_name=REGION).create_model_package_group(
        ModelPackageGroupName=subs["ModelPackageGroupName"])  # fmt: skip
    lake.publish(ENV, "scored", f"s3://{subs['DataBucket']}", [])
    return subs


def scored_rows() -> pd.DataFrame:
    """Six scored transactions over three days: four alerts of three types, two normal rows."""
    rows = [
        # trans_id, account, client_ref, ts, amount, score, verdict, anomaly_type, reasons
        ("t1", "11", "c-aa", "2026-11-28 09:00", 120.0, 0.20, "normal", "", ""),
        ("t2", "11", "c-aa", "2026-11-28 03:10", 9000.0, 0.97, "alert", "amount_spike", "amount 40x the usual"),
        ("t3", "12", "c-bb", "2026-11-29 14:00", 55.5, 0.91, "alert", "unusual_partner", "first payment to partner"),
        ("t4", "12", "c-bb", "2026-11-30 02:30", 700.0, 0.95, "alert", "unusual_hour", "posted at 02:30"),
        ("t5", "13", "c-cc", "2026-11-30 11:00", 80.0, 0.10, "normal", "", ""),
        ("t6", "13", "c-cc", "2026-11-30 12:00", 5000.0, 0.93, "alert", "", "amount against the balance"),
    ]  # fmt: skip
    frame = pd.DataFrame(rows, columns=["trans_id", "account_id", "client_ref", "ts", "amount", "score", "verdict",
                                        "anomaly_type", "reasons"])  # fmt: skip
    frame["ts"] = pd.to_datetime(frame["ts"])
    return frame.assign(direction="debit", operation="transfer", district_id=1, region="Praha",
                        model_version="isolation_forest-v1")[list(lake.TABLES["scored"][1])]  # fmt: skip
