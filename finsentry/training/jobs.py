"""Training and evaluation jobs: the logic behind ``sagemaker/train.py`` and ``sagemaker/evaluate.py``.

Input frames (a channel folder of Parquet, CSV or JSON-lines files, Hive ``dt=`` partitions
included) are either curated features (``DETECTOR_COLUMNS``, plus ``SEQUENCE_COLUMNS`` for the
LSTM, plus optional ``trans_id``/``account_id``/``ts`` and labels ``is_anomaly``/``anomaly_type``)
or canonical transactions, from which both are computed here (``features_with_sequence``).

``train_job`` fits one detector named by the ``detector`` hyperparameter and writes the finsentry
artifact (``model.joblib`` + ``metadata.json``: SageMaker tars the model directory into
``model.tar.gz``) with its lineage: training data location and SHA-256, code version,
hyperparameters, training window, and the evaluation figures on the ``validation`` channel
when one is given. Both jobs keep only the rows inside ``FINSENTRY_WINDOW_START`` /
``FINSENTRY_WINDOW_END`` (``finsentry.training.validation_set.apply_window``), and training drops the
validation period (``exclude_validation``: rows from its first day on, and its trans_ids).
``evaluate_job`` scores every candidate artifact (and the champion's) on the
labelled validation period and writes ``evaluation.json`` with the decision of
``finsentry.evaluation.select_model``.
"""

from __future__ import annotations

import hashlib
import json
import math
import tarfile
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from finsentry import __version__, drift
from finsentry.detectors import make_detector
from finsentry.detectors.artifact import METADATA_FILE, MODEL_FILE, ModelArtifactError, load_model, save_model
from finsentry.detectors.ensemble import DEFAULT_MEMBERS
from finsentry.detectors.sequence import ENSEMBLE_WEIGHT
from finsentry.evaluation import ModelReport, evaluate_scores, select_model
from finsentry.features import DETECTOR_COLUMNS, SEQUENCE_SOURCE, features_with_sequence
from finsentry.training.sagemaker_env import TrainingEnv
from finsentry.training.validation_set import apply_window, exclude_validation, window_from_env

DETECTORS = ("isolation_forest", "lof", "tails", "lstm", "ensemble", "supervised")  # the ``detector`` hyperparameter
LABELS_CHANNEL = "labels"  # analysts' verdicts (finsentry.labels): exports or the stored history
RESERVED_HYPERPARAMETERS = ("detector", "training_data_uri", "alert_budget", "ensemble_members", "ensemble_weights")
DATA_SUFFIXES = (".parquet", ".csv", ".jsonl", ".json")
DEFAULT_BUDGET = 0.01
DEFAULT_PRICE_PER_HOUR = 0.115  # USD, ml.m5.large on-demand (us-east-1, 2025): for the cost per 1,000 records
EVALUATION_FILE = "evaluation.json"


class TrainingInputError(ValueError):
    """The job's input is unusable (no data, no features, unknown detector): a clear reason."""


# --- input frames -----------------------------------------------------------------------------


def data_files(directory: Path) -> list[Path]:
    """The data files under ``directory`` (recursively, sorted; hidden files and others ignored)."""
    if not directory.is_dir():
        raise TrainingInputError(f"{directory} is not a directory")
    return sorted(p for p in directory.rglob("*") if p.is_file() and p.suffix.lower() in DATA_SUFFIXES
                  and not any(part.startswith((".", "_")) for part in p.relative_to(directory).parts))  # fmt: skip


def content_hash(files: list[Path], root: Path) -> str:
    """SHA-256 over the files' relative paths and bytes, in sorted order: the data's identity."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        with path.open("rb") as fh:
            for block in iter(lambda fh=fh: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _read_one(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return pd.read_parquet(path)
    if suffix == ".csv":
        return pd.read_csv(path)
    return pd.read_json(path, lines=suffix == ".jsonl")


def read_frame(directory: Path) -> pd.DataFrame:
    """Every data file under ``directory`` as one frame (in file order); an empty set is an error."""
    files = data_files(directory)
    if not files:
        raise TrainingInputError(f"no data files ({', '.join(DATA_SUFFIXES)}) under {directory}")
    return pd.concat([_read_one(p) for p in files], ignore_index=True)


def model_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame the detectors read: curated features as they are, or computed from transactions.

    Curated features are used as given (sequence columns too, when present). A frame of canonical
    transactions without features gets ``features_with_sequence``; identifiers and labels are kept.
    """
    if all(c in frame.columns for c in DETECTOR_COLUMNS):
        return frame.reset_index(drop=True)
    if all(c in frame.columns for c in SEQUENCE_SOURCE):
        frame = frame.reset_index(drop=True)
        return pd.concat([frame, features_with_sequence(frame)], axis=1)
    missing = [c for c in DETECTOR_COLUMNS if c not in frame.columns]
    raise TrainingInputError(f"the data holds neither curated features (missing {missing[:3]}...) "
                             f"nor canonical transactions ({', '.join(SEQUENCE_SOURCE)})")  # fmt: skip


def labels(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """``is_anomaly`` (bool) and ``anomaly_type`` (str, '' = normal) of a labelled frame."""
    if "is_anomaly" not in frame.columns and "anomaly_type" not in frame.columns:
        raise TrainingInputError("the validation data has no labels (is_anomaly / anomaly_type)")
    types = frame.get("anomaly_type", pd.Series("", index=frame.index)).fillna("").astype(str).to_numpy()
    truth = frame["is_anomaly"].fillna(False).astype(bool).to_numpy() if "is_anomaly" in frame else types != ""
    return truth, types


def training_window(frame: pd.DataFrame) -> list[str] | None:
    if "ts" not in frame.columns or frame["ts"].isna().all():
        return None
    ts = pd.to_datetime(frame["ts"])
    return [str(ts.min()), str(ts.max())]


# --- training -----------------------------------------------------------------------------------


def detector_params(hyperparameters: Mapping[str, Any]) -> dict[str, Any]:
    """The detector's own parameters: every hyperparameter not reserved for the job itself (nor
    the SageMaker SDK's ``sagemaker_*`` keys);
    numbers sent as strings ("20", as the console and some SDKs send them) become numbers."""
    return {k: _number(v) for k, v in hyperparameters.items()
            if k not in RESERVED_HYPERPARAMETERS and not k.startswith("sagemaker_")}  # the SDK's own keys


def _number(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            try:
                return float(value)
            except ValueError:
                return value
    return value


def build_detector(name: str, params: Mapping[str, Any], members: list[str] | None = None,
                   weights: list[float] | None = None):  # fmt: skip
    """A new detector by name; ``ensemble`` gets ``members`` (default ``ensemble.DEFAULT_MEMBERS``, stream-capable)
    seeded with ``params['random_state']`` if given, and ``weights`` (default 1 each, the LSTM
    ``sequence.ENSEMBLE_WEIGHT``)."""
    if name not in DETECTORS:
        raise TrainingInputError(f"unknown detector {name!r}; the job trains one of {', '.join(DETECTORS)}")
    if name == "supervised":  # gradient-boosted trees over the default ensemble's score
        from finsentry.detectors.supervised import SupervisedDetector

        seed = {"random_state": params["random_state"]} if "random_state" in params else {}
        try:
            return SupervisedDetector(base=build_detector("ensemble", seed, members), **params)
        except TypeError as exc:
            raise TrainingInputError(f"supervised: bad hyperparameters {sorted(params)}: {exc}") from exc
    if name == "ensemble":
        seed = {"random_state": params["random_state"]} if "random_state" in params else {}
        names = list(members or DEFAULT_MEMBERS)
        unknown = sorted(set(names) - set(DETECTORS) - {"ensemble"}) or (["ensemble"] if "ensemble" in names else [])
        if unknown:
            raise TrainingInputError(f"ensemble members must be base detectors, got {unknown}")
        if weights is None:
            weights = [ENSEMBLE_WEIGHT if m == "lstm" else 1.0 for m in names]
        return make_detector("ensemble", members=[make_detector(m, **seed) for m in names], weights=weights, **seed)
    try:
        return make_detector(name, **params)
    except TypeError as exc:
        raise TrainingInputError(f"{name}: bad hyperparameters {sorted(params)}: {exc}") from exc


def code_version(extra: Mapping[str, str]) -> dict[str, str]:
    """finsentry's version and, when the image was built with it, the git commit."""
    out = {"finsentry": __version__}
    if extra.get("FINSENTRY_GIT_SHA"):
        out["git_sha"] = extra["FINSENTRY_GIT_SHA"]
    return out


def train_job(job: TrainingEnv) -> dict[str, Any]:
    """Fit the detector named by the ``detector`` hyperparameter on the ``train`` channel and
    write its artifact into ``job.model_dir``; return the artifact's metadata (with the
    training window's drift bins, ``finsentry.drift``, that the stream scorer measures against).

    Hyperparameters: ``detector`` (required), ``training_data_uri`` (the S3 location of the
    train channel, recorded as lineage: the container cannot see it), ``alert_budget`` (share,
    default 0.01, for the validation figures), ``ensemble_members`` (list, for ``ensemble``);
    every other one is passed to the detector (e.g. ``epochs``, ``n_estimators``).
    """
    hp = job.hyperparameters
    name = str(hp.get("detector", "")).strip()
    if not name:
        raise TrainingInputError("the hyperparameter 'detector' is required (isolation_forest, lof, lstm, ensemble)")
    if "train" not in job.channels:
        raise TrainingInputError(f"no 'train' channel (channels: {sorted(job.channels) or 'none'})")
    train_dir = job.channels["train"]
    files = data_files(train_dir)
    start, end = window_from_env(job.extra)  # the state machine's training_window override
    curated = apply_window(read_frame(train_dir), start, end)
    validation = None
    if "validation" in job.channels:  # the labelled validation period is never trained on
        validation = model_frame(apply_window(read_frame(job.channels["validation"]), start, end))
        curated = exclude_validation(curated, validation)
    if curated.empty:
        raise TrainingInputError(f"no training rows in the window {start} .. {end} before the validation period")
    train = model_frame(curated)
    label_counts = None
    if name == "supervised":
        train, label_counts = with_verdicts(train, job.channels.get(LABELS_CHANNEL))
    params = detector_params(hp)
    members, weights = hp.get("ensemble_members"), hp.get("ensemble_weights")
    detector = build_detector(name, params, list(members) if members else None,
                              [float(w) for w in weights] if weights else None)  # fmt: skip
    started = time.perf_counter()
    detector.fit(train)
    fit_seconds = time.perf_counter() - started
    budget = float(hp.get("alert_budget", DEFAULT_BUDGET))
    metrics: dict[str, Any] = {}
    if validation is not None:
        report, _ = score_report(detector, validation, budget, name)
        metrics = report
    window = training_window(train)
    if hasattr(detector, "complete_frame"):  # the supervised candidate's own score column, for drift
        train = detector.complete_frame(train)
    metadata = {
        "training_window": window,
        "metrics": metrics,
        # the bins the scorer measures drift against (finsentry.drift; ScorePsi / FeaturePsi)
        drift.METADATA_KEY: drift.build_reference(detector, train, window=tuple(window) if window else None).to_dict(),
        "lineage": {
            "training_data": {"uri": hp.get("training_data_uri"), "sha256": content_hash(files, train_dir),
                              "files": len(files), "rows": len(train), "window": [start, end],
                              "validation_rows": None if validation is None else len(validation),
                              "labels": label_counts},
            "code_version": code_version(job.extra),
            "hyperparameters": dict(hp),
            "training_job": {"name": job.job_name, "arn": job.job_arn},
            "fit_seconds": round(fit_seconds, 3),
        },
    }  # fmt: skip
    save_model(detector, job.model_dir, metadata=metadata)
    return json.loads((job.model_dir / METADATA_FILE).read_text())


def read_label_history(directory: Path | None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The verdicts under ``directory`` (``finsentry.labels.history_from_files``) and counts."""
    from finsentry.labels import current_verdicts, empty_history, history_from_files

    files = data_files(directory) if directory is not None and directory.is_dir() else []
    if not files:
        return empty_history(), {"files": 0, "labels": 0, "rejected": 0}
    history, batch = history_from_files(files)
    current = current_verdicts(history)
    frauds = int(current["is_fraud"].sum())
    return history, {"files": len(files), "labels": len(history), "rejected": len(batch.rejected),
                     "confirmed": frauds, "dismissed": len(current) - frauds}  # fmt: skip


def with_verdicts(frame: pd.DataFrame, labels_dir: Path | None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The training frame with the label-derived risk (point-in-time) and the supervised target
    (``finsentry.label_risk.training_target``); a clear error when the verdicts fall short of
    the documented minimum (``finsentry.labels.MIN_FRAUDS`` / ``MIN_NEGATIVES``)."""
    from finsentry.detectors.supervised import TARGET_COLUMN
    from finsentry.label_risk import risk_features, training_target
    from finsentry.labels import current_verdicts, labels_suffice

    history, counts = read_label_history(labels_dir)
    if "trans_id" not in frame.columns or "account_id" not in frame.columns or "ts" not in frame.columns:
        raise TrainingInputError("supervised: the training data needs trans_id, account_id and ts to join verdicts")
    matched = current_verdicts(history)
    matched = matched[matched["trans_id"].astype(str).isin(set(frame["trans_id"].astype(str)))]
    ok, why = labels_suffice(matched)
    if not ok:
        raise TrainingInputError(f"supervised: not enough verdicts on the training rows ({why}; "
                                 f"{counts['files']} file(s) in the '{LABELS_CHANNEL}' channel)")  # fmt: skip
    as_of = pd.to_datetime(history["when"]).max() + pd.Timedelta(seconds=1)
    target, usable = training_target(frame, history, as_of)
    out = pd.concat([frame, risk_features(frame, history)], axis=1).assign(**{TARGET_COLUMN: target.to_numpy()})
    return out[usable].reset_index(drop=True), {**counts, "matched_training_rows": len(matched)}


def metric_lines(metadata: Mapping[str, Any]) -> list[str]:
    """``finsentry_<metric>=<value>;`` lines for SageMaker metric definitions (regex
    ``finsentry_recall=([0-9.]+);``): the validation figures, when there were any."""
    metrics = metadata.get("metrics") or {}
    lines = [f"finsentry_{k}={float(v):.6f};" for k, v in metrics.items()
             if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(float(v))]  # fmt: skip
    lineage = metadata.get("lineage") or {}
    lines.append(f"finsentry_fit_seconds={float(lineage.get('fit_seconds', 0.0)):.3f};")
    return lines


# --- evaluation ---------------------------------------------------------------------------------


def score_report(detector, frame: pd.DataFrame, budget: float, name: str,
                 price_per_hour: float = DEFAULT_PRICE_PER_HOUR,
                 truth: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[dict[str, Any], ModelReport]:  # fmt: skip
    """A detector's figures on a labelled frame, with its scoring cost per 1,000 records;
    ``truth`` (is_anomaly, anomaly_type) replaces the frame's own labels (analysts' verdicts)."""
    truth, types = labels(frame) if truth is None else truth
    started = time.perf_counter()
    scores = detector.score(frame)
    seconds = time.perf_counter() - started
    keys = frame["trans_id"] if "trans_id" in frame.columns else None  # the budget's tie-break
    report = evaluate_scores(scores, truth, types, budget=budget, name=name, keys=keys)
    per_1000 = 1000.0 * seconds / max(len(frame), 1)
    figures = {**report.to_dict(), "scoring_seconds_per_1000": round(per_1000, 6),
               "scoring_usd_per_1000": round(per_1000 * price_per_hour / 3600.0, 9)}  # fmt: skip
    return figures, report


def _safe_extract(archive: Path, into: Path) -> None:
    """Extract a model.tar.gz refusing links and paths that leave ``into``."""
    with tarfile.open(archive, "r:*") as tar:
        for member in tar.getmembers():
            target = (into / member.name).resolve()
            if not (member.isfile() or member.isdir()) or not target.is_relative_to(into.resolve()):
                raise TrainingInputError(f"{archive}: refused archive member {member.name!r}")
        tar.extractall(into, filter="data")


def artifact_dir(path: Path, scratch: Path) -> Path | None:
    """The artifact folder in ``path``: the folder itself, a sub-folder holding it, or a
    ``model.tar.gz`` (as SageMaker writes it) extracted into ``scratch``. None when empty."""
    if (path / MODEL_FILE).is_file():
        return path
    archives = sorted(path.rglob("*.tar.gz")) if path.is_dir() else []
    if archives:
        into = scratch / path.name
        into.mkdir(parents=True, exist_ok=True)
        _safe_extract(archives[0], into)
        return artifact_dir(into, scratch) if (into / MODEL_FILE).is_file() else None
    found = sorted(p.parent for p in path.rglob(MODEL_FILE)) if path.is_dir() else []
    return found[0] if found else None


def stream_gap(detector: Any) -> str | None:
    """Why the stream scorer cannot serve ``detector`` as it was evaluated, or None when it can.

    The stream gives a model the curated columns (account, partner and sequence features) and,
    for a model that reads them, the label-derived risk (``label_risk.RISK_COLUMNS``, computed
    from the risk items the label doors write: ``finsentry.stream.risk``); the supervised
    candidate adds its base's score itself. A candidate reading any other column would see
    "nothing known" in the stream where the evaluation saw values: it is evaluated and reported,
    never promoted."""
    from finsentry.detectors.supervised import SCORE_COLUMN
    from finsentry.features import FEATURE_COLUMNS, SEQUENCE_COLUMNS
    from finsentry.label_risk import RISK_COLUMNS
    from finsentry.partners import PARTNER_FEATURE_COLUMNS

    served = {*FEATURE_COLUMNS, *PARTNER_FEATURE_COLUMNS, *SEQUENCE_COLUMNS, *RISK_COLUMNS, SCORE_COLUMN}
    missing = [c for c in (detector.feature_columns or ()) if c not in served]
    if missing:
        return f"reads columns the stream does not compute ({', '.join(missing)})"
    return None


def evaluate_job(models_dir: Path, validation_dir: Path, output_dir: Path, champion_dir: Path | None = None,
                 budget: float = DEFAULT_BUDGET, margin: float = 0.01, metric: str = "recall",
                 price_per_hour: float = DEFAULT_PRICE_PER_HOUR,
                 window: tuple[str | None, str | None] = (None, None),
                 labels_dir: Path | None = None) -> dict[str, Any]:  # fmt: skip
    """Score every candidate under ``models_dir`` (one sub-folder each, named by the candidate)
    and the champion on the labelled validation data; write ``output_dir/evaluation.json``.

    Only candidates the stream can serve (``stream_gap``) are ranked when there is one; each
    candidate says whether it is ``promotable`` (and why not), and one that is not is never
    promoted (measured alone against the champion, as the demo's feedback round does). The result's ``selection`` is
    ``select_model(...).to_dict()`` plus ``promote`` (bool),
    ``best`` (name), ``best_threshold`` (the best candidate's alert threshold at the budget)
    and ``best_model`` (the candidate's folder name). A champion folder that is absent or empty
    means "no champion"; a champion that cannot be loaded (foreign features, tampered) is
    reported under ``champion.error`` and treated as no champion, so the challenger wins.

    ``labels_dir`` holds analysts' verdicts (``finsentry.labels``): the validation rows get the
    label-derived risk features (point-in-time, for the supervised candidate), and when the
    verdicts on the validation rows reach the documented minimum the candidates are ranked on
    them instead of the injected anomalies; ``basis`` (and ``selection.basis``) says which.
    """
    validation = model_frame(apply_window(read_frame(validation_dir), *window))
    if validation.empty:
        raise TrainingInputError(f"no labelled validation rows in the window {window[0]} .. {window[1]}")
    validation, truth, basis = _evaluation_truth(validation, labels_dir)
    candidates: dict[str, Any] = {}
    reports: list[ModelReport] = []
    with tempfile.TemporaryDirectory(prefix="finsentry-eval-") as tmp:
        scratch = Path(tmp)
        folders = sorted(p for p in models_dir.iterdir() if p.is_dir()) if models_dir.is_dir() else []
        for folder in folders:
            found = artifact_dir(folder, scratch)
            if found is None:
                continue
            detector, meta = load_model(found, allow_sequence=True)
            figures, report = score_report(detector, validation, budget, folder.name, price_per_hour, truth)
            gap = stream_gap(detector)
            candidates[folder.name] = {**figures, "detector": meta["detector"], "created_at": meta.get("created_at"),
                                       "lineage": meta.get("lineage"), "promotable": gap is None,
                                       **({"not_promotable": gap} if gap else {})}  # fmt: skip
            reports.append(report)
        if not reports:
            raise TrainingInputError(f"no candidate model artifacts under {models_dir}")
        champion, champion_report = _champion(champion_dir, scratch, validation, budget, price_per_hour, truth)
    servable = [r for r in reports if candidates[r.name]["promotable"]]
    selection = select_model(servable or reports, champion_report, metric=metric, margin=margin,
                             basis=basis["basis"]).to_dict()  # fmt: skip
    if not servable:  # measured against the champion, never promoted
        gap = candidates[selection["best"]]["not_promotable"]
        selection.update(promoted=False, reason=f"{selection['reason']}; not promoted: it {gap}")
    selection.update(promote=bool(selection["promoted"]), best_threshold=candidates[selection["best"]]["threshold"],
                     best_model=selection["best"], margin=margin)  # fmt: skip
    result = {
        "budget": budget,
        "rows": len(validation),
        "anomalies": int((labels(validation) if truth is None else truth)[0].sum()),
        "basis": basis,
        "candidates": candidates,
        "champion": champion,
        "selection": selection,
    }
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / EVALUATION_FILE).write_text(json.dumps(result, indent=2, allow_nan=False, default=_plain))
    return result


EXIT_MESSAGE_BYTES = 1024  # SageMaker keeps the first 1 kB of /opt/ml/output/message


def exit_message(result: Mapping[str, Any]) -> str:
    """The decision in compact JSON for the processing job's ExitMessage, within 1 kB: the
    Step Functions ``.sync`` integration returns it, so the Choice state can read it directly
    (``States.StringToJson($.ExitMessage)``) as well as from evaluation.json."""
    sel = result["selection"]
    small = {"promote": sel["promote"], "best": sel["best"], "best_threshold": sel["best_threshold"],
             "serving": sel.get("serving"), "metric": sel.get("metric"),
             "best_value": result["candidates"][sel["best"]].get(sel.get("metric", "recall"))}  # fmt: skip
    text = json.dumps(small, separators=(",", ":"), default=_plain)
    if len(text.encode()) > EXIT_MESSAGE_BYTES:  # names too long: the file has everything
        text = json.dumps({"promote": sel["promote"], "best": sel["best"][:200]}, separators=(",", ":"))
    return text


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return str(value)


def _evaluation_truth(validation: pd.DataFrame, labels_dir: Path | None):
    """(validation with risk features, truth or None for the injected labels, basis dict)."""
    from finsentry.label_risk import risk_features
    from finsentry.labels import ANALYST, INJECTED, current_verdicts, label_truth

    if labels_dir is None:
        return validation, None, {"basis": INJECTED, "why": "no label channel"}
    history, counts = read_label_history(labels_dir)
    if not len(history) or "trans_id" not in validation.columns:
        return validation, None, {"basis": INJECTED, "why": "no verdicts on the validation rows", **counts}
    if {"account_id", "ts"} <= set(validation.columns):
        validation = pd.concat([validation, risk_features(validation, history)], axis=1)
    found = label_truth(validation["trans_id"], current_verdicts(history))
    if not found.sufficient:
        return validation, None, {"basis": INJECTED, "why": found.reason, **counts}
    return validation, (found.is_anomaly, found.anomaly_type), {"basis": ANALYST, "why": found.reason, **counts}


def _champion(champion_dir: Path | None, scratch: Path, validation: pd.DataFrame, budget: float,
              price_per_hour: float, truth=None) -> tuple[dict[str, Any] | None, ModelReport | None]:  # fmt: skip
    if champion_dir is None or not champion_dir.is_dir():
        return None, None
    found = artifact_dir(champion_dir, scratch)
    if found is None:
        return None, None
    try:
        detector, meta = load_model(found, allow_sequence=True)
    except ModelArtifactError as exc:
        return {"error": str(exc)}, None
    name = f"champion:{meta['detector']}"
    figures, report = score_report(detector, validation, budget, name, price_per_hour, truth)
    return {**figures, "detector": meta["detector"], "created_at": meta.get("created_at")}, report
