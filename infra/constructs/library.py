"""The core library ``finsentry`` as a zip asset (``finsentry/`` at its root) for Glue ``--extra-py-files``."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

from infra.paths import REPO_ROOT


def library_asset(scope: Construct, construct_id: str) -> s3_assets.Asset:
    """Stage a copy of the package outside the repo (so the zip holds ``finsentry/...``) and publish it."""
    staging = Path(tempfile.mkdtemp(prefix="finsentry-lib-"))
    shutil.copytree(
        REPO_ROOT / "finsentry",
        staging / "finsentry",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.nbi", "*.nbc"),
    )
    return s3_assets.Asset(scope, construct_id, path=str(staging))
