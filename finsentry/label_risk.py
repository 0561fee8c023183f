"""Label-derived risk features: what analysts' verdicts say about an account and a partner, point-in-time.

For a transaction at time ``t``, each entity (the account, the partner: ``partners.partner_key``)
gets, over the verdicts KNOWN before ``t`` (a label's ``when`` < ``t``: labels arrive after an
investigation, days after the transaction, and a label given later is never used) and given in
the last ``w`` days before ``t``, for each window ``w`` of ``RISK_WINDOWS`` (1, 7 and 28 days):

* ``<entity>_frauds_known_log[_<w>d]``: log1p(confirmed frauds among its labelled transactions);
* ``<entity>_fraud_share_known[_<w>d]``: confirmed frauds / (labelled transactions + 1), the
  ``+ 1`` shrinking a single verdict's weight (one fraud out of one checked: 0.5).

The 28-day columns carry no suffix (the names of models saved when it was the only window).
Why three windows (the handbook's terminal-risk design, 1/7/30 days): one 28-day window cannot
tell a terminal still compromised from one whose compromise ended weeks ago, since its frauds
stay "known" for another 28 days. Measured under the handbook's own protocol
(``python -m bench.handbook_supervised``, every label of the training week known, 2026-12-02):
the supervised candidate's AUC-PR 0.385 with the 28-day window alone, 0.617 with the 1- and
7-day windows beside it (handbook: random forest 0.658, logistic regression 0.606).

A transaction re-labelled later (a fraud later dismissed) counts with the verdict known at ``t``:
its correction is an event at its own ``when``. A row whose entity has no verdict (or no
partner) gets 0, the "nothing known" value, as every feature of ``finsentry.features``.
Labels of transactions absent from the frame cannot be tied to an entity and are not counted.

One definition, ``risk_from_events`` (the stream scorer computes through it too:
``finsentry.stream.risk``), one vectorised pass (a sorted array of (entity, known-time) events
and two ``searchsorted`` per row); ``RISK_COLUMNS`` is the column list the supervised detector reads.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from finsentry.labels import is_fraud_verdict
from finsentry.partners import partner_key

ENTITIES = ("account", "partner")
RISK_FEATURES = ("frauds_known_log", "fraud_share_known")
RISK_WINDOW_DAYS = 28  # the longest window: verdicts older than this no longer mark an entity (the handbook's
# terminals stay compromised 28 days); the stream keeps labels this long (+ slack, finsentry.stream.risk)
RISK_WINDOWS = (RISK_WINDOW_DAYS, 7, 1)  # days of known verdicts per column family, longest first


def risk_column(entity: str, feature: str, window_days: int) -> str:
    """A risk column's name; the 28-day window's has no suffix (the one window of earlier models)."""
    return f"{entity}_{feature}" + ("" if window_days == RISK_WINDOW_DAYS else f"_{window_days}d")


RISK_COLUMNS: tuple[str, ...] = tuple(
    risk_column(e, f, w) for e in ENTITIES for w in RISK_WINDOWS for f in RISK_FEATURES
)


def entity_keys(transactions: pd.DataFrame) -> dict[str, pd.Series]:
    """The account and partner key of each row ('' when the row has none)."""
    account = transactions["account_id"].astype(object).where(transactions["account_id"].notna(), "").astype(str)
    if {"partner_bank", "partner_account"} <= set(transactions.columns):
        partner = partner_key(transactions)
    else:
        partner = pd.Series("", index=transactions.index)
    return {"account": account, "partner": partner}


def verdict_events(history: pd.DataFrame) -> pd.DataFrame:
    """One event per label: at ``when``, the transaction's fraud count changes by ``d_fraud`` and
    its labelled count by ``d_labelled`` (1 for its first verdict, 0 for later ones). Labels of
    one transaction are taken in ``when`` order, then in the history's row order (arrival).
    ``is_fraud`` (bool) may stand for ``verdict`` (the stream's risk items keep only that)."""
    if history.empty:
        return pd.DataFrame({"trans_id": pd.Series(dtype=str), "when": pd.Series(dtype="datetime64[ns]"),
                             "d_fraud": pd.Series(dtype=float), "d_labelled": pd.Series(dtype=float)})  # fmt: skip
    ordered = history.reset_index(drop=True).reset_index(names="_arrival")
    ordered = ordered.sort_values(["trans_id", "when", "_arrival"], kind="stable")
    if "is_fraud" in ordered.columns:
        fraud = ordered["is_fraud"].to_numpy(dtype=float)
    else:
        fraud = is_fraud_verdict(ordered["verdict"]).astype(float)
    first = ~ordered["trans_id"].duplicated().to_numpy()
    previous = np.where(first, 0.0, np.roll(fraud, 1))
    return pd.DataFrame({"trans_id": ordered["trans_id"].astype(str).to_numpy(),
                         "when": pd.to_datetime(ordered["when"]).to_numpy(),
                         "d_fraud": fraud - previous, "d_labelled": first.astype(float)})  # fmt: skip


def _seconds(values) -> np.ndarray:
    return pd.to_datetime(pd.Series(values)).to_numpy(dtype="datetime64[s]").astype(np.int64)


def entity_events(history: pd.DataFrame, lookup: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Per entity (``ENTITIES``), the verdict events of ``history`` tied to that entity's key
    through the labelled transaction's row in ``lookup`` (``key``, ``when``, ``d_fraud``,
    ``d_labelled``); labels of transactions absent from ``lookup`` are not counted."""
    events = verdict_events(history)
    empty = events.assign(key=pd.Series(dtype=object)).iloc[0:0]
    if events.empty or lookup.empty:
        return {e: empty for e in ENTITIES}
    row_of = pd.Series(np.arange(len(lookup)), index=lookup["trans_id"].astype(str).to_numpy())
    row_of = row_of[~row_of.index.duplicated(keep="last")]
    pos = row_of.reindex(events["trans_id"]).to_numpy()
    found = ~np.isnan(pos)
    events, pos = events[found], pos[found].astype(np.int64)
    keys = entity_keys(lookup)
    return {e: events.assign(key=keys[e].to_numpy()[pos]).reset_index(drop=True) for e in ENTITIES}


def risk_from_events(row_keys: dict[str, np.ndarray], row_ts, events: dict[str, pd.DataFrame],
                     windows: tuple[int, ...] = RISK_WINDOWS) -> pd.DataFrame:  # fmt: skip
    """The risk columns (0..n-1) of rows with entity keys ``row_keys[entity]`` ("" = none) at
    times ``row_ts``, from the verdict events of each entity (``entity_events``'s form): per
    window ``w`` of ``windows``, the events with ``when`` in [ts - w days, ts) of the row's key
    (``RISK_COLUMNS`` for the default windows). THE definition: the batch (``risk_features``)
    and the stream (``finsentry.stream.risk``) both compute through here."""
    n = len(row_ts)
    columns = [risk_column(e, f, w) for e in ENTITIES for w in windows for f in RISK_FEATURES]
    out = pd.DataFrame(0.0, index=np.arange(n), columns=columns)
    if n == 0:
        return out
    t_rows = _seconds(row_ts)
    longest = max(int(w) for w in windows) * 86_400
    for entity in ENTITIES:
        ev = events.get(entity)
        rows_key = np.asarray(row_keys[entity], dtype=object)
        if ev is None or ev.empty:
            continue
        ev_key = ev["key"].to_numpy(dtype=object)
        keep = ev_key != ""
        if not keep.any():
            continue
        t_events = _seconds(ev["when"])
        origin = min(t_rows.min(), t_events.min()) - longest - 1
        span = max(t_rows.max(), t_events.max()) - origin + 1
        codes, _ = pd.factorize(np.concatenate([rows_key, ev_key]))
        codes = codes.astype(np.int64)
        row_codes, ev_codes = codes[:n], codes[n:]
        key_time = ev_codes[keep] * span + (t_events[keep] - origin)
        order = np.argsort(key_time, kind="stable")
        key_time = key_time[order]
        cum_f = np.concatenate(([0.0], np.cumsum(ev["d_fraud"].to_numpy(dtype=float)[keep][order])))
        cum_l = np.concatenate(([0.0], np.cumsum(ev["d_labelled"].to_numpy(dtype=float)[keep][order])))
        base = row_codes * span + (t_rows - origin)
        hi = np.searchsorted(key_time, base, side="left")  # known strictly before the row's time
        has = rows_key != ""
        for w in windows:
            lo = np.searchsorted(key_time, base - int(w) * 86_400, side="left")
            frauds = np.where(has, np.maximum(cum_f[hi] - cum_f[lo], 0.0), 0.0)
            labelled = np.where(has, np.maximum(cum_l[hi] - cum_l[lo], 0.0), 0.0)
            out[risk_column(entity, "frauds_known_log", w)] = np.log1p(frauds)
            out[risk_column(entity, "fraud_share_known", w)] = frauds / (labelled + 1.0)
    return out


def risk_features(transactions: pd.DataFrame, history: pd.DataFrame, windows: tuple[int, ...] = RISK_WINDOWS,
                  lookup: pd.DataFrame | None = None) -> pd.DataFrame:  # fmt: skip
    """The risk columns (``RISK_COLUMNS`` for the default ``windows``) of every row of
    ``transactions`` (needs ``trans_id``, ``account_id``, ``ts``; ``partner_bank``/
    ``partner_account`` for the partner), from the label ``history``
    (``finsentry.labels.HISTORY_COLUMNS``: every verdict with its ``when``). Same index.

    The labelled transactions are looked up in ``lookup`` (default ``transactions`` itself): a
    caller scoring one day passes the day's rows and, as ``lookup``, the frame of earlier rows
    the verdicts are about."""
    if transactions.empty:
        return risk_from_events({e: np.array([], dtype=object) for e in ENTITIES}, [], {}, windows).set_axis(
            transactions.index)  # fmt: skip
    events = entity_events(history, transactions if lookup is None else lookup)
    keys = {e: k.to_numpy(dtype=object) for e, k in entity_keys(transactions).items()}
    out = risk_from_events(keys, transactions["ts"], events, windows)
    out.index = transactions.index
    return out


LABEL_DELAY_DAYS = 7  # how long an alert's investigation takes before its verdict is known (the handbook's delay)


def near_confirmed_fraud(transactions: pd.DataFrame, fraud: np.ndarray,
                         window_days: int = RISK_WINDOW_DAYS) -> np.ndarray:  # fmt: skip
    """True for rows whose account or partner has a confirmed fraud (``fraud``: a bool per row)
    among ``transactions`` within ``window_days`` of the row's time, on either side."""
    near = np.zeros(len(transactions), dtype=bool)
    if not fraud.any():
        return near
    t = _seconds(transactions["ts"])
    window = int(window_days) * 86_400
    origin, span = t.min() - window - 1, int(t.max() - t.min()) + 2 * window + 3
    for key in entity_keys(transactions).values():
        codes = pd.factorize(key.to_numpy())[0].astype(np.int64)
        has = key.to_numpy() != ""
        events = np.sort(codes[fraud & has] * span + (t[fraud & has] - origin))
        at = codes * span + (t - origin)
        count = np.searchsorted(events, at + window, side="right") - np.searchsorted(events, at - window, side="left")
        near |= has & (count > 0)
    return near


def training_target(transactions: pd.DataFrame, history: pd.DataFrame, as_of: pd.Timestamp,
                    label_delay_days: float = LABEL_DELAY_DAYS,
                    window_days: int = RISK_WINDOW_DAYS) -> tuple[pd.Series, np.ndarray]:  # fmt: skip
    """The supervised target known at ``as_of`` and the rows it may be trained on.

    Target: 1.0 where the latest verdict given before ``as_of`` confirms a fraud (or anomaly),
    0.0 where it dismisses the alert, NaN where the transaction has no verdict. Usable rows:
    those with a verdict, and the **presumed genuine** ones: unlabelled, older than
    ``label_delay_days`` (the time an investigation takes: after it, silence means "normal", the
    handbook's delayed-label protocol), and with no confirmed fraud known at ``as_of`` on the
    same account or partner within ``window_days`` of the row. The last condition keeps the
    unchecked victims of a known compromised terminal (or card) out of the negatives: trained
    as "normal", they taught the trees that a terminal's known frauds mean "normal" (AUC-ROC 0.11
    on a synthetic card bank). A recent unlabelled row may still be a fraud under investigation
    and is left out. The supervised detector reads usable NaN rows as negatives
    (``unlabelled_as_negative``).
    """
    from finsentry.labels import current_verdicts

    known = current_verdicts(history[pd.to_datetime(history["when"]) < as_of]) if len(history) else history
    target = pd.Series(np.nan, index=transactions.index)
    if len(known):
        fraud = pd.Series(known["is_fraud"].to_numpy(dtype=float), index=known["trans_id"].astype(str).to_numpy())
        target = transactions["trans_id"].astype(str).map(fraud).astype(float)
        target.index = transactions.index
    mature = (pd.to_datetime(transactions["ts"]) < as_of - pd.Timedelta(days=label_delay_days)).to_numpy()
    tainted = near_confirmed_fraud(transactions, (target == 1.0).to_numpy(), window_days)
    return target, (target.notna().to_numpy() | (mature & ~tainted))
