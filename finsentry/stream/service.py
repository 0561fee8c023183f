"""The scorer's batch service: decoded stream records in, outputs shipped, failures named.

One batch, a fixed number of calls whatever its size (beyond the services' batch limits):

1. records whose payload is not JSON are quarantined as ``malformed`` with their raw bytes;
2. the accounts' and their partners' profiles are read in ONE ``BatchGetItem``
   (``ProfileStore.load``);
3. ``StreamScorer.score_batch`` validates, skips redeliveries, computes features and scores;
4. every touched profile is written back conditionally, TOGETHER with the outputs of its new
   transactions (the outbox, see ``finsentry.stream.profiles``); then every touched partner
   profile is written back conditionally (no outbox), folding in only the records whose
   account write succeeded;
5. scored rows go to Firehose and alerts to SNS in batch calls, then the delivered outputs are
   trimmed from the outbox; invalid records go to the quarantine queue.

A record whose profile or partner profile could not be read or written, or whose output / quarantine message was
not accepted, is FAILED: it is named in ``batchItemFailures`` and its retry completes it once
(a redelivered transaction is not folded again; its undelivered outputs come from the outbox).

Counting rule, per batch: ``received == scored + quarantined + redelivered + failed``, where
``scored`` counts records fully delivered and ``redelivered`` counts records skipped because
their profile had already folded them in.

Drift: while a model with a drift reference serves, a ``finsentry.drift.DriftWindow`` counts
the features and scores of every row the model scored and folded into its profile (each
transaction once: a retried profile write is not counted twice); when it holds
``drift_min_rows`` rows its PSI is emitted (``ScorePsi``, ``FeaturePsi`` per ``Feature``)
through the same metrics sink as the batch counts, and a new window starts. A new model
(another detector object) starts a new window; rules-only and models without a reference
publish no drift.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from finsentry.drift import MIN_ROWS, DriftMeasurement, DriftWindow
from finsentry.monitoring import Metric
from finsentry.partners import PartnerProfile
from finsentry.privacy import DEFAULT_MASK_KEY, mask_ids
from finsentry.schema import MAX_STRING_LENGTH, Reason
from finsentry.scoring import SCORED_COLUMNS
from finsentry.stream.events import InboundRecord, batch_item_failures
from finsentry.stream.metrics import MemoryMetrics, MetricsSink
from finsentry.stream.model_source import ServingModel
from finsentry.stream.profiles import PARTNER_PREFIX, ProfileStore, StoredProfile, partner_item_key
from finsentry.stream.sinks import AlertPublisher, QuarantineQueue, ScoredSink, quarantine_message
from finsentry.streaming import PARTNER, POSITION, BatchOutcome, StreamScorer, fold_partners

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


def _copy(p: PartnerProfile) -> PartnerProfile:
    return PartnerProfile(p.partner, p.f.copy(), p.i.copy(), list(p.recent_ids))


def _partner_of(value: Any) -> str:
    """The partner key a record names, as the validator will read it ("" = none)."""
    if not isinstance(value, dict):
        return ""
    parts = []
    for name in ("partner_bank", "partner_account"):
        v = value.get(name)
        parts.append(str(v) if isinstance(v, str | int) else "")
    return "" if parts == ["", ""] else "/".join(parts)


class ScorerService:
    """Wires the scoring core to the profile store, the sinks, the model and the metrics."""

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
        self.drift_min_rows = drift_min_rows  # rows per drift window (finsentry.drift.MIN_ROWS)
        self.drift_window: DriftWindow | None = None  # of the model below; None: no drift published
        self._drift_model: Any = None  # the detector the window belongs to

    def process(self, records: list[InboundRecord]) -> BatchReport:
        """Score one batch end to end; never raises on bad input or a failing service."""
        started = time.perf_counter()
        report = BatchReport(received=len(records))
        bad: dict[str, dict[str, Any]] = {}
        by_key = {r.key: r for r in records}
        for r in records:
            if r.error:
                bad[r.key] = quarantine_message(str(Reason.MALFORMED), r.error, r.raw, r.source)

        parsed = [r for r in records if not r.error]
        accounts = {a for a in (_account_of(r.value) for r in parsed) if a is not None}
        partner_keys = {p for p in (_partner_of(r.value) for r in parsed) if p}
        read, unreadable = self.profiles.load(accounts | {partner_item_key(p) for p in partner_keys})
        loaded = {k: s for k, s in read.items() if not k.startswith(PARTNER_PREFIX)}
        loaded_partners = {k[len(PARTNER_PREFIX):]: s for k, s in read.items() if k.startswith(PARTNER_PREFIX)}
        for r in parsed:
            if _account_of(r.value) in unreadable or partner_item_key(_partner_of(r.value)) in unreadable:
                report.failed[r.key] = "profile read failed"
        scorable = [r for r in parsed if r.key not in report.failed]

        serving: ServingModel = self.models.current()
        report.mode, report.model_version = ("rules_only" if serving.rules_only else "model"), serving.version
        report.model_problem = serving.problem
        self._follow_model(serving)
        scorer = StreamScorer(serving.detector, threshold=serving.threshold, model_version=serving.version,
                              mask_key=self.mask_key)  # fmt: skip
        state = {acc: s.profile for acc, s in loaded.items()}
        partner_state = {p: s.profile for p, s in loaded_partners.items()}
        partners_read = {p: _copy(s.profile) for p, s in loaded_partners.items()}  # as read, to fold again
        known = set(loaded) if self.known_accounts_only else None
        outcome = scorer.score_batch([r.value for r in scorable], state, known_accounts=known, partners=partner_state)

        for pos, (_, row) in zip(outcome.quarantined_positions, outcome.quarantined.iterrows(), strict=True):
            r = scorable[int(pos)]
            bad[r.key] = quarantine_message(str(row["reason"]), str(row["detail"]), r.raw, r.source)

        # outputs of the fresh transactions, written ahead into their profile's outbox
        stored = {acc: loaded.get(acc) or StoredProfile(profile=state[acc]) for acc in outcome.touched_accounts}
        for acc, s in stored.items():
            s.profile = state[acc]
        now = self.clock()
        fresh_keys = [scorable[int(p)].key for p in outcome.scored_positions]
        entries = self._outputs(outcome.scored, serving.threshold, now)
        for acc, tid, entry in entries:
            stored[acc].outbox[tid] = entry
        write_failed = self.profiles.save(stored)
        unfolded = self._save_partners(outcome.folded, write_failed, partner_keys, loaded_partners, partner_state,
                                       partners_read, scorable)  # fmt: skip
        pending: dict[str, tuple[str, str]] = {}  # record key -> (account, trans_id) to deliver
        for key, (acc, tid, _) in zip(fresh_keys, entries, strict=True):
            if acc in write_failed or key in unfolded:
                report.failed[key] = "profile write failed"
            else:
                pending[key] = (acc, tid)

        # redelivered transactions: nothing to fold; deliver what an earlier attempt could not
        for pos, tid in zip(outcome.redelivered_positions, outcome.redelivered, strict=True):
            r = scorable[int(pos)]
            acc = _account_of(r.value) or ""
            s = loaded.get(acc)
            if acc in write_failed or r.key in unfolded:  # outbox not trimmed this time: deliver on the retry
                report.failed[r.key] = "profile write failed"
            elif s is not None and tid in s.outbox:
                stored.setdefault(acc, s)
                pending[r.key] = (acc, tid)
            else:
                report.redelivered.append(r.key)

        self._deliver(pending, stored, write_failed, report)
        report.drift = self._count_drift(outcome, write_failed)
        q_failed = self.quarantine.send(bad)
        for key, msg in bad.items():
            if key in q_failed:
                report.failed[key] = "quarantine queue rejected it"
            else:
                report.quarantined[key] = msg["reason"]
        ended = len(report.scored) + len(report.quarantined) + len(report.redelivered) + len(report.failed)
        if ended != len(by_key):  # a bug, never bad input: fail the batch loudly, Lambda retries it
            raise RuntimeError(f"{len(by_key)} records received but {ended} outcomes")
        report.seconds = time.perf_counter() - started
        self._emit(report, outcome.alerts)
        return report

    def _save_partners(self, folded: pd.DataFrame, write_failed: set[str], read: set[str],
                       loaded: dict[str, StoredProfile], state: dict[str, PartnerProfile],
                       as_read: dict[str, PartnerProfile], scorable: list[InboundRecord]) -> set[str]:  # fmt: skip
        """Write the partner profiles the batch folded records into, AFTER the account profiles:
        records whose account write failed are taken out again (folded anew from the profiles as
        read), so that their retry, scored again, finds them in no partner profile. Returns the
        keys of the records whose partner write failed (retried: folded in then, not rescored).

        A partner the validated rows name but the read did not ask for (a key the raw record
        spells otherwise) is not written: its rows were scored as with a new partner."""
        if folded.empty:
            return set()
        lost = folded["account_id"].astype(str).isin(write_failed).to_numpy()
        if lost.any():
            folded = folded[~lost]
            state = {p: _copy(s) for p, s in as_read.items()}
            fold_partners(state, folded)
        items = {}
        for p in sorted(set(folded[PARTNER])):
            if p not in read:
                log.warning("partner %s was not read with the batch: its profile is not written", p)
                continue
            s = loaded.get(p) or StoredProfile(profile=state[p])
            s.profile = state[p]
            items[partner_item_key(p)] = s
        failed = {k[len(PARTNER_PREFIX):] for k in self.profiles.save(items)} if items else set()
        return {scorable[int(pos)].key for pos, p in zip(folded[POSITION], folded[PARTNER], strict=True) if p in failed}

    def _follow_model(self, serving: ServingModel) -> None:
        """A new drift window whenever another model serves (none without a drift reference)."""
        if serving.detector is self._drift_model:
            return
        self._drift_model = serving.detector
        self.drift_window = (DriftWindow(serving.drift, min_rows=self.drift_min_rows)
                             if serving.drift is not None and not serving.rules_only else None)  # fmt: skip

    def _count_drift(self, outcome: BatchOutcome, write_failed: set[str]) -> DriftMeasurement | None:
        """Count the rows folded into their profile; the window's PSI once it is full."""
        window = self.drift_window
        if window is None or outcome.scored.empty or outcome.features is None:
            return None
        kept = ~outcome.scored["account_id"].astype(str).isin(write_failed).to_numpy()  # rescored on the retry
        try:
            if kept.any():
                window.add(outcome.features[kept], outcome.scored["score"].to_numpy()[kept])
        except (KeyError, ValueError) as exc:  # a reference naming features the stream lacks: drift off, scoring on
            log.error("drift window disabled for model %s: %s", self._drift_model, exc)
            self.drift_window = None
            return None
        return window.measure_and_reset() if window.ready else None

    def _outputs(self, scored: pd.DataFrame, threshold: float, now: float) -> list[tuple[str, str, dict[str, Any]]]:
        """(account, trans_id, outbox entry) per scored row, in row order."""
        if scored.empty:
            return []
        refs = mask_ids(scored["account_id"], key=self.mask_key).to_numpy()
        out = []
        for row, ref in zip(scored.to_dict("records"), refs, strict=True):
            entry: dict[str, Any] = {"scored": _scored_line(row), "at": now}
            if row["verdict"] == "alert":
                entry["alert"] = alert_message(row, str(ref), threshold)
            out.append((str(row["account_id"]), str(row["trans_id"]), entry))
        return out

    def _deliver(self, pending: dict[str, tuple[str, str]], stored: dict[str, StoredProfile],
                 write_failed: set[str], report: BatchReport) -> None:  # fmt: skip
        """Ship the pending outputs; drop what was accepted from the outbox; name the rest failed."""
        lines = {k: stored[a].outbox[t]["scored"] for k, (a, t) in pending.items() if "scored" in stored[a].outbox[t]}
        alerts = {k: stored[a].outbox[t]["alert"] for k, (a, t) in pending.items() if "alert" in stored[a].outbox[t]}
        lost = self.scored_sink.send(lines) if lines else set()
        unsent = self.alerts.send(alerts) if alerts else set()
        for key, (acc, tid) in pending.items():
            entry = stored[acc].outbox[tid]
            if key in lines and key not in lost:
                entry.pop("scored", None)
            if key in alerts and key not in unsent:
                report.alerts.append(entry.pop("alert"))
            if "scored" in entry or "alert" in entry:
                report.failed[key] = "Firehose or SNS rejected its output"
            else:
                del stored[acc].outbox[tid]
                report.scored.append(key)
        to_trim = {acc: s for acc, s in stored.items() if acc not in write_failed and s.version > 0}
        trim_failed = self.profiles.trim_outbox(to_trim) if to_trim else set()
        if trim_failed:  # outputs were delivered: only a later redelivery could repeat them
            log.error("outbox of %d accounts not trimmed after delivery", len(trim_failed))

    def _emit(self, report: BatchReport, alerts: pd.DataFrame) -> None:
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
