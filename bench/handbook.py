"""The fraud-detection handbook's labelled card transactions, by the handbook's protocol.

    python -m bench.handbook [--data ../shared/data/handbook/simulated-data-raw_...csv.gz]

The table (1.75M transactions, whole customer histories, three fraud scenarios; see
``../shared/data/README.md``) comes in as a foreign table through ``bench/handbook.yaml`` —
the mapping a user would write: customer -> account and client, terminal -> partner, card
withdrawal debits, no balances (the features that need them are left out, never faked), the
fraud flag and scenario as ``label`` / ``label_type`` (read by evaluation only).

Protocol (the handbook's chapters 3-5): features over the whole history (point-in-time), the
detectors fit WITHOUT labels on one training window, a one-week gap (labels arrive late), then
scored on the following week. Figures per detector: recall per scenario at the alert budget,
AUC-PR (average precision), AUC-ROC and card precision@100 (the handbook's: of the 100 customers
with the highest score each day, not found compromised on an earlier test day, the share with a
fraud that day, averaged over the test days; ``card_precision_100_no_removal`` without the
removal, the only figure before 2026-12-02); beside
two label-free baselines: the raw amount as a score, and an Isolation Forest on (amount, hour).
The last line is one JSON object of the figures.
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

from finsentry.detectors import make_detector
from finsentry.evaluation import auc_pr, auc_roc, evaluate_scores
from finsentry.features import features_with_sequence

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parents[1] / "shared" / "data" / "handbook" / "simulated-data-raw_2018-04-01_2018-09-30.csv.gz"
MAPPING = HERE / "handbook.yaml"
TRAIN = ("2018-07-25", "2018-08-08")  # [start, end): two weeks, unlabelled
TEST = ("2018-08-15", "2018-08-22")  # one week after a one-week delay
DETECTORS = ("isolation_forest", "lof", "tails", "ensemble")
SCENARIOS = (1, 2, 3)


def handbook_console(data: Path, width: int = 170) -> Console | None:
    """The benches' console, or None after saying there is no handbook data at ``data``."""
    console = Console(stderr=False, width=width)
    if not data.is_file():
        console.print(f"no handbook data at {data} (see ../shared/data/README.md)")
        return None
    return console


def load_handbook(data: Path) -> tuple[Console, pd.DataFrame, pd.DataFrame] | None:
    """The benches' console and ``load(data)``, or None after saying there is no data there."""
    console = handbook_console(data)
    return None if console is None else (console, *load(data, console))


def load(data: Path, console: Console) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Canonical transactions (with label columns) and their point-in-time features."""
    from finsentry.mapping import load_mapped

    started = time.perf_counter()
    mapped = load_mapped(data, MAPPING)
    valid = mapped.result.valid.copy()
    valid["label"] = mapped.labels["is_anomaly"].to_numpy()
    valid["label_type"] = mapped.labels["anomaly_type"].to_numpy()
    console.log(f"{mapped.received:,} rows mapped, {len(valid):,} valid in {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    features = features_with_sequence(valid)
    console.log(f"features in {time.perf_counter() - started:.1f} s")
    return valid, features


def card_precision_at_k(frame: pd.DataFrame, scores: np.ndarray, k: int = 100, remove_detected: bool = False) -> float:
    """Per day, the share of truly compromised customers among the ``k`` highest-scored ones
    (a customer's score is its highest transaction score of the day); mean over days.

    ``remove_detected=True`` is the handbook's own ``card_precision_top_k`` (chapter 4, its
    default ``remove_detected_compromised_cards=True``, used for every published figure): days in
    order, a customer found compromised in an earlier day's top ``k`` is left out of the later
    days, and the day's share is over ``k`` (not over the customers ranked, when fewer). Without
    it (the benches' ``card_precision_100_no_removal``, their only figure before 2026-12-02) a
    compromised card counts again each day it is in the top ``k``, which gives a higher figure."""
    day = pd.to_datetime(frame["ts"]).dt.floor("D").to_numpy()
    per = pd.DataFrame({"day": day, "account": frame["account_id"].to_numpy(), "score": scores,
                        "fraud": frame["label"].to_numpy()}).groupby(["day", "account"], sort=False).max()  # fmt: skip
    if not remove_detected:
        shares = [g.nlargest(k, "score")["fraud"].mean() for _, g in per.groupby(level="day")]
        return float(np.mean(shares))
    detected: set = set()
    shares = []
    for _, g in per.groupby(level="day", sort=True):
        accounts = g.index.get_level_values("account")
        top = g[~accounts.isin(list(detected))].nlargest(k, "score")
        found = top.index.get_level_values("account")[top["fraud"].to_numpy().astype(bool)]
        shares.append(len(found) / k)
        detected.update(found)
    return float(np.mean(shares))


def known_compromised(frame: pd.DataFrame, since: pd.Timestamp, delay_days: int) -> np.ndarray:
    """True for the rows the handbook leaves out of its test set: their customer has a fraud on a
    day from ``since`` (the training start) to the row's day - ``delay_days`` - 1 (chapter 3,
    ``get_train_test_set``: "known defrauded customers")."""
    day = pd.to_datetime(frame["ts"]).dt.floor("D")
    fraud = frame["label"].to_numpy().astype(bool) & (day >= since).to_numpy()
    first = day[fraud].groupby(frame["account_id"].to_numpy()[fraud]).min()
    first_fraud = pd.to_datetime(frame["account_id"].map(first))
    return (first_fraud.notna() & (first_fraud <= day - pd.Timedelta(days=delay_days + 1))).to_numpy()


def figures(name: str, frame: pd.DataFrame, scores: np.ndarray, budget: float) -> dict:
    y = frame["label"].to_numpy().astype(bool)
    scenario = frame["label_type"].astype(str).to_numpy()
    report = evaluate_scores(scores, y, np.where(y, scenario, ""), budget=budget, name=name)
    out = {"auc_pr": auc_pr(scores, y), "auc_roc": auc_roc(scores, y),
           "card_precision_100": card_precision_at_k(frame, scores, remove_detected=True),
           "card_precision_100_no_removal": card_precision_at_k(frame, scores), "recall": report.recall,
           "alerts": report.alerts}  # fmt: skip
    for s in SCENARIOS:
        out[f"recall_scenario_{s}"] = report.recall_by_type.get(str(s), float("nan"))
    return {k: round(float(v), 4) for k, v in out.items()}


def run(data: Path, budget: float, console: Console) -> dict[str, dict]:
    valid, features = load(data, console)
    ts = pd.to_datetime(valid["ts"])
    train = ((ts >= TRAIN[0]) & (ts < TRAIN[1])).to_numpy()
    test = ((ts >= TEST[0]) & (ts < TEST[1])).to_numpy()
    frame = valid[test].reset_index(drop=True)
    results: dict[str, dict] = {}
    for name in DETECTORS:
        started = time.perf_counter()
        model = make_detector(name).fit(features[train])
        results[name] = figures(name, frame, model.score(features[test]), budget)
        warnings = getattr(model, "warnings", [])
        console.log(f"{name}: {time.perf_counter() - started:.1f} s (fit and score); left out "
                    f"{getattr(model, 'unfed_features_', [])}" + (f"; {warnings}" if warnings else ""))  # fmt: skip
    results["raw_amount"] = figures("raw_amount", frame, frame["amount"].to_numpy(dtype=float), budget)
    raw = pd.DataFrame({"amount": valid["amount"].to_numpy(dtype=float), "hour": ts.dt.hour.to_numpy()})
    naive = make_detector("isolation_forest", feature_columns=None).fit(raw[train])
    results["if_amount_hour"] = figures("if_amount_hour", frame, naive.score(raw[test]), budget)
    return results


def table(results: dict[str, dict], budget: float) -> Table:
    t = Table(title=f"handbook: train {TRAIN[0]}..{TRAIN[1]}, test {TEST[0]}..{TEST[1]}, budget {budget:.1%}",
              title_justify="left")  # fmt: skip
    t.add_column("figure", style="bold")
    for name in results:
        t.add_column(name, justify="right")
    for key in next(iter(results.values())):
        t.add_row(key, *(f"{r[key]:.3f}" if key != "alerts" else f"{r[key]:,.0f}" for r in results.values()))
    return t


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--budget", type=float, default=0.01)
    args = parser.parse_args(argv)
    console = handbook_console(args.data, width=160)
    if console is None:
        return 2
    results = run(args.data, args.budget, console)
    console.print(table(results, args.budget))
    print(json.dumps({"handbook": results, "budget": args.budget}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
