"""Tail probabilities: how far out in its own distribution each feature of a row lies.

The idea of ECOD (Li et al., TKDE 2022; ``pyod.models.ecod``): a row is anomalous when its
values sit in the tails of the empirical distributions of the training columns. Per column,
the surprise of a value ``v`` is ``-log`` of its empirical tail probability,

    right(v) = -log((#{training >= v} + 1) / (n + 1)),   left(v) likewise with <=,

and a row's raw score adds them up. Three differences from pyod's ECOD, each for a reason:

* **Inductive.** pyod recomputes the ECDFs over training + the rows being scored, so a row's
  score depends on the batch it arrives in; the stream scores one batch at a time and must
  agree with the batch run. Here the ECDFs are frozen at fit (the sorted training column, at
  most ``max_rows`` rows), and beyond the training range the surprise keeps growing linearly in
  units of the column's upper spread (q99 - q50), so the ranking never saturates into ties.
* **Which tail.** For the product's features (``finsentry.features.FEATURE_TAILS``) only the
  unusual tail counts: a very large amount is evidence, a very small one is not; a short gap
  is a burst. Columns it does not know (a benchmark table) use both tails, as ECOD does.
* **Families: the strongest view counts, the others corroborate.** Features that say the same
  thing several ways (the amount against the bank, against the account's mean, as a z-score)
  are one family: a row's evidence from a family is the excess (above the floor, below) of its
  largest surprise within it, plus ``corroboration`` (default ``CORROBORATION`` = 0.5) times the
  excesses of the family's other views, so redundant views do not outvote the others, yet an
  amount far out against the bank *and* against the account's habits says more than either
  alone. ``corroboration=0`` counts a family once (its strongest view only); 1 would count
  every view as independent evidence. Unknown columns are each their own family (a benchmark
  table: no change). Families add up (``combine="sum"``, ECOD's rule) or the strongest family
  decides (``combine="max"``, no corroboration).

**Against the whole bank.** With the operation code among its columns (``seq_op``, the default),
two columns are read against every account's training rows, frozen at fit, so a first-time
account is judged too and the batch, Spark and stream paths agree by construction (the stream
reads the same frozen sample from the model):

* ``seq_op``: the operation's rarity across the bank, ``-log((#training rows of that operation
  + 1) / (n + 1))``;
* ``log_amount``: the amount's tail within its operation across the bank (a 5,000 withdrawal
  against all withdrawals, not against all credits too); an operation never seen in training
  falls back to the bank-wide amount column.

Measured in the default ensemble (``bench.detection`` cache, 1 % budget, recall / AUC-PR,
against the same ensemble with tails on ``DETECTOR_COLUMNS`` only): synthetic 65.8 % / 0.434 ->
67.1 % / 0.455, Czech 74.4 % / 0.331 -> 74.4 % / 0.341, handbook (one operation: no change)
25.6 % / 0.123 both.

**Among accounts of the same depth.** With ``history_count_log`` among its columns, the
account-relative features (every product feature but the two bank-wide ones above) are read
against the training rows of accounts with a similar history depth, not against all rows. A
young account's habits are barely known: its hour is "rare" (Laplace smoothing over few rows),
its operation "rare" (``op_rarity`` of a one-operation history is a count of its rows), every
partner "new". Read against all rows, these make being young the evidence; read among accounts
of the same depth, only what is unusual for that depth counts. The tiers are cut at the 5th,
25th and 50th percentiles of the training rows' depth (``depth_quantiles``; equal cuts merge),
and a tier with fewer than ``DEPTH_MIN_ROWS`` training rows falls back to all rows. Coarse on
purpose: finer tiers (deciles, fixed counts 3/10/30/100) left the Czech sample's 34k training rows
too few per tier and cost it 2-4 recall points.

Measured (``bench.detection`` cache, 1 % budget, recall / AUC-PR, tails alone and in the default
ensemble, against the same without tiers): synthetic tails 44.3 % / 0.235 -> 65.2 % / 0.384,
ensemble 67.1 % / 0.455 -> 69.3 % / 0.473; Czech tails 48.8 % / 0.379 -> 55.8 % / 0.423, ensemble
74.4 % / 0.342 both; handbook tails 22.6 % / 0.154 -> 26.6 % / 0.186, ensemble 25.6 % / 0.123 ->
27.8 % / 0.210 (scenario 1: 56 % -> 67 %, scenario 3: 70 % -> 76 %).

**Corroboration** (``corroboration``, above) was measured against counting a family once
(``python -m bench.detection``, 2026-12-02 13:08 against 12:53 on the same machine; the other
weights on a feature cache of that run; 1 % budget; default ensemble recall / AUC-PR, then the
tails member's): synthetic 69.3 % / 0.521 -> 69.9 % / 0.531, tails 65.2 % / 0.384 -> 65.5 % /
0.423; Czech 74.4 % / 0.434 -> 74.4 % / 0.438, tails 55.8 % / 0.423 -> 60.5 % / 0.412; handbook
AUC-PR 0.210 -> 0.229, scenario 1 recall 67 % -> 72 %, scenario 3 76 % -> 77 % (tails 0.185 ->
0.2215). Why: on the handbook, a bank-wide extreme amount (scenario 1: every amount above 220 is a
fraud) sits in the amount family alone, at a surprise its own share in the training window caps
(about 1 in 800); the top false positives were rows as far out in one other family (velocity,
counterparty, hour, spend, sequence: about 1 in 800 each). The amount family's corroborating views
(the amount against the account's own mean) lift it past them. Weights 0.25 / 0.75 / 1 gave the
default 0.221 / 0.234 / 0.237 on the handbook, but at 1 the tails member alone (0.240) passes the
default, and the other sets move the same way, less; 0.5 keeps the default above its members
on the three bank sets with a margin. ADBench tables have no families: unchanged.

Explanations come from the exact per-feature parts of each family's strongest view (its
surprise above a typical value's): a corroborating view adds to the score but is not named again,
its family's reason already is. No SHAP sampling.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from finsentry.detectors.base import Detector, register
from finsentry.features import FEATURE_TAILS, OPERATION_COLUMN, SCORING_COLUMNS

if TYPE_CHECKING:
    import pandas as pd

    from finsentry.explain import Reason

BOTH, HIGH, LOW, CONTEXT = "both", "high", "low", "context"
OPERATION, AMOUNT = OPERATION_COLUMN, "log_amount"  # read against the whole bank, per operation
TAILS_COLUMNS = SCORING_COLUMNS
TYPICAL_SURPRISE = math.log(2.0)  # a median value's surprise: reasons start above it
TIE_BREAK = 1e-3  # below every floor, rows still rank by their total surprise
DEPTH = "history_count_log"  # the account's history depth: the context the account-relative features are read in
DEPTH_QUANTILES = (0.05, 0.25, 0.5)  # where the depth tiers are cut (module docstring)
DEPTH_MIN_ROWS = 500  # a tier with fewer training rows falls back to all rows
CORROBORATION = 0.5  # the weight of a family's other views beside its strongest (module docstring)


def _tail(direction: str, name: str) -> tuple[str, str]:
    return FEATURE_TAILS.get(name, (direction, name))


def freeze_columns(x: np.ndarray, max_rows: int, random_state: int) -> tuple[np.ndarray, np.ndarray]:
    """Each column's sorted training sample (at most ``max_rows`` rows, seeded) and its upper and
    lower spreads (q99 - q50, q50 - q01; the range, or 1, where those are 0): what
    ``column_surprises`` needs, frozen at fit."""
    if len(x) > max_rows:
        rng = np.random.default_rng(random_state)
        x = x[np.sort(rng.choice(len(x), max_rows, replace=False))]
    ordered = np.sort(x, axis=0)
    q = np.quantile(x, [0.01, 0.5, 0.99], axis=0)
    span = ordered[-1] - ordered[0]
    up, down = q[2] - q[1], q[1] - q[0]
    spread = np.vstack([np.where(up > 0, up, np.where(span > 0, span, 1.0)),
                        np.where(down > 0, down, np.where(span > 0, span, 1.0))])  # fmt: skip
    return ordered, spread


def column_surprises(ordered: np.ndarray, spread: np.ndarray, x: np.ndarray, directions: list[str]) -> np.ndarray:
    """Per row and column, ``-log`` of the value's empirical tail probability in the column's
    frozen sample, on the side ``directions[j]`` names (both: the larger; context: 0); beyond
    the training range it grows linearly in units of the column's spread."""
    n = ordered.shape[0]
    out = np.zeros(x.shape, dtype=np.float64)
    for j, direction in enumerate(directions):
        if direction == CONTEXT:
            continue
        col, v = ordered[:, j], x[:, j]
        if direction in (HIGH, BOTH):
            above = n - np.searchsorted(col, v, side="left")
            s = -np.log((above + 1.0) / (n + 1.0))
            beyond = v > col[-1]
            s[beyond] = math.log(n + 1.0) + (v[beyond] - col[-1]) / spread[0, j]
            out[:, j] = s
        if direction in (LOW, BOTH):
            below = np.searchsorted(col, v, side="right")
            s = -np.log((below + 1.0) / (n + 1.0))
            beyond = v < col[0]
            s[beyond] = math.log(n + 1.0) + (col[0] - v[beyond]) / spread[1, j]
            out[:, j] = np.maximum(out[:, j], s)
    return out


@register("tails")
class TailProbabilityDetector(Detector):
    """Sum (or max) over feature families of the largest one-sided tail surprise in the family
    (beyond its floor), its other views counted at ``corroboration``.

    ``max_rows`` training rows (seeded sample) are kept per column, sorted: 20k rows resolve
    tail probabilities down to 5e-5, a few MB in the artifact. ``unknown_tail`` is the tail of
    columns not in ``FEATURE_TAILS`` ("both", as ECOD).
    """

    exact_explanations = True

    def __init__(self, combine: str = "sum", max_rows: int = 20_000, random_state: int = 0,
                 unknown_tail: str = BOTH, floor_share: float = 0.01,
                 depth_quantiles: tuple[float, ...] = DEPTH_QUANTILES,
                 corroboration: float = CORROBORATION,
                 feature_columns: tuple[str, ...] | None = TAILS_COLUMNS) -> None:  # fmt: skip
        if combine not in ("sum", "max"):
            raise ValueError(f"tails: combine must be 'sum' or 'max', got {combine!r}")
        if unknown_tail not in (BOTH, HIGH, LOW):
            raise ValueError(f"tails: unknown_tail must be both, high or low, got {unknown_tail!r}")
        super().__init__(feature_columns)
        if not 0 < floor_share <= 1:
            raise ValueError(f"tails: floor_share must be in (0, 1], got {floor_share}")
        depth_quantiles = tuple(float(q) for q in depth_quantiles)
        if not all(0 < q < 1 for q in depth_quantiles):
            raise ValueError(f"tails: depth_quantiles must lie in (0, 1), got {depth_quantiles}")
        if not 0 <= corroboration <= 1:
            raise ValueError(f"tails: corroboration must be in [0, 1], got {corroboration}")
        self.params = {"combine": combine, "max_rows": max_rows, "random_state": random_state,
                       "unknown_tail": unknown_tail, "floor_share": floor_share,
                       "depth_quantiles": depth_quantiles, "corroboration": float(corroboration)}  # fmt: skip
        self.sorted_: np.ndarray | None = None
        self.spread_: np.ndarray | None = None
        self.op_codes_: np.ndarray | None = None  # the bank reference: operations seen in training,
        self.op_counts_: np.ndarray | None = None  # their training rows,
        self.op_amounts_: list[np.ndarray] = []  # and each one's sorted amount sample (log_amount)
        self.depth_edges_: np.ndarray | None = None  # the depth tiers' cuts,
        self.depth_columns_: list[int] = []  # the columns read within a tier,
        self.depth_samples_: list[tuple[np.ndarray, np.ndarray] | None] = []  # and each tier's frozen sample

    def fit(self, features: pd.DataFrame | np.ndarray) -> TailProbabilityDetector:
        """As every detector; a frame without the operation code (a table of features only) is
        fitted without the bank reference (``seq_op`` listed in ``unfed_features_``)."""
        import pandas as pd

        columns = self.feature_columns or ()
        if OPERATION in columns and isinstance(features, pd.DataFrame) and OPERATION not in features.columns:
            self.feature_columns = tuple(c for c in columns if c != OPERATION)
            self.unfed_features_ = [*self.unfed_features_, OPERATION]
        return super().fit(features)

    # -- fit: freeze each column's sorted sample and its upper/lower spreads --
    def _fit(self, x: np.ndarray) -> None:
        self.sorted_, self.spread_ = freeze_columns(x, self.params["max_rows"], self.params["random_state"])
        columns = self.feature_columns or ()
        self.op_codes_, self.op_counts_, self.op_amounts_ = None, None, []
        if OPERATION in columns and AMOUNT in columns:
            ops, amounts = x[:, columns.index(OPERATION)], x[:, columns.index(AMOUNT)]
            self.op_codes_, self.op_counts_ = np.unique(ops, return_counts=True)
            rng = np.random.default_rng(self.params["random_state"])
            for code, count in zip(self.op_codes_, self.op_counts_, strict=True):
                sample = amounts[ops == code]
                if count > self.params["max_rows"]:
                    sample = sample[rng.choice(count, self.params["max_rows"], replace=False)]
                self.op_amounts_.append(np.sort(sample))
        self._fit_depth_tiers(x)

    def _fit_depth_tiers(self, x: np.ndarray) -> None:
        """Freeze, per tier of history depth, the account-relative columns' sorted samples."""
        columns = self.feature_columns or ()
        self.depth_edges_, self.depth_columns_, self.depth_samples_ = None, [], []
        if DEPTH not in columns or not self.params.get("depth_quantiles"):
            return
        directions = [d for d, _ in self._directions()]
        bank_wide = (OPERATION, AMOUNT)
        evidence = [c in FEATURE_TAILS and c not in bank_wide and d in (HIGH, LOW, BOTH)
                    for c, d in zip(columns, directions, strict=True)]  # fmt: skip
        self.depth_columns_ = [j for j, keep in enumerate(evidence) if keep]
        depth = x[:, columns.index(DEPTH)]
        self.depth_edges_ = np.unique(np.quantile(depth, self.params["depth_quantiles"]))
        tier = np.searchsorted(self.depth_edges_, depth, side="right")
        for i in range(len(self.depth_edges_) + 1):
            rows = x[tier == i][:, self.depth_columns_]
            enough = len(rows) >= DEPTH_MIN_ROWS
            self.depth_samples_.append(freeze_columns(rows, self.params["max_rows"], self.params["random_state"])
                                       if enough else None)  # fmt: skip

    def _directions(self) -> list[tuple[str, str]]:
        return [_tail(self.params["unknown_tail"], c) for c in self.feature_columns or ()]

    def surprises(self, x: np.ndarray) -> np.ndarray:
        """Per row and column, the surprise of the value in its unusual tail (0 for context)."""
        if self.sorted_ is None or self.spread_ is None:
            raise RuntimeError("tails is not fitted")
        out = column_surprises(self.sorted_, self.spread_, x, [d for d, _ in self._directions()])
        if getattr(self, "op_codes_", None) is not None:
            self._against_the_bank(x, out)
        if getattr(self, "depth_edges_", None) is not None:
            self._within_depth_tier(x, out)
        return out

    def _within_depth_tier(self, x: np.ndarray, out: np.ndarray) -> None:
        """Overwrite the account-relative columns' surprises with those among training rows of
        the same depth tier (module docstring); a tier too small keeps the all-rows reading."""
        columns, cols = self.feature_columns or (), self.depth_columns_
        directions = [self._directions()[j][0] for j in cols]
        tier = np.searchsorted(self.depth_edges_, x[:, columns.index(DEPTH)], side="right")
        for i, frozen in enumerate(self.depth_samples_):
            rows = tier == i
            if frozen is None or not rows.any():
                continue
            out[np.ix_(rows, cols)] = column_surprises(frozen[0], frozen[1], x[rows][:, cols], directions)

    def _against_the_bank(self, x: np.ndarray, out: np.ndarray) -> None:
        """Overwrite the operation's and the amount's surprises with their bank-wide, per
        operation ones (module docstring)."""
        columns = self.feature_columns or ()
        j_op, j_amount = columns.index(OPERATION), columns.index(AMOUNT)
        ops, codes = x[:, j_op], self.op_codes_
        k = np.clip(np.searchsorted(codes, ops), 0, len(codes) - 1)
        seen = codes[k] == ops
        n = float(self.op_counts_.sum())
        out[:, j_op] = -np.log((np.where(seen, self.op_counts_[k], 0) + 1.0) / (n + 1.0))
        spread = self.spread_[:, [j_amount]]
        for i in np.unique(k[seen]):
            rows = seen & (k == i)
            sample = self.op_amounts_[i][:, None]
            out[rows, j_amount] = column_surprises(sample, spread, x[rows][:, [j_amount]], [HIGH])[:, 0]

    def _family_parts(self, surprise: np.ndarray) -> np.ndarray:
        """Each family's evidence carried by its strongest feature, the rest of the family 0."""
        parts = np.zeros_like(surprise)
        families: dict[str, list[int]] = {}
        for j, (direction, family) in enumerate(self._directions()):
            if direction != CONTEXT:
                families.setdefault(family, []).append(j)
        rows = np.arange(len(surprise))
        for cols in families.values():
            block = surprise[:, cols]
            best = np.argmax(block, axis=1)
            parts[rows, np.asarray(cols)[best]] = block[rows, best]
        return parts

    def _floors(self) -> np.ndarray:
        """Per column, the surprise a product feature must exceed to count (0 for other columns)."""
        floor = -math.log(self.params["floor_share"]) if self.params["floor_share"] < 1 else 0.0
        return np.array([floor if c in FEATURE_TAILS else 0.0 for c in self.feature_columns or ()])

    def _raw(self, x: np.ndarray) -> np.ndarray:
        """Per family, the excess of its strongest view over its floor plus ``corroboration``
        times the excesses of its other views; summed over families (``combine="sum"``), with
        the families' strongest surprises as a tie-break."""
        surprise = self.surprises(x)
        parts = self._family_parts(surprise)
        if self.params["combine"] == "max":
            return parts.max(axis=1) if parts.shape[1] else np.zeros(len(x))
        floors = self._floors()
        excess = np.maximum(parts - floors, 0.0)
        # a model saved before corroboration was kept counts each family once (its params lack it)
        weight = self.params.get("corroboration", 0.0)
        if weight:
            carried = parts != 0.0  # the columns carrying their family's evidence
            views = np.maximum(surprise - floors, 0.0)
            views[carried | (self._directions_array() == CONTEXT)] = 0.0
            excess = excess + weight * views
        return excess.sum(axis=1) + TIE_BREAK * parts.sum(axis=1)

    def _directions_array(self) -> np.ndarray:
        return np.array([d for d, _ in self._directions()], dtype=object)

    def contributions(self, features: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Exact per-feature parts of the score above a typical value's surprise (>= 0)."""
        parts = self._family_parts(self.surprises(self.matrix(features)))
        return np.maximum(parts - TYPICAL_SURPRISE, 0.0)

    def explain(self, features: pd.DataFrame | np.ndarray, top_k: int = 3) -> list[list[Reason]]:
        """Reasons from the exact per-feature parts of the score (no SHAP sampling needed)."""
        from finsentry.explain import top_reasons

        return top_reasons(self.features_frame(features), self.contributions(features), top_k=top_k)
