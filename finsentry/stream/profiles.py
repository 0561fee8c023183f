"""``AccountProfile``s in DynamoDB: one batch read, conditional batch writes, and an outbox.

Item layout (table key ``account_id``, a string):

* ``f``, ``i`` — the profile's two state arrays as little-endian binary (vectorised, no base64);
* ``recent_ids`` — JSON list of the last trans_ids folded in (the redelivery guard);
* ``version`` — incremented on every write; each write is conditional on the version read, so
  two writers can never both fold a batch into the same profile (the loser's records retry);
* ``outbox`` — JSON ``{trans_id: {"scored": line, "alert": message, "at": epoch s}}``: outputs of
  transactions already folded into the profile but not yet delivered. It is written in the SAME
  conditional write as the state (write-ahead), and trimmed once Firehose / SNS accepted them,
  so a redelivered transaction is never folded twice, never alerts twice, and its outputs are
  delivered even when the first delivery failed.

Reads use ``BatchGetItem`` (100 keys per call; unprocessed keys are retried, then reported);
writes use ``TransactWriteItems`` (up to ``write_chunk`` conditional puts per call). Every
failure comes back as the set of accounts it affected, never as an exception.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from botocore.exceptions import BotoCoreError, ClientError

from finsentry.features import F_SIZE, I_SIZE, AccountProfile

log = logging.getLogger(__name__)

READ_CHUNK = 100  # BatchGetItem limit
WRITE_CHUNK = 100  # TransactWriteItems limit
READ_ATTEMPTS = 4  # attempts for unprocessed keys (exponential backoff from READ_BACKOFF_S)
READ_BACKOFF_S = 0.02
OUTBOX_TTL_S = 7 * 86_400  # undelivered outputs older than this are dropped (and logged)


@dataclass
class StoredProfile:
    """A profile as read: the state, its version (0 = no item yet) and its undelivered outputs."""

    profile: AccountProfile
    version: int = 0
    outbox: dict[str, dict[str, Any]] = field(default_factory=dict)


def _encode(stored: StoredProfile, version: int) -> dict[str, Any]:
    p = stored.profile
    item: dict[str, Any] = {
        "account_id": {"S": p.account_id},
        "f": {"B": np.ascontiguousarray(p.f, dtype="<f8").tobytes()},
        "i": {"B": np.ascontiguousarray(p.i, dtype="<i8").tobytes()},
        "recent_ids": {"S": json.dumps(p.recent_ids)},
        "version": {"N": str(version)},
    }
    if stored.outbox:
        item["outbox"] = {"S": json.dumps(stored.outbox)}
    return item


def _decode(item: dict[str, Any]) -> StoredProfile:
    f, i = item["f"]["B"], item["i"]["B"]
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

    def __init__(self, client, table: str, write_chunk: int = WRITE_CHUNK, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        self.client = client
        self.table = table
        self.write_chunk = max(1, min(write_chunk, WRITE_CHUNK))
        self.sleep = sleep
        self.clock = clock

    # -- read --
    def load(self, accounts: Iterable[str]) -> tuple[dict[str, StoredProfile], set[str]]:
        """The stored profiles of ``accounts`` (missing ones are absent) and the accounts that
        could not be read (throttled past the retries, service error, unreadable item)."""
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
                        found[item["account_id"]["S"]] = _decode(item)
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
            put: dict[str, Any] = {"TableName": self.table, "Item": _encode(s, s.version + 1)}
            if s.version == 0:
                put["ConditionExpression"] = "attribute_not_exists(account_id)"
            else:
                put["ConditionExpression"] = "version = :v"
                put["ExpressionAttributeValues"] = {":v": {"N": str(s.version)}}
            ops.append((acc, {"Put": put}))
        failed = self._transact(ops)
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
            ops.append((acc, {"Update": update}))
        return self._transact(ops)

    def _transact(self, ops: list[tuple[str, dict[str, Any]]]) -> set[str]:
        """Run the operations in transactions of ``write_chunk``; a condition failure fails only
        its account (the rest of the chunk is retried once); any other error fails the chunk."""
        failed: set[str] = set()
        for start in range(0, len(ops), self.write_chunk):
            chunk = ops[start:start + self.write_chunk]  # fmt: skip
            for _ in range(2):
                try:
                    self.client.transact_write_items(TransactItems=[op for _, op in chunk])
                    break
                except ClientError as exc:
                    losers = _condition_failures(exc, chunk)
                    if not losers or len(losers) == len(chunk):
                        log.warning("profile write failed for %d accounts: %s", len(chunk), exc)
                        failed.update(acc for acc, _ in chunk)
                        break
                    log.warning("profile of %s changed since it was read: retried later", sorted(losers))
                    failed.update(losers)
                    chunk = [(acc, op) for acc, op in chunk if acc not in losers]
                except BotoCoreError as exc:
                    log.warning("profile write failed for %d accounts: %s", len(chunk), exc)
                    failed.update(acc for acc, _ in chunk)
                    break
            else:
                failed.update(acc for acc, _ in chunk)
        return failed


def _condition_failures(exc: ClientError, chunk: list[tuple[str, dict[str, Any]]]) -> set[str]:
    """Accounts whose condition failed inside a cancelled transaction (empty for other errors)."""
    reasons = exc.response.get("CancellationReasons") or []
    if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException" or len(reasons) != len(chunk):
        return set()
    return {acc for (acc, _), r in zip(chunk, reasons, strict=True) if r.get("Code") == "ConditionalCheckFailed"}
