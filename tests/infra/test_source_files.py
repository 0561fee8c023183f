"""``-c source_mapping=<mapping without database:>``: the deployed ingest job reads the bank's own
CSV/Parquet files under raw/ through the mapping, deployed as an asset only the Glue role reads."""

from __future__ import annotations

import json

import pytest
import yaml

from finsentry.local.postgres import bank_mapping
from infra.config import load_config
from tests.infra.test_network import _synth, _violations
from tests.infra.test_source_db import DB_SECRET_ARN, _jobs

CARD_MAPPING = "docs/examples/card_fraud.mapping.yaml"  # from the repository root, as cdk takes it


@pytest.fixture(scope="module")
def with_files(tmp_path_factory):
    return _synth(tmp_path_factory, "files", {"env": "dev", "source_mapping": CARD_MAPPING})


def test_the_ingest_job_alone_gets_the_mapping_as_an_asset_the_glue_role_may_read(with_files):
    assert with_files.error is None and not _violations(with_files), _violations(with_files)
    jobs = _jobs(with_files)
    args = jobs["Ingest"]["DefaultArguments"]
    url = json.dumps(args["--source_mapping"])
    assert "s3://" in url and ".yaml" in url and "--source_secret" not in args
    assert "--source_mapping" not in jobs["Features"]["DefaultArguments"]
    policies = json.dumps([r for _, lid, r in with_files.resources("AWS::IAM::ManagedPolicy") if "JobRole" in lid])
    assert url.split("/")[-1].split('"')[0] in policies
    everything = json.dumps(with_files.templates)
    assert "secretsmanager" not in everything and '"JDBC"' not in everything


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({"source_mapping": "docs/examples/absent.mapping.yaml"}, "no such mapping file"),
        ({"source_mapping": CARD_MAPPING, "source_db": DB_SECRET_ARN, "vpc": "new", "source_db_cidr": "10.2.0.0/24",
          "source_db_mapping": CARD_MAPPING}, "two sources"),  # fmt: skip
    ],
)
def test_a_missing_mapping_or_two_sources_is_one_clear_error(context, message):
    with pytest.raises(ValueError, match=message):
        load_config("dev", context)


def test_a_mapping_with_a_database_section_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "db.mapping.yaml"
    path.write_text(yaml.safe_dump(bank_mapping("bank.transactions")))
    with pytest.raises(ValueError, match="has a database: section"):
        load_config("dev", {"source_mapping": str(path)})
