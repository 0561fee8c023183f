"""Detection quality: recall per anomaly type at an alert budget, AUC-PR, per detector.

    python -m bench.detection [--accounts 1500 --months 24] [--czech ../shared/data/berka]
                              [--handbook ../shared/data/handbook/...csv.gz]

For each dataset (the synthetic bank, and the Czech sample when present): labelled anomalies
are injected into the held-out period, every candidate is trained on the training period and
evaluated on the test period, next to a naive baseline — an Isolation Forest on the raw
columns (amount, balances, hour, weekday, operation, direction) with no account history.
The handbook's labelled card transactions, when present, run by the handbook's protocol
(``bench.handbook``). Prints a table per dataset; the last line is one JSON object of the figures.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console

from bench import handbook
from finsentry.detectors import make_detector
from finsentry.detectors.ensemble import DEFAULT_MEMBERS
from finsentry.detectors.sequence import ENSEMBLE_WEIGHT
from finsentry.evaluation import ModelReport, evaluate_scores
from finsentry.local.pipeline import DemoConfig, load_source, prepare
from finsentry.local.summary import detector_table
from finsentry.schema import Operation

DEFAULT_CZECH = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "berka"
CANDIDATES = ("isolation_forest", "lof", "tails", "lstm", "ensemble", "ensemble_lstm")
# the ensembles are built from the fitted candidates: the default members (stream-capable) and
# the default members + LSTM (batch only), the LSTM at its validation-chosen weight
ENSEMBLE_MEMBERS = {"ensemble": DEFAULT_MEMBERS, "ensemble_lstm": (*DEFAULT_MEMBERS, "lstm")}
ENSEMBLE_WEIGHTS = {"ensemble": None, "ensemble_lstm": (1.0, 1.0, ENSEMBLE_WEIGHT)}


def raw_columns(transactions: pd.DataFrame) -> pd.DataFrame:
    """The naive baseline's view: the record's own columns, no account history."""
    ts = pd.to_datetime(transactions["ts"])
    ops = pd.Categorical(transactions["operation"], categories=list(Operation)).codes
    return pd.DataFrame(
        {
            "amount": transactions["amount"].to_numpy(),
            "balance_before": transactions["balance_before"].to_numpy(),
            "balance_after": transactions["balance_after"].to_numpy(),
            "hour": ts.dt.hour.to_numpy(),
            "weekday": ts.dt.day_of_week.to_numpy(),
            "operation": ops,
            "debit": (transactions["direction"] == "debit").to_numpy().astype(int),
        }
    )


def run_dataset(config: DemoConfig, budget: float, console: Console) -> dict[str, ModelReport]:
    with tempfile.TemporaryDirectory() as tmp:
        bank = load_source(config, Path(tmp), console.log)
    prep = prepare(bank, config, console.log)
    train, test = prep.split.train, prep.split.test
    truth = prep.transactions.loc[test, "is_anomaly"].to_numpy()
    types = prep.transactions.loc[test, "anomaly_type"].to_numpy()
    reports: dict[str, ModelReport] = {}
    models = {}
    for name in CANDIDATES:
        started = time.perf_counter()
        if name in ENSEMBLE_MEMBERS:
            model = make_detector("ensemble", members=[models[m] for m in ENSEMBLE_MEMBERS[name]],
                                  weights=ENSEMBLE_WEIGHTS[name])
        else:
            model = make_detector(name)
        models[name] = model.fit(prep.features[train])
        scores = model.score(prep.features[test])
        reports[name] = evaluate_scores(scores, truth, types, budget=budget, name=name)
        console.log(f"{name}: {time.perf_counter() - started:.1f} s (fit and score)")
    raw = raw_columns(prep.transactions)
    naive = make_detector("isolation_forest", feature_columns=None).fit(raw[train])
    reports["naive_raw_if"] = evaluate_scores(
        naive.score(raw[test]), truth, types, budget=budget, name="naive_raw_if"
    )
    return reports


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1500)
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--budget", type=float, default=0.01)
    parser.add_argument("--rate", type=float, default=0.004, help="injected anomaly share")
    parser.add_argument("--czech", type=Path, default=DEFAULT_CZECH)
    parser.add_argument("--handbook", type=Path, default=handbook.DEFAULT_DATA)
    args = parser.parse_args(argv)
    console = Console(stderr=False)
    datasets = {
        "synthetic": DemoConfig(accounts=args.accounts, months=args.months,
                                anomaly_rate=args.rate, budget=args.budget),
    }  # fmt: skip
    if args.czech.is_dir():
        datasets["czech_sample"] = DemoConfig(
            data_dir=args.czech, anomaly_rate=args.rate, budget=args.budget
        )
    figures: dict[str, dict] = {}
    for label, config in datasets.items():
        reports = run_dataset(config, args.budget, console)
        console.print(detector_table(reports, f"{label}: test period, budget {args.budget:.1%}"))
        figures[label] = {
            name: {
                "auc_pr": round(r.auc_pr, 4),
                "auc_roc": round(r.auc_roc, 4),
                "recall": round(r.recall, 4),
                "precision": round(r.precision, 4),
                "recall_by_type": {k: round(v, 4) for k, v in r.recall_by_type.items()},
            }
            for name, r in reports.items()
        }
        figures[label]["unusual_sequence_recall"] = {
            name: round(r.recall_by_type.get("unusual_sequence", float("nan")), 4) for name, r in reports.items()
        }
    if args.handbook.is_file():
        figures["handbook"] = handbook.run(args.handbook, args.budget, console)
        console.print(handbook.table(figures["handbook"], args.budget))
    figures["budget"] = args.budget
    print(json.dumps(figures, default=lambda v: float(np.asarray(v))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
