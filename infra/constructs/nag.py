"""cdk-nag v3 acknowledgements, kept next to the construct they concern, always with a reason.

The id is qualified with the pack's plugin name (``AwsSolutions::AwsSolutions-S1``), the form the
CDK validation report asks for: the finding then appears in ``cdk.out/validation-report.json``
under ``suppressedViolations`` together with its reason, an audit trail of every exception.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, Validations
from constructs import IConstruct


def qualified(rule_id: str) -> str:
    """``AwsSolutions-IAM5[...]`` -> ``AwsSolutions::AwsSolutions-IAM5[...]`` (pack name before the dash)."""
    pack = rule_id.split("-", 1)[0]
    return rule_id if "::" in rule_id else f"{pack}::{rule_id}"


def acknowledge(construct: IConstruct, rule_id: str, reason: str) -> None:
    """Acknowledge one cdk-nag finding on ``construct`` and its children.

    A reason shorter than a sentence is refused: every acknowledgement must say why the finding
    does not apply or is accepted.
    """
    if len(reason.split()) < 6:
        raise ValueError(f"acknowledgement of {rule_id} needs a real reason, got {reason!r}")
    Validations.of(construct).acknowledge(Acknowledgment(id=qualified(rule_id), reason=reason))
