"""``finsentry demo | generate | train | score | evaluate | alerts | query | ...``: the command line."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import NoReturn

from rich.console import Console

from finsentry import cli_aws

console = Console(stderr=False, highlight=False, width=150)

# Exit statuses (docs/user_guide.md#exit-statuses)
EXIT_OK, EXIT_UNEXPECTED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
DEBUG_ENV = "FINSENTRY_DEBUG"  # set to 1: unexpected errors raise with their traceback
MAX_COUNT = 10**9  # accounts, months, transactions, records, days: beyond this is a typo
MAX_TPS = 1e7  # transactions per second priced by `finsentry cost`
MAX_SECONDS = 10**7


def _progress(message: str) -> None:
    console.print(f"[dim]{time.strftime('%H:%M:%S')}[/dim] {message}")


def _number(text: str, kind: type) -> float:
    """``text`` as ``kind`` (int or float), or an argparse error saying what was expected."""
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def _bounded(kind: type, low: float, high: float, what: str):
    """An argparse type: a number of ``kind`` in [low, high], else the error ``must be <what>``."""

    def parse(text: str) -> float:
        value = _number(text, kind)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
        return value

    parse.__name__ = what  # argparse names the type in its messages
    return parse


_positive_int = _bounded(int, 1, MAX_COUNT, f"a positive integer up to {MAX_COUNT:,}")
_count = _bounded(int, 0, MAX_COUNT, f"an integer from 0 to {MAX_COUNT:,}")
_seed = _bounded(int, 0, 2**32 - 1, "a seed from 0 to 4294967295")
_port = _bounded(int, 0, 65_535, "a TCP port from 0 to 65535 (0 = any free port)")
_seconds = _bounded(float, 0, MAX_SECONDS, f"a number of seconds from 0 to {MAX_SECONDS:,}")


def _positive_float(text: str) -> float:
    value = _number(text, float)
    if not 0 < value <= MAX_TPS:
        raise argparse.ArgumentTypeError(f"must be a positive number up to {MAX_TPS:,}, got {text}")
    return value


def _share(text: str) -> float:
    value = _number(text, float)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError("must be a share between 0 and 1, e.g. 0.01")
    return value


def _existing_dir(text: str) -> Path:
    path = Path(text)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is not a directory")
    return path


def _existing_path(text: str) -> Path:
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{path} does not exist")
    return path


def _data(text: str) -> Path | str:
    """``--data``: an existing file or folder, or a ``postgresql://`` URL (kept as text)."""
    from finsentry.database import is_database_url

    return text if is_database_url(text) else _existing_path(text)


_data.__name__ = "data"


def _out_dir(text: str) -> Path:
    """An output folder: new, or an existing folder (never an existing file)."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a file: expected a folder (new or existing)")
    return path


def _out_file(text: str) -> Path:
    """An output file: new, or an existing file to replace (never a folder)."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a folder: expected a file name")
    if path.parent.exists() and not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"{path.parent} is a file: cannot write {path.name} inside it")
    return path


DB_HELP = ", or postgresql://... with --mapping (its database: section; password from PGPASSWORD or ~/.pgpass)"
QUERY_HELP = "postgresql:// --data: read this SELECT instead of the mapping's database table or query"


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors: ``error: finsentry score: ...`` and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="finsentry", description="Anomaly detection for bank transactions."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run the whole pipeline locally (in-process AWS)")
    demo.add_argument("--data", type=_data,
                      help="Czech bank files (.asc or fin_*.tsv), or a CSV/Parquet file with --mapping" + DB_HELP)
    demo.add_argument("--mapping", type=Path, help="YAML mapping of a foreign table onto the canonical record")
    demo.add_argument("--query", help=QUERY_HELP)
    demo.add_argument("--accounts", type=_positive_int, default=1500)
    demo.add_argument("--months", type=_positive_int, default=24)
    demo.add_argument("--seed", type=_seed, default=7)
    demo.add_argument("--form", choices=("asc", "tsv"), default="asc")
    demo.add_argument("--budget", type=_share, default=0.01, help="alert budget (share)")
    demo.add_argument("--out", type=_out_dir, default=Path("finsentry-out"))
    demo.add_argument("--no-sagemaker", action="store_true", help="skip the SageMaker jobs run in-process")
    demo.add_argument("--no-feedback-round", action="store_true",
                      help="skip the analyst feedback round (scripted verdicts through `finsentry label`, the "
                           "supervised candidate retrained, its effect)")  # fmt: skip
    demo.add_argument("--metrics-port", type=_port, help="serve Prometheus /metrics on this port (127.0.0.1)")
    demo.add_argument("--metrics-hold", type=_seconds, help="with --metrics-port: seconds to keep serving after "
                      "the run (default: until Ctrl-C)")  # fmt: skip
    demo.add_argument("--stream-records", type=_count, default=2_000,
                      help="test transactions replayed through Kinesis into the scorer (0 = skip)")
    demo.add_argument("--engine", choices=("pandas", "spark"), default="pandas",
                      help="run loading and features in this process or through local Spark (as the Glue jobs)")

    gen = sub.add_parser("generate", help="write a synthetic bank in the Czech file forms")
    gen.add_argument("--out", type=_out_dir, required=True)
    gen.add_argument("--accounts", type=_positive_int, default=1000)
    gen.add_argument("--months", type=_positive_int, default=24)
    gen.add_argument("--transactions", type=_positive_int, help="size by transactions instead")
    gen.add_argument("--seed", type=_seed, default=7)
    gen.add_argument("--form", choices=("asc", "tsv"), default="asc")
    gen.add_argument("--anomaly-rate", type=_share, help="inject labelled anomalies (labels.csv)")

    train = sub.add_parser("train", help="train a detector on Czech bank files (or a mapped foreign table)")
    train.add_argument("--data", type=_data, required=True,
                       help="folder of Czech bank files, or a CSV/Parquet file (.gz too) with --mapping" + DB_HELP)
    train.add_argument("--mapping", type=Path, help="YAML mapping of a foreign table onto the canonical record")
    train.add_argument("--query", help=QUERY_HELP)
    train.add_argument("--detector", default="ensemble")
    train.add_argument("--out", type=_out_dir, required=True, help="model artifact directory")

    score = sub.add_parser("score", help="score Czech bank files (or a mapped foreign table) with a trained model")
    score.add_argument("--data", type=_data, required=True,
                       help="folder of Czech bank files, or a CSV/Parquet file with --mapping" + DB_HELP)
    score.add_argument("--mapping", type=Path, help="YAML mapping of a foreign table onto the canonical record")
    score.add_argument("--query", help=QUERY_HELP)
    score.add_argument("--model", type=_existing_dir, required=True)
    score.add_argument("--out", type=_out_file, required=True, help="output Parquet file")
    score.add_argument("--budget", type=_share, default=0.01,
                       help="alert budget (share): exactly floor(budget x rows) alerts, ties split by trans_id")
    score.add_argument("--explain", type=_count, default=None, metavar="N",
                       help="alerts explained with SHAP, the highest first (default 10; 0 = none): "
                            "the other alerts get fast reasons")

    cost = sub.add_parser("cost", help="monthly cost of the deployed pipeline at a load (list prices)")
    cost.add_argument("--tps", type=_positive_float, required=True, help="average transactions per second")
    cost.add_argument("--retention-days", type=_positive_int, default=365, help="days of S3 data kept")
    cost.add_argument("--kinesis-mode", choices=("provisioned", "on-demand"), default="provisioned")
    cost.add_argument("--dynamodb-mode", choices=("provisioned", "on-demand"), default="provisioned",
                      help="profiles table capacity (prod default: provisioned with auto scaling)")
    cost.add_argument("--compare", action="store_true",
                      help="also $ per million for both DynamoDB modes at 10, 100 and 1,000 TPS")
    cost.add_argument("--serving", choices=("unsupervised", "supervised"), default="unsupervised",
                      help="the served model: supervised adds the risk item reads per transaction")
    cost.add_argument("--prices", type=Path, help="price file (default: finsentry/data/prices_eu-west-1.yaml)")
    cost.add_argument("--detail", action="store_true", help="one row per priced quantity")
    cost.add_argument("--json", action="store_true", help="also print the estimate as one JSON line")

    rules = sub.add_parser("rules", help="write Prometheus alert rules generated from the CloudWatch alarm specs")
    rules.add_argument("--out", type=_out_file, required=True, help="rule file (YAML)")
    rules.add_argument("--env", default="prod", help="deployment environment (names the scorer function)")
    rules.add_argument("--runbook-base", default="docs/operations.md", help="URL of the runbook page")

    ev = sub.add_parser("evaluate", help="detectors on labelled data: a mapped table (time split) or an (X, y) .npz")
    what = ev.add_mutually_exclusive_group(required=True)
    what.add_argument("--npz", type=Path, help="ADBench protocol on a labelled (X, y) .npz file")
    what.add_argument("--data", type=_data,
                      help="folder of Czech files (with labels.csv) or a CSV/Parquet file with --mapping (label:)"
                      + DB_HELP)
    ev.add_argument("--mapping", type=Path, help="YAML mapping with a label: column")
    ev.add_argument("--query", help=QUERY_HELP)
    ev.add_argument("--detector", action="append", dest="detectors", metavar="NAME",
                    help="repeatable; default: every label-free detector reading no sequences, and ensemble")
    ev.add_argument("--seeds", type=_positive_int, default=3,
                    help="--npz: ADBench's own splits 1 .. N (1-3 are those behind its published figures)")
    ev.add_argument("--seed", type=int, default=0, help="--data: random state of the detectors")
    ev.add_argument("--budget", type=_share, default=0.01, help="alert budget (share)")
    ev.add_argument("--train-until", help="--data: train on transactions before this date (exclusive)")
    ev.add_argument("--test-from", help="--data: evaluate on transactions from this date (default: --train-until)")
    ev.add_argument("--train-share", type=_share, default=0.7,
                    help="--data without dates: the earliest share of rows to train on, the rest is tested")
    ev.add_argument("--out", type=Path, default=Path("evaluation.json"),
                    help="--data: JSON report; rejected rows go beside it (<out>.quarantine.csv)")

    label = sub.add_parser("label", help="record analysts' verdicts (confirmed_fraud, dismissed, an anomaly type)")
    given = label.add_mutually_exclusive_group(required=True)
    given.add_argument("--labels", type=_existing_path, help="CSV (trans_id,verdict,who,when[,note]) or JSON lines")
    given.add_argument("--trans-id", help="one label: the transaction's id (with --verdict)")
    label.add_argument("--verdict", help="one label: confirmed_fraud, dismissed or an anomaly type")
    label.add_argument("--who", default=os.environ.get("USER", ""), help="one label: who decides (default $USER)")
    label.add_argument("--when", help="one label: ISO 8601 time of the verdict (default now, UTC)")
    label.add_argument("--note", default="", help="one label: free text")
    label.add_argument("--out", type=_out_dir, default=Path("finsentry-out"),
                       help="the local run's folder: the history is <out>/feedback/labels.parquet")
    cli_aws.add_parsers(sub, positive_int=_positive_int, share=_share)
    return parser


def cmd_demo(args: argparse.Namespace) -> int:
    from finsentry.local.aws import DataBucket, local_aws
    from finsentry.local.pipeline import DemoConfig, run_demo
    from finsentry.local.summary import print_demo

    config = DemoConfig(
        data_dir=args.data, mapping=_mapping_with_query(args.mapping, args.query), accounts=args.accounts,
        months=args.months, seed=args.seed,
        form=args.form, budget=args.budget, out_dir=args.out, sagemaker_jobs=not args.no_sagemaker,
        stream_records=args.stream_records, engine=args.engine,
    )  # fmt: skip
    from finsentry.report import write_report

    exporter = _start_exporter(args.metrics_port)
    try:
        with local_aws():
            bucket = DataBucket.create()
            result = run_demo(config, bucket, progress=_progress)
        print_demo(result, console)
        _analysts_side(result, config, feedback_round=config.sagemaker_jobs and not args.no_feedback_round)
        report = write_report(result, args.out / "report.html")
        console.print(f"report: {report.resolve()}")
        if exporter is not None:
            exporter.record(result)
            _hold(args.metrics_hold)
    finally:
        if exporter is not None:
            exporter.close()
    return 0


def _analysts_side(result, config, feedback_round: bool) -> None:
    """The scored test period kept in ``<out>/scored/`` (``finsentry alerts --local``), one feedback
    round (finsentry.local.feedback_round) when asked, and the alerts with their verdicts for the report."""
    from finsentry.local.alerts import local_alerts, write_scored
    from finsentry.local.feedback_round import print_round, run_round

    write_scored(result.scored, config.out_dir)

    def record(path: Path) -> None:  # the scripted analyst's export, through the real command
        if main(["label", "--labels", str(path), "--out", str(config.out_dir)]) != 0:
            raise ValueError(f"finsentry label refused {path}")

    if feedback_round:
        result.feedback_round = run_round(result.prepared, config.out_dir, config.budget, record, _progress)
        print_round(result.feedback_round, console)
    result.verdicts = local_alerts(config.out_dir, limit=config.top_alerts)


def _start_exporter(port: int | None):
    if port is None:
        return None
    from finsentry.local.metrics_exporter import DemoMetrics

    exporter = DemoMetrics()
    bound = exporter.serve(port)
    console.print(f"serving Prometheus metrics on http://127.0.0.1:{bound}/metrics")
    return exporter


def _hold(seconds: float | None) -> None:
    """Keep the process (and its /metrics) alive: ``seconds``, or until Ctrl-C when None."""
    console.print("metrics stay up " + ("until Ctrl-C" if seconds is None else f"for {seconds:g} s"))
    with contextlib.suppress(KeyboardInterrupt):
        time.sleep(seconds) if seconds is not None else _forever()


def _forever() -> None:
    while True:
        time.sleep(3600)


def cmd_rules(args: argparse.Namespace) -> int:
    from finsentry.prometheus import alert_rules, write_rules

    path = write_rules(args.out, env=args.env, runbook_base=args.runbook_base)
    n = len(alert_rules(args.env)["groups"][0]["rules"])
    console.print(f"{n} alert rules for {args.env} -> {path}")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from finsentry.datasets import synthetic

    if args.transactions:
        config = synthetic.config_for_transactions(args.transactions, seed=args.seed)
    else:
        config = synthetic.SyntheticConfig(
            n_accounts=args.accounts, months=args.months, seed=args.seed
        )
    if args.anomaly_rate is None:
        paths = synthetic.generate_files(config, args.out, form=args.form, progress=_progress)
    else:
        paths = _generate_labelled(config, args)
    console.print(f"wrote {len(paths)} files in {args.out} ({args.form} form)")
    return 0


def _generate_labelled(config, args: argparse.Namespace) -> list[Path]:
    """A synthetic bank with labelled anomalies injected into its last 40 % (by time)."""
    from finsentry.anomalies import inject_anomalies
    from finsentry.datasets import czech, synthetic
    from finsentry.evaluation import time_split

    raw = synthetic.generate_bank(config, progress=_progress)
    valid = czech.to_canonical(raw).valid
    start = time_split(valid).validation_start
    _progress(f"injecting labelled anomalies after {start:%Y-%m-%d}")
    injected = inject_anomalies(valid, czech.orders_frame(raw), start, rate=args.anomaly_rate, seed=args.seed)
    paths = czech.write_tables(czech.with_transactions(raw, injected.transactions), args.out, form=args.form)
    labels = Path(args.out) / "labels.csv"
    injected.labels.to_csv(labels, index=False)
    return [*paths, labels]


class _Stages:
    """Progress bars (rich) for the long stages of a command.

    ``stage(description)`` wraps a step the library cannot count (a spinner until it ends);
    the instance itself is the library's ``progress(stage, done, total)`` callback (one bar per
    stage, e.g. ``finsentry.scoring``'s "scoring" and "explaining"). With ``bars=None`` both
    do nothing.
    """

    def __init__(self, bars=None) -> None:
        self.bars = bars
        self._tasks: dict[str, int] = {}

    @contextlib.contextmanager
    def stage(self, description: str):
        if self.bars is None:
            yield
            return
        task = self.bars.add_task(description, total=None, count="")
        try:
            yield
        finally:
            self.bars.update(task, total=1, completed=1)

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self.bars is None:
            return
        if stage not in self._tasks:
            self._tasks[stage] = self.bars.add_task(stage, total=total, count="")
        self.bars.update(self._tasks[stage], completed=done, total=total, count=f"{done:,}/{total:,}")


@contextlib.contextmanager
def _stages():
    """A ``_Stages`` drawing on the command line's console while the block runs."""
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    bars = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                    TextColumn("{task.fields[count]}"), TimeElapsedColumn(), console=console)  # fmt: skip
    with bars:
        yield _Stages(bars)


def _mapping_with_query(mapping: Path | None, query: str | None):
    """The mapping file parsed, with ``--query`` in place of its database table or query."""
    import dataclasses

    from finsentry.mapping import MappingError, load_mapping

    if query is None:
        return mapping
    if mapping is None:
        raise MappingError("--query needs --mapping MAP.yaml (how the query's columns map onto the record)")
    parsed = load_mapping(mapping)
    return dataclasses.replace(parsed, database=dataclasses.replace(parsed.database, table=None, query=query))


def _source_name(data: Path | str) -> str:
    from finsentry.database import is_database_url, mask_url

    return mask_url(data) if is_database_url(data) else Path(data).name


def _load_features(data: Path | str, mapping: Path | None = None, out: Path | None = None,
                   stages: _Stages | None = None, query: str | None = None):  # fmt: skip
    """Canonical rows of a Czech folder, a mapped table or a mapped database source
    (``finsentry.sources``: rejects written beside ``out``), their features (with the LSTM's
    sequence columns), and the source (labels, the watermark to commit after the outputs)."""
    from finsentry.features import features_with_sequence
    from finsentry.sources import load_source

    stages = stages or _Stages()
    mapping = _mapping_with_query(mapping, query)
    with stages.stage(f"loading {_source_name(data)}"):
        source = load_source(data, mapping, out, _progress)
    valid = source.transactions
    with stages.stage(f"features of {len(valid):,} transactions"):
        return valid, features_with_sequence(valid), source  # the sequence columns too, for the LSTM


def cmd_train(args: argparse.Namespace) -> int:
    from finsentry import drift
    from finsentry.detectors import make_detector
    from finsentry.detectors.artifact import save_model
    from finsentry.table_evaluation import unfed_features

    with _stages() as stages:
        valid, features, source = _load_features(args.data, args.mapping, args.out, stages, args.query)
        with stages.stage(f"training {args.detector} on {len(features):,} transactions"):
            model = make_detector(args.detector).fit(features)  # no label column: labels stay in source.labels
        window = (str(valid["ts"].min()), str(valid["ts"].max()))
        with stages.stage("binning the training window (drift reference)"):
            reference = drift.build_reference(model, features, window=window)
    unfed = unfed_features(model, features)
    if unfed:
        console.print(f"[yellow]features the table could not feed (all empty):[/yellow] {', '.join(unfed)}")
    warnings = list(getattr(model, "warnings", []))  # e.g. a rule suspended on this training window
    for warning in warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}")
    path = save_model(model, args.out, metadata={
        "training_window": list(window), drift.METADATA_KEY: reference.to_dict(), "unfed_features": unfed,
        "warnings": warnings,
        "source": {"data": source.name, "mapping": None if args.mapping is None else args.mapping.name,
                   "rows": len(valid), "quarantined": source.quarantined,
                   **({"watermark": source.watermark} if source.watermark else {})}})  # fmt: skip
    console.print(f"model written to {path}")
    _commit_watermark(source)
    return 0


def _commit_watermark(source) -> None:
    """After a command's outputs are written: store its database read's high-water mark."""
    written = source.commit_watermark()
    if written is not None:
        console.print(f"watermark {source.watermark['column']} = {source.watermark['mark']} -> {written}")


def cmd_score(args: argparse.Namespace) -> int:
    from finsentry.detectors.artifact import load_model
    from finsentry.drift import reference_from_metadata
    from finsentry.scoring import EXPLAIN_TOP, check_scores, score_transactions, scored_frame, summary_path

    model, metadata = load_model(args.model, allow_sequence=True)
    explain_top = EXPLAIN_TOP if args.explain is None else args.explain
    with _stages() as stages:
        valid, features, source = _load_features(args.data, args.mapping, args.out, stages, args.query)
        if metadata.get("unfed_features"):
            _progress(f"the model was trained without: {', '.join(metadata['unfed_features'])}")
        for warning in metadata.get("warnings", []):
            _progress(f"[yellow]model warning:[/yellow] {warning}")
        batch = score_transactions(
            model, features, budget=args.budget, keys=valid["trans_id"].to_numpy(), explain_top=explain_top,
            model_version=f"{metadata.get('detector')}-{metadata.get('created_at')}", progress=stages,
        )  # fmt: skip
        checks = check_scores(batch, features, reference_from_metadata(metadata))
    for warning in checks.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}")
    scored = scored_frame(valid, batch)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    scored.to_parquet(args.out, index=False)
    summary = summary_path(args.out)
    summary.write_text(json.dumps(checks.summary(batch), indent=2))
    console.print(f"{int(batch.alerts.sum()):,} alerts in {len(scored):,} rows (budget {args.budget:g}; SHAP reasons "
                  f"for the top {batch.explained:,}) -> {args.out}; summary -> {summary}")  # fmt: skip
    _commit_watermark(source)
    return 0


def cmd_cost(args: argparse.Namespace) -> int:
    from finsentry.cost import StackProfile, estimate, load_prices, per_million_matrix, print_estimate, print_matrix

    prices = load_prices(args.prices)
    est = estimate(args.tps, retention_days=args.retention_days, prices=prices,
                   stack=StackProfile(kinesis_mode=args.kinesis_mode, dynamodb_mode=args.dynamodb_mode,
                                      serves_risk=args.serving == "supervised"))  # fmt: skip
    print_estimate(est, console, detail=args.detail)
    if args.compare:
        print_matrix(per_million_matrix(retention_days=args.retention_days, prices=prices,
                                        kinesis_mode=args.kinesis_mode), console)  # fmt: skip
    if args.json:
        print(json.dumps(est.to_dict()))  # one line, unwrapped: for scripts
    return 0


def _npz_arrays(path: Path):
    """The arrays X and y of an ADBench-style .npz archive, or a ValueError saying what the file is not."""
    import zipfile

    import numpy as np

    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise ValueError(f"{path} is a single .npy array, not an .npz archive of arrays X and y")
        if "X" not in data or "y" not in data:
            raise ValueError(f"{path} must hold arrays X and y (it holds {', '.join(data.files) or 'none'})")
        return data["X"], data["y"]
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path} is not a readable .npz archive of arrays X and y ({exc})") from exc
    except ValueError as exc:
        if "pickle" in str(exc):  # np.load's guess for a file of no numpy format (or of Python objects)
            raise ValueError(f"{path} is not an .npz archive of numeric arrays X and y") from exc
        raise


def cmd_evaluate(args: argparse.Namespace) -> int:

    from finsentry.evaluation import adbench_protocol
    from finsentry.table_evaluation import detector_names, factory

    if args.data is not None:
        return _evaluate_table(args)
    if not args.npz.is_file():
        raise FileNotFoundError(f"no such file: {args.npz}")
    names = detector_names(args.detectors, transactions=False)
    with _stages() as stages:
        with stages.stage(f"loading {args.npz.name}"):
            x, y = _npz_arrays(args.npz)
        results = adbench_protocol(x, y, factories={n: factory(n, None) for n in names},
                                   seeds=tuple(range(1, args.seeds + 1)), progress=stages)  # fmt: skip
    for name, figures in results.items():
        console.print(
            f"{name:>18}: AUC-ROC {figures['auc_roc']:.2f} %  AUC-PR {figures['auc_pr']:.2f} %"
        )
    print(json.dumps({"dataset": args.npz.name, "results": results}))  # one line, unwrapped: for scripts
    return 0


def _evaluate_table(args: argparse.Namespace) -> int:
    """``evaluate --data``: detectors on a labelled table, trained on its earlier part."""
    from finsentry.table_evaluation import detector_names, evaluate_on_table, holdout_split

    names = detector_names(args.detectors)
    valid, features, source = _load_features(args.data, args.mapping, args.out, query=args.query)
    if source.labels is None:
        raise ValueError(f"{source.name} has no labels: add 'label: COLUMN' (and 'label_type: COLUMN') to the "
                         "mapping, or put labels.csv in the Czech folder")  # fmt: skip
    split = holdout_split(valid, args.train_until, args.test_from, args.train_share)
    _progress(f"train: {int(split.train.sum()):,} rows before {split.validation_start}; "
              f"test: {int(split.test.sum()):,} rows from {split.test_start} "
              f"({int(source.labels['is_anomaly'].to_numpy()[split.test].sum()):,} labelled anomalies)")  # fmt: skip
    result = evaluate_on_table(features, source.labels, split, names, args.budget, args.seed, _progress)
    _print_table_evaluation(result, args.budget)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"data": source.name, **result.to_dict()}, indent=2))
    print(json.dumps({"data": source.name, "budget": args.budget,
                              "results": {k: {m: r.to_dict()[m] for m in ("recall", "precision", "auc_pr", "auc_roc")}
                                  for k, r in result.reports.items()}}))  # fmt: skip  (one line, for scripts)
    _commit_watermark(source)
    return 0


def _pct(value: float) -> str:
    return "   n/a" if value != value else f"{100 * value:5.1f}%"


def _print_table_evaluation(result, budget: float) -> None:
    console.print(f"test period, alert budget {budget:.1%}: threshold set on the test scores")
    console.print(f"{'detector':>18}  {'recall':>7} {'precision':>9} {'AUC-PR':>7} {'AUC-ROC':>7} {'alerts':>7}")
    for name, r in result.reports.items():
        console.print(f"{name:>18}  {_pct(r.recall):>7} {_pct(r.precision):>9} {_pct(r.auc_pr):>7} "
                      f"{_pct(r.auc_roc):>7} {r.alerts:>7,}")  # fmt: skip
    kinds = sorted({k for r in result.reports.values() for k in r.recall_by_type if k != "all"})
    if kinds:
        console.print(f"{'recall per label type':>18}  " + " ".join(f"{k:>7}" for k in kinds))
        for name, r in result.reports.items():
            figures = (_pct(r.recall_by_type.get(k, float("nan"))) for k in kinds)
            console.print(f"{name:>18}  " + " ".join(f"{f:>7}" for f in figures))
    for name, unfed in result.unfed.items():
        if unfed:
            console.print(f"{name} could not be fed: {', '.join(unfed)}")
    console.print(f"model selection (recall at the budget): {result.selection['reason']}")


def cmd_label(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from finsentry.labels import LabelStore, read_label_file, validate_labels

    if args.labels is not None:
        records = read_label_file(args.labels)
    elif not args.verdict:
        raise ValueError("--trans-id needs --verdict (confirmed_fraud, dismissed or an anomaly type)")
    else:
        when = args.when or datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="seconds")
        records = [{"trans_id": args.trans_id, "verdict": args.verdict, "who": args.who, "when": when,
                    "note": args.note}]  # fmt: skip
    batch = validate_labels(records)
    store = LabelStore(args.out)
    merged = store.add(batch.valid)
    console.print(f"{batch.received:,} label(s) received: {merged.new:,} new, {merged.repeated:,} already known, "
                  f"{len(batch.rejected):,} rejected -> {store.path}")  # fmt: skip
    if len(batch.rejected):
        rejects = store.path.with_name("rejected.csv")
        rejects.parent.mkdir(parents=True, exist_ok=True)
        batch.rejected.to_csv(rejects, mode="a", header=not rejects.exists(), index=False)
        for row in batch.rejected.head(5).itertuples():
            console.print(f"  row {row.row}: {row.reason}: {row.detail}")
        console.print(f"rejected rows with their reasons: {rejects} ({batch.reason_counts()})")
    current = store.current()
    console.print(f"{len(current):,} labelled transaction(s), {int(current['is_fraud'].sum()):,} confirmed "
                  f"fraud(s) or anomalies, {int((~current['is_fraud']).sum()):,} dismissed")  # fmt: skip
    return EXIT_OK if len(batch.valid) or not batch.received else EXIT_BAD_INPUT


COMMANDS = {
    "label": cmd_label,
    "demo": cmd_demo,
    "generate": cmd_generate,
    "train": cmd_train,
    "score": cmd_score,
    "evaluate": cmd_evaluate,
    "cost": cmd_cost,
    "rules": cmd_rules,
    **cli_aws.COMMANDS,
}


def _expected_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean bad input or a bad environment (exit 2), not a bug in finsentry: the
    library's own, and those of readers given a file that is not what it should be."""
    import zipfile
    import zlib

    from finsentry.cost import PriceFileError
    from finsentry.datasets.czech import DatasetError
    from finsentry.detectors.artifact import ModelArtifactError
    from finsentry.etl.quality import DataQualityError
    from finsentry.mapping import MappingError

    return (DatasetError, ModelArtifactError, MappingError, PriceFileError, DataQualityError, OSError, ValueError,
            EOFError, zipfile.BadZipFile, zlib.error, *cli_aws.expected_errors())  # fmt: skip


def _say_error(message: str) -> None:
    """One line on stderr, whatever the message holds (YAML errors span lines)."""
    print("error: " + " ".join(message.split()), file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Run one command; return its exit status (0 ok, 1 unexpected error, 2 bad input or usage,
    130 interrupted). Errors are one line on stderr; ``FINSENTRY_DEBUG=1`` re-raises unexpected
    ones with their traceback."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2), already printed
        return exc.code if isinstance(exc.code, int) else EXIT_BAD_INPUT
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        _say_error(f"finsentry {args.command}: interrupted")
        return EXIT_INTERRUPTED
    except _expected_errors() as exc:
        _say_error(f"finsentry {args.command}: {str(exc) or type(exc).__name__}")
        return EXIT_BAD_INPUT
    except Exception as exc:  # noqa: BLE001 - the user gets one line, the traceback on request
        if os.environ.get(DEBUG_ENV, "") not in ("", "0"):
            raise
        _say_error(f"finsentry {args.command}: unexpected {type(exc).__name__}: {exc} "
                   f"(a bug: please report it; set {DEBUG_ENV}=1 for the traceback)")
        return EXIT_UNEXPECTED


if __name__ == "__main__":
    sys.exit(main())
