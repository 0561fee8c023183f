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


def card_world(customers: int = 300, terminals: int = 60, days: int = 70, per_day: int = 2, seed: int = 0,
               compromised: int = 6, from_day: int = 20, delay_days: int = 7) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A small card bank in the handbook's image (scenario 2): ``compromised`` terminals turn
    fraudulent from ``from_day`` on, every later transaction at them is a fraud, invisible to
    the features (gaussian noise in four feature columns). Returns (rows, label history): the
    rows carry ``trans_id, account_id, partner_bank, partner_account, ts, is_fraud`` and
    ``DETECTOR_COLUMNS``; every fraud before the last ``delay_days`` is confirmed and one
    normal transaction in 20 dismissed, each ``delay_days`` after the transaction."""
    rng = np.random.default_rng(seed)
    n = customers * days * per_day
    day = np.repeat(np.arange(days), customers * per_day)
    ts = pd.Timestamp("2024-01-01") + pd.to_timedelta(day, "D") + pd.to_timedelta(rng.integers(0, 86_400, n), "s")
    terminal = rng.integers(0, terminals, n)
    bad = rng.choice(terminals, compromised, replace=False)
    fraud = np.isin(terminal, bad) & (day >= from_day)
    rows = pd.DataFrame({"trans_id": [f"T{i:07d}" for i in range(n)],
                         "account_id": [f"C{c:04d}" for c in rng.integers(0, customers, n)],
                         "partner_bank": "", "partner_account": [f"TERM{t:03d}" for t in terminal],
                         "ts": ts, "is_fraud": fraud})  # fmt: skip
    features = pd.DataFrame(0.0, index=rows.index, columns=list(DETECTOR_COLUMNS))
    for col in ("amount_z", "log_amount", "hour_rarity", "log_gap_hours"):
        features[col] = rng.normal(0, 1, n)
    rows = pd.concat([rows, features], axis=1).sort_values("ts", kind="stable").reset_index(drop=True)
    known = rows["ts"] + pd.Timedelta(days=delay_days)
    end = rows["ts"].max()
    checked = (rows["is_fraud"] | (rng.random(n) < 0.05)) & (known <= end)
    history = pd.DataFrame({"trans_id": rows.loc[checked, "trans_id"],
                            "verdict": np.where(rows.loc[checked, "is_fraud"], "confirmed_fraud", "dismissed"),
                            "who": "analyst", "when": known[checked], "note": ""})  # fmt: skip
    history["label_id"] = history["trans_id"] + "/" + history["verdict"]
    history["received_at"] = history["when"]
    return rows, history.reset_index(drop=True)
