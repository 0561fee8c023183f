"""One real PostgreSQL server for the whole test run (``finsentry.local.postgres.LocalPostgres``).

Started on a free loopback port in a temporary folder the first time a test asks for it, stopped
and deleted at the end of the run. Tests create their own tables (own names), so they do not
depend on each other's rows.
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def postgres():
    from finsentry.local.postgres import LocalPostgres

    server = LocalPostgres().start()
    yield server
    server.stop()
