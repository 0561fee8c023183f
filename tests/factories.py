"""Small canonical frames for tests (no dependency on ../shared/data)."""

from __future__ import annotations

import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from finsentry.datasets import czech, synthetic
from finsentry.features import DETECTOR_COLUMNS


@lru_cache(maxsize=4)
def small_bank(accounts: int = 60, months: int = 8, seed: int = 3) -> czech.LoadedBank:
    """A synthetic bank read back through the asc loader (cached: tests must not mutate it)."""
    raw = synthetic.generate_bank(synthetic.SyntheticConfig(n_accounts=accounts, months=months, seed=seed))
    with tempfile.TemporaryDirectory() as tmp:
        czech.write_tables(raw, Path(tmp))
        return czech.load(Path(tmp))


def gaussian_features(n: int = 600, seed: int = 0) -> pd.DataFrame:
    """Feature-shaped rows, gaussian in four features (zero elsewhere); row 0 is an outlier on
    ``amount_z`` only."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(0.0, index=range(n), columns=list(DETECTOR_COLUMNS))
    for col in ("amount_z", "log_amount", "hour_rarity", "log_gap_hours"):
        frame[col] = rng.normal(0, 1, n)
    frame.loc[0, "amount_z"] = 12.0
    return frame


def trained_bank(root: Path, accounts: int, months: int) -> Path:
    """``finsentry generate`` a bank into ``root/bank`` and ``finsentry train`` an Isolation
    Forest on it into ``root/model`` (through the CLI, as a user does); returns ``root``."""
    from finsentry.cli import main

    assert main(["generate", "--out", str(root / "bank"), "--accounts", str(accounts), "--months", str(months)]) == 0
    assert main(["train", "--data", str(root / "bank"), "--detector", "isolation_forest",
                 "--out", str(root / "model")]) == 0  # fmt: skip
    return root
