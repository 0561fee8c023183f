"""The training pipeline's SageMaker steps, run locally through the same entry points.

What the state machine does on AWS, in-process: one training job per candidate
(``sagemaker/train.py`` with ``SM_*`` variables pointing at temporary folders, its model
directory tarred into ``model.tar.gz`` as SageMaker does), then the evaluation processing job
(``sagemaker/evaluate.py`` with ``FINSENTRY_PROCESSING_DIR``) on the labelled validation
period, against the champion when there is one (the model a previous ``make demo`` saved).
The result is ``evaluation.json``; its ``selection.promote`` is what the state machine's Choice
state reads.

The entry points are loaded from the repository's ``sagemaker/`` folder (an editable install,
as ``make demo`` uses); when the package is installed without it, the same library functions
they call (``finsentry.training.jobs``) are called directly.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import pandas as pd
from rich.console import Console
from rich.table import Table

import finsentry
from finsentry.pipeline_definition import CANDIDATES
from finsentry.training.jobs import EVALUATION_FILE

ENTRY_POINTS = Path(finsentry.__file__).resolve().parents[1] / "sagemaker"
TRAINING_CANDIDATES = CANDIDATES  # the state machine's Parallel branches, in their order
ID_COLUMNS = ("trans_id", "account_id", "ts")
LABELS = ("is_anomaly", "anomaly_type")


@dataclass
class TrainingRun:
    """The evaluation the state machine would read, and how long each job took (seconds)."""

    evaluation: dict
    seconds: dict[str, float] = field(default_factory=dict)
    entry_points: str = "sagemaker/"


def _entry_point(name: str) -> ModuleType | None:
    path = ENTRY_POINTS / f"{name}.py"
    if not path.is_file():
        return None
    spec = importlib.util.spec_from_file_location(f"finsentry_sagemaker_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _train(env: dict[str, str]) -> None:
    module = _entry_point("train")
    if module is not None:
        with contextlib.redirect_stdout(io.StringIO()):  # its metric lines are for CloudWatch, not the demo
            code = module.main(env)
        if code != 0:
            failure = Path(env["SM_ROOT"]) / "output" / "failure"
            raise RuntimeError(f"training job failed: {failure.read_text() if failure.is_file() else 'no reason'}")
        return
    from finsentry.training.jobs import train_job
    from finsentry.training.sagemaker_env import TrainingEnv

    train_job(TrainingEnv.from_environ(env))


def _evaluate(env: dict[str, str], budget: float) -> None:
    module = _entry_point("evaluate")
    if module is not None:
        with contextlib.redirect_stdout(io.StringIO()):  # the selection JSON it prints is read from the file
            code = module.main(["--budget", str(budget)], env)
        if code != 0:
            message = Path(env["FINSENTRY_OUTPUT_DIR"]) / "message"
            raise RuntimeError(f"evaluation job failed: {message.read_text() if message.is_file() else 'no reason'}")
        return
    from finsentry.training.jobs import evaluate_job
    from finsentry.training.sagemaker_env import processing_dir

    root = processing_dir(env)
    evaluate_job(root / "models", root / "validation", root / "evaluation", root / "champion", budget=budget,
                 labels_dir=root / "labels")  # fmt: skip


def _tar(model_dir: Path, archive: Path) -> None:
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tar:
        for f in sorted(model_dir.iterdir()):
            tar.add(f, arcname=f.name)


def run_training_jobs(transactions: pd.DataFrame, features: pd.DataFrame, train: pd.Series, validation: pd.Series,
                      budget: float, champion: Path | None = None, candidates: tuple[str, ...] = TRAINING_CANDIDATES,
                      progress: Callable[[str], None] = lambda _: None,
                      hyperparameters: dict[str, dict] | None = None,
                      labels: Path | None = None) -> TrainingRun:  # fmt: skip
    """Train each candidate through ``sagemaker/train.py`` and compare them through ``evaluate.py``.

    ``features`` (aligned with ``transactions``) must carry the sequence columns for the LSTM;
    ``train`` / ``validation`` are row masks; ``champion`` is an artifact folder (or None);
    ``hyperparameters`` adds per-candidate hyperparameters (e.g. fewer epochs in tests);
    ``labels``, the local label history (``finsentry.labels.LabelStore``), becomes the evaluation's
    ``labels/`` input (it ranks on the verdicts when they suffice) and the supervised candidate's
    ``labels`` channel.
    """
    curated = pd.concat([transactions[list(ID_COLUMNS)], features], axis=1)
    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="finsentry-sagemaker-") as tmp:
        root = Path(tmp)
        channels = {"train": root / "s3" / "train", "validation": root / "s3" / "validation"}
        for folder in channels.values():
            folder.mkdir(parents=True)
        curated[train].to_parquet(channels["train"] / "part-00000.parquet", index=False)
        labelled = pd.concat([curated, transactions[list(LABELS)]], axis=1)[validation]
        labelled.to_parquet(channels["validation"] / "part-00000.parquet", index=False)
        processing = root / "processing"
        for name in candidates:
            progress(f"SageMaker training job (in-process): {name}")
            job = root / "jobs" / name
            config = job / "input" / "config"
            config.mkdir(parents=True)
            hp = {"detector": name, "training_data_uri": f"file://{channels['train']}", "alert_budget": budget,
                  **(hyperparameters or {}).get(name, {})}
            (config / "hyperparameters.json").write_text(json.dumps({k: json.dumps(v) for k, v in hp.items()}))
            env = {"SM_ROOT": str(job), "SM_MODEL_DIR": str(job / "model"), "SM_CHANNEL_TRAIN": str(channels["train"]),
                   "SM_CHANNEL_VALIDATION": str(channels["validation"]),
                   "TRAINING_JOB_NAME": f"local-{name}"}  # fmt: skip
            if name == "supervised" and labels is not None and labels.is_file():  # the state machine's labels channel
                label_channel = root / "s3" / "labels"
                label_channel.mkdir(exist_ok=True)
                (label_channel / labels.name).write_bytes(labels.read_bytes())
                env["SM_CHANNEL_LABELS"] = str(label_channel)
            started = time.perf_counter()
            _train(env)
            seconds[name] = round(time.perf_counter() - started, 2)
            _tar(job / "model", processing / "models" / name / "model.tar.gz")
        (processing / "validation").mkdir(parents=True)
        (processing / "validation" / "part-00000.parquet").write_bytes(
            (channels["validation"] / "part-00000.parquet").read_bytes())  # fmt: skip
        (processing / "champion").mkdir()
        (processing / "labels").mkdir()
        if labels is not None and labels.is_file():
            (processing / "labels" / labels.name).write_bytes(labels.read_bytes())
        if champion is not None and (champion / "model.joblib").is_file():
            _tar(champion, processing / "champion" / "model.tar.gz")
        progress("SageMaker processing job (in-process): evaluate the candidates against the champion")
        started = time.perf_counter()
        _evaluate({"FINSENTRY_PROCESSING_DIR": str(processing), "FINSENTRY_OUTPUT_DIR": str(root / "output")}, budget)
        seconds["evaluate"] = round(time.perf_counter() - started, 2)
        evaluation = json.loads((processing / "evaluation" / EVALUATION_FILE).read_text())
    return TrainingRun(evaluation, seconds, "sagemaker/" if ENTRY_POINTS.is_dir() else "finsentry.training.jobs")


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def training_table(run: TrainingRun) -> Table:
    """Candidates (and champion) on the validation period, as evaluation.json has them."""
    ev = run.evaluation
    table = Table(title=f"SageMaker jobs through {run.entry_points} (in-process): validation period, "
                  f"budget {ev['budget']:.1%}", title_justify="left")  # fmt: skip
    for col in ("model", "recall %", "unusual_sequence %", "AUC-PR %", "threshold", "s / 1,000 rows", "train s"):
        table.add_column(col, justify="left" if col == "model" else "right")
    rows = dict(ev["candidates"])
    if ev.get("champion") and "recall" in ev["champion"]:
        rows[ev["champion"]["name"]] = ev["champion"]
    for name, f in rows.items():
        table.add_row(name, _pct(f["recall"]), _pct(f["recall_by_type"].get("unusual_sequence")), _pct(f["auc_pr"]),
                      f"{f['threshold']:.4f}", f"{f['scoring_seconds_per_1000']:.3f}",
                      str(run.seconds.get(name, "-")))  # fmt: skip
    return table


def print_training_run(run: TrainingRun | None, console: Console) -> None:
    """The table and the choice the state machine's Choice state would make."""
    if run is None:
        return
    console.print(training_table(run))
    sel = run.evaluation["selection"]
    action = (f"promote {sel['best']}: register it in the model package group, point the scorer's SSM parameter "
              f"at it (threshold {sel['best_threshold']:.4f}), run Batch Transform with it" if sel["promote"]
              else f"keep the model in production ({sel['champion']}), Batch Transform with it")  # fmt: skip
    console.print(f"[bold]State machine choice:[/bold] {action} — {sel['reason']}")
    if (run.evaluation.get("champion") or {}).get("error"):
        console.print(f"champion not usable: {run.evaluation['champion']['error']}")
