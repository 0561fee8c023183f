"""One synthesis per environment per test session (jsii is slow), shared by every infra test.

Each synthesis runs cdk-nag (AwsSolutions + PCI DSS 3.2.1) as CDK validation plugins; a finding
that is neither fixed nor acknowledged makes ``app.synth()`` raise, and the report is kept for
the tests to show exactly which finding it was.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")


# prod refuses to synthesize without an on-call address (infra/config.py)
ONCALL = "oncall@bank.example"
ENV_CONTEXT = {"dev": {"env": "dev"}, "prod": {"env": "prod", "alarm_email": ONCALL}}


@dataclass
class Synth:
    """A synthesized deployment: the app's stacks, the templates by stack id, the validation report."""

    deployment: object
    outdir: Path
    templates: dict[str, dict]
    report: dict
    error: str | None

    def resources(self, cfn_type: str | None = None) -> list[tuple[str, str, dict]]:
        """(stack, logical id, resource) of every resource, optionally of one CloudFormation type."""
        return [(stack, lid, r) for stack, t in self.templates.items() for lid, r in t.get("Resources", {}).items()
                if cfn_type is None or r["Type"] == cfn_type]  # fmt: skip


def _synthesize(env: str, outdir: Path) -> Synth:
    from aws_cdk import App

    from infra.app import build, cdk_json_context

    app = App(outdir=str(outdir), context={**cdk_json_context(), **ENV_CONTEXT[env]})
    deployment = build(app)
    synth = read_synth(app, outdir)
    synth.deployment = deployment
    return synth


def read_synth(app, outdir: Path) -> Synth:
    """Synthesize ``app`` (nag plugins included) into ``outdir`` and read what it wrote."""
    error = None
    try:
        app.synth()
    except RuntimeError as err:  # ValidationFailed: the report says which finding
        error = str(err)
    report_path = outdir / "validation-report.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else {"pluginReports": []}
    templates = {p.name.removesuffix(".template.json"): json.loads(p.read_text())
                 for p in outdir.glob("*.template.json")}  # fmt: skip
    return Synth(deployment=None, outdir=outdir, templates=templates, report=report, error=error)


_SYNTHS: dict[str, Synth] = {}


def _cached(env: str, tmp_path_factory) -> Synth:
    if env not in _SYNTHS:
        _SYNTHS[env] = _synthesize(env, tmp_path_factory.mktemp(f"cdk-{env}"))
    return _SYNTHS[env]


@pytest.fixture(scope="session", params=["dev", "prod"])
def synth(request, tmp_path_factory) -> Synth:
    """Each environment's synthesis (the security gates run on both)."""
    return _cached(request.param, tmp_path_factory)


@pytest.fixture(scope="session")
def dev(tmp_path_factory) -> Synth:
    """The dev synthesis (the same one ``synth[dev]`` uses), for the wiring tests."""
    return _cached("dev", tmp_path_factory)
