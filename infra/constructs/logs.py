"""Log groups encrypted with the CMK, with the environment's retention."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from constructs import Construct

_R = logs.RetentionDays
_RETENTION = {
    1: _R.ONE_DAY, 3: _R.THREE_DAYS, 5: _R.FIVE_DAYS, 7: _R.ONE_WEEK, 14: _R.TWO_WEEKS, 30: _R.ONE_MONTH,
    60: _R.TWO_MONTHS, 90: _R.THREE_MONTHS, 120: _R.FOUR_MONTHS, 150: _R.FIVE_MONTHS, 180: _R.SIX_MONTHS,
    365: _R.ONE_YEAR, 400: _R.THIRTEEN_MONTHS, 545: _R.EIGHTEEN_MONTHS, 731: _R.TWO_YEARS, 1096: _R.THREE_YEARS,
    1827: _R.FIVE_YEARS, 2192: _R.SIX_YEARS, 2557: _R.SEVEN_YEARS,
}  # fmt: skip


def retention(days: int) -> logs.RetentionDays:
    """The CloudWatch retention class of exactly ``days`` (CloudWatch allows only some values)."""
    if days not in _RETENTION:
        raise ValueError(f"log retention {days} d is not a CloudWatch value; use one of {sorted(_RETENTION)}")
    return _RETENTION[days]


def encrypted_log_group(
    scope: Construct, construct_id: str, *, name: str, key: kms.IKey, days: int, removal: RemovalPolicy
) -> logs.LogGroup:
    """A log group named ``name``, encrypted with ``key``."""
    return logs.LogGroup(
        scope, construct_id, log_group_name=name, encryption_key=key, retention=retention(days), removal_policy=removal
    )
