"""The Glue jobs' extra Python modules as a CDK asset: a zip of wheels in S3, installed with ``--no-index``.

Glue 5.0 installs ``--additional-python-modules`` with pip at every job start; given package
names it reaches PyPI, which a bank's account usually cannot. Here the wheels of
``glue_jobs/requirements.lock`` (hash-locked for Glue 5.0's platform and resolved against the
modules Glue already provides, ``infra/images.py`` GLUE) are downloaded once per lock into
``build/wheels/`` (checked against the lock's hashes), published as one directory asset (CDK
zips it: AWS Glue 5.0's "zip of wheels"), and the jobs install from that zip alone.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path

from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

from infra.images import GLUE, ImageLock, download_wheels
from infra.paths import REPO_ROOT


def wheelhouse(lock: ImageLock = GLUE) -> Path:
    """``build/wheels/<name>-<lock digest>/``: the lock's wheels, downloaded once per lock content."""
    digest = hashlib.sha256((REPO_ROOT / lock.lock).read_bytes()).hexdigest()[:16]
    target = REPO_ROOT / "build" / "wheels" / f"{lock.name}-{digest}"
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{lock.name}-", dir=target.parent))
    try:
        download_wheels(lock, staging)
        staging.rename(target)  # complete or absent, never half there
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def glue_wheels_asset(scope: Construct, construct_id: str) -> s3_assets.Asset:
    """The zip of the Glue jobs' wheels, for ``--additional-python-modules``."""
    return s3_assets.Asset(scope, construct_id, path=str(wheelhouse(GLUE)))
