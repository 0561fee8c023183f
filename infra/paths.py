"""Files the CDK app deploys: the code of the other parts of the repo, found or failed clearly."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

GLUE_SCRIPTS = {"ingest": "glue_jobs/ingest.py", "features": "glue_jobs/features.py"}
TRAINING_ASL = "stepfunctions/training_pipeline.asl.json"
ATHENA_VIEWS_DIR = "infra/athena/views"

# what the container builds (repo root as context) never need: keeps the staged asset small
DOCKER_EXCLUDES = [
    ".git", ".venv", "cdk.out", "node_modules", "tests", "bench", "docs", "infra", "out", "finsentry-out",
    "build", "**/__pycache__", "*.egg-info", ".pytest_cache", ".ruff_cache", ".hypothesis", "*.pyc",
]  # fmt: skip


class MissingDeployableError(FileNotFoundError):
    """A file the app deploys is not in the repository (yet)."""


def require(relative: str) -> Path:
    """The absolute path of ``relative`` under the repo root; a clear error when it is missing."""
    path = REPO_ROOT / relative
    if not path.exists():
        raise MissingDeployableError(
            f"{relative} is missing: the CDK app deploys it (see the contracts in docs/operations.md); "
            f"it must exist under {REPO_ROOT} before `make synth`"
        )
    return path
