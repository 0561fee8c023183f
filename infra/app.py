"""The finsentry CDK app: ``python -m infra.app`` (or ``cdk synth``) writes ``cdk.out``.

``-c env=dev|prod`` picks the environment (``infra/config.py``); other context keys override
single fields. cdk-nag's AwsSolutions and PCI DSS 3.2.1 packs run on every synth: a finding that
is neither fixed nor acknowledged (next to its construct, with a reason) stops the synth.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, fields
from typing import Any

from aws_cdk import App, Validations
from cdk_nag import AwsSolutionsChecks, PCIDSS321Checks

from infra.config import EnvConfig, load_config
from infra.paths import REPO_ROOT, MissingDeployableError
from infra.stacks.analytics import AnalyticsStack
from infra.stacks.feedback import FeedbackStack
from infra.stacks.ingestion import IngestionStack
from infra.stacks.ml_pipeline import MlPipelineStack
from infra.stacks.monitoring import MonitoringStack, Watched
from infra.stacks.network import NetworkStack
from infra.stacks.processing import ProcessingStack
from infra.stacks.security import SecurityStack
from infra.stacks.storage import StorageStack


def cdk_json_context() -> dict[str, Any]:
    """The ``context`` of cdk.json (feature flags, default env): the CLI passes it, plain Python reads it."""
    return json.loads((REPO_ROOT / "cdk.json").read_text())["context"]


@dataclass
class Deployment:
    """The app and its stacks, by concern."""

    app: App
    config: EnvConfig
    network: NetworkStack | None  # -c vpc=new | vpc-...
    security: SecurityStack
    storage: StorageStack
    processing: ProcessingStack
    ingestion: IngestionStack
    analytics: AnalyticsStack
    ml_pipeline: MlPipelineStack
    feedback: FeedbackStack
    monitoring: MonitoringStack

    @property
    def stacks(self) -> list:
        stacks = [getattr(self, f.name) for f in fields(self) if f.name not in ("app", "config")]
        return [s for s in stacks if s is not None]


def build(app: App | None = None, *, context: dict[str, Any] | None = None, nag: bool = True) -> Deployment:
    """Create every stack of one deployment in ``app`` (a new App with ``context`` when None)."""
    if app is None:
        app = App(context={**cdk_json_context(), **(context or {})})
    env = app.node.try_get_context("env") or "dev"
    overrides = {f.name: app.node.try_get_context(f.name) for f in fields(EnvConfig)}
    overrides.pop("env")
    config = load_config(env, overrides)
    if nag:
        Validations.of(app).add_plugins(AwsSolutionsChecks(app), PCIDSS321Checks(app))

    security = SecurityStack(app, "security", config=config)
    key, oncall = security.key, security.oncall_topic
    network_stack = NetworkStack(app, "network", config=config, key=key) if config.vpc else None
    network = network_stack.network if network_stack else None
    storage = StorageStack(app, "storage", config=config, key=key)
    data = storage.data
    processing = ProcessingStack(app, "processing", config=config, key=key, data=data, oncall=oncall, network=network)
    ingestion = IngestionStack(
        app,
        "ingestion",
        config=config,
        key=key,
        data=data,
        glue_database=processing.database_name,
        scored_table=processing.scored_table_name,
        network=network,
    )
    ingestion.add_stack_dependency(processing)  # Firehose converts against the Glue table `scored`
    analytics = AnalyticsStack(
        app,
        "analytics",
        config=config,
        key=key,
        data=data,
        glue_database=processing.database_name,
        scored_table=processing.scored_table,
    )
    ml_pipeline = MlPipelineStack(
        app,
        "ml-pipeline",
        config=config,
        key=key,
        data=data,
        oncall=oncall,
        glue_jobs=processing.job_names,
        glue_database=processing.database_name,
        athena_workgroup=analytics.workgroup_name,
        network=network,
    )
    ml_pipeline.add_stack_dependency(analytics)
    ml_pipeline.add_stack_dependency(ingestion)  # the model parameter it rewrites
    feedback = FeedbackStack(app, "feedback", config=config, key=key, glue_database=processing.database_name,
                             network=network)  # fmt: skip
    feedback.add_stack_dependency(processing)  # the labels table lives in its Glue database
    feedback.add_stack_dependency(storage)  # the bucket sends its events to EventBridge
    feedback.add_stack_dependency(ingestion)  # the doors write the stream's risk items in its profiles table
    monitoring = MonitoringStack(
        app,
        "monitoring",
        config=config,
        oncall=oncall,
        watched=Watched(
            scorer_function=ingestion.scorer.function_name,
            dlq_name=ingestion.dlq.queue_name,
            quarantine_name=ingestion.quarantine.queue_name,
            glue_failure_rule=processing.failure_rule.rule_name,
            state_machine_arn=ml_pipeline.state_machine.state_machine_arn,
            firehose_name=ingestion.firehose.ref,
            feedback_function=feedback.ingest.function_name,
            feedback_dlq=feedback.dlq.queue_name,
            labels_api=feedback.api.rest_api_name,
        ),
    )
    return Deployment(
        app=app,
        config=config,
        network=network_stack,
        security=security,
        storage=storage,
        processing=processing,
        ingestion=ingestion,
        analytics=analytics,
        ml_pipeline=ml_pipeline,
        feedback=feedback,
        monitoring=monitoring,
    )


def main() -> int:
    outdir = os.environ.get("CDK_OUTDIR", "cdk.out")  # the cdk CLI sets CDK_OUTDIR; `make synth` does not
    context = {} if "CDK_CONTEXT_JSON" in os.environ else cdk_json_context()
    try:
        deployment = build(App(outdir=outdir, context=context))
    except (ValueError, MissingDeployableError) as err:  # a bad -c value, a missing file: one line, no traceback
        print(f"finsentry infra: {err}", file=sys.stderr)
        return 2
    deployment.app.synth()
    return 0


if __name__ == "__main__":
    sys.exit(main())
