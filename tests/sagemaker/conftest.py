"""Small labelled data in channel folders, and the entry points loaded from their files."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pandas as pd
import pytest

from finsentry.anomalies import inject_anomalies
from finsentry.evaluation import time_split
from finsentry.features import features_with_sequence
from tests.factories import small_bank

ROOT = Path(__file__).resolve().parents[2]
FAST = {  # tiny models: the tests check the plumbing, not the quality
    "isolation_forest": {"n_estimators": 20},
    "lof": {"n_neighbors": 10, "max_train_rows": 2000},
    "lstm": {"units": 8, "epochs": 1, "max_train_rows": 2000},
}


def entry_point(name: str) -> ModuleType:
    """``sagemaker/<name>.py`` as a module (not ``import sagemaker.x``: that name is the SDK's)."""
    spec = importlib.util.spec_from_file_location(f"finsentry_sm_{name}", ROOT / "sagemaker" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def labelled() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Curated rows (ids + features + sequence columns + labels): training period, validation period."""
    bank = small_bank()
    valid = bank.transactions.valid
    split = time_split(valid, fractions=(0.7, 0.3, 0.0))
    injected = inject_anomalies(valid, bank.orders, split.validation_start, rate=0.02, seed=1)
    t = injected.transactions.reset_index(drop=True)
    frame = pd.concat([t[["trans_id", "account_id", "ts", "is_anomaly", "anomaly_type"]], features_with_sequence(t)],
                      axis=1)  # fmt: skip
    late = (pd.to_datetime(t["ts"]) >= split.validation_start).to_numpy()
    return frame[~late].drop(columns=["is_anomaly", "anomaly_type"]), frame[late]


@pytest.fixture(scope="session")
def channels(labelled, tmp_path_factory) -> dict[str, Path]:
    """train/ (two Parquet partitions) and validation/ (one Parquet file), as S3 would hand them over."""
    root = tmp_path_factory.mktemp("channels")
    train, validation = labelled
    half = len(train) // 2
    for i, part in enumerate((train.iloc[:half], train.iloc[half:])):
        (root / "train" / f"dt=part{i}").mkdir(parents=True)
        part.to_parquet(root / "train" / f"dt=part{i}" / "part-00000.parquet", index=False)
    (root / "validation").mkdir()
    validation.to_parquet(root / "validation" / "part-00000.parquet", index=False)
    return {"train": root / "train", "validation": root / "validation"}


def training_env(tmp: Path, channels: dict[str, Path], detector: str, **hyper: object) -> dict[str, str]:
    """SageMaker's training container layout under ``tmp``: hyperparameters.json written as the
    SageMaker Python SDK writes it (every value a JSON-encoded string), SM_* pointing at tmp."""
    config = tmp / "input" / "config"
    config.mkdir(parents=True, exist_ok=True)
    hp = {"detector": detector, "training_data_uri": "s3://bucket/curated/features/", **FAST.get(detector, {}), **hyper}
    (config / "hyperparameters.json").write_text(json.dumps({k: json.dumps(v) for k, v in hp.items()}))
    env = {"SM_ROOT": str(tmp), "SM_MODEL_DIR": str(tmp / "model"), "SM_OUTPUT_DATA_DIR": str(tmp / "output" / "data"),
           "TRAINING_JOB_NAME": f"finsentry-{detector}-test", "FINSENTRY_GIT_SHA": "abc123"}  # fmt: skip
    env.update({f"SM_CHANNEL_{name.upper()}": str(path) for name, path in channels.items()})
    return env
