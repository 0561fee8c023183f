"""Glue 5.0 entry scripts: thin wrappers around ``finsentry.etl.jobs``."""
