"""Fixtures shared with tests/sagemaker: the small labelled curated data."""

from tests.sagemaker.conftest import labelled  # noqa: F401 -- a fixture, used by name
