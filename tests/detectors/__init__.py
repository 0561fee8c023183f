"""Shared test data for the detector, explanation and evaluation tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

from finsentry.features import DETECTOR_COLUMNS

GAUSSIAN = ("log_amount", "amount_z", "hour_rarity", "log_gap_hours")


def planted_frame(feature: str = "amount_z", value: float = 12.0, n: int = 600, seed: int = 0) -> pd.DataFrame:
    """Feature-shaped rows: standard gaussian in ``GAUSSIAN``, zero elsewhere; row 0 is the
    planted outlier, ``value`` in ``feature`` and ordinary everywhere else."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(0.0, index=range(n), columns=list(DETECTOR_COLUMNS))
    for col in GAUSSIAN:
        frame[col] = rng.normal(0.0, 1.0, n)
    frame.loc[0, GAUSSIAN] = 0.0
    frame.loc[0, feature] = value
    return frame
