"""The profiles table through boto3: one batched read of every item a batch needs, and
conditional writes, each item standing alone.

What the items hold is ``finsentry.stream.state``; the order in which the scorer writes them, and
why that makes every record count once, is ``finsentry.stream.protocol``.

Reads use ``BatchGetItem`` (100 keys per call, strongly consistent; unprocessed keys are retried,
then reported). Writes are one conditional ``PutItem`` per item, ``workers`` in flight at once:
``BatchWriteItem`` takes no conditions, and ``TransactWriteItems`` would fail every item of a
transaction for one throttled item (and costs twice the write units). Every failure comes back
as the set of keys it affected, never as an exception.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from finsentry.stream.state import AccountItem, ChannelMark, PartnerItem, decode

log = logging.getLogger(__name__)

READ_CHUNK = 100  # BatchGetItem limit
WRITE_WORKERS = 8  # conditional writes in flight at once (DynamoDB has no conditional batch write)
READ_ATTEMPTS = 4  # attempts for unprocessed keys (exponential backoff from READ_BACKOFF_S)
READ_BACKOFF_S = 0.02
OUTBOX_TTL_S = 7 * 86_400  # recipes of records never redelivered are dropped after this (and logged)

Stored = AccountItem | PartnerItem | ChannelMark


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
    def load(self, keys: Iterable[str]) -> tuple[dict[str, Stored], set[str], dict[str, dict[str, Any]]]:
        """The stored items of ``keys`` (missing ones are absent), the keys that could not be
        read (throttled past the retries, service error), and the raw items that could not be
        decoded (corrupt: the caller replaces them)."""
        wanted = sorted(set(keys))
        found: dict[str, Stored] = {}
        failed: set[str] = set()
        corrupt: dict[str, dict[str, Any]] = {}
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
                    decoded = decode(item)
                    key = str(item.get("account_id", {}).get("S", ""))
                    if decoded is None:
                        log.error("profile item %s cannot be read: it is replaced by a new one", key)
                        corrupt[key] = item
                    else:
                        found[key] = decoded
                request = answer.get("UnprocessedKeys") or {}
                if not request.get(self.table, {}).get("Keys"):
                    break
                if attempt + 1 == READ_ATTEMPTS:
                    failed.update(k["account_id"]["S"] for k in request[self.table]["Keys"])
                else:
                    self.sleep(READ_BACKOFF_S * 2**attempt)
        return found, failed, corrupt

    # -- write --
    def put(self, items: dict[str, tuple[dict[str, Any], int | tuple[str, int]]]) -> set[str]:
        """Write each ``key: (item, expected_version)`` conditionally: the stored item must still
        have that version (0: must not exist; -1: a corrupt item being replaced, must exist;
        ``("version", n)``: an item of the old layout, its ``version`` attribute n).
        Returns the keys whose write failed (another writer, throttling, any service error)."""
        ops = []
        for key, (item, expected) in items.items():
            put: dict[str, Any] = {"TableName": self.table, "Item": item}
            if isinstance(expected, tuple):
                put["ConditionExpression"] = "#old = :v"
                put["ExpressionAttributeNames"] = {"#old": expected[0]}  # "version": a reserved word
                put["ExpressionAttributeValues"] = {":v": {"N": str(expected[1])}}
            elif expected == 0:
                put["ConditionExpression"] = "attribute_not_exists(account_id)"
            elif expected < 0:
                put["ConditionExpression"] = "attribute_exists(account_id)"
            else:
                put["ConditionExpression"] = "v = :v"
                put["ExpressionAttributeValues"] = {":v": {"N": str(expected)}}
            ops.append((key, "put_item", put))
        return self._each(ops)

    def put_plain(self, items: list[dict[str, Any]]) -> set[str]:
        """Write ``items`` unconditionally with ``BatchWriteItem`` (25 per call; unprocessed ones
        retried like reads): for idempotent items only (the alert index, ``finsentry.stream.risk``).
        Returns the keys not written."""
        failed: set[str] = set()
        for start in range(0, len(items), 25):
            request = {self.table: [{"PutRequest": {"Item": i}} for i in items[start:start + 25]]}
            for attempt in range(READ_ATTEMPTS):
                try:
                    answer = self.client.batch_write_item(RequestItems=request)
                except (ClientError, BotoCoreError) as exc:
                    log.warning("batch write failed for %d items: %s", len(request[self.table]), exc)
                    break
                request = answer.get("UnprocessedItems") or {}
                if not request.get(self.table):
                    break
                if attempt + 1 < READ_ATTEMPTS:
                    self.sleep(READ_BACKOFF_S * 2**attempt)
            failed.update(r["PutRequest"]["Item"]["account_id"]["S"] for r in request.get(self.table, []))
        return failed

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
