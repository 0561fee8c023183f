"""The training window and the labelled validation period: one definition for every job.

The state machine's ``training_window`` override reaches the Glue features job as
``--window_start`` / ``--window_end`` and the SageMaker jobs as ``FINSENTRY_WINDOW_START`` /
``FINSENTRY_WINDOW_END``; all of them filter with ``apply_window``. The Glue features job builds
the labelled validation set with ``labelled_validation`` (the last ``share`` of the window's
days, with the catalog's anomalies injected by ``finsentry.anomalies.inject_anomalies`` and
their features computed by ``features_with_sequence``), and the training job drops that period
from its training data with ``exclude_validation`` (no leakage: no row, and no day, in both).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from finsentry.anomalies import inject_anomalies
from finsentry.evaluation import time_split
from finsentry.features import features_with_sequence

WINDOW_ENV = ("FINSENTRY_WINDOW_START", "FINSENTRY_WINDOW_END")
DEFAULT_VALIDATION_SHARE = 0.15  # share of the window's rows (whole days) held out as the validation period
DEFAULT_ANOMALY_RATE = 0.004  # share of the validation period's transactions turned into labelled anomalies
LABEL_COLUMNS = ("is_anomaly", "anomaly_type")


class WindowError(ValueError):
    """A training window that is not a pair of dates (or timestamps) with start <= end."""


def _bound(value: str | pd.Timestamp | None, name: str) -> pd.Timestamp | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise WindowError(f"{name} {value!r} is not a date (YYYY-MM-DD): {exc}") from exc
    if stamp is pd.NaT:
        raise WindowError(f"{name} {value!r} is not a date")
    return stamp.tz_localize(None) if stamp.tzinfo else stamp


def window_mask(ts: pd.Series, start: str | pd.Timestamp | None = None,
                end: str | pd.Timestamp | None = None) -> np.ndarray:  # fmt: skip
    """Rows whose time is in the window. Dates are whole days: ``end="2024-03-31"`` keeps all of
    the 31st. Out-of-range dates (the state machine's defaults "0001-01-01" / "9999-12-31") and
    None / "" mean an open side."""
    times = pd.to_datetime(ts)
    lo, hi = _window_bounds(start, end)
    keep = np.ones(len(times), dtype=bool)
    if lo is not None:
        keep &= (times >= lo).to_numpy()
    if hi is not None:
        keep &= (times < hi).to_numpy()
    return keep


def _window_bounds(start, end) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    """Inclusive start, exclusive end (a date-only end moves to the next midnight)."""
    lo, hi = (None if _open(v) else _bound(v, n) for v, n in ((start, "window start"), (end, "window end")))
    if lo is not None and hi is not None and lo > hi:
        raise WindowError(f"window start {start} is after window end {end}")
    if hi is not None and hi == hi.normalize() and (not isinstance(end, str) or len(end.strip()) <= 10):
        hi = hi + pd.Timedelta(days=1)
    return lo, hi


def _open(value) -> bool:
    """None, "" and the dates pandas cannot hold (years 1 and 9999, the state machine's default
    window "0001-01-01" .. "9999-12-31") leave that side of the window open."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return True
    return str(value).strip()[:4] in ("0001", "9999")


def apply_window(frame: pd.DataFrame, start: str | pd.Timestamp | None = None,
                 end: str | pd.Timestamp | None = None, ts_col: str = "ts") -> pd.DataFrame:  # fmt: skip
    """The rows of ``frame`` inside the window (index reset); a frame without ``ts_col`` is
    refused when a bound is set (the window could not be honoured)."""
    start, end = (None if _open(v) else v for v in (start, end))
    if start is None and end is None:
        return frame
    if ts_col not in frame.columns:
        raise WindowError(f"a training window ({start} .. {end}) was given but the data has no {ts_col!r} column")
    return frame[window_mask(frame[ts_col], start, end)].reset_index(drop=True)


def window_from_env(env: Mapping[str, str]) -> tuple[str | None, str | None]:
    """``FINSENTRY_WINDOW_START`` / ``FINSENTRY_WINDOW_END`` (absent or empty = open)."""
    return tuple(env.get(k) or None for k in WINDOW_ENV)  # type: ignore[return-value]


@dataclass
class LabelledValidation:
    """The labelled validation period: curated feature rows with ``is_anomaly`` / ``anomaly_type``."""

    frame: pd.DataFrame  # trans_id, account_id, ts, CURATED_COLUMNS, is_anomaly, anomaly_type
    start: pd.Timestamp  # first day of the validation period (training keeps what is before)
    end: pd.Timestamp | None
    labels: pd.DataFrame  # anomalies.LABEL_FRAME_COLUMNS
    skipped: dict[str, str] = field(default_factory=dict)  # anomaly type -> why not injected


def validation_start(transactions: pd.DataFrame, share: float, start=None, end=None) -> pd.Timestamp:
    """First day of the last ``share`` of the window's rows (whole days, ``time_split`` semantics)."""
    if not 0 < share < 1:
        raise ValueError(f"the validation share must be in (0, 1), got {share}")
    windowed = apply_window(transactions, start, end)
    if windowed.empty:
        raise ValueError(f"no transactions in the window {start} .. {end}: no validation period")
    cut = time_split(windowed, fractions=(1.0 - share, share, 0.0), floor="D").validation_start
    if pd.isna(cut):
        raise ValueError("no timestamps: no validation period")
    return pd.Timestamp(cut)


def labelled_validation(transactions: pd.DataFrame, orders: pd.DataFrame, share: float = DEFAULT_VALIDATION_SHARE,
                        *, start=None, end=None, rate: float = DEFAULT_ANOMALY_RATE,
                        seed: int = 0) -> LabelledValidation:  # fmt: skip
    """Inject labelled anomalies into the last ``share`` of the window and compute their features.

    ``transactions``: canonical transactions (all history: the features of a validation row
    read its account's past, which may lie before the window). ``orders``: permanent orders
    (empty = the "missing recurring payment" type is skipped, see ``skipped``).
    """
    cut = validation_start(transactions, share, start, end)
    upto = apply_window(transactions, None, end)  # nothing after the window: it is not validated on
    injected = inject_anomalies(upto, orders, cut, rate=rate, seed=seed)
    rows = injected.transactions.reset_index(drop=True)
    features = features_with_sequence(rows)
    keep = (pd.to_datetime(rows["ts"]) >= cut).to_numpy() & window_mask(rows["ts"], None, None if _open(end) else end)
    ids = rows[[c for c in ("trans_id", "account_id", "ts") if c in rows.columns]]
    labels = pd.DataFrame({"is_anomaly": rows["is_anomaly"].fillna(False).astype(bool),
                           "anomaly_type": rows["anomaly_type"].fillna("").astype(str)})  # fmt: skip
    frame = pd.concat([ids, features, labels], axis=1)[keep].reset_index(drop=True)
    _, hi = _window_bounds(None, None if _open(end) else end)
    return LabelledValidation(frame, cut, hi, injected.labels, dict(injected.skipped))


def exclude_validation(train: pd.DataFrame, validation: pd.DataFrame, ts_col: str = "ts") -> pd.DataFrame:
    """The training rows strictly before the validation period's first day, and none whose
    ``trans_id`` is in the validation set: no leakage even when both come from one prefix."""
    keep = np.ones(len(train), dtype=bool)
    if ts_col in validation.columns and ts_col in train.columns and len(validation):
        first = pd.to_datetime(validation[ts_col]).min().normalize()
        keep &= (pd.to_datetime(train[ts_col]) < first).to_numpy()
    if "trans_id" in train.columns and "trans_id" in validation.columns:
        keep &= ~train["trans_id"].astype(str).isin(set(validation["trans_id"].astype(str))).to_numpy()
    return train[keep].reset_index(drop=True)
