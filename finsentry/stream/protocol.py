"""The state protocol of the stream scorer: which record is folded, written and delivered, once.

Every inbound record has a place along an ordered *channel* (a Kinesis shard, a Kafka
topic-partition): ``(channel, seq)``. Lambda redelivers a channel from the lowest record a
batch reported failed, in order; producers may resend a transaction under a new ``seq``.
The items (``finsentry.stream.state``) carry what the protocol needs:

* an account's (and a partner's) **checkpoint** per channel: the highest ``seq`` folded into it.
  A record at or below it is a *replay*: never folded again, never scored again. Checkpoints do
  not forget (unlike a list of recent ids): any number of records, any number of redeliveries;
* an account's **guard**: hashes of its last ``GUARD`` trans_ids. A record above the checkpoint
  whose trans_id is there is a producer's *resend*: skipped, counted as a duplicate;
* an account's **outbox** of *recipes*, written in the same conditional write as the state:
  the outputs of a folded record can always be rebuilt from the redelivered record and its
  recipe, even when Firehose or SNS refused them the first time;
* a channel's **mark**: every record up to ``through`` is complete, and which records above it
  are complete or partly delivered. It is written once per batch, after delivery: it is what
  makes a redelivered record's outputs, and a redelivered bad record's quarantine, not happen
  twice. A mark that cannot be written is kept in memory and written with the next batch.

One batch (``ScorerService.process``) goes: split into *slices* (``slices``: consecutive records,
at most ``HOT_LIMIT`` per account: a hot account's records go in several writes, so no item
ever outgrows ``ITEM_BUDGET``) → per slice: validate → read every item in one ``BatchGetItem``
→ ``classify`` → score the fresh rows → write accounts → write partners → deliver → quarantine
→ write the channel marks. The rules that make it exactly once:

1. **Prefix rule.** An item (account or partner) folds, per channel, only the records *below*
   the first of its records that cannot be folded now (its read failed, its account's write
   failed, ...): the records after it are reported failed too and, since Lambda redelivers a
   channel from the lowest failed record, come back; a checkpoint never passes a record the item
   does not hold. (``blocked_after``.)
2. **Account first.** A record is folded into its partner only once its account holds it (this
   batch's account write succeeded, or a replay): a record scored again on retry is in no
   partner yet, so partner states equal those of one clean delivery.
3. **Write-ahead recipes.** The account write carries the recipes of its new records; outputs
   are sent only after it succeeded; a replay re-sends only what the channel mark does not
   record as delivered.
4. **Marks after delivery.** The mark is written after Firehose, SNS and SQS answered, and only
   names what they accepted. ``through`` never passes a record that is not complete: every
   record a delivery saw has an entry, the incomplete ones too (sequence numbers are sparse).
5. **Outcome.** Every record ends *scored* (its outputs delivered), *quarantined* (the queue
   accepted it), *redelivered* (nothing left to do: a replay or a resend), or *failed* (named in
   ``batchItemFailures``; its redelivery completes it). Never two of them in one batch.

What it does not cover (docs/operations.md): a process that dies, or DynamoDB refusing the
mark on every attempt, between delivery and the mark — the next delivery of those records can
send their outputs again (at least once, never lost); outputs carry the trans_id to deduplicate.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from finsentry.stream.state import COMPLETE, ChannelMark

HOT_LIMIT = 500  # records of one account per slice (recipes of ~150 bytes: far below ITEM_BUDGET)

FRESH, REPLAY, RESEND, BLOCKED = "fresh", "replay", "resend", "blocked"


def slices(accounts: Sequence[Any], limit: int = HOT_LIMIT) -> list[tuple[int, int]]:
    """``[start, end)`` ranges of consecutive records with at most ``limit`` records of any one
    account (``None`` = no account) in each: the hot-account split."""
    out, start, counts = [], 0, defaultdict(int)
    for n, acc in enumerate(accounts):
        if acc is not None:
            if counts[acc] == limit:
                out.append((start, n))
                start, counts = n, defaultdict(int)
            counts[acc] += 1
    out.append((start, len(accounts)))
    return [(a, b) for a, b in out if b > a] or [(0, 0)]


def blocked_after(items: Iterable[Any], channels: Iterable[str], seqs: Iterable[int],
                  failing: Iterable[bool]) -> np.ndarray:  # fmt: skip
    """True for every row at or after the first failing row of the same item and channel (the
    prefix rule): such a row must not be folded into that item now."""
    first: dict[tuple[Any, str], int] = {}
    items, channels, seqs, failing = list(items), list(channels), list(seqs), list(failing)
    for item, ch, seq, bad in zip(items, channels, seqs, failing, strict=True):
        if bad and item is not None:
            key = (item, ch)
            first[key] = min(first.get(key, seq), seq)
    return np.fromiter((item is not None and (item, ch) in first and seq >= first[(item, ch)]
                        for item, ch, seq in zip(items, channels, seqs, strict=True)),
                       dtype=bool, count=len(items))  # fmt: skip


def advance(mark: ChannelMark, outcomes: dict[int, str], floor: int) -> ChannelMark:
    """The channel's mark after a slice: ``outcomes`` maps each of the slice's records on this
    channel (by seq) to what of it is complete now ("*" all; "s", "a", "sa" outputs; "" none).
    Every record of the slice gets an entry, the incomplete ones too: ``through`` moves up to the
    record before the first entry that is not complete, and a later, shorter delivery that does
    not reach an incomplete record cannot move ``through`` past it (invariant 4). ``floor`` is the lowest
    seq of the whole batch on this channel: Lambda delivers from there, so a record below it that
    the mark still holds as incomplete was given up by Lambda (retries exhausted): it no longer
    holds ``through`` back."""
    done = dict(mark.done)
    if floor - 1 > mark.through:
        done = {s: d for s, d in done.items() if s >= floor}
        mark = ChannelMark(mark.channel, mark.version, floor - 1, done)
    for seq, what in outcomes.items():
        if seq <= mark.through:
            continue
        held = done.get(seq, "")
        # recorded even when nothing of it is complete (""): sequence numbers are sparse, so only
        # an entry tells a record that is still owed from a gap between two records
        done[seq] = COMPLETE if COMPLETE in (what, held) else "".join(sorted(set(held) | set(what)))
    through = mark.through
    for seq in sorted(set(outcomes) | set(done)):
        if seq <= through:
            continue
        if done.get(seq) == COMPLETE:
            through = seq
        else:
            break
    done = {s: d for s, d in done.items() if s > through}
    return ChannelMark(mark.channel, mark.version, through, done)
