"""``AccountProfile``s and ``PartnerProfile``s in DynamoDB: one batch read, conditional batch
writes, and an outbox.

Item layout (table key ``account_id``, a string: the account, or ``partner#`` + the partner key
for a partner's profile, which has the same attributes but never an outbox):

* ``f``, ``i`` — the profile's two state arrays as little-endian binary (vectorised, no base64);
* ``recent_ids`` — JSON list of the last trans_ids folded in (the redelivery guard);
* ``version`` — incremented on every write; each write is conditional on the version read, so
  two writers can never both fold a batch into the same profile (the loser's records retry);
* ``outbox`` — JSON ``{trans_id: {"scored": line, "alert": message, "at": epoch s}}``: outputs of
  transactions already folded into the profile but not yet delivered. It is written in the SAME
  conditional write as the state (write-ahead), and trimmed once Firehose / SNS accepted them,
  so a redelivered transaction is never folded twice, never alerts twice, and its outputs are
  delivered even when the first delivery failed.

Reads use ``BatchGetItem`` (100 keys per call; unprocessed keys are retried, then reported).
Writes are one conditional ``PutItem`` / ``UpdateItem`` per account, ``workers`` in flight at
once: ``BatchWriteItem`` takes no conditions, and ``TransactWriteItems`` would fail every account
of a transaction for one throttled item (and costs twice the write units). Every failure comes
back as the set of accounts it affected, never as an exception.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from botocore.exceptions import BotoCoreError, ClientError

from finsentry.features import F_SIZE, I_SIZE, AccountProfile
from finsentry.partners import PartnerProfile

log = logging.getLogger(__name__)

READ_CHUNK = 100  # BatchGetItem limit
WRITE_WORKERS = 8  # conditional writes in flight at once (DynamoDB has no conditional batch write)
READ_ATTEMPTS = 4  # attempts for unprocessed keys (exponential backoff from READ_BACKOFF_S)
READ_BACKOFF_S = 0.02
OUTBOX_TTL_S = 7 * 86_400  # undelivered outputs older than this are dropped (and logged)
PARTNER_PREFIX = "partner#"  # table key of a partner's profile: PARTNER_PREFIX + partner key


def partner_item_key(partner: str) -> str:
    return PARTNER_PREFIX + partner


@dataclass
class StoredProfile:
    """A profile as read: the state, its version (0 = no item yet) and its undelivered outputs."""

    profile: AccountProfile | PartnerProfile
    version: int = 0
    outbox: dict[str, dict[str, Any]] = field(default_factory=dict)


def encode_item(stored: StoredProfile, version: int) -> dict[str, Any]:
    p = stored.profile
    key = partner_item_key(p.partner) if isinstance(p, PartnerProfile) else p.account_id
    item: dict[str, Any] = {
        "account_id": {"S": key},
        "f": {"B": np.ascontiguousarray(p.f, dtype="<f8").tobytes()},
        "i": {"B": np.ascontiguousarray(p.i, dtype="<i8").tobytes()},
        "recent_ids": {"S": json.dumps(p.recent_ids)},
        "version": {"N": str(version)},
    }
    if stored.outbox:
        item["outbox"] = {"S": json.dumps(stored.outbox)}
    return item


def decode_item(item: dict[str, Any]) -> StoredProfile:
    f, i = item["f"]["B"], item["i"]["B"]
    key = item["account_id"]["S"]
    if key.startswith(PARTNER_PREFIX):
        partner = PartnerProfile.from_arrays(key[len(PARTNER_PREFIX):], f, i,
                                             json.loads(item.get("recent_ids", {}).get("S", "[]")))  # fmt: skip
        return StoredProfile(profile=partner, version=int(item["version"]["N"]))
    if len(f) != 8 * F_SIZE or len(i) != 8 * I_SIZE:
        raise ValueError(f"profile of account {item['account_id']['S']} has a foreign layout")
    profile = AccountProfile(
        account_id=item["account_id"]["S"],
        f=np.frombuffer(f, dtype="<f8").astype(np.float64),
        i=np.frombuffer(i, dtype="<i8").astype(np.int64),
        recent_ids=json.loads(item.get("recent_ids", {}).get("S", "[]")),
    )
    outbox = json.loads(item["outbox"]["S"]) if "outbox" in item else {}
    return StoredProfile(profile=profile, version=int(item["version"]["N"]), outbox=outbox)


class ProfileStore:
    """The profiles table, through a boto3 DynamoDB client (low-level API: no type serializer)."""

    def __init__(self, client, table: str, workers: int = WRITE_WORKERS, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        self.client = client
        self.table = table
        self.workers = workers  # conditional writes in flight at once (boto3 clients are thread-safe)
        self.sleep = sleep
        self.clock = clock

    # -- read --
    def load(self, accounts: Iterable[str]) -> tuple[dict[str, StoredProfile], set[str]]:
        """The stored profiles of ``accounts`` (missing ones are absent) and the accounts that
        could not be read (throttled past the retries, service error, unreadable item). Keys of
        partner profiles (``partner_item_key``) are read alike, in the same calls."""
        wanted = sorted(set(accounts))
        found: dict[str, StoredProfile] = {}
        failed: set[str] = set()
        for start in range(0, len(wanted), READ_CHUNK):
            chunk = wanted[start:start + READ_CHUNK]  # fmt: skip
            request = {self.table: {"Keys": [{"account_id": {"S": a}} for a in chunk], "ConsistentRead": True}}
            for attempt in range(READ_ATTEMPTS):
                try:
                    answer = self.client.batch_get_item(RequestItems=request)
                except (ClientError, BotoCoreError) as exc:
                    log.warning("profile read failed for %d accounts: %s", len(chunk), exc)
                    failed.update(k["account_id"]["S"] for k in request[self.table]["Keys"])
                    break
                for item in answer.get("Responses", {}).get(self.table, []):
                    try:
                        found[item["account_id"]["S"]] = decode_item(item)
                    except (KeyError, ValueError, TypeError) as exc:
                        log.error("unreadable profile item: %s", exc)
                        failed.add(str(item.get("account_id", {}).get("S", "")))
                request = answer.get("UnprocessedKeys") or {}
                if not request.get(self.table, {}).get("Keys"):
                    break
                if attempt + 1 == READ_ATTEMPTS:
                    failed.update(k["account_id"]["S"] for k in request[self.table]["Keys"])
                else:
                    self.sleep(READ_BACKOFF_S * 2**attempt)
        return found, failed

    # -- write --
    def save(self, stored: dict[str, StoredProfile]) -> set[str]:
        """Write each profile conditionally on the version it was read with; bump the version.

        Returns the accounts whose write failed (their ``version`` is left unchanged). Undelivered
        outbox entries older than ``OUTBOX_TTL_S`` are dropped here.
        """
        now = self.clock()
        for acc, s in stored.items():
            stale = [t for t, e in s.outbox.items() if now - float(e.get("at", now)) > OUTBOX_TTL_S]
            for t in stale:
                log.error("dropping undelivered outputs of %s on %s (older than %d s)", t, acc, OUTBOX_TTL_S)
                del s.outbox[t]
        ops = []
        for acc, s in stored.items():
            put: dict[str, Any] = {"TableName": self.table, "Item": encode_item(s, s.version + 1)}
            if s.version == 0:
                put["ConditionExpression"] = "attribute_not_exists(account_id)"
            else:
                put["ConditionExpression"] = "version = :v"
                put["ExpressionAttributeValues"] = {":v": {"N": str(s.version)}}
            ops.append((acc, "put_item", put))
        failed = self._each(ops)
        for acc, s in stored.items():
            if acc not in failed:
                s.version += 1
        return failed

    def trim_outbox(self, stored: dict[str, StoredProfile]) -> set[str]:
        """Persist each profile's outbox as it is now (delivered entries removed), conditional on
        its current version. Returns the accounts whose update failed."""
        ops = []
        for acc, s in stored.items():
            update: dict[str, Any] = {
                "TableName": self.table, "Key": {"account_id": {"S": acc}},
                "ConditionExpression": "version = :v", "ExpressionAttributeValues": {":v": {"N": str(s.version)}},
            }  # fmt: skip
            if s.outbox:
                update["UpdateExpression"] = "SET outbox = :o"
                update["ExpressionAttributeValues"][":o"] = {"S": json.dumps(s.outbox)}
            else:
                update["UpdateExpression"] = "REMOVE outbox"
            ops.append((acc, "update_item", update))
        return self._each(ops)

    def _each(self, ops: list[tuple[str, str, dict[str, Any]]]) -> set[str]:
        """Run one conditional call per account (``workers`` at a time); return the accounts whose
        call failed: condition not met (another writer), throttled past botocore's retries, or
        any service error. Each account stands alone: one failure never fails another account."""

        def one(op: tuple[str, str, dict[str, Any]]) -> str | None:
            acc, method, kwargs = op
            try:
                getattr(self.client, method)(**kwargs)
                return None
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                if code == "ConditionalCheckFailedException":
                    log.warning("profile of %s changed since it was read: its records retry", acc)
                else:
                    log.warning("profile write failed for %s: %s", acc, code or exc)
            except BotoCoreError as exc:
                log.warning("profile write failed for %s: %s", acc, exc)
            return acc

        if self.workers <= 1 or len(ops) <= 1:
            results = [one(op) for op in ops]
        else:
            with ThreadPoolExecutor(max_workers=self.workers) as pool:
                results = list(pool.map(one, ops))
        return {acc for acc in results if acc is not None}
