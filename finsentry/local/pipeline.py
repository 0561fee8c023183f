"""The local end-to-end run behind ``make demo`` / ``finsentry demo``.

Same stages as the AWS deployment, in-process: raw files -> S3 raw/ -> canonical records
(rejects to quarantine/) -> labelled anomalies injected into the held-out period -> features
(curated/) -> train candidates -> evaluate on validation -> select -> score the test period ->
scored/ Parquet partitioned by ``dt=`` -> summary tables.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from finsentry import __version__, drift
from finsentry.anomalies import inject_anomalies, missing_recurring_payments
from finsentry.datasets import czech, synthetic
from finsentry.detectors import make_detector
from finsentry.detectors.artifact import save_model
from finsentry.detectors.ensemble import DEFAULT_MEMBERS
from finsentry.etl import engines
from finsentry.evaluation import ModelReport, Split, evaluate_scores, select_model, time_split
from finsentry.features import DETECTOR_COLUMNS
from finsentry.layout import PREFIXES
from finsentry.local.observe import Observations, observe_run
from finsentry.local.stream_replay import ReplayResult, replay_stream
from finsentry.scoring import score_transactions, scored_frame
from finsentry.table_evaluation import unfed_features

Progress = Callable[[str], None]
CANDIDATES = ("isolation_forest", "lof", "tails", "ensemble")


@dataclass
class DemoConfig:
    """What the demo runs on. Defaults finish in about a minute on 2 cores."""

    data_dir: Path | str | None = None  # Czech files (either form), one table or a postgresql:// URL with
    # ``mapping``; None = synthetic
    mapping: Any = None  # YAML mapping (path or parsed TableMapping) of a foreign table (``data_dir``: its file)
    accounts: int = 1500
    months: int = 24
    seed: int = 7
    form: str = "asc"  # file form the synthetic bank is written in
    engine: str = "pandas"  # "spark": load and compute features through local Spark (finsentry.etl)
    budget: float = 0.01  # share of transactions that may raise an alert
    anomaly_rate: float = 0.004  # share of held-out transactions turned into anomalies
    out_dir: Path = Path("finsentry-out")
    candidates: tuple[str, ...] = CANDIDATES
    top_alerts: int = 10
    sagemaker_jobs: bool = True  # also run the SageMaker entry points in-process (finsentry.local.training_run)
    stream_records: int = 2_000  # test transactions replayed through Kinesis into the scorer (0 = skip)


@dataclass
class Prepared:
    """Labelled canonical transactions with their features and the time split."""

    transactions: pd.DataFrame
    features: pd.DataFrame
    split: Split
    labels: pd.DataFrame
    missing_payments: pd.DataFrame
    orders: pd.DataFrame
    received: int
    valid: int
    quarantined: pd.DataFrame


@dataclass
class DemoResult:
    reports: dict[str, ModelReport]  # validation reports per candidate
    selection: dict
    test_report: ModelReport
    missing_recurring_recall: float | None
    scored: pd.DataFrame
    top_alerts: pd.DataFrame
    bucket: str
    keys: dict[str, int]
    timings: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    training_run: Any = None  # finsentry.local.training_run.TrainingRun, when the SageMaker jobs ran
    observations: Observations | None = None  # drift, score distributions, reasons (report)
    stream: ReplayResult | None = None
    unfed_features: list[str] = field(default_factory=list)  # features the data could not feed (all NaN)
    model_warnings: list[str] = field(default_factory=list)  # e.g. a rule suspended for the selected model
    prepared: Prepared | None = None  # the run's transactions, features and split (the feedback round's input)
    feedback_round: Any = None  # finsentry.local.feedback_round.FeedbackRound, when one ran
    verdicts: Any = None  # finsentry.local.alerts.LocalAlerts: alerts with analysts' verdicts, precision by day


def _noop(_: str) -> None:
    return None


def load_source(config: DemoConfig, raw_dir: Path, progress: Progress = _noop) -> czech.LoadedBank:
    """Real files from ``config.data_dir``, or a synthetic bank written to ``raw_dir`` first."""
    from finsentry.database import is_database_url

    if config.mapping is None and is_database_url(config.data_dir):
        from finsentry.mapping import MappingError

        raise MappingError("a database source needs --mapping MAP.yaml (its database: section names the table)")
    if config.mapping is not None:
        return _mapped_bank(config, progress)
    if config.data_dir is not None:
        progress(f"reading the Czech bank files in {config.data_dir}")
        bank = engines.load_bank(config.data_dir, config.engine)
        bank.require_valid(str(config.data_dir))
        return bank
    syn = synthetic.SyntheticConfig(
        n_accounts=config.accounts, months=config.months, seed=config.seed
    )
    progress(f"generating a synthetic bank: {config.accounts:,} accounts x {config.months} months")
    raw = synthetic.generate_bank(syn, progress=progress)
    czech.write_tables(raw, raw_dir, form=config.form)
    progress(f"reading it back through the {config.form} loader ({config.engine} engine)")
    return engines.load_bank(raw_dir, config.engine)


def _mapped_bank(config: DemoConfig, progress: Progress) -> czech.LoadedBank:
    """A foreign table as the demo's bank: no permanent orders, no districts; its rejected rows
    are the bank's validation rejections (the demo's quarantine)."""
    from finsentry.database import is_database_url
    from finsentry.mapping import load_mapped

    if is_database_url(config.data_dir):
        mapped = _database_table(config, progress)
    else:
        progress(f"reading {config.data_dir} through the mapping {config.mapping}")
        mapped = load_mapped(config.data_dir, config.mapping)
    for warning in mapped.warnings:
        progress(f"warning: {warning}")
    columns = ("account_id", "partner_bank", "partner_account", "amount", "k_symbol")
    orders = pd.DataFrame({c: pd.Series(dtype=float if c == "amount" else object) for c in columns})
    districts = pd.DataFrame({"district_id": pd.Series(dtype="int64"), "district_name": pd.Series(dtype=object),
                              "region": pd.Series(dtype=object)})  # fmt: skip
    quarantine = pd.DataFrame({c: pd.Series(dtype=object) for c in czech.QUARANTINE_COLUMNS})
    return czech.LoadedBank(mapped.result, orders, districts, quarantine, form="mapped")  # type: ignore[arg-type]


def _database_table(config: DemoConfig, progress: Progress):
    """Every row of the mapped database source (the demo reads the whole table: no watermark)."""
    from finsentry import database as db
    from finsentry.mapping import TableMapping, load_mapping, map_table

    mapping = config.mapping if isinstance(config.mapping, TableMapping) else load_mapping(config.mapping)
    progress(f"reading {db.masked_name(str(config.data_dir), mapping.database)} through the mapping")
    return map_table(db.read_rows(str(config.data_dir), mapping.database, None, progress).raw, mapping)


def prepare(bank: czech.LoadedBank, config: DemoConfig, progress: Progress = _noop) -> Prepared:
    """Split in time, inject labelled anomalies into the held-out period, build features."""
    valid = bank.transactions.valid
    split = time_split(valid)
    progress(f"injecting labelled anomalies after {split.validation_start:%Y-%m-%d}")
    injected = inject_anomalies(
        valid, bank.orders, split.validation_start, rate=config.anomaly_rate, seed=config.seed
    )
    transactions = injected.transactions.reset_index(drop=True)
    split = time_split(transactions, cuts=(split.validation_start, split.test_start))
    progress(f"computing {len(DETECTOR_COLUMNS)} features for {len(transactions):,} transactions")
    features = engines.compute(transactions, config.engine)  # with the LSTM's sequence columns
    quarantined = pd.concat(
        [bank.quarantine.assign(stage="read"),
         bank.transactions.rejected.assign(stage="validate")],
        ignore_index=True,
    )  # fmt: skip
    return Prepared(
        transactions=transactions,
        features=features,
        split=split,
        labels=injected.labels,
        missing_payments=injected.missing_payments,
        orders=bank.orders,
        received=bank.transactions.received + len(bank.quarantine[bank.quarantine["table"] == "trans"]),
        valid=len(valid),
        quarantined=quarantined,
    )


def validation_truth(prep: Prepared, config: DemoConfig, progress: Progress = _noop):
    """What the candidates are ranked on: analysts' verdicts recorded with ``finsentry label``
    (``<out>/feedback/labels.parquet``) when they reach the documented minimum on the
    validation rows (``finsentry.labels``), else the injected anomalies. Returns
    (is_anomaly, anomaly_type, basis)."""
    from finsentry.labels import ANALYST, INJECTED, LabelStore, label_truth

    val = prep.split.validation
    store = LabelStore(config.out_dir)
    current = store.current()
    if len(current):
        found = label_truth(prep.transactions.loc[val, "trans_id"], current)
        progress(f"analysts' verdicts in {store.path}: {found.reason}")
        if found.sufficient:
            return found.is_anomaly, found.anomaly_type, ANALYST
    return (prep.transactions.loc[val, "is_anomaly"].to_numpy(), prep.transactions.loc[val, "anomaly_type"].to_numpy(),
            INJECTED)  # fmt: skip


def train_and_select(
    prep: Prepared, config: DemoConfig, progress: Progress = _noop
) -> tuple[dict, dict[str, ModelReport], dict]:
    """Fit every candidate on the training period; evaluate on validation; pick the best."""
    train = prep.features[prep.split.train]
    val = prep.split.validation
    truth, types, basis = validation_truth(prep, config, progress)
    models, reports = {}, {}
    for name in config.candidates:
        progress(f"training {name} on {len(train):,} transactions")
        members = [models[k] for k in DEFAULT_MEMBERS if k in models]
        if name == "ensemble" and len(members) == len(DEFAULT_MEMBERS):
            model = make_detector("ensemble", members=members)
            model.fit(train)
        else:
            model = make_detector(name).fit(train)
        models[name] = model
        scores = model.score(prep.features[val])
        reports[name] = evaluate_scores(
            scores, truth, types, budget=config.budget, name=name, keys=prep.transactions.loc[val, "trans_id"]
        )
    selection = select_model(list(reports.values()), champion=None, basis=basis)
    return models, reports, selection.to_dict()


def _missing_recall(prep: Prepared, start: pd.Timestamp, end: pd.Timestamp) -> float | None:
    truth = prep.missing_payments
    truth = truth[pd.PeriodIndex(truth["month"].astype(str), freq="M").start_time >= start]
    if truth.empty:
        return None
    found = missing_recurring_payments(prep.transactions, prep.orders, start, end)
    key = ["account_id", "partner_account"]
    hits = truth.assign(month=truth["month"].astype(str)).merge(
        found.assign(month=found["month"].astype(str))[[*key, "month"]].drop_duplicates(),
        on=[*key, "month"],
    )
    return len(hits) / len(truth)


def run_demo(config: DemoConfig, bucket, progress: Progress = _noop) -> DemoResult:
    """Run every stage against ``bucket`` (a ``local.aws.DataBucket``)."""
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[stage] = round(now - clock, 2)
        clock = now

    with tempfile.TemporaryDirectory(prefix="finsentry-raw-") as tmp:
        raw_dir = Path(tmp)
        bank = load_source(config, raw_dir, progress)
        source_dir = config.data_dir or raw_dir
        if config.mapping is not None and not Path(str(source_dir)).is_file():  # a database: nothing in raw/
            keys_raw = []
        elif config.mapping is not None:  # one table: upload it
            keys_raw = [bucket.put_bytes(f"{PREFIXES.raw}{Path(source_dir).name}", Path(source_dir).read_bytes())]
        else:
            keys_raw = bucket.upload_dir(Path(source_dir), PREFIXES.raw)
    lap("load")
    prep = prepare(bank, config, progress)
    lap("prepare")
    keys_quarantine = []
    if len(prep.quarantined):
        keys_quarantine = [bucket.put_bytes(
            f"{PREFIXES.quarantine}quarantine.jsonl",
            prep.quarantined.to_json(orient="records", lines=True).encode(),
        )]  # fmt: skip
    curated = pd.concat([prep.transactions[["trans_id", "account_id", "ts"]], prep.features], axis=1)
    keys_curated = bucket.write_partitioned(curated, PREFIXES.curated)
    lap("features")

    models, reports, selection = train_and_select(prep, config, progress)
    lap("train")
    training_run = None
    if config.sagemaker_jobs:  # the state machine's training + evaluation jobs, through sagemaker/*.py
        from finsentry.labels import LabelStore
        from finsentry.local.training_run import run_training_jobs

        training_run = run_training_jobs(prep.transactions, prep.features, prep.split.train, prep.split.validation,
                                         config.budget, champion=config.out_dir / "model", progress=progress,
                                         labels=LabelStore(config.out_dir).path)  # fmt: skip
        lap("sagemaker")
    best = models[selection["best"]]
    artifact_dir = config.out_dir / "model"
    train_ts = prep.transactions.loc[prep.split.train, "ts"]
    window = (str(train_ts.min()), str(train_ts.max()))
    drift_reference = drift.build_reference(best, prep.features[prep.split.train], window=window)
    unfed = unfed_features(best, prep.features[prep.split.train])
    save_model(
        best,
        artifact_dir,
        metadata={
            "training_window": list(window),
            drift.METADATA_KEY: drift_reference.to_dict(),
            "metrics": reports[selection["best"]].to_dict(),
            "selection": selection,
            "unfed_features": unfed,
            "warnings": list(getattr(best, "warnings", [])),
        },
    )
    bucket.upload_dir(artifact_dir, f"{PREFIXES.models}{selection['best']}/")

    test = prep.split.test
    progress(f"scoring the test period with {selection['best']} ({int(test.sum()):,} transactions)")
    # at the threshold fixed on validation, as the deployed scorers (stream, Batch Transform) do:
    # the stream replay below checks that they flag the same rows; test_report reads the exact budget
    batch = score_transactions(
        best,
        prep.features[test],
        budget_threshold=reports[selection["best"]].threshold,
        model_version=f"{selection['best']}-{__version__}",
        explain_top=config.top_alerts,  # the report's top alerts carry SHAP reasons
    )
    test_report = evaluate_scores(
        batch.scores,
        prep.transactions.loc[test, "is_anomaly"].to_numpy(),
        prep.transactions.loc[test, "anomaly_type"].to_numpy(),
        budget=config.budget,
        name=selection["best"],
        keys=prep.transactions.loc[test, "trans_id"].to_numpy(),
    )
    scored = scored_frame(prep.transactions[test], batch)
    keys_scored = bucket.write_partitioned(scored, PREFIXES.scored)
    t = prep.transactions.loc[test, "ts"]
    month_start = (t.min() + pd.offsets.MonthBegin(0)).normalize()
    missing_recall = _missing_recall(prep, month_start, t.max().normalize())
    lap("score")
    stream = None
    if config.stream_records:
        alerted = set(scored.loc[scored["verdict"] == "alert", "trans_id"].astype(str))
        model_uri = f"s3://{bucket.name}/{PREFIXES.models}{selection['best']}/"
        stream = replay_stream(prep.transactions, test, alerted, model_uri, reports[selection["best"]].threshold,
                               f"{selection['best']}-{__version__}", max_records=config.stream_records,
                               progress=progress, labels=_label_history(config.out_dir))  # fmt: skip
        lap("stream")
    top = scored[scored["verdict"] == "alert"].nlargest(config.top_alerts, "score")
    observations = observe_run(models, drift_reference, prep.transactions[test], prep.features[test], batch,
                               list(top.index), bank.districts, prep.quarantined,
                               bucket.client.meta.region_name, config.seed, progress)  # fmt: skip
    lap("observe")
    return DemoResult(
        reports=reports,
        selection=selection,
        test_report=test_report,
        missing_recurring_recall=missing_recall,
        scored=scored,
        top_alerts=top,
        bucket=bucket.name,
        keys={
            "raw": len(keys_raw),
            "quarantine": len(keys_quarantine),
            "curated": len(keys_curated),
            "scored": len(keys_scored),
        },
        timings=timings,
        training_run=training_run,
        stream=stream,
        counts={
            "received": prep.received,
            "valid": prep.valid,
            "quarantined": len(prep.quarantined),
            "injected": len(prep.labels),
            "test_transactions": int(test.sum()),
            "alerts": int((scored["verdict"] == "alert").sum()),
        },
        observations=observations,
        unfed_features=unfed,
        model_warnings=list(getattr(best, "warnings", [])),
        prepared=prep,
    )


def _label_history(out_dir: Path) -> pd.DataFrame | None:
    """The local label store's history (``finsentry label``), None when there is none."""
    from finsentry.labels import LabelStore

    history = LabelStore(out_dir).history()
    return history if len(history) else None
