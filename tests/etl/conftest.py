from tests.spark_fixture import spark  # noqa: F401 - the shared session-scoped fixture
