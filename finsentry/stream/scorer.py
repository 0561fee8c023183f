"""The scoring core of a stream batch: canonical rows and their stored states in, scored rows out.

Everything here is per batch, never per record where a batch call exists: one validation, one
feature pass, one model call. Two entry points:

* ``StreamScorer.score_rows`` — what the scorer service (``finsentry.stream.service``) calls once
  the state protocol (``finsentry.stream.protocol``) has decided, row by row, which rows are new
  to their account (scored and folded in) and which must be folded into their partner's profile;
* ``StreamScorer.score_batch`` — raw records against in-memory profiles (tests, the benchmark's
  core path, seeding profiles from history). Its redelivery guard is the profiles' in-memory
  ``recent_ids`` (the last ``RECENT_IDS`` trans_ids); the durable guard of the deployed scorer is
  the protocol's per-channel checkpoints, which never forget.

Counting rule of ``score_batch``: ``received == scored + quarantined + redelivered``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from finsentry.features import FEATURE_COLUMNS, SEQUENCE_COLUMNS, AccountProfile, update_profiles_with_sequence
from finsentry.partners import PARTNER_FEATURE_COLUMNS, PartnerProfile, partner_key, update_partner_profiles
from finsentry.privacy import DEFAULT_MASK_KEY
from finsentry.schema import ValidationResult
from finsentry.scoring import score_transactions, scored_frame
from finsentry.stream.validation import validate_stream_records

RECENT_IDS = 256  # trans_ids remembered per account (and per partner) to recognise redeliveries
POSITION, PARTNER = "_position", "_partner"  # columns of BatchOutcome.folded
PARTNER_READS = ("trans_id", "account_id", "ts", "amount")  # the columns fold_partners reads (with the keys)


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
    # the valid records folded into their partner's profile (canonical rows, in input order),
    # with their input position (column POSITION) and partner key (column PARTNER)
    folded: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def touched_partners(self) -> list[str]:
        return sorted(set(self.folded[PARTNER])) if len(self.folded) else []

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

    def score_rows(self, valid: pd.DataFrame, score: np.ndarray, fold: np.ndarray,
                   profiles: dict[str, AccountProfile], partners: dict[str, PartnerProfile],
                   risk: pd.DataFrame | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:  # fmt: skip
        """Score ``valid[score]`` (folding those rows into ``profiles``) and fold ``valid[fold]``
        into ``partners`` (in time order per partner); the scored rows and the model's inputs,
        both aligned with ``valid[score]``. ``risk``: the label-derived risk of every row of
        ``valid`` (0..n-1, ``finsentry.stream.risk.stream_risk``), added to the model's inputs.
        A scored row whose partner is not folded here (its
        partner already holds it) gets its partner features from a copy of the partner's state."""
        fresh = valid[score].reset_index(drop=True)
        account = update_profiles_with_sequence(profiles, fresh)
        values = _partner_values(partners, valid, partner_key(valid), fold, score)
        features = _curated(account, values[score].reset_index(drop=True))
        if risk is not None:
            features = pd.concat([features, risk[score].reset_index(drop=True)], axis=1)
        batch = score_transactions(self.model, features, budget_threshold=self.threshold,
                                   model_version=self.model_version, explain_top=self.explain_top)  # fmt: skip
        return scored_frame(fresh, batch, mask_key=self.mask_key), features

    def score_batch(
        self,
        records: Iterable[object],
        profiles: dict[str, AccountProfile],
        known_accounts: Iterable[str] | None = None,
        partners: dict[str, PartnerProfile] | None = None,
    ) -> BatchOutcome:
        """Validate, drop redeliveries, compute features from the profiles, score, explain.

        ``profiles`` and ``partners`` are updated in place (new accounts and partners get a
        profile); the caller persists those of ``touched_accounts`` and ``touched_partners``.
        ``partners=None``: a throw-away set, in which every partner is new.
        """
        started = time.perf_counter()
        checked: ValidationResult = validate_stream_records(records, known_accounts)
        mask = _redelivered_mask(checked.valid, profiles)
        fresh = checked.valid[~mask].reset_index(drop=True)
        redelivered = checked.valid.loc[mask, "trans_id"].tolist()
        partners = {} if partners is None else partners
        account = update_profiles_with_sequence(profiles, fresh)
        partner_values, fold, keys = _partner_features(partners, checked.valid, mask)
        features = _curated(account, partner_values)
        _remember(profiles, fresh)
        batch = score_transactions(self.model, features, budget_threshold=self.threshold,
                                   model_version=self.model_version, explain_top=self.explain_top)  # fmt: skip
        positions = checked.valid_positions if checked.valid_positions is not None else np.arange(len(mask))
        folded = checked.valid[fold].assign(**{POSITION: np.asarray(positions)[fold],
                                               PARTNER: keys[fold]})  # fmt: skip
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
            folded=folded.reset_index(drop=True),
        )


def _curated(account: pd.DataFrame, partner: pd.DataFrame) -> pd.DataFrame:
    """The model's input row, as ``features.features_with_sequence`` lays it out (the curated
    columns every candidate reads): account features, partner features, sequence columns."""
    parts = [account[list(FEATURE_COLUMNS)], partner, account[list(SEQUENCE_COLUMNS)]]
    if all(p.index.equals(account.index) and (p.dtypes == np.float64).all() for p in parts):  # one block at once
        return pd.DataFrame(np.hstack([p.to_numpy() for p in parts]), index=account.index,
                            columns=[*FEATURE_COLUMNS, *partner.columns, *SEQUENCE_COLUMNS])  # fmt: skip
    return pd.concat(parts, axis=1)


def _redelivered_mask(valid: pd.DataFrame, profiles: dict[str, AccountProfile]) -> np.ndarray:
    """True where the row's trans_id is already folded into its account's profile."""
    accounts = valid["account_id"].tolist()
    known = {acc: set(profiles[acc].recent_ids) for acc in set(accounts)
             if acc in profiles and profiles[acc].recent_ids}  # fmt: skip
    if not known:  # no account of the batch remembers a trans_id
        return np.zeros(len(valid), dtype=bool)
    empty: set[str] = set()
    return np.fromiter((trans_id in known.get(acc, empty)
                        for acc, trans_id in zip(accounts, valid["trans_id"].tolist(), strict=True)),
                       dtype=bool, count=len(valid))  # fmt: skip


def _remember(profiles: dict[str, AccountProfile], fresh: pd.DataFrame) -> None:
    new_ids: dict[str, list[str]] = {}
    for acc, trans_id in zip(fresh["account_id"].tolist(), fresh["trans_id"].tolist(), strict=True):
        new_ids.setdefault(acc, []).append(trans_id)
    for acc, ids in new_ids.items():
        profile = profiles[acc]
        profile.recent_ids = (profile.recent_ids + ids)[-RECENT_IDS:]


def _partner_features(partners: dict[str, PartnerProfile], valid: pd.DataFrame,
                      redelivered: np.ndarray) -> tuple[pd.DataFrame, np.ndarray, pd.Series]:  # fmt: skip
    """The partner features of the rows to score (``valid[~redelivered]``, renumbered from 0),
    folding into ``partners`` every valid row its partner's profile does not hold yet; the mask
    of the rows folded; the partner key of every valid row (computed once per batch)."""
    keys = partner_key(valid)
    texts = keys.tolist()
    held = {k: set(partners[k].recent_ids) for k in set(texts) if k and k in partners and partners[k].recent_ids}
    if held:
        fold = np.fromiter((bool(k) and t not in held.get(k, ()) for k, t in zip(texts, valid["trans_id"].tolist(),
                                                                                  strict=True)),
                           dtype=bool, count=len(valid))  # fmt: skip
    else:  # no partner of the batch remembers a trans_id: every row with a partner is folded
        fold = np.fromiter(map(bool, texts), dtype=bool, count=len(valid))
    out = _partner_values(partners, valid, keys, fold, ~redelivered)
    return out[~redelivered].reset_index(drop=True), fold, keys


def _partner_values(partners: dict[str, PartnerProfile], valid: pd.DataFrame, keys: pd.Series,
                    fold: np.ndarray, wanted: np.ndarray) -> pd.DataFrame:  # fmt: skip
    """Partner features of ``valid`` (same index): the ``fold`` rows folded into ``partners``;
    the other ``wanted`` rows with a partner (already held: folded by an earlier attempt) read
    from a copy of their partner's state, which stays as it is; the rest 0."""
    out = np.zeros((len(valid), len(PARTNER_FEATURE_COLUMNS)))
    rows = valid[list(PARTNER_READS)]  # what the partner fold reads: no copy of the other columns
    if fold.any():
        out[fold] = fold_partners(partners, rows[fold], keys[fold]).to_numpy()
    again = wanted & ~fold & (keys != "").to_numpy()
    if again.any():
        for k in set(keys[again]):
            partners.setdefault(k, PartnerProfile(partner=k))
        copies = {k: PartnerProfile(k, partners[k].f.copy(), partners[k].i.copy()) for k in set(keys[again])}
        out[again] = update_partner_profiles(copies, rows[again], keys[again]).to_numpy()
    return pd.DataFrame(out, index=valid.index, columns=list(PARTNER_FEATURE_COLUMNS))


def fold_partners(partners: dict[str, PartnerProfile], rows: pd.DataFrame,
                  keys: pd.Series | None = None) -> pd.DataFrame:  # fmt: skip
    """Fold ``rows`` (all with a partner, none already held) into ``partners``, remembering their
    trans_ids; their partner features (aligned with ``rows``). ``keys``: their partner keys when
    the caller has them (``partner_key(rows)``)."""
    keys = partner_key(rows) if keys is None else keys
    values = update_partner_profiles(partners, rows, keys)
    new_ids: dict[str, list[str]] = {}
    for key, trans_id in zip(keys.tolist(), rows["trans_id"].tolist(), strict=True):
        new_ids.setdefault(key, []).append(str(trans_id))
    for key, ids in new_ids.items():
        partners[key].recent_ids = (partners[key].recent_ids + ids)[-RECENT_IDS:]
    return values
