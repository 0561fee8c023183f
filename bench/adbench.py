"""The ADBench tables under the ADBench protocol: finsentry's detectors beside the reference
implementations of the published baselines, on the same splits.

    python -m bench.adbench [--seeds 10] [--data ../shared/data/adbench]

Per table and seed: a stratified 70/30 split (``finsentry.evaluation.adbench_protocol``), each
detector fitted on the train part without labels, AUC-ROC and AUC-PR on the test part. Beside
our detectors (the default ensemble and its members, as ``finsentry evaluate --npz`` runs them)
it runs PyOD's ``ECOD`` and ``IForest`` (default parameters, the implementations ADBench used)
on the very same splits, so the published figures in ``../shared/data/README.md`` (ADBench,
Han et al. 2022: mean of 3 runs of their own splits) can be told apart from what the methods
give on this protocol. Mean and standard deviation over seeds; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from finsentry.evaluation import adbench_protocol
from finsentry.table_evaluation import detector_names, factory

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "adbench"
TABLES = ("6_cardio.npz", "38_thyroid.npz")
PUBLISHED = {  # ADBench's published AUC-ROC / AUC-PR, as listed in ../shared/data/README.md
    "6_cardio.npz": {"ECOD": (94.44, 68.59), "IForest": (93.19, 59.95)},
    "38_thyroid.npz": {"ECOD": (97.78, 54.05), "IForest": (98.30, 63.11)},
}


class PyodModel:
    """A PyOD detector behind the ``fit(frame)`` / ``score(frame)`` shape the protocol calls."""

    def __init__(self, kind: str, seed: int) -> None:
        from pyod.models.ecod import ECOD
        from pyod.models.iforest import IForest

        self.model = ECOD() if kind == "ECOD" else IForest(random_state=seed)

    def fit(self, frame: Any) -> PyodModel:
        self.model.fit(np.asarray(frame, dtype=float))
        return self

    def score(self, frame: Any) -> np.ndarray:
        return self.model.decision_function(np.asarray(frame, dtype=float))


def pyod_factory(kind: str):
    return lambda seed: PyodModel(kind, seed)


def run_table(path: Path, seeds: int) -> dict[str, dict[str, float]]:
    """Per detector: mean and standard deviation of AUC-ROC and AUC-PR (in %) over ``seeds``."""
    data = np.load(path)
    factories = {name: factory(name, None) for name in detector_names(None)}
    factories |= {f"pyod {kind}": pyod_factory(kind) for kind in ("ECOD", "IForest")}
    per_seed = [adbench_protocol(data["X"], data["y"], factories=factories, seeds=(seed,)) for seed in range(seeds)]
    out: dict[str, dict[str, float]] = {}
    for name in factories:
        roc = np.array([r[name]["auc_roc"] for r in per_seed])
        pr = np.array([r[name]["auc_pr"] for r in per_seed])
        out[name] = {"auc_roc": round(float(roc.mean()), 2), "auc_roc_sd": round(float(roc.std()), 2),
                     "auc_pr": round(float(pr.mean()), 2), "auc_pr_sd": round(float(pr.std()), 2)}  # fmt: skip
    return out


def table(name: str, results: dict[str, dict[str, float]], seeds: int) -> Table:
    t = Table(title=f"{name}: {seeds} stratified 70/30 splits, AUC in % (mean ± sd)")
    for col in ("detector", "AUC-ROC", "AUC-PR"):
        t.add_column(col, justify="left" if col == "detector" else "right")
    for det, r in results.items():
        t.add_row(det, f"{r['auc_roc']:.2f} ± {r['auc_roc_sd']:.2f}", f"{r['auc_pr']:.2f} ± {r['auc_pr_sd']:.2f}")
    for kind, (roc, pr) in PUBLISHED.get(name, {}).items():
        t.add_row(f"published {kind} (ADBench)", f"{roc:.2f}", f"{pr:.2f}")
    return t


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args(argv)
    console = Console()
    found = [args.data / t for t in TABLES if (args.data / t).is_file()]
    if not found:
        console.print(f"no ADBench table in {args.data} (looked for {', '.join(TABLES)})")
        return 2
    results: dict[str, Any] = {"seeds": args.seeds}
    for path in found:
        started = time.perf_counter()
        results[path.name] = run_table(path, args.seeds)
        console.print(table(path.name, results[path.name], args.seeds))
        console.print(f"{path.name}: {time.perf_counter() - started:.1f} s")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
