"""One round of analyst feedback on the local run, as ``make demo`` shows it.

1. **Alerts.** The demo scored its test period; the alerts of its first half (the *reviewed
   days*) are listed through the analysts' view (``finsentry.local.alerts``).
2. **A scripted analyst** reviews every one of them, knowing the synthetic bank's injected
   anomalies (the ground truth the demo keeps): an injected anomaly is ``confirmed_fraud``,
   anything else ``dismissed``; each verdict is given the morning after the transaction. The
   verdicts go in as a case-management export through the real ``finsentry label --labels``
   (the ``record`` callable: the CLI passes its own command), so they land in the label store
   with the validator's checks.
3. **Retrain.** The supervised candidate (``finsentry.detectors.supervised``) trains through the
   SageMaker training entry point on the reviewed days with the verdicts as its ``labels``
   channel, exactly as the state machine's fifth branch does; below the documented minimum the
   job refuses ("not enough verdicts") and the round says so, as the state machine skips it.
4. **Effect.** The evaluation entry point compares it with the model in production (the
   demo's selected model, ``<out>/model``) on the second half of the test period, which no
   analyst has seen: no verdict there, so the figures are on the injected anomalies, and nothing
   the supervised model learnt from comes from those days (verdicts are dated before them).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from finsentry.labels import CONFIRMED_FRAUD, DISMISSED, LabelStore

ANALYST = "scripted-analyst"
VERDICT_HOUR = pd.Timedelta(days=1, hours=9)  # the morning after the transaction's day
SUPERVISED = "supervised"
Progress = Callable[[str], None]


@dataclass
class FeedbackRound:
    """What one round did and its effect (``before`` / ``after``: evaluation.json's figures)."""

    reviewed_days: tuple[str, str]
    evaluation_days: tuple[str, str]
    alerts_reviewed: int
    confirmed: int
    dismissed: int
    labels_file: Path
    outcome: str  # "trained" | "skipped"
    reason: str  # the selection's reason, or why the candidate was skipped
    before: dict | None = None  # the model in production on the evaluation days
    after: dict | None = None  # the supervised candidate on the same days
    promoted: bool = False
    seconds: dict[str, float] = field(default_factory=dict)


def split_test_period(ts: pd.Series) -> pd.Timestamp:
    """The first day of the test period's second half (by days): verdicts before, evaluation from it."""
    days = pd.to_datetime(ts).dt.normalize().drop_duplicates().sort_values().reset_index(drop=True)
    if len(days) < 2:
        raise ValueError("the test period spans one day: no day left to measure the feedback's effect on")
    return days.iloc[len(days) // 2]


def scripted_verdicts(alerts: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """A case-management export of verdicts on ``alerts`` (``trans_id``, ``ts``): confirmed_fraud
    where ``truth`` (``trans_id``, ``is_anomaly``, ``anomaly_type``) says injected, else dismissed."""
    known = truth.assign(trans_id=truth["trans_id"].astype(str)).drop_duplicates("trans_id").set_index("trans_id")
    ids = alerts["trans_id"].astype(str)
    injected = known.reindex(ids)["is_anomaly"].fillna(False).astype(bool).to_numpy()
    kind = known.reindex(ids)["anomaly_type"].fillna("").astype(str).to_numpy()
    when = pd.to_datetime(alerts["ts"]).dt.normalize() + VERDICT_HOUR
    return pd.DataFrame({
        "trans_id": ids.to_numpy(),
        "verdict": [CONFIRMED_FRAUD if i else DISMISSED for i in injected],
        "who": ANALYST,
        "when": when.dt.strftime("%Y-%m-%dT%H:%M:%S").to_numpy(),
        "note": [f"injected {k}" if i else "" for i, k in zip(injected, kind, strict=True)],
    })  # fmt: skip


def run_round(prepared, out_dir: Path, budget: float, record: Callable[[Path], None],
              progress: Progress = lambda _: None) -> FeedbackRound:  # fmt: skip
    """One round on a finished demo (``prepared``: its ``Prepared``; ``out_dir`` holds its scored
    test period and ``model/``); ``record(csv_path)`` records the export (``finsentry label``)."""
    from finsentry.local.alerts import local_alerts
    from finsentry.local.training_run import run_training_jobs

    seconds: dict[str, float] = {}
    started = time.perf_counter()
    tx, test = prepared.transactions, prepared.split.test
    ts = tx.loc[test, "ts"]
    cut = split_test_period(ts)
    first, last = ts.min().strftime("%Y-%m-%d"), ts.max().strftime("%Y-%m-%d")
    cut_day, before_cut = cut.strftime("%Y-%m-%d"), (cut - pd.Timedelta(days=1)).strftime("%Y-%m-%d")
    listed = local_alerts(out_dir, until=cut_day, limit=None).alerts
    progress(f"feedback round: a scripted analyst reviews the {len(listed):,} alerts of {first} .. {before_cut}")
    export = scripted_verdicts(listed, tx[["trans_id", "is_anomaly", "anomaly_type"]])
    path = Path(out_dir) / "feedback" / "round-1-verdicts.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    export.to_csv(path, index=False)
    record(path)
    seconds["label"] = round(time.perf_counter() - started, 2)
    confirmed = int((export["verdict"] == CONFIRMED_FRAUD).sum())
    result = FeedbackRound(reviewed_days=(first, before_cut), evaluation_days=(cut_day, last),
                           alerts_reviewed=len(export), confirmed=confirmed, dismissed=len(export) - confirmed,
                           labels_file=path, outcome="skipped", reason="", seconds=seconds)  # fmt: skip
    reviewed = test & (tx["ts"] < cut)
    later = test & (tx["ts"] >= cut)
    started = time.perf_counter()
    try:
        run = run_training_jobs(tx, prepared.features, reviewed, later, budget, champion=Path(out_dir) / "model",
                                candidates=(SUPERVISED,), progress=progress, labels=LabelStore(out_dir).path)
    except RuntimeError as exc:  # the training job's failure file, e.g. "not enough verdicts"
        result.reason = str(exc).removeprefix("training job failed: ").strip()
        return result
    finally:
        seconds["retrain"] = round(time.perf_counter() - started, 2)
    evaluation = run.evaluation
    result.outcome = "trained"
    result.after = evaluation["candidates"][SUPERVISED]
    champion = evaluation.get("champion") or {}
    result.before = champion if "recall" in champion else None
    selection = evaluation["selection"]
    result.reason, result.promoted = selection["reason"], bool(selection.get("promote"))
    return result


def _pct(v) -> str:
    return "-" if v is None else f"{100 * float(v):.1f} %"


def print_round(result: FeedbackRound, console) -> None:
    """The round on the console: what the analyst did, and the supervised candidate's effect."""
    from rich.table import Table

    console.print(f"[bold]Feedback round[/bold]: {result.alerts_reviewed:,} alerts of {result.reviewed_days[0]} .. "
                  f"{result.reviewed_days[1]} reviewed by a scripted analyst (ground truth: the injected anomalies): "
                  f"{result.confirmed:,} confirmed, {result.dismissed:,} dismissed, recorded with `finsentry label "
                  f"--labels {result.labels_file}`")  # fmt: skip
    if result.outcome != "trained":
        console.print(f"supervised candidate not trained: {result.reason}")
        return
    table = Table(title=f"effect on {result.evaluation_days[0]} .. {result.evaluation_days[1]} (no verdict there; "
                  "figures on the injected anomalies)", title_justify="left")  # fmt: skip
    for col in ("model", "recall", "precision", "AUC-PR", "AUC-ROC", "alerts"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for label, figures in (("before: " + ((result.before or {}).get("name") or "no model in production"),
                            result.before), (f"after: {SUPERVISED} (trained on the verdicts)", result.after)):
        if figures:
            table.add_row(label, _pct(figures.get("recall")), _pct(figures.get("precision")),
                          _pct(figures.get("auc_pr")), _pct(figures.get("auc_roc")), f"{figures.get('alerts', 0):,}")
    console.print(table)
    console.print(f"selection: {result.reason}")
