"""The scorer's durable state: the three kinds of item in the profiles table, and their encoding.

Table key ``account_id`` (a string). Attribute names are one letter: every byte of an item is
billed on every write (write units are 1 KB steps; ``finsentry.cost`` reads the sizes measured
here, ``bench.stream`` prints them).

* **account** (key = the account id): ``s`` the ``AccountProfile`` state (f and i arrays and the
  LSTM's last ``SEQUENCE_WINDOW`` steps ``q``: codes in two bytes, amounts; zlib, lossless: the
  features and sequence columns stay exactly those of the batch form); ``c`` the checkpoints: per
  channel (Kinesis shard, Kafka topic-partition), the highest sequence number folded in (JSON);
  ``g`` the producer-resend guard: 8-byte hashes of the last ``GUARD`` trans_ids folded in;
  ``o`` the outbox: per record folded by the last writes, its *recipe* (score, verdict, anomaly
  type, reasons, model version, threshold, time): with the redelivered record itself it rebuilds
  that record's scored row and alert exactly; ``v`` the version (every write is conditional on
  the version read).
* **partner** (key ``partner#<bank>/<account>``): ``s`` the ``PartnerProfile`` state, ``c`` its
  checkpoints, ``v``.
* **risk** (``risk#account#<id>``, ``risk#partner#<key>``) and **index** (``txn#<trans_id>``):
  label-derived risk, written by the label doors, read by the scorer; the index, written by the
  scorer for its alerts, read by the doors (``finsentry.stream.risk``).
* **channel** (key ``channel#<channel>``): what is complete along one channel: ``t`` (through) —
  every record with a sequence number up to it is complete; ``d`` — the records above ``t``
  that a delivery has seen: complete (``*``), outputs partly delivered (``s`` scored row, ``a``
  alert) or nothing complete yet (``""``: the entry that holds ``t`` below it); ``v``. One
  write per batch and channel: the mark that outputs were delivered.

Decoding never raises on a bad item: ``decode`` returns None and the caller treats the item as
corrupt (see ``finsentry.stream.protocol``).

**Old layout** (before issue 15: ``f``, ``i`` raw arrays, ``recent_ids`` JSON, ``version``,
``outbox`` JSON of finished outputs): read on first touch, not replaced. ``decode`` gives the
same profile with ``legacy`` set: no checkpoints (the old items have no positions), the guard
holds the hashes of all its ``recent_ids`` (up to 256, so a redelivery of what the old scorer
folded is recognised as a resend at the cut-over), empty sequence steps (the old state has
none). The scorer's next write of that item is conditional on the old ``version`` attribute and
writes the new layout (``v`` = old version + 1). Outputs left in an old outbox (the old scorer
holds them only between its profile write and its outbox trim) are logged, not re-sent. Items
never touched again stay in the old layout, readable.
"""

from __future__ import annotations

import json
import logging
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from finsentry.features import F_SIZE, I_SIZE, SEQUENCE_WINDOW, AccountProfile, new_sequence_state
from finsentry.partners import P_SIZE, Q_SIZE, PartnerProfile, stable_hash
from finsentry.stream.risk import INDEX_PREFIX, RISK_PREFIX, IndexEntry, RiskItem, decode_index, decode_risk

log = logging.getLogger(__name__)

PARTNER_PREFIX = "partner#"
CHANNEL_PREFIX = "channel#"
GUARD = 8  # trans_id hashes kept per account: a producer's resend among the last GUARD is recognised
MAX_CHANNELS = 4  # checkpoints kept per item (resharding adds channels; the oldest closed ones go)
ITEM_LIMIT = 400 * 1024  # DynamoDB's item size limit
ITEM_BUDGET = 300 * 1024  # what an account item may reach (the hot-account split keeps it below)
COMPLETE = "*"


def partner_item_key(partner: str) -> str:
    return PARTNER_PREFIX + partner


def channel_item_key(channel: str) -> str:
    return CHANNEL_PREFIX + channel


def trans_hashes(trans_ids: list[str]) -> list[int]:
    return stable_hash(pd.Series(trans_ids, dtype=object)).tolist() if trans_ids else []


@dataclass
class AccountItem:
    profile: AccountProfile
    version: int = 0  # 0 = no item yet
    checkpoints: dict[str, int] = field(default_factory=dict)
    guard: list[int] = field(default_factory=list)
    outbox: dict[str, dict[str, Any]] = field(default_factory=dict)  # "<channel> <seq>" -> recipe
    corrupt: bool = False  # the stored item could not be read: replaced by a fresh one
    legacy: bool = False  # read from the old layout: the next write is conditional on its ``version``


@dataclass
class PartnerItem:
    profile: PartnerProfile
    version: int = 0
    checkpoints: dict[str, int] = field(default_factory=dict)
    corrupt: bool = False
    legacy: bool = False


@dataclass
class ChannelMark:
    channel: str
    version: int = 0
    through: int = -1
    done: dict[int, str] = field(default_factory=dict)  # seq above ``through`` seen -> "*", outputs delivered or ""

    def delivered(self, seq: int) -> str:
        """What of the record at ``seq`` is complete: "*" all, "s"/"a"/"sa" outputs, "" nothing."""
        return COMPLETE if seq <= self.through else self.done.get(seq, "")


def outbox_key(channel: str, seq: int) -> str:
    return f"{channel} {seq}"


def _checkpoints(data: dict[str, int]) -> str:
    if not data:
        return "{}"  # json.dumps({}), without the encoder
    keep = sorted(data.items(), key=lambda kv: -kv[1])[:MAX_CHANNELS] if len(data) > MAX_CHANNELS else data.items()
    return json.dumps({k: str(v) for k, v in keep}, separators=(",", ":"))


Q_BYTES = 2 * SEQUENCE_WINDOW + 8 * SEQUENCE_WINDOW  # the LSTM's steps: codes as uint16, amounts as float64


def _state_bytes(f: np.ndarray, i: np.ndarray, q: np.ndarray | None = None) -> bytes:
    raw = np.ascontiguousarray(f, dtype="<f8").tobytes() + np.ascontiguousarray(i, dtype="<i8").tobytes()
    if q is not None:  # accounts: the sequence steps (codes are small integers: two bytes each)
        raw += (np.asarray(q[:SEQUENCE_WINDOW]).astype("<u2").tobytes()
                + np.ascontiguousarray(q[SEQUENCE_WINDOW:], dtype="<f8").tobytes())  # fmt: skip
    return zlib.compress(raw, 3)  # level 3: ~4 % larger than 9, five times faster (bench.stream)


def _arrays(blob: bytes, n_f: int, n_i: int, with_q: bool = False) -> tuple[np.ndarray, ...]:
    """f, i (and q for an account) of a state blob. An account state without its sequence
    steps (written before they were kept) gets empty ones: the LSTM sees no history for the
    account's next transactions, up to ``SEQUENCE_WINDOW`` of them (docs/operations.md)."""
    raw = zlib.decompress(blob)
    base = 8 * (n_f + n_i)
    if len(raw) not in ((base, base + Q_BYTES) if with_q else (base,)):
        raise ValueError("state of a foreign layout")
    f = np.frombuffer(raw, dtype="<f8", count=n_f).astype(np.float64)  # copies: writable, native order
    i = np.frombuffer(raw, dtype="<i8", count=n_i, offset=8 * n_f).astype(np.int64)
    if not with_q:
        return f, i
    q = new_sequence_state()
    if len(raw) > base:
        q[:SEQUENCE_WINDOW] = np.frombuffer(raw, dtype="<u2", count=SEQUENCE_WINDOW, offset=base)
        q[SEQUENCE_WINDOW:] = np.frombuffer(raw, dtype="<f8", count=SEQUENCE_WINDOW, offset=base + 2 * SEQUENCE_WINDOW)
    return f, i, q


def encode_account(item: AccountItem, version: int) -> dict[str, Any]:
    p = item.profile
    out: dict[str, Any] = {
        "account_id": {"S": p.account_id}, "v": {"N": str(version)}, "s": {"B": _state_bytes(p.f, p.i, p.q)},
        "c": {"S": _checkpoints(item.checkpoints)},
    }  # fmt: skip
    if item.guard:
        out["g"] = {"B": np.asarray(item.guard[-GUARD:], dtype="<i8").tobytes()}
    if item.outbox:
        out["o"] = {"B": zlib.compress(json.dumps(item.outbox, separators=(",", ":")).encode(), 9)}
    return out


def encode_partner(item: PartnerItem, version: int) -> dict[str, Any]:
    p = item.profile
    return {"account_id": {"S": partner_item_key(p.partner)}, "v": {"N": str(version)},
            "s": {"B": _state_bytes(p.f, p.i)}, "c": {"S": _checkpoints(item.checkpoints)}}  # fmt: skip


def encode_mark(mark: ChannelMark, version: int) -> dict[str, Any]:
    out: dict[str, Any] = {"account_id": {"S": channel_item_key(mark.channel)}, "v": {"N": str(version)},
                           "t": {"S": str(mark.through)}}  # fmt: skip
    above = {str(s - mark.through): d for s, d in sorted(mark.done.items()) if s > mark.through}
    if above:
        out["d"] = {"B": zlib.compress(json.dumps(above, separators=(",", ":")).encode(), 9)}
    return out


def item_bytes(item: dict[str, Any]) -> int:
    """DynamoDB's size of an item: attribute names plus values (numbers counted as their text)."""
    n = 0
    for name, value in item.items():
        n += len(name.encode())
        (kind, v), = value.items()
        n += len(bytes(v)) if kind == "B" else len(str(v).encode())
    return n


def _version(raw: dict[str, Any]) -> int:
    try:
        return int(raw["v"]["N"])
    except (KeyError, TypeError, ValueError):
        return -1  # unknown: a replacement is written conditional on the item existing


def _int_map(text: str) -> dict[str, int]:
    if text == "{}":
        return {}
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("checkpoints are not a mapping")
    return {str(k): int(v) for k, v in data.items()}


def expected_version(item: AccountItem | PartnerItem) -> int | tuple[str, int]:
    """What the next write of ``item`` is conditional on (``ProfileStore.put``): its version;
    -1 over a corrupt item (it must exist); ("version", n) over an item of the old layout."""
    if item.legacy:
        return ("version", item.version)
    return item.version if not item.corrupt or item.version > 0 else -1


def _legacy(raw: dict[str, Any], key: str) -> AccountItem | PartnerItem:
    """An item of the old layout (``f``, ``i``, ``recent_ids``, ``version``, ``outbox``)."""
    version = int(raw["version"]["N"])
    f = np.frombuffer(bytes(raw["f"]["B"]), dtype="<f8").astype(np.float64)
    i = np.frombuffer(bytes(raw["i"]["B"]), dtype="<i8").astype(np.int64)
    ids = json.loads(raw.get("recent_ids", {}).get("S", "[]"))
    if not isinstance(ids, list):
        raise ValueError("recent_ids is not a list")
    if key.startswith(PARTNER_PREFIX):
        if (len(f), len(i)) != (P_SIZE, Q_SIZE):
            raise ValueError("state of a foreign layout")
        return PartnerItem(PartnerProfile(key[len(PARTNER_PREFIX):], f, i), version, legacy=True)
    if (len(f), len(i)) != (F_SIZE, I_SIZE):
        raise ValueError("state of a foreign layout")
    if "outbox" in raw:
        owed = json.loads(raw["outbox"]["S"])
        if owed:
            log.error("old-layout profile %s holds undelivered outputs of the old scorer, not re-sent: %s",
                      key, ", ".join(sorted(map(str, owed))))  # fmt: skip
    return AccountItem(AccountProfile(key, f, i), version, guard=trans_hashes([str(t) for t in ids]), legacy=True)


def decode(raw: dict[str, Any]) -> AccountItem | PartnerItem | ChannelMark | RiskItem | IndexEntry | None:
    """The item as stored; None when it cannot be read (corrupt or of a foreign layout)."""
    try:
        key = raw["account_id"]["S"]
        if key.startswith(RISK_PREFIX):  # written by the label doors (finsentry.stream.risk)
            return decode_risk(raw)
        if key.startswith(INDEX_PREFIX):
            return decode_index(raw)
        if "v" not in raw and "version" in raw and "f" in raw:
            return _legacy(raw, key)
        version = int(raw["v"]["N"])
        if key.startswith(CHANNEL_PREFIX):
            through = int(raw["t"]["S"])
            done = json.loads(zlib.decompress(bytes(raw["d"]["B"]))) if "d" in raw else {}
            return ChannelMark(key[len(CHANNEL_PREFIX):], version, through,
                               {through + int(k): str(v) for k, v in done.items()})  # fmt: skip
        checkpoints = _int_map(raw["c"]["S"])
        if key.startswith(PARTNER_PREFIX):
            f, i = _arrays(bytes(raw["s"]["B"]), P_SIZE, Q_SIZE)
            return PartnerItem(PartnerProfile(key[len(PARTNER_PREFIX):], f, i), version, checkpoints)
        f, i, q = _arrays(bytes(raw["s"]["B"]), F_SIZE, I_SIZE, with_q=True)
        guard = np.frombuffer(bytes(raw["g"]["B"]), dtype="<i8").tolist() if "g" in raw else []
        outbox = json.loads(zlib.decompress(bytes(raw["o"]["B"]))) if "o" in raw else {}
        if not isinstance(outbox, dict):
            raise ValueError("outbox is not a mapping")
        return AccountItem(AccountProfile(key, f, i, q=q), version, checkpoints, [int(g) for g in guard], outbox)
    except (KeyError, TypeError, ValueError, AttributeError, zlib.error):
        return None


def fresh_item(key: str, raw: dict[str, Any] | None = None) -> AccountItem | PartnerItem:
    """A new item for ``key``; over a corrupt stored one (``raw``), it replaces that item."""
    version = 0 if raw is None else _version(raw)
    corrupt = raw is not None
    if key.startswith(PARTNER_PREFIX):
        return PartnerItem(PartnerProfile(key[len(PARTNER_PREFIX):]), version=version, corrupt=corrupt)
    return AccountItem(AccountProfile(key), version=version, corrupt=corrupt)


def initial_items(profiles: dict[str, AccountProfile], partners: dict[str, PartnerProfile]) -> list[dict[str, Any]]:
    """Items of version 1 for profiles built from history (seeding a table in bulk)."""
    return ([encode_account(AccountItem(p), 1) for p in profiles.values()]
            + [encode_partner(PartnerItem(p), 1) for p in partners.values()])  # fmt: skip
