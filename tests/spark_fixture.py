"""One local SparkSession for the whole test run (imported by the conftests that need it).

local[2], UI off, 2 shuffle partitions; the workers run this interpreter. Spark keeps one
session per process, so every conftest importing ``spark`` gets the same one.
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def spark():
    from finsentry.etl.spark import local_session

    session = local_session(cores=2, shuffle_partitions=2, memory="1g", app="finsentry-tests")
    yield session
    session.stop()
