from tests.postgres_fixture import postgres  # noqa: F401 - the shared session-scoped PostgreSQL server
