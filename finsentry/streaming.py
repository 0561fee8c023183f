"""The streaming scorer's core: one batch of raw records in, scored rows and quarantine out.

The Lambda handler (issue 3) stays thin around ``StreamScorer.score_batch``: it decodes the
event, loads the batch's ``AccountProfile``s in one read, calls this, writes the profiles
back, and ships the outputs. Everything here is per batch, never per record where a batch
call exists: one validation, one feature pass, one model call.

Counting rule: ``received == scored + quarantined + redelivered``. A record whose trans_id
the account's profile has already folded in (a redelivered batch) is skipped: it never updates
a profile twice and never alerts twice.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from finsentry.features import AccountProfile, update_profiles
from finsentry.privacy import DEFAULT_MASK_KEY
from finsentry.schema import ValidationResult
from finsentry.scoring import score_transactions, scored_frame
from finsentry.stream.validation import validate_stream_records

RECENT_IDS = 256  # trans_ids remembered per account to recognise redeliveries


@dataclass
class BatchOutcome:
    """What one batch produced; the counts always add up."""

    scored: pd.DataFrame  # one row per scored transaction (see scoring.scored_frame)
    quarantined: pd.DataFrame  # reason, detail, raw
    redelivered: list[str]  # trans_ids skipped because their account already has them
    mode: str  # "model" or "rules_only"
    seconds: float
    touched_accounts: list[str] = field(default_factory=list)
    # input position (0-based, in the records given to score_batch) of each row above
    scored_positions: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    quarantined_positions: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    redelivered_positions: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    # the model's input of each scored row (same order as ``scored``; None = not kept): drift per window
    features: pd.DataFrame | None = None

    @property
    def received(self) -> int:
        return len(self.scored) + len(self.quarantined) + len(self.redelivered)

    @property
    def alerts(self) -> pd.DataFrame:
        return self.scored[self.scored["verdict"] == "alert"]

    def counts(self) -> dict[str, int]:
        return {
            "received": self.received,
            "scored": len(self.scored),
            "quarantined": len(self.quarantined),
            "redelivered": len(self.redelivered),
            "alerts": len(self.alerts),
        }


class StreamScorer:
    """Scores batches of raw transaction records against per-account profiles.

    ``model`` may be None (no artifact, or an unreadable one): the batch is then scored by
    the catalog's rules alone and ``mode`` says so, for the metric an alarm watches.
    """

    def __init__(self, model=None, threshold: float = 1.0, model_version: str = "rules-only",
                 mask_key: bytes = DEFAULT_MASK_KEY) -> None:  # fmt: skip
        self.model = model
        self.threshold = threshold
        self.model_version = model_version if model is not None else "rules-only"
        self.mask_key = mask_key  # HMAC key of the client pseudonyms (finsentry.privacy)
        self.explain_top = 0  # alerts per batch explained by SHAP; 0: every alert by explain.fast_explain

    @property
    def mode(self) -> str:
        return "model" if self.model is not None else "rules_only"

    def score_batch(
        self,
        records: Iterable[object],
        profiles: dict[str, AccountProfile],
        known_accounts: Iterable[str] | None = None,
    ) -> BatchOutcome:
        """Validate, drop redeliveries, compute features from the profiles, score, explain.

        ``profiles`` is updated in place (new accounts get a profile); the caller persists
        the profiles of ``touched_accounts``.
        """
        started = time.perf_counter()
        checked: ValidationResult = validate_stream_records(records, known_accounts)
        mask = _redelivered_mask(checked.valid, profiles)
        fresh = checked.valid[~mask].reset_index(drop=True)
        redelivered = checked.valid.loc[mask, "trans_id"].tolist()
        features = update_profiles(profiles, fresh)
        _remember(profiles, fresh)
        batch = score_transactions(self.model, features, budget_threshold=self.threshold,
                                   model_version=self.model_version, explain_top=self.explain_top)  # fmt: skip
        positions = checked.valid_positions if checked.valid_positions is not None else np.arange(len(mask))
        return BatchOutcome(
            scored=scored_frame(fresh, batch, mask_key=self.mask_key),
            quarantined=checked.rejected,
            redelivered=redelivered,
            mode=self.mode,
            seconds=time.perf_counter() - started,
            touched_accounts=sorted(set(fresh["account_id"])),
            scored_positions=np.asarray(positions)[~mask],
            quarantined_positions=np.asarray(checked.rejected_positions, dtype=np.int64)
            if checked.rejected_positions is not None else np.zeros(0, dtype=np.int64),
            redelivered_positions=np.asarray(positions)[mask],
            features=features.reset_index(drop=True),
        )


def _redelivered_mask(valid: pd.DataFrame, profiles: dict[str, AccountProfile]) -> np.ndarray:
    """True where the row's trans_id is already folded into its account's profile."""
    known = {acc: set(profiles[acc].recent_ids) for acc in set(valid["account_id"]) if acc in profiles}
    empty: set[str] = set()
    return np.fromiter((trans_id in known.get(acc, empty)
                        for acc, trans_id in zip(valid["account_id"], valid["trans_id"], strict=True)),
                       dtype=bool, count=len(valid))  # fmt: skip


def _remember(profiles: dict[str, AccountProfile], fresh: pd.DataFrame) -> None:
    new_ids: dict[str, list[str]] = {}
    for acc, trans_id in zip(fresh["account_id"].tolist(), fresh["trans_id"].tolist(), strict=True):
        new_ids.setdefault(acc, []).append(trans_id)
    for acc, ids in new_ids.items():
        profile = profiles[acc]
        profile.recent_ids = (profile.recent_ids + ids)[-RECENT_IDS:]
