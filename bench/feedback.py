"""Analyst feedback on the handbook's card transactions: unsupervised only vs with feedback.

    python -m bench.feedback [--data ../shared/data/handbook/simulated-data-raw_...csv.gz]
                             [--start 2018-07-25 --weeks 8] [--delay 7] [--checked 100]
                             [--review-days 7] [--presumed-genuine]

The handbook's protocol (Le Borgne et al., chapters 3-5): the bank checks up to ``--checked``
(100) customers (cards) a day, the ones with the highest score; a checked card's transactions of
the last ``--review-days`` (7) days not yet labelled get verdicts (``confirmed_fraud`` /
``dismissed``, through ``finsentry.labels``: an analyst checks a card with its cardholder, not
one transaction; ``--review-days 1`` is the day's transactions only, the earlier protocol), known
``--delay`` (7) days after the check; the model is retrained weekly. Replayed day by day from
``--start``:

* unsupervised only: the default ensemble (IF + tails), fit without labels on the two weeks
  before ``--start`` (as ``bench.handbook``), never retrained;
* with feedback: from the first week with enough labels (``finsentry.labels.MIN_FRAUDS`` /
  ``MIN_NEGATIVES``) the supervised candidate (``finsentry.detectors.supervised``: gradient-boosted
  trees on the features, the ensemble's score and the label-derived risk of the customer and
  the terminal, ``finsentry.label_risk``) retrained every 7 days on the rows whose labels can be
  known (``label_risk.training_target``); before that, the ensemble. The checked customers are
  the feedback model's, so it only learns from its own alerts.

Per week and overall: AUC-ROC, AUC-PR (average precision) and card precision@100 of both, beside
the handbook's own supervised baselines (chapter 3, section 4.4 "Performances using standard
prediction models": trained on one fully labelled week, 2018-07-25..31, tested on 2018-08-08..14
after a one-week delay; they know every label of the training week, the feedback model only the
checked customers'). Pooled figures rank the scores of several weekly models together (and the
first weeks' unsupervised ones), which the handbook's one model on one test week does not: the
comparable figures are the weeks' own, their mean over the weeks after the first month, and
the handbook's test week 2018-08-08..14 (week 3 from the default start, with the first retrain
only): whole, and as the handbook's test set (``handbook_test_set``: without the customers it
knows compromised, a fraud from 2018-07-25 to the day - delay - 1; ``bench.handbook.
known_compromised``), the rows its baselines were measured on. Card precision@100 is the
handbook's (``card_precision_top_k``: a card found compromised leaves the later days of the
period measured); ``card_precision_100_no_removal`` keeps counting it, as this bench did before
2026-12-02 (0.303 instead of 0.251 for the same scores on the handbook's test set). Also
recall per fraud scenario at the 1 % alert budget after the first 28 days, and two
bounds: scenario 2's ceiling for any partner-risk model if every fraud were confirmed after the
delay, and the figures of an oracle knowing every card-visible fraud (scenarios 1, 3) but no
terminal. The replay covers ``--weeks`` weeks (default 8: 2018-07-25..09-18), not the whole half year,
to keep the run near ten minutes on 2 cores. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from bench.handbook import DEFAULT_DATA, card_precision_at_k, known_compromised, load_handbook
from finsentry.detectors import make_detector
from finsentry.detectors.supervised import SCORE_COLUMN, TARGET_COLUMN, SupervisedDetector
from finsentry.evaluation import auc_pr, auc_roc, evaluate_scores
from finsentry.label_risk import RISK_WINDOW_DAYS, risk_features, training_target
from finsentry.labels import current_verdicts, empty_history, labels_suffice, merge_labels, validate_labels

# chapter 3, section 4.4 of the handbook, test week 2018-08-08..14 (AUC ROC, average precision, card precision@100)
HANDBOOK_BASELINES = {
    "handbook logistic regression": (0.871, 0.606, 0.291),
    "handbook decision tree depth 2": (0.763, 0.496, 0.241),
    "handbook decision tree": (0.788, 0.309, 0.243),
    "handbook random forest": (0.867, 0.658, 0.287),
    "handbook XGBoost": (0.862, 0.639, 0.273),
}
HANDBOOK_SOURCE = ("Le Borgne et al., Reproducible Machine Learning for Credit Card Fraud Detection - Practical "
                   "Handbook, chapter 3 'Getting started', section 4.4 'Performances using standard prediction models'")
SCENARIOS = ("1", "2", "3")
AFTER_DAYS = 28  # "after the first month": the scenario-2 goal and the comparable pooled figures
HANDBOOK_TEST_WEEK = ("2018-08-08", "2018-08-15")  # the handbook's test week (chapter 3, section 4.4)
HANDBOOK_TRAIN_START = "2018-07-25"  # its training week's first day: its test set leaves out frauds known since
BUDGET = 0.01


def check_customers(day_rows: pd.DataFrame, scores: np.ndarray, checked: int, delay_days: float,
                    recent: pd.DataFrame | None = None, labelled: set[str] | None = None) -> list[dict]:  # fmt: skip
    """The analysts' day: the ``checked`` customers with the highest score of the day are
    investigated (a CARD is checked, as the handbook's card precision counts it): every
    transaction of theirs in ``recent`` (the last ``--review-days`` days, default the day's rows
    only) not yet in ``labelled`` gets a verdict, given ``delay_days`` after the end of the day
    (the simulator's truth stands in for the investigation)."""
    per = pd.DataFrame({"account": day_rows["account_id"].to_numpy(), "score": scores})
    top = per.groupby("account", sort=False)["score"].max().nlargest(checked).index
    pool = day_rows if recent is None else recent
    rows = pool[pool["account_id"].isin(top)]
    if labelled:
        rows = rows[~rows["trans_id"].astype(str).isin(labelled)]
    end = pd.to_datetime(day_rows["ts"]).dt.floor("D").max()
    when = (end + pd.Timedelta(days=1 + delay_days)).strftime("%Y-%m-%dT%H:%M:%S")
    verdict = np.where(rows["label"].to_numpy().astype(bool), "confirmed_fraud", "dismissed")
    return [{"trans_id": t, "verdict": v, "who": "bench-analyst", "when": when}
            for t, v in zip(rows["trans_id"].astype(str), verdict, strict=True)]  # fmt: skip


def figures(frame: pd.DataFrame, scores: np.ndarray) -> dict[str, float]:
    """AUC-ROC, AUC-PR and the handbook's card precision@100 (a card found compromised leaves
    the later days, ``card_precision_at_k(remove_detected=True)``), and the same without removal
    (``card_precision_100_no_removal``: what this bench reported before 2026-12-02, higher)."""
    y = frame["label"].to_numpy().astype(bool)
    out = {"auc_roc": auc_roc(scores, y), "auc_pr": auc_pr(scores, y),
           "card_precision_100": card_precision_at_k(frame, scores, remove_detected=True),
           "card_precision_100_no_removal": card_precision_at_k(frame, scores)}  # fmt: skip
    return {k: round(float(v), 4) for k, v in out.items()}


def scenario_recall(frame: pd.DataFrame, scores: np.ndarray) -> dict[str, float]:
    """Recall per fraud scenario at the 1 % budget, each day's own budget (alerts of a day)."""
    y = frame["label"].to_numpy().astype(bool)
    types = np.where(y, frame["label_type"].astype(str).to_numpy(), "")
    days = pd.to_datetime(frame["ts"]).dt.floor("D").to_numpy()
    hit = np.zeros(len(frame), dtype=bool)
    for day in np.unique(days):
        at = np.flatnonzero(days == day)
        report = evaluate_scores(scores[at], y[at], types[at], budget=BUDGET, keys=frame["trans_id"].to_numpy()[at])
        hit[at] = scores[at] > report.threshold
    return {s: round(float(hit[types == s].mean()), 4) if (types == s).any() else float("nan") for s in SCENARIOS}


def terminal_ceiling(frame: pd.DataFrame, test: np.ndarray, delay_days: float, window_days: int = RISK_WINDOW_DAYS
                     ) -> float:  # fmt: skip
    """Scenario 2's ceiling for any partner-risk model: the share of the ``test`` rows' scenario-2
    frauds made at a terminal with an earlier fraud known before them if EVERY fraud were
    confirmed ``delay_days`` after its day (the handbook's fully labelled delay protocol), within
    the risk window (``label_risk.RISK_WINDOW_DAYS``). Scenario 2 is invisible otherwise."""
    y = frame["label"].to_numpy().astype(bool)
    types = frame["label_type"].astype(str).to_numpy()
    ts = pd.to_datetime(frame["ts"])
    frauds = pd.DataFrame({"partner": frame["partner_account"].to_numpy()[y],
                           "known": (ts.dt.floor("D") + pd.Timedelta(days=1 + delay_days)).to_numpy()[y]})  # fmt: skip
    victims = pd.DataFrame({"row": np.flatnonzero(test & y & (types == "2"))})
    if victims.empty:
        return float("nan")
    victims["partner"] = frame["partner_account"].to_numpy()[victims["row"]]
    victims["ts"] = ts.to_numpy()[victims["row"]]
    pairs = victims.merge(frauds, on="partner")
    pairs = pairs[(pairs["known"] < pairs["ts"]) & (pairs["known"] >= pairs["ts"] - pd.Timedelta(days=window_days))]
    return round(float(victims["row"].isin(pairs["row"]).mean()), 4)


def card_visible_oracle(frame: pd.DataFrame, seed: int = 0) -> np.ndarray:
    """The scores of a model that knows every fraud a card shows (scenarios 1 and 3) and nothing
    of compromised terminals (scenario 2): those frauds first, every other row in random order.
    Its AUC-PR and card precision@100 bound what any model without terminal knowledge reaches."""
    y = frame["label"].to_numpy().astype(bool)
    visible = y & (frame["label_type"].astype(str).to_numpy() != "2")
    return visible + np.random.default_rng(seed).random(len(frame)) * 0.5


def replay(valid: pd.DataFrame, features: pd.DataFrame, start: pd.Timestamp, weeks: int, delay: float, checked: int,
           console: Console, review_days: int = 1, model_params: dict | None = None) -> dict:  # fmt: skip
    ts = pd.to_datetime(valid["ts"])
    end = start + pd.Timedelta(weeks=weeks)
    frame = pd.concat([valid.reset_index(drop=True), features.reset_index(drop=True)], axis=1)
    frame = frame.loc[:, ~frame.columns.duplicated()]
    base_train = ((ts >= start - pd.Timedelta(days=14)) & (ts < start)).to_numpy()
    span = ((ts >= start - pd.Timedelta(days=28)) & (ts < end)).to_numpy()  # training rows + replay
    frame = frame[span].reset_index(drop=True)
    base_train = base_train[span]
    started = time.perf_counter()
    base = make_detector("ensemble").fit(frame[base_train])
    frame[SCORE_COLUMN] = base.score(frame)
    console.log(f"unsupervised ensemble fit on {int(base_train.sum()):,} rows and scored {len(frame):,} in "
                f"{time.perf_counter() - started:.0f} s")  # fmt: skip
    day = pd.to_datetime(frame["ts"]).dt.floor("D")
    replay_days = pd.date_range(start, end - pd.Timedelta(days=1), freq="D")
    history = empty_history()
    model: SupervisedDetector | None = None
    feedback = np.full(len(frame), np.nan)
    risk_cache: list[pd.DataFrame] = []
    retrains: list[dict] = []
    labelled: set[str] = set()
    for i, d in enumerate(replay_days):
        if i % 7 == 0:
            model = _retrain(frame, risk_cache, history, d, delay, base, model, retrains, console, model_params or {})
        at = (day == d).to_numpy()
        rows = frame[at]
        risk = risk_features(rows, history, lookup=frame)
        risk_cache.append(risk)
        scored = pd.concat([rows, risk], axis=1)
        feedback[at] = model.score(scored) if model is not None else rows[SCORE_COLUMN].to_numpy()
        recent = frame[((day > d - pd.Timedelta(days=review_days)) & (day <= d)).to_numpy()]
        batch = validate_labels(check_customers(rows, feedback[at], checked, delay, recent, labelled),
                                now=d + pd.Timedelta(days=60))  # fmt: skip
        labelled.update(batch.valid["trans_id"].astype(str))
        if len(batch.rejected):
            raise RuntimeError(f"the bench's own labels were rejected: {batch.reason_counts()}")
        history = merge_labels(history, batch.valid, received_at=d).history
    test = day.isin(replay_days).to_numpy()
    result = _results(frame[test].reset_index(drop=True), frame.loc[test, SCORE_COLUMN].to_numpy(), feedback[test],
                      day[test].reset_index(drop=True), replay_days, retrains, history)  # fmt: skip
    # the handbook's own test set: its test week without the customers it knows compromised
    # (a fraud from the training start to the day - delay - 1), the set of HANDBOOK_BASELINES
    week = (day >= HANDBOOK_TEST_WEEK[0]) & (day < HANDBOOK_TEST_WEEK[1])
    handbook_set = (week & ~known_compromised(frame, pd.Timestamp(HANDBOOK_TRAIN_START), int(delay))).to_numpy()
    if handbook_set.any() and day.isin(replay_days)[handbook_set].all():
        part = frame[handbook_set].reset_index(drop=True)
        result["handbook_test_set"] = {"rows": int(handbook_set.sum()), "frauds": int(part["label"].sum()),
                                       "unsupervised": figures(part, frame.loc[handbook_set, SCORE_COLUMN].to_numpy()),
                                       "feedback": figures(part, feedback[handbook_set])}  # fmt: skip
    else:
        result["handbook_test_set"] = None
    later = test & (day >= replay_days[0] + pd.Timedelta(days=AFTER_DAYS)).to_numpy()
    result["scenario_2_ceiling_after_28_days"] = terminal_ceiling(frame, later, delay)
    return result


def _retrain(frame, risk_cache, history, as_of, delay, base, model, retrains, console, model_params):
    known = history[history["when"] < as_of]
    ok, why = labels_suffice(current_verdicts(known))
    if not ok:
        console.log(f"{as_of:%Y-%m-%d}: no retrain, {why}")
        return model
    started = time.perf_counter()
    scored_rows = pd.concat(risk_cache)  # every replayed row so far, with its point-in-time risk
    rows = frame.loc[scored_rows.index]
    target, usable = training_target(rows, known, as_of, label_delay_days=delay)
    train = pd.concat([rows, scored_rows], axis=1).assign(**{TARGET_COLUMN: target.to_numpy()})[usable]
    fresh = SupervisedDetector(base=base, **{"max_iter": 150, **model_params}).fit(train)
    counts = fresh.training_counts_
    retrains.append({"as_of": str(as_of.date()), **counts, "seconds": round(time.perf_counter() - started, 1)})
    console.log(f"{as_of:%Y-%m-%d}: retrained on {counts} in {time.perf_counter() - started:.0f} s")
    return fresh


def _results(test, unsupervised, feedback, day, replay_days, retrains, history) -> dict:
    week = ((day - replay_days[0]).dt.days // 7).to_numpy()
    weekly = []
    for w in np.unique(week):
        at = week == w
        part = test[at].reset_index(drop=True)
        weekly.append({"week": int(w) + 1, "from": str(replay_days[0].date() + pd.Timedelta(weeks=int(w))),
                       "frauds": int(part["label"].sum()), "unsupervised": figures(part, unsupervised[at]),
                       "feedback": figures(part, feedback[at])})  # fmt: skip
    later = (day >= replay_days[0] + pd.Timedelta(days=AFTER_DAYS)).to_numpy()
    current = current_verdicts(history)
    after = [w for w in weekly if pd.Timestamp(w["from"]) >= replay_days[0] + pd.Timedelta(days=AFTER_DAYS)]
    handbook_week = [w for w in weekly if w["from"] == HANDBOOK_TEST_WEEK[0]]
    return {
        "weekly": weekly,
        "overall": {"unsupervised": figures(test, unsupervised), "feedback": figures(test, feedback)},
        # pooled over the weeks after the first month (several weekly models' scores in one ranking)
        "after_28_days": {"unsupervised": figures(test[later].reset_index(drop=True), unsupervised[later]),
                          "feedback": figures(test[later].reset_index(drop=True), feedback[later])},
        # the mean of the weekly figures after the first month: each week ranked by one model, as
        # the handbook's one test week is
        "weekly_mean_after_28_days": {
            key: {m: round(float(np.mean([w[key][m] for w in after])), 4) if after else float("nan")
                  for m in ("auc_roc", "auc_pr", "card_precision_100", "card_precision_100_no_removal")}
            for key in ("unsupervised", "feedback")},
        "handbook_test_week": handbook_week[0] if handbook_week else None,
        "oracle_without_terminals_after_28_days": figures(test[later].reset_index(drop=True),
                                                          card_visible_oracle(test[later])),
        "scenario_recall_after_28_days": {
            "unsupervised": scenario_recall(test[later].reset_index(drop=True), unsupervised[later]),
            "feedback": scenario_recall(test[later].reset_index(drop=True), feedback[later]),
        },
        "retrains": retrains,
        "labels": {"given": len(history), "confirmed_fraud": int(current["is_fraud"].sum()),
                   "dismissed": int((~current["is_fraud"]).sum())},  # fmt: skip
    }


def tables(result: dict, args: argparse.Namespace) -> list[Table]:
    weekly = Table(title=f"handbook replay from {args.start}, {args.weeks} weeks, {args.checked} customers checked "
                         f"a day, labels after {args.delay:g} days, weekly retrain", title_justify="left")  # fmt: skip
    for col in ("week", "from", "frauds", "AUC-ROC unsup", "AUC-ROC fb", "AUC-PR unsup", "AUC-PR fb",
                "CP@100 unsup", "CP@100 fb"):  # fmt: skip
        weekly.add_column(col, justify="right")
    later_frauds = sum(w["frauds"] for w in result["weekly"]
                       if pd.Timestamp(w["from"]) >= pd.Timestamp(args.start) + pd.Timedelta(days=AFTER_DAYS))
    rows = [*result["weekly"],
            {"week": "all", "from": "", "frauds": sum(w["frauds"] for w in result["weekly"]), **result["overall"]},
            {"week": "after 28 d", "from": "pooled", "frauds": later_frauds, **result["after_28_days"]},
            {"week": "after 28 d", "from": "week mean", "frauds": later_frauds,
             **result["weekly_mean_after_28_days"]}]  # fmt: skip
    for w in rows:
        u, f = w["unsupervised"], w["feedback"]
        weekly.add_row(str(w["week"]), w["from"], f"{w['frauds']:,}", f"{u['auc_roc']:.3f}", f"{f['auc_roc']:.3f}",
                       f"{u['auc_pr']:.3f}", f"{f['auc_pr']:.3f}", f"{u['card_precision_100']:.3f}",
                       f"{f['card_precision_100']:.3f}")  # fmt: skip
    side = Table(title="this replay beside the handbook's supervised baselines (" + HANDBOOK_SOURCE + "); "
                       "pooled figures rank several weekly models' scores together, the handbook ranks one "
                       "model's scores on one test week: compare with the week figures",
                 title_justify="left")  # fmt: skip
    for col in ("model", "AUC-ROC", "AUC-PR", "card precision@100"):
        side.add_column(col, justify="right" if col != "model" else "left")
    comparable = [("all weeks pooled", result["overall"]),
                  ("week mean after 28 days", result["weekly_mean_after_28_days"])]
    if result["handbook_test_week"]:
        comparable.append((f"whole test week {HANDBOOK_TEST_WEEK[0]}", result["handbook_test_week"]))
    if result.get("handbook_test_set"):
        comparable.append((f"handbook test set {HANDBOOK_TEST_WEEK[0]} (the baselines' rows)",
                           result["handbook_test_set"]))
    for label, figs in comparable:
        for name, key in (("unsupervised only", "unsupervised"), ("with feedback", "feedback")):
            o = figs[key]
            side.add_row(f"{name}, {label}", f"{o['auc_roc']:.3f}", f"{o['auc_pr']:.3f}",
                         f"{o['card_precision_100']:.3f}")
    for name, (roc, pr, cp) in HANDBOOK_BASELINES.items():
        side.add_row(name + " (one test week)", f"{roc:.3f}", f"{pr:.3f}", f"{cp:.3f}")
    recall = Table(title="recall per scenario at the 1 % daily budget, after the first 28 days", title_justify="left")
    recall.add_column("model")
    for s in SCENARIOS:
        recall.add_column(f"scenario {s}", justify="right")
    for key, values in result["scenario_recall_after_28_days"].items():
        recall.add_row(key, *(f"{values[s]:.1%}" for s in SCENARIOS))
    ceiling = result["scenario_2_ceiling_after_28_days"]
    recall.add_row("ceiling: every fraud known after the delay", "", f"{ceiling:.1%}", "")
    oracle = result["oracle_without_terminals_after_28_days"]
    side.add_row("bound: knows every card-visible fraud, no terminal (after 28 days)", f"{oracle['auc_roc']:.3f}",
                 f"{oracle['auc_pr']:.3f}", f"{oracle['card_precision_100']:.3f}")  # fmt: skip
    return [weekly, side, recall]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--start", default="2018-07-25")
    parser.add_argument("--weeks", type=int, default=8)
    parser.add_argument("--delay", type=float, default=7.0, help="days before a verdict is known")
    parser.add_argument("--checked", type=int, default=100, help="customers checked a day")
    parser.add_argument("--presumed-genuine", action="store_true",
                        help="train on unlabelled rows older than the delay as negatives (unlabelled_as_negative)")
    parser.add_argument("--review-days", type=int, default=7,
                        help="a checked customer's transactions of the last N days get verdicts (1: the day's only)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    if (loaded := load_handbook(args.data)) is None:
        return 2
    console, valid, features = loaded
    result = replay(valid, features, pd.Timestamp(args.start), args.weeks, args.delay, args.checked, console,
                    review_days=args.review_days, model_params={"unlabelled_as_negative": args.presumed_genuine})
    for t in tables(result, args):
        console.print(t)
    console.print(f"labels given: {result['labels']}; retrains: {len(result['retrains'])}; "
                  f"{time.perf_counter() - started:.0f} s in all")  # fmt: skip
    overall = result["overall"]
    print(json.dumps({
        "auc_pr_unsupervised": overall["unsupervised"]["auc_pr"], "auc_pr_feedback": overall["feedback"]["auc_pr"],
        "card_precision_100_unsupervised": overall["unsupervised"]["card_precision_100"],
        "card_precision_100_feedback": overall["feedback"]["card_precision_100"],
        "auc_roc_unsupervised": overall["unsupervised"]["auc_roc"], "auc_roc_feedback": overall["feedback"]["auc_roc"],
        "scenario_recall_after_28_days": result["scenario_recall_after_28_days"],
        "handbook_best_auc_pr": max(v[1] for v in HANDBOOK_BASELINES.values()),
        "handbook_best_card_precision_100": max(v[2] for v in HANDBOOK_BASELINES.values()),
        "after_28_days": result["after_28_days"], "weekly_mean_after_28_days": result["weekly_mean_after_28_days"],
        "handbook_test_week": result["handbook_test_week"], "handbook_test_set": result["handbook_test_set"],
        "scenario_2_ceiling_after_28_days": result["scenario_2_ceiling_after_28_days"],
        "oracle_without_terminals_after_28_days": result["oracle_without_terminals_after_28_days"],
        "weekly": result["weekly"], "retrains": result["retrains"], "labels": result["labels"],
        "start": args.start, "weeks": args.weeks, "delay_days": args.delay, "checked_per_day": args.checked,
        "review_days": args.review_days, "presumed_genuine": args.presumed_genuine,
    }))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
