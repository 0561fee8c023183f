"""One small demo run shared by the report tests (about 20 s on 2 cores)."""

from __future__ import annotations

import pytest

from finsentry.local.aws import DataBucket, local_aws
from finsentry.local.pipeline import DemoConfig, run_demo


@pytest.fixture(scope="session")
def small_run(tmp_path_factory):
    """A finished ``DemoResult`` of a small synthetic bank, with its output directory."""
    out = tmp_path_factory.mktemp("demo")
    config = DemoConfig(accounts=120, months=10, out_dir=out, top_alerts=6)
    with local_aws():
        result = run_demo(config, DataBucket.create())
    return result, out
