"""The scorer's batch service: decoded stream records in, outputs shipped once, failures named.

The path of a batch goes down the layers: this module (I/O and the order of the steps) →
``finsentry.stream.protocol`` (which row is fresh, a replay, a resend or blocked; the marks) →
``finsentry.stream.scorer`` (features, model, reasons) → ``finsentry.features`` /
``finsentry.partners`` / ``finsentry.schema``. Per slice of the batch (the hot-account split),
a fixed number of calls whatever its size: one ``BatchGetItem`` for every account, partner and
channel item; one conditional write per account and per partner touched; Firehose and SNS
batches; one SQS batch call per 10 bad records; one write per channel mark.

Counting rule, per batch: ``received == scored + quarantined + redelivered + failed``, each
record once. ``scored``: its outputs delivered (this time or, for a replay, the missing ones);
``redelivered``: nothing was left to do (a replay already complete, a producer's resend, a bad
record already quarantined); ``failed``: named in ``batchItemFailures``, its redelivery
completes it.

Drift: while a model with a drift reference serves, a ``finsentry.drift.DriftWindow`` counts
the features and scores of every row scored and folded into its profile (each transaction
once: a row scored again after a failed write is counted only when its write succeeds); when it
holds ``drift_min_rows`` rows its PSI is emitted (``ScorePsi``, ``FeaturePsi`` per ``Feature``)
and a new window starts. A new model (another detector object) starts a new window; rules-only
and models without a reference publish no drift.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from finsentry.drift import MIN_ROWS, DriftMeasurement, DriftWindow
from finsentry.features import AccountProfile
from finsentry.monitoring import Metric
from finsentry.partners import PartnerProfile, partner_key
from finsentry.privacy import DEFAULT_MASK_KEY, mask_ids
from finsentry.schema import MAX_STRING_LENGTH, Reason
from finsentry.scoring import SCORED_COLUMNS
from finsentry.stream.events import InboundRecord, batch_item_failures
from finsentry.stream.metrics import MemoryMetrics, MetricsSink
from finsentry.stream.model_source import ServingModel
from finsentry.stream.profiles import OUTBOX_TTL_S, ProfileStore
from finsentry.stream.protocol import BLOCKED, FRESH, HOT_LIMIT, REPLAY, RESEND, advance, blocked_after, slices
from finsentry.stream.risk import (
    INDEX_PREFIX,
    INDEX_TTL_DAYS,
    RISK_PREFIX,
    encode_index,
    index_entries,
    reads_risk,
    risk_item_key,
    risk_keys,
    stream_risk,
)
from finsentry.stream.scorer import StreamScorer, fold_partners
from finsentry.stream.sinks import AlertPublisher, QuarantineQueue, ScoredSink, quarantine_message
from finsentry.stream.state import (
    CHANNEL_PREFIX,
    COMPLETE,
    GUARD,
    ITEM_BUDGET,
    PARTNER_PREFIX,
    AccountItem,
    ChannelMark,
    PartnerItem,
    channel_item_key,
    encode_account,
    encode_mark,
    encode_partner,
    expected_version,
    fresh_item,
    item_bytes,
    outbox_key,
    partner_item_key,
    trans_hashes,
)
from finsentry.stream.validation import validate_stream_records

log = logging.getLogger(__name__)


@dataclass
class BatchReport:
    """What happened to every record of one batch (keys are ``InboundRecord.key``)."""

    received: int
    scored: list[str] = field(default_factory=list)
    quarantined: dict[str, str] = field(default_factory=dict)  # key -> reason
    redelivered: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # key -> why it must be retried
    alerts: list[dict[str, Any]] = field(default_factory=list)  # alert messages delivered
    mode: str = "model"
    model_version: str = ""
    seconds: float = 0.0
    model_problem: str = ""  # why the pointer's model is not the one serving ("" = it is)
    drift: DriftMeasurement | None = None  # the drift window this batch completed, if any

    def counts(self) -> dict[str, int]:
        return {"received": self.received, "scored": len(self.scored), "quarantined": len(self.quarantined),
                "redelivered": len(self.redelivered), "failed": len(self.failed),
                "alerts": len(self.alerts)}  # fmt: skip

    def response(self, records: list[InboundRecord]) -> dict[str, list[dict[str, Any]]]:
        """Lambda's partial batch response: exactly the failed records."""
        return batch_item_failures(records, set(self.failed))


def _scored_line(row: Mapping[str, Any]) -> str:
    """One Firehose JSON line of ``SCORED_COLUMNS`` (timestamps as Hive's ``yyyy-MM-dd HH:mm:ss``)."""
    out = {}
    for col in SCORED_COLUMNS:
        v = row[col]
        if isinstance(v, pd.Timestamp):
            v = v.strftime("%Y-%m-%d %H:%M:%S")
        elif isinstance(v, np.generic):
            v = v.item()
        if isinstance(v, float) and not math.isfinite(v):
            v = None
        out[col] = v
    return json.dumps(out)


def alert_message(row: Mapping[str, Any], account_ref: str, threshold: float) -> dict[str, Any]:
    """The SNS message of one anomaly: score, type, top reasons and the key fields, with the
    client and the account masked (``finsentry.privacy``)."""
    ts = row["ts"]
    return {
        "trans_id": str(row["trans_id"]), "account_ref": account_ref, "client_ref": str(row["client_ref"]),
        "ts": ts.isoformat() if isinstance(ts, pd.Timestamp) else str(ts), "amount": float(row["amount"]),
        "direction": str(row["direction"]), "operation": str(row["operation"]), "region": str(row["region"]),
        "score": round(float(row["score"]), 6), "threshold": float(threshold),
        "anomaly_type": str(row["anomaly_type"]),
        "reasons": [r for r in str(row["reasons"]).split(" ; ") if r],
        "model_version": str(row["model_version"]),
    }  # fmt: skip


def _account_of(value: Any) -> str | None:
    """The account id a record names, as the validator will read it (None = none usable)."""
    if not isinstance(value, dict):
        return None
    acc = value.get("account_id")
    if isinstance(acc, bool) or not isinstance(acc, str | int):
        return None
    text = str(acc)
    return text if text and len(text) <= MAX_STRING_LENGTH else None


def _row_from_recipe(row: Mapping[str, Any], recipe: Mapping[str, Any]) -> dict[str, Any]:
    """A scored row: the record's fields with the score, verdict and reasons its recipe kept."""
    return {**row, "score": recipe["s"], "verdict": "alert" if recipe["a"] else "normal",
            "anomaly_type": recipe["t"], "reasons": recipe["r"], "model_version": recipe["v"]}  # fmt: skip


def _base_rows(valid: pd.DataFrame, mask_key: bytes) -> list[dict[str, Any]]:
    """The record fields of scored rows (no score yet), for records scored by an earlier attempt."""
    refs = mask_ids(valid["client_id"], key=mask_key).to_numpy()
    cols = ["trans_id", "account_id", "ts", "amount", "direction", "operation", "district_id", "region"]
    out = valid[cols].to_dict("records")
    for row, ref in zip(out, refs, strict=True):
        row["client_ref"] = ref
    return out


def _trimmed_outbox(outbox: dict[str, dict[str, Any]], marks: dict[str, ChannelMark], now: float
                    ) -> dict[str, dict[str, Any]]:  # fmt: skip
    """The recipes still owed: those whose channel's mark does not say complete, younger than
    ``OUTBOX_TTL_S`` (older ones are dropped and logged: their record was never redelivered)."""
    kept = {}
    for key, recipe in outbox.items():
        channel, _, seq = key.rpartition(" ")
        mark = marks.get(channel)
        if mark is not None and seq.lstrip("-").isdigit() and mark.delivered(int(seq)) == COMPLETE:
            continue
        if now - float(recipe.get("at", now)) > OUTBOX_TTL_S:
            log.error("dropping the recipe of %s: undelivered for more than %d s", key, OUTBOX_TTL_S)
            continue
        kept[key] = recipe
    return kept


def _raw_version(raw: Mapping[str, Any]) -> int:
    try:
        return int(raw["v"]["N"])
    except (KeyError, TypeError, ValueError):
        return -1


def _merge_marks(stored: ChannelMark, memo: ChannelMark) -> ChannelMark:
    """The stored mark with what a mark this process could not write says (never less)."""
    done = dict(stored.done)
    for seq, what in memo.done.items():
        done[seq] = COMPLETE if COMPLETE in (what, done.get(seq, "")) else "".join(
            sorted(set(what) | set(done.get(seq, ""))))
    merged = ChannelMark(stored.channel, stored.version, max(stored.through, memo.through), done)
    return ChannelMark(merged.channel, merged.version, merged.through, {s: d for s, d in done.items()
                                                                       if s > merged.through})


class ScorerService:
    """Wires the scoring core to the state protocol, the store, the sinks, the model, the metrics."""

    def __init__(self, profiles: ProfileStore, scored: ScoredSink, alerts: AlertPublisher,
                 quarantine: QuarantineQueue, models, metrics: MetricsSink | None = None,
                 mask_key: bytes = DEFAULT_MASK_KEY, known_accounts_only: bool = False,
                 clock: Callable[[], float] = time.time, drift_min_rows: int = MIN_ROWS) -> None:  # fmt: skip
        self.profiles = profiles
        self.scored_sink = scored
        self.alerts = alerts
        self.quarantine = quarantine
        self.models = models  # ModelLocator or StaticModel: .current() -> ServingModel
        self.metrics = metrics or MemoryMetrics()
        self.mask_key = mask_key
        self.known_accounts_only = known_accounts_only  # quarantine accounts without a profile
        self.clock = clock
        self.hot_limit = HOT_LIMIT
        self.drift_min_rows = drift_min_rows  # rows per drift window (finsentry.drift.MIN_ROWS)
        self.drift_window: DriftWindow | None = None  # of the model below; None: no drift published
        self._drift_model: Any = None  # the detector the window belongs to
        self.unwritten_marks: dict[str, ChannelMark] = {}  # marks DynamoDB refused: written with the next batch
        self.stats: dict[str, int] = {}  # per batch: item writes and write units by kind, item bytes

    def process(self, records: list[InboundRecord]) -> BatchReport:
        """Score one batch end to end; never raises on bad input or a failing service."""
        started = time.perf_counter()
        report = BatchReport(received=len(records))
        self.stats = defaultdict(int)
        self.item_sizes: dict[str, list[int]] = {"account": [], "partner": [], "channel": []}
        serving: ServingModel = self.models.current()
        report.mode, report.model_version = ("rules_only" if serving.rules_only else "model"), serving.version
        report.model_problem = serving.problem
        self._follow_model(serving)
        scorer = StreamScorer(serving.detector, threshold=serving.threshold, model_version=serving.version,
                              mask_key=self.mask_key)  # fmt: skip
        floors: dict[str, int] = {}
        for r in records:
            if r.seq >= 0:
                floors[r.channel] = min(floors.get(r.channel, r.seq), r.seq)
        accounts = [_account_of(r.value) if not r.error else None for r in records]
        held_back: dict[str, set[tuple[str, str]]] = {"account": set(), "partner": set()}  # across slices
        for start, end in slices(accounts, self.hot_limit):
            self._slice(records[start:end], scorer, serving, floors, held_back, report)
        ended = len(report.scored) + len(report.quarantined) + len(report.redelivered) + len(report.failed)
        if ended != len(records) or len({r.key for r in records}) != len(records):
            raise RuntimeError(f"{len(records)} records received but {ended} outcomes")  # a bug: Lambda retries
        report.seconds = time.perf_counter() - started
        self._emit(report)
        return report

    # -- one slice -------------------------------------------------------------------------

    def _slice(self, records: list[InboundRecord], scorer: StreamScorer, serving: ServingModel,
               floors: dict[str, int], held_back: dict[str, set[tuple[str, str]]],
               report: BatchReport) -> None:  # fmt: skip
        """One slice. ``held_back``: the (account, channel) and (partner, channel) pairs that an
        earlier slice of the batch could not fold a record into: the prefix rule holds their
        later records back too (they come again with the redelivery)."""
        outcome: dict[str, str] = {}  # record key -> "scored" | "quarantined" | "redelivered" | "failed: why"
        delivered: dict[str, str] = {}  # record key -> outputs delivered now ("s", "a")
        bad: dict[str, dict[str, Any]] = {}
        for r in records:
            if r.error:
                bad[r.key] = quarantine_message(str(Reason.MALFORMED), r.error, r.raw, r.source)
        parsed = [r for r in records if not r.error]
        checked = validate_stream_records([r.value for r in parsed])
        for pos, (_, row) in zip(checked.rejected_positions, checked.rejected.iterrows(), strict=True):
            r = parsed[int(pos)]
            bad[r.key] = quarantine_message(str(row["reason"]), str(row["detail"]), r.raw, r.source)
        valid = checked.valid
        rows = [parsed[int(p)] for p in checked.valid_positions]
        acc = valid["account_id"].astype(str).tolist()
        pkey = partner_key(valid).tolist() if len(valid) else []
        channels = sorted({r.channel for r in records if r.seq >= 0})

        # 1. one read: accounts, partners, channel marks
        wanted = set(acc) | {partner_item_key(p) for p in pkey if p} | {channel_item_key(c) for c in channels}
        with_risk = reads_risk(serving.detector)  # label-derived risk: read only for a model that reads it
        needs = risk_keys(valid) if with_risk else set()
        read, unreadable, corrupt = self.profiles.load(wanted | needs)
        for key, raw in corrupt.items():
            if key.startswith(RISK_PREFIX):  # the doors replace it on their next write; no verdict known meanwhile
                pass
            elif key.startswith(CHANNEL_PREFIX):  # a lost mark: complete records may be redelivered once more
                read[key] = ChannelMark(key[len(CHANNEL_PREFIX):], version=_raw_version(raw))
            else:
                read[key] = fresh_item(key, raw)
            self.metrics.emit(Metric.CORRUPT_ITEMS, 1)
        marks = {}
        for c in channels:
            mark = read.get(channel_item_key(c)) or ChannelMark(c)
            if c in self.unwritten_marks:  # what an earlier batch could not write is still true
                mark = _merge_marks(mark, self.unwritten_marks[c])
            marks[c] = mark
        mark_failed = {c for c in channels if channel_item_key(c) in unreadable}

        # bad records already quarantined by an earlier delivery; none sent blind
        by_key = {r.key: r for r in records}
        for key in list(bad):
            r = by_key[key]
            if r.channel in mark_failed:
                del bad[key]
                outcome[key] = "failed: channel mark read failed"
            elif r.seq >= 0 and r.channel in marks and marks[r.channel].delivered(r.seq) == COMPLETE:
                del bad[key]
                outcome[key] = "redelivered"

        # 2. classify the valid rows
        n = len(rows)
        kind = np.full(n, FRESH, dtype=object)
        why = np.full(n, "", dtype=object)
        known_only = self.known_accounts_only
        hashes = trans_hashes(valid["trans_id"].astype(str).tolist()) if n else []
        states: dict[str, AccountItem] = {}
        for k in range(n):
            a, r = acc[k], rows[k]
            if r.channel in mark_failed:
                kind[k], why[k] = BLOCKED, "channel mark read failed"
                continue
            if a in unreadable:
                kind[k], why[k] = BLOCKED, "profile read failed"
                continue
            if pkey[k] and partner_item_key(pkey[k]) in unreadable:
                kind[k], why[k] = BLOCKED, "partner profile read failed"
                continue
            if with_risk and (risk_item_key("account", a) in unreadable
                              or (pkey[k] and risk_item_key("partner", pkey[k]) in unreadable)):
                kind[k], why[k] = BLOCKED, "risk read failed"
                continue
            item = read.get(a)
            if item is None:
                if known_only:
                    kind[k] = "unknown"
                    continue
                item = AccountItem(AccountProfile(a))
            states.setdefault(a, item)
            if r.seq <= item.checkpoints.get(r.channel, -1):
                kind[k] = REPLAY
            elif hashes[k] in item.guard:
                kind[k] = RESEND
        for k in np.flatnonzero(kind == "unknown"):
            r = rows[k]
            bad[r.key] = quarantine_message(str(Reason.UNKNOWN_ACCOUNT), "account_id", r.raw, r.source)
            kind[k] = "quarantine"
        seqs = [r.seq for r in rows]
        chans = [r.channel for r in rows]
        earlier = np.fromiter(((acc[k], chans[k]) in held_back["account"] for k in range(n)), dtype=bool, count=n)
        behind = (blocked_after(acc, chans, seqs, (kind == BLOCKED).tolist()) | earlier) & (kind == FRESH)
        kind[behind], why[behind] = BLOCKED, "behind an earlier failed record of its account"

        # 3. score the fresh rows; fold them (and replays their partner lacks) into the partners
        partners: dict[str, PartnerItem] = {}
        for p in {p for p in pkey if p}:
            item = read.get(partner_item_key(p))
            partners[p] = item if isinstance(item, PartnerItem) else PartnerItem(PartnerProfile(p))
        as_read = {p: PartnerProfile(p, i.profile.f.copy(), i.profile.i.copy()) for p, i in partners.items()}
        fresh = kind == FRESH
        wants_partner = np.fromiter(
            (bool(pkey[k]) and kind[k] in (FRESH, REPLAY)
             and seqs[k] > partners[pkey[k]].checkpoints.get(chans[k], -1) for k in range(n)),
            dtype=bool, count=n)  # fmt: skip
        profiles = {a: AccountProfile(a, s.profile.f.copy(), s.profile.i.copy(), q=s.profile.q.copy())
                    for a, s in states.items()}
        partner_state = {p: PartnerProfile(p, i.profile.f.copy(), i.profile.i.copy()) for p, i in partners.items()}
        risk = stream_risk(valid, read) if with_risk else None
        scored, features = scorer.score_rows(valid, fresh, wants_partner, profiles, partner_state, risk=risk)
        fresh_at = np.flatnonzero(fresh)

        # 4. the account writes: state, checkpoints, guard, outbox (recipes of the new rows)
        now = self.clock()
        recipes = self._recipes(scored, serving.threshold, now)
        writes: dict[str, tuple[dict[str, Any], int]] = {}
        new_items: dict[str, AccountItem] = {}
        for a in sorted({acc[k] for k in fresh_at}):
            old = states[a]
            item = AccountItem(profiles[a], old.version, dict(old.checkpoints), list(old.guard),
                               _trimmed_outbox(old.outbox, marks, now), corrupt=old.corrupt,
                               legacy=old.legacy)  # fmt: skip
            new_items[a] = item
        for j, k in enumerate(fresh_at):
            item = new_items[acc[k]]
            item.checkpoints[chans[k]] = max(item.checkpoints.get(chans[k], -1), seqs[k])
            item.guard = (item.guard + [hashes[k]])[-GUARD:]
            item.outbox[outbox_key(chans[k], seqs[k])] = recipes[j]
        for a, item in new_items.items():
            encoded = encode_account(item, item.version + 1 if item.version >= 0 else 1)
            size = item_bytes(encoded)
            if size > ITEM_BUDGET:  # cannot happen below HOT_LIMIT; never write past DynamoDB's limit
                log.error("item of account %s would hold %d bytes: its records retry", a, size)
                continue
            writes[a] = (encoded, expected_version(item))
            self._count_write("account", size)
        write_failed = self.profiles.put(writes) if writes else set()
        write_failed |= set(new_items) - set(writes)
        committed = np.zeros(n, dtype=bool)
        for k in fresh_at:
            if acc[k] in write_failed:
                kind[k], why[k] = BLOCKED, "profile write failed"
            else:
                committed[k] = True

        # 5. the partner writes: as read, plus the rows their account holds, per channel up to
        # the first row that is not held (the prefix rule)
        candidate = wants_partner & (committed | (kind == REPLAY))
        lacking = np.fromiter((bool(pkey[k]) and kind[k] in (FRESH, REPLAY, BLOCKED)
                               and seqs[k] > partners[pkey[k]].checkpoints.get(chans[k], -1) for k in range(n)),
                              dtype=bool, count=n)  # fmt: skip
        not_held = lacking & ~candidate  # the partner lacks it and cannot fold it now
        stop = blocked_after(pkey, chans, seqs, not_held.tolist()) | np.fromiter(
            ((pkey[k], chans[k]) in held_back["partner"] for k in range(n)), dtype=bool, count=n)
        fold_rows = candidate & ~stop
        deferred = candidate & stop
        partner_failed: set[str] = set()
        if fold_rows.any():
            state = {p: PartnerProfile(p, s.f.copy(), s.i.copy()) for p, s in as_read.items()}
            fold_partners(state, valid[fold_rows], pd.Series(pkey, index=valid.index, dtype=object)[fold_rows])
            pwrites = {}
            for p in sorted({pkey[k] for k in np.flatnonzero(fold_rows)}):
                item = PartnerItem(state[p], partners[p].version, dict(partners[p].checkpoints),
                                   corrupt=partners[p].corrupt, legacy=partners[p].legacy)
                for k in np.flatnonzero(fold_rows):
                    if pkey[k] == p:
                        item.checkpoints[chans[k]] = max(item.checkpoints.get(chans[k], -1), seqs[k])
                encoded = encode_partner(item, item.version + 1 if item.version >= 0 else 1)
                pwrites[partner_item_key(p)] = (encoded, expected_version(item))
                self._count_write("partner", item_bytes(encoded))
            partner_failed = {k[len(PARTNER_PREFIX):] for k in self.profiles.put(pwrites)}
        partner_pending = np.fromiter(
            (bool(deferred[k]) or (bool(fold_rows[k]) and pkey[k] in partner_failed) for k in range(n)),
            dtype=bool, count=n)  # fmt: skip
        for k in range(n):
            if kind[k] == BLOCKED:
                held_back["account"].add((acc[k], chans[k]))
            if not_held[k] or partner_pending[k]:
                held_back["partner"].add((pkey[k], chans[k]))

        # the alert index (txn#<trans_id> -> account, partner): how a verdict reaches the risk items;
        # idempotent, unconditional; a failure is counted, never fails the record (finsentry.stream.risk)
        held = committed[fresh_at]
        if held.any():
            entries = index_entries(scored[held].reset_index(drop=True),
                                    valid.iloc[fresh_at[held]].reset_index(drop=True))  # fmt: skip
            if entries:
                expires = int(now) + INDEX_TTL_DAYS * 86_400
                unwritten = self.profiles.put_plain([encode_index(e, expires) for e in entries])
                self.stats["index_writes"] += len(entries)
                self.stats["index_write_units"] += len(entries)  # ~60-byte items: one unit each
                if unwritten:
                    ids = sorted(k[len(INDEX_PREFIX):] for k in unwritten)
                    log.error("alert index not written for %d transaction(s): their verdicts will not reach the "
                              "stream's risk; trans_ids: %s%s", len(ids), ", ".join(ids[:50]),
                              f" and {len(ids) - 50} more" if len(ids) > 50 else "")  # fmt: skip
                    self.metrics.emit(Metric.INDEX_WRITE_FAILED, len(unwritten))

        # 6. deliver: new rows whose account holds them, and what replays still owe
        owed: dict[str, tuple[dict[str, Any], dict[str, Any], str]] = {}  # key -> (row, recipe, outputs)
        scored_rows = scored.to_dict("records") if len(scored) else []
        for j, k in enumerate(fresh_at):
            if committed[k]:
                rec = recipes[j]
                owed[rows[k].key] = (scored_rows[j], rec, "sa" if rec["a"] else "s")
        replay_at = np.flatnonzero(kind == REPLAY)
        if len(replay_at):
            rebuilt = _base_rows(valid.iloc[replay_at], self.mask_key)
            for j, k in enumerate(replay_at):
                r = rows[k]
                done = marks[r.channel].delivered(r.seq) if r.channel in marks else ""
                if done == COMPLETE:
                    continue
                rec = states[acc[k]].outbox.get(outbox_key(r.channel, r.seq))
                if rec is None:  # folded, its recipe gone (expired, or a corrupt item replaced)
                    log.error("record %s was folded but its outputs cannot be rebuilt: none sent", r.key)
                    continue
                need = "".join(o for o in ("sa" if rec["a"] else "s") if o not in done)
                if need:
                    owed[r.key] = (rebuilt[j], rec, need)
        sent, alert_messages = self._deliver(owed)
        delivered.update(sent)

        # 7. quarantine
        q_failed = self.quarantine.send(bad) if bad else set()

        # 8. outcomes and channel marks
        complete: dict[str, str] = {}  # record key -> "*" or the outputs delivered
        for key, msg in bad.items():
            if key in q_failed:
                outcome[key] = "failed: quarantine queue rejected it"
            else:
                outcome[key] = "quarantined"
                report.quarantined[key] = msg["reason"]
                complete[key] = COMPLETE
        for k in range(n):
            r = rows[k]
            if kind[k] == "quarantine":
                continue
            if kind[k] == BLOCKED:
                outcome[r.key] = f"failed: {why[k]}"
                continue
            if kind[k] == RESEND:
                outcome[r.key] = "redelivered"
                complete[r.key] = COMPLETE  # nothing of it is owed: the original carries its outputs
                continue
            prior = marks[r.channel].delivered(r.seq) if r.channel in marks else ""
            got = delivered.get(r.key, "")
            need = owed[r.key][2] if r.key in owed else ""
            outputs_done = prior == COMPLETE or all(o in got or o in prior for o in need)
            if not outputs_done:
                outcome[r.key] = "failed: Firehose or SNS rejected its output"
                complete[r.key] = "".join(sorted(set(got) | set(prior)))
            elif partner_pending[k]:
                outcome[r.key] = ("failed: partner profile write failed" if pkey[k] in partner_failed
                                  else "failed: behind an earlier failed record of its partner")  # fmt: skip
                complete[r.key] = "".join(sorted(set(got) | set(prior) | set(need)))
            else:
                outcome[r.key] = "scored" if got else "redelivered"
                complete[r.key] = COMPLETE
        for c in channels:
            done = {by_key[key].seq: complete.get(key, "") for key in outcome if by_key[key].channel == c
                    and by_key[key].seq >= 0}  # fmt: skip
            new = advance(marks[c], done, floors.get(c, 0))
            if (new.through, new.done) == (marks[c].through, marks[c].done) and c not in self.unwritten_marks:
                continue
            if c in mark_failed:  # its item could not be read: every record of it failed
                continue
            encoded = encode_mark(new, new.version + 1 if new.version >= 0 else 1)
            self._count_write("channel", item_bytes(encoded))
            if self.profiles.put({c: (encoded, new.version)}):
                log.error("mark of channel %s not written: kept for the next batch", c)
                self.metrics.emit(Metric.MARK_WRITE_FAILED, 1)
                self.unwritten_marks[c] = new
            else:
                self.unwritten_marks.pop(c, None)
        for key, what in outcome.items():
            if what == "scored":
                report.scored.append(key)
            elif what == "redelivered":
                report.redelivered.append(key)
            elif what.startswith("failed: "):
                report.failed[key] = what[len("failed: "):]
        for r in records:  # every record has exactly one outcome
            if r.key not in outcome:
                raise RuntimeError(f"record {r.key} has no outcome")
        report.alerts.extend(alert_messages.values())
        report.drift = self._count_drift(features, scored, committed[fresh_at]) or report.drift

    def _follow_model(self, serving: ServingModel) -> None:
        """A new drift window whenever another model serves (none without a drift reference)."""
        if serving.detector is self._drift_model:
            return
        self._drift_model = serving.detector
        self.drift_window = (DriftWindow(serving.drift, min_rows=self.drift_min_rows)
                             if serving.drift is not None and not serving.rules_only else None)  # fmt: skip

    def _count_drift(self, features: pd.DataFrame, scored: pd.DataFrame, kept: np.ndarray) -> DriftMeasurement | None:
        """Count the rows folded into their profile; the window's PSI once it is full."""
        window = self.drift_window
        if window is None or scored.empty or not kept.any():
            return None
        try:
            window.add(features[kept].reset_index(drop=True), scored["score"].to_numpy()[kept])
        except (KeyError, ValueError) as exc:  # a reference naming features the stream lacks: drift off, scoring on
            log.error("drift window disabled for model %s: %s", self._drift_model, exc)
            self.drift_window = None
            return None
        return window.measure_and_reset() if window.ready else None

    def _count_write(self, kind: str, size: int) -> None:
        self.stats[f"{kind}_writes"] += 1
        self.stats[f"{kind}_write_units"] += max(1, math.ceil(size / 1024))
        self.item_sizes[kind].append(size)

    def _recipes(self, scored: pd.DataFrame, threshold: float, now: float) -> list[dict[str, Any]]:
        """What rebuilds each scored row's outputs from its record (row order)."""
        if scored.empty:
            return []
        out = []
        for row in scored.to_dict("records"):
            out.append({"s": float(row["score"]), "a": int(row["verdict"] == "alert"), "t": str(row["anomaly_type"]),
                        "r": str(row["reasons"]), "v": str(row["model_version"]), "h": float(threshold), "at": now})
        return out

    def _deliver(self, owed: dict[str, tuple[dict[str, Any], dict[str, Any], str]]
                 ) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:  # fmt: skip
        """Send what is owed; per record key, the outputs accepted ("s", "a"), and the alert
        messages SNS accepted."""
        lines, alerts = {}, {}
        keys = list(owed)
        refs = (mask_ids(pd.Series([owed[k][0]["account_id"] for k in keys], dtype=object), key=self.mask_key)
                .tolist() if keys else [])  # fmt: skip
        for key, ref in zip(keys, refs, strict=True):
            row, rec, need = owed[key]
            full = _row_from_recipe(row, rec)
            if "s" in need:
                lines[key] = _scored_line(full)
            if "a" in need:
                alerts[key] = alert_message(full, str(ref), rec["h"])
        lost = self.scored_sink.send(lines) if lines else set()
        unsent = self.alerts.send(alerts) if alerts else set()
        out: dict[str, str] = {}
        for key in owed:
            got = (("s" if key in lines and key not in lost else "")
                   + ("a" if key in alerts and key not in unsent else ""))
            if got:
                out[key] = got
        return out, {k: m for k, m in alerts.items() if k not in unsent}

    def _emit(self, report: BatchReport) -> None:
        m = self.metrics
        c = report.counts()
        m.emit(Metric.RECEIVED, c["received"])
        m.emit(Metric.SCORED, c["scored"])
        m.emit(Metric.DUPLICATES_SKIPPED, c["redelivered"])
        m.emit(Metric.RETRIED, c["failed"])
        m.emit(Metric.QUARANTINED, c["quarantined"])  # the total, without dimension, is what the alarm watches
        m.emit(Metric.ANOMALIES, len(report.alerts))
        for reason, n in pd.Series(list(report.quarantined.values()), dtype=object).value_counts().items():
            m.emit(Metric.QUARANTINED, int(n), dimensions={"Reason": str(reason)})
        for kind, n in pd.Series([a["anomaly_type"] for a in report.alerts], dtype=object).value_counts().items():
            m.emit(Metric.ANOMALIES, int(n), dimensions={"AnomalyType": str(kind) or "unknown"})
        if report.mode == "rules_only":
            m.emit(Metric.RULES_ONLY, 1)
        elif report.model_problem:  # the previous model serves: its successor cannot be loaded
            m.emit(Metric.MODEL_LOAD_FAILED, 1)
        if report.drift is not None:  # no extra dimension on ScorePsi: the series the score-drift alarm watches
            if math.isfinite(report.drift.score_psi):
                m.emit(Metric.SCORE_PSI, report.drift.score_psi, unit="None")
            for feature, psi in sorted(report.drift.feature_psi.items()):
                if math.isfinite(psi):
                    m.emit(Metric.FEATURE_PSI, psi, unit="None", dimensions={"Feature": feature})
        if c["scored"]:
            m.emit(Metric.ANOMALY_RATE, 100.0 * len(report.alerts) / c["scored"], unit="Percent")
        m.emit(Metric.BATCH_LATENCY, 1000.0 * report.seconds, unit="Milliseconds")


def process_all(service: ScorerService, batches: Iterable[list[InboundRecord]]) -> list[BatchReport]:
    """Process batches in order (the local replay and the benchmark)."""
    return [service.process(b) for b in batches]
