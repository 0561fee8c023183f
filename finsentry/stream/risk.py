"""Label-derived risk in the stream's state: what the label doors write, what the scorer reads.

The supervised candidate reads ``finsentry.label_risk.RISK_COLUMNS`` (the account's and the
partner's confirmed frauds among the verdicts known in the 1, 7 and 28 days before the
transaction; the items keep 28 days + slack, which serves every window).
The stream computes them at score time, through the batch's own definition
(``label_risk.verdict_events`` + ``label_risk.risk_from_events``), from two kinds of item in the
profiles table (beside the scorer's, ``finsentry.stream.state``):

* **risk** (key ``risk#account#<account_id>`` / ``risk#partner#<bank>/<account>``): ``l`` the
  labels of the entity's transactions, in the order the doors received them (zlib of four
  arrays: the trans_id's 64-bit hash, the label_id's first 64 bits, ``when`` in microseconds,
  confirmed-fraud bit), ``v`` the version (the doors' writes are conditional on it). Written by
  the label doors only (``record_verdicts``); the scorer only reads them, and only while the
  model it serves reads risk (``reads_risk``): the exactly-once protocol's items and writes are
  untouched. *Idempotent*: a label already in the item (same label_id) is not added again, so a
  re-sent label counts once and the latest verdict wins as ``verdict_events`` defines (greatest
  ``when``, then arrival). *Bounded*: a transaction's labels are dropped together once its
  latest ``when`` is older than ``RISK_KEEP_DAYS`` (the 28-day window + ``RISK_SLACK_DAYS`` for
  transactions that reach the scorer late); dropping them all at once keeps the events of the
  labels that stay exact (a correction's event depends on the verdict before it).
* **index** (key ``txn#<trans_id>``): ``a`` the account, ``p`` the partner key, ``x`` its
  expiry (epoch seconds, the table's TTL attribute): written by the scorer for every
  transaction it alerts on (an unconditional, idempotent ``BatchWriteItem`` after the account
  write that holds the record), read by the doors to learn which account and partner a verdict
  is about (a verdict names only the trans_id). A verdict on a transaction the stream never
  alerted on (or older than ``INDEX_TTL_DAYS``) is *unresolved*: stored in the history (the
  batch uses it) but not in the stream's risk, and counted (``LabelsUnresolved``, the doors'
  answer and log). ``frame_resolver`` resolves from a frame of transactions (the local run).
"""

from __future__ import annotations

import hashlib
import logging
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from finsentry.label_risk import ENTITIES, RISK_COLUMNS, RISK_WINDOW_DAYS, entity_keys, risk_from_events, verdict_events
from finsentry.labels import is_fraud_verdict
from finsentry.partners import stable_hash

log = logging.getLogger(__name__)

RISK_PREFIX = "risk#"
INDEX_PREFIX = "txn#"
RISK_SLACK_DAYS = 7  # transactions up to a week late still see every verdict they should
RISK_KEEP_DAYS = RISK_WINDOW_DAYS + RISK_SLACK_DAYS
INDEX_EXPIRY = "x"  # the index items' expiry attribute: the profiles table's TTL attribute (infra ingestion)
INDEX_TTL_DAYS = 120  # how long after an alert a verdict on it still reaches the stream's risk
RISK_ITEM_BUDGET = 300 * 1024  # bytes (DynamoDB's limit is 400 KB): the oldest transactions go first past it
WRITE_ATTEMPTS = 3  # a door's conditional write that lost to another door: re-read, merge, write again
_US = 1_000_000


def risk_item_key(entity: str, key: str) -> str:
    """``risk#account#<id>`` or ``risk#partner#<bank>/<account>``."""
    return f"{RISK_PREFIX}{entity}#{key}"


def index_item_key(trans_id: str) -> str:
    return INDEX_PREFIX + str(trans_id)


def reads_risk(detector: Any) -> bool:
    """Does the model read label-derived risk (the supervised candidate)?"""
    return detector is not None and bool(set(RISK_COLUMNS) & set(getattr(detector, "feature_columns", None) or ()))


# -- the items ---------------------------------------------------------------------------------------

LABEL_FIELDS = ("tid", "lid", "when_us", "fraud")


def _empty_labels() -> pd.DataFrame:
    return pd.DataFrame({"tid": np.zeros(0, np.int64), "lid": np.zeros(0, np.int64),
                         "when_us": np.zeros(0, np.int64), "fraud": np.zeros(0, np.uint8)})  # fmt: skip


@dataclass
class RiskItem:
    """The labels of one entity's transactions (arrival order) and the item's version."""

    entity: str  # "account" or "partner"
    key: str
    labels: pd.DataFrame = field(default_factory=_empty_labels)
    version: int = 0  # 0: no item yet
    corrupt: bool = False  # the stored item could not be read: the next door write replaces it

    @property
    def item_key(self) -> str:
        return risk_item_key(self.entity, self.key)


@dataclass
class IndexEntry:
    """Which account and partner ("" = none) an alerted transaction belongs to."""

    trans_id: str
    account: str
    partner: str


def encode_risk(item: RiskItem, version: int) -> dict[str, Any]:
    lab = item.labels
    raw = (lab["tid"].to_numpy(dtype="<i8").tobytes() + lab["lid"].to_numpy(dtype="<i8").tobytes()
           + lab["when_us"].to_numpy(dtype="<i8").tobytes() + lab["fraud"].to_numpy(dtype="u1").tobytes())  # fmt: skip
    return {"account_id": {"S": item.item_key}, "v": {"N": str(version)}, "l": {"B": zlib.compress(raw, 6)}}


def decode_risk(raw: dict[str, Any]) -> RiskItem:
    """A risk item as stored (raises ValueError/KeyError/zlib.error on a foreign one)."""
    key = raw["account_id"]["S"]
    entity, _, name = key[len(RISK_PREFIX):].partition("#")
    if entity not in ENTITIES or not name:
        raise ValueError(f"not a risk key: {key}")
    blob = zlib.decompress(bytes(raw["l"]["B"])) if "l" in raw else b""
    if len(blob) % 25:
        raise ValueError("risk labels of a foreign layout")
    n = len(blob) // 25
    labels = pd.DataFrame({
        "tid": np.frombuffer(blob[:8 * n], dtype="<i8").astype(np.int64),
        "lid": np.frombuffer(blob[8 * n:16 * n], dtype="<i8").astype(np.int64),
        "when_us": np.frombuffer(blob[16 * n:24 * n], dtype="<i8").astype(np.int64),
        "fraud": np.frombuffer(blob[24 * n:], dtype="u1").astype(np.uint8),
    })  # fmt: skip
    return RiskItem(entity, name, labels, int(raw["v"]["N"]))


def encode_index(entry: IndexEntry, expires: int) -> dict[str, Any]:
    return {"account_id": {"S": index_item_key(entry.trans_id)}, "a": {"S": entry.account},
            "p": {"S": entry.partner}, INDEX_EXPIRY: {"N": str(int(expires))}}  # fmt: skip


def decode_index(raw: dict[str, Any]) -> IndexEntry:
    return IndexEntry(raw["account_id"]["S"][len(INDEX_PREFIX):], raw["a"]["S"], raw.get("p", {}).get("S", ""))


def index_entries(scored: pd.DataFrame, valid: pd.DataFrame) -> list[IndexEntry]:
    """The index entries of alerted rows: ``scored`` (verdicts) aligned with ``valid`` (records)."""
    if scored.empty:
        return []
    alert = (scored["verdict"] == "alert").to_numpy()
    if not alert.any():
        return []
    rows = valid[alert]
    keys = entity_keys(rows)
    return [IndexEntry(str(t), str(a), str(p)) for t, a, p in
            zip(rows["trans_id"], keys["account"], keys["partner"], strict=True)]  # fmt: skip


# -- labels in: the doors' side ----------------------------------------------------------------------


def label_rows(labels: pd.DataFrame) -> pd.DataFrame:
    """Validated labels (``finsentry.labels``: trans_id, verdict, when, label_id), in arrival
    order, as the items keep them."""
    if labels.empty:
        return _empty_labels()
    when = pd.to_datetime(labels["when"]).to_numpy(dtype="datetime64[us]").astype(np.int64)
    lid = np.array([_digest64(str(x)) for x in labels["label_id"]], dtype=np.int64)
    return pd.DataFrame({"tid": stable_hash(labels["trans_id"].astype(str)), "lid": lid, "when_us": when,
                         "fraud": is_fraud_verdict(labels["verdict"]).astype(np.uint8)})  # fmt: skip


def _digest64(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big", signed=True)


def merge_into(item: RiskItem, new: pd.DataFrame, now: pd.Timestamp) -> bool:
    """Append the labels of ``new`` (``label_rows``) the item lacks, then drop the transactions
    whose latest verdict is older than ``RISK_KEEP_DAYS`` before ``now`` (and, past
    ``RISK_ITEM_BUDGET``, the oldest ones: logged). Whether the item changed."""
    before = item.labels
    fresh = new[~new["lid"].isin(before["lid"])].drop_duplicates("lid")
    labels = pd.concat([before, fresh], ignore_index=True) if len(fresh) else before
    cutoff = int(pd.Timestamp(now).value // 1000) - RISK_KEEP_DAYS * 86_400 * _US
    latest = labels.groupby("tid")["when_us"].transform("max")
    labels = labels[latest.to_numpy() >= cutoff].reset_index(drop=True)
    while len(labels) and 25 * len(labels) > RISK_ITEM_BUDGET:  # before compression: an upper bound
        latest = labels.groupby("tid")["when_us"].transform("max")
        oldest = latest.min()
        log.error("risk item %s over its budget: the transactions last labelled at %s are dropped",
                  item.item_key, pd.Timestamp(int(oldest), unit="us"))  # fmt: skip
        labels = labels[latest.to_numpy() > oldest].reset_index(drop=True)
    changed = len(labels) != len(before) or not labels["lid"].equals(before["lid"].reset_index(drop=True))
    item.labels = labels.astype({"tid": np.int64, "lid": np.int64, "when_us": np.int64, "fraud": np.uint8})
    return bool(changed)


Resolver = Callable[[list[str]], dict[str, IndexEntry]]


def frame_resolver(transactions: pd.DataFrame) -> Resolver:
    """Resolve trans_ids from a frame of transactions (the local run: the transactions it holds)."""
    keys = entity_keys(transactions)
    by_id = {str(t): IndexEntry(str(t), str(a), str(p))
             for t, a, p in zip(transactions["trans_id"], keys["account"], keys["partner"], strict=True)}  # fmt: skip
    return lambda ids: {t: by_id[t] for t in ids if t in by_id}


@dataclass
class RiskUpdate:
    """What ``record_verdicts`` did: ``labels == resolved + unresolved`` (valid labels given)."""

    labels: int = 0
    resolved: int = 0
    unresolved: list[str] = field(default_factory=list)  # trans_ids not in the index (counted, logged)
    written: int = 0  # risk items written
    failed: list[str] = field(default_factory=list)  # risk item keys not written (read or write failed)

    def counts(self) -> dict[str, int]:
        return {"risk_labels": self.labels, "risk_resolved": self.resolved, "unresolved": len(self.unresolved),
                "risk_items_written": self.written, "risk_write_failures": len(self.failed)}  # fmt: skip


def record_verdicts(store, labels: pd.DataFrame, now: pd.Timestamp, resolve: Resolver | None = None) -> RiskUpdate:
    """Feed validated labels (new or already known: a re-sent label repairs a write that failed,
    and counts once) into the risk items of their transactions' accounts and partners.

    ``store``: a ``finsentry.stream.profiles.ProfileStore`` on the profiles table; ``resolve``:
    trans_ids -> their account and partner (default: the scorer's index ``txn#<trans_id>``)."""
    run = RiskUpdate(labels=len(labels))
    if labels.empty:
        return run
    ids = list(dict.fromkeys(labels["trans_id"].astype(str)))
    found = resolve(ids) if resolve is not None else _resolve_index(store, ids)
    tid = labels["trans_id"].astype(str)
    known = tid.isin(list(found)).to_numpy()
    run.resolved = int(known.sum())
    run.unresolved = [t for t in ids if t not in found]
    if run.unresolved:
        log.warning("%d verdict(s) name a transaction the stream did not alert on (or whose index expired): "
                    "not in the stream's risk: %s", len(run.unresolved), ", ".join(run.unresolved[:20]))  # fmt: skip
    rows = label_rows(labels[known].reset_index(drop=True))
    wanted: dict[str, pd.DataFrame] = {}
    for entity in ENTITIES:
        keys = np.array([getattr(found[t], entity) for t in tid[known]], dtype=object)
        for key in dict.fromkeys(keys):
            if key:
                wanted[risk_item_key(entity, key)] = rows[keys == key]
    pending = dict(wanted)
    for _ in range(WRITE_ATTEMPTS):
        if not pending:
            break
        read, unreadable, corrupt = store.load(pending)
        writes = {}
        for key, new in pending.items():
            if key in unreadable:
                continue
            entity, _, name = key[len(RISK_PREFIX):].partition("#")
            item = read.get(key)
            if key in corrupt:
                log.error("risk item %s cannot be read: it is replaced", key)
                item = RiskItem(entity, name, version=-1, corrupt=True)
            elif not isinstance(item, RiskItem):
                item = RiskItem(entity, name)
            if not merge_into(item, new, now) and not item.corrupt and (item.version > 0 or item.labels.empty):
                continue  # nothing new for it (a re-sent label) or nothing left in the window
            writes[key] = (encode_risk(item, max(item.version, 0) + 1), item.version)
        failed = store.put(writes) if writes else set()
        run.written += len(writes) - len(failed)
        pending = {k: v for k, v in pending.items() if k in failed or k in unreadable}
    run.failed = sorted(pending)
    if run.failed:
        log.error("risk items not written (the labels are in the history; re-send them to repair): %s",
                  ", ".join(run.failed[:20]))  # fmt: skip
    return run


def _resolve_index(store, ids: list[str]) -> dict[str, IndexEntry]:
    read, unreadable, _ = store.load([index_item_key(t) for t in ids])
    if unreadable:
        log.warning("%d index item(s) could not be read: their verdicts count as unresolved", len(unreadable))
    return {e.trans_id: e for e in read.values() if isinstance(e, IndexEntry)}


# -- risk out: the scorer's side ---------------------------------------------------------------------


def risk_keys(valid: pd.DataFrame) -> set[str]:
    """The risk items the rows of ``valid`` need."""
    if valid.empty:
        return set()
    keys = entity_keys(valid)
    return {risk_item_key(e, k) for e in ENTITIES for k in set(keys[e]) if k}


def stream_risk(valid: pd.DataFrame, items: dict[str, Any]) -> pd.DataFrame:
    """``RISK_COLUMNS`` of the rows of ``valid`` (0..n-1) from the risk items read (``items``
    maps item keys to what the store read; absent = no verdict known): the batch's definition,
    ``label_risk.verdict_events`` per entity then ``label_risk.risk_from_events``."""
    keys = entity_keys(valid)
    events = {}
    for entity in ENTITIES:
        parts = []
        for key in dict.fromkeys(k for k in keys[entity] if k):
            item = items.get(risk_item_key(entity, key))
            if isinstance(item, RiskItem) and len(item.labels):
                parts.append(item.labels.assign(key=key))
        if not parts:
            continue
        lab = pd.concat(parts, ignore_index=True)
        owner = pd.Series(lab["key"].to_numpy(), index=lab["tid"].astype(str).to_numpy())
        owner = owner[~owner.index.duplicated(keep="last")]
        history = pd.DataFrame({"trans_id": lab["tid"].astype(str), "when": pd.to_datetime(lab["when_us"], unit="us"),
                                "is_fraud": lab["fraud"].astype(bool)})  # fmt: skip
        ev = verdict_events(history)
        events[entity] = ev.assign(key=owner.reindex(ev["trans_id"]).to_numpy())
    return risk_from_events({e: k.to_numpy(dtype=object) for e, k in keys.items()}, valid["ts"], events)


def seed_items(labels: pd.DataFrame, resolve: Resolver, now: pd.Timestamp) -> list[dict[str, Any]]:
    """Risk items of version 1 for a label history (seeding a table in bulk: the local run)."""
    found = resolve(list(dict.fromkeys(labels["trans_id"].astype(str))))
    tid = labels["trans_id"].astype(str)
    known = tid.isin(list(found)).to_numpy()
    rows = label_rows(labels[known].reset_index(drop=True))
    out = []
    for entity in ENTITIES:
        keys = np.array([getattr(found[t], entity) for t in tid[known]], dtype=object)
        for key in dict.fromkeys(keys):
            if key:
                item = RiskItem(entity, str(key))
                merge_into(item, rows[keys == key], now)
                if len(item.labels):
                    out.append(encode_risk(item, 1))
    return out


def item_keys(items: Iterable[dict[str, Any]]) -> list[str]:
    return [i["account_id"]["S"] for i in items]
