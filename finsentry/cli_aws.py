"""The CLI's commands on a deployed environment: ``alerts``, ``query`` (the data lake, Athena),
``experiment``, ``models``, ``promote`` (the SageMaker SDK workflow) and ``smoke`` (the stream
path end to end, after a deploy).

Each takes ``--env ENV`` and resolves it once (``finsentry.deployment.resolve``) with the
default AWS credentials and region. awswrangler and the SageMaker SDK are imported when a
command runs, so the other commands do not pay for them.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table

console = Console(stderr=False, highlight=False, width=200)
SHOWN_ROWS = 100  # rows of a query printed; --out writes them all
REASONS_WIDTH = 60


def _progress(message: str) -> None:
    console.print(f"[dim]{time.strftime('%H:%M:%S')}[/dim] {message}")


def _anomaly_type(text: str) -> str:
    from finsentry.anomalies import CATALOG, OTHER

    known = sorted([*(str(t) for t in CATALOG), OTHER, "unclassified"])
    if text not in known:
        raise argparse.ArgumentTypeError(f"unknown anomaly type {text!r}; known: {', '.join(known)}")
    return text


def _since(text: str) -> str:
    from finsentry.lake import since_day

    try:
        return since_day(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _since_text(text: str) -> str:
    """--since as given, checked (a deployment counts from today, the local run from its last day)."""
    _since(text)
    return text


def _table_out(text: str) -> Path:
    path = Path(text)
    if path.suffix not in (".csv", ".parquet"):
        raise argparse.ArgumentTypeError(f"{path}: --out must end in .csv or .parquet")
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a folder: expected a file name")
    return path


def add_parsers(sub, positive_int, share) -> None:
    """The AWS commands' parsers, on ``finsentry``'s subparsers."""
    alerts = sub.add_parser("alerts", help="recent alerts of a deployment (masked view) or of the local run, with "
                            "reasons and analysts' verdicts")  # fmt: skip
    where = alerts.add_mutually_exclusive_group(required=True)
    where.add_argument("--env", help="deployment environment (dev, prod, ...)")
    where.add_argument("--local", type=Path, metavar="DIR", nargs="?", const=Path("finsentry-out"),
                       help="the local run's output folder (default finsentry-out): its scored test period and "
                            "the verdicts of `finsentry label`")  # fmt: skip
    alerts.add_argument("--since", type=_since_text, help="Nd, Nw or YYYY-MM-DD (default: 2d on a deployment; "
                        "every day of the local run, where Nd counts back from its last day)")  # fmt: skip
    alerts.add_argument("--type", type=_anomaly_type, action="append", dest="types", metavar="TYPE",
                        help="only this anomaly type (repeatable)")
    alerts.add_argument("--limit", type=positive_int, default=200, help="most alerts listed, highest score first")
    alerts.add_argument("--out", type=_table_out, help="also write them to a .csv or .parquet file")

    query = sub.add_parser("query", help="run SQL on Athena in a deployment's database (results to a table or file)")
    query.add_argument("--env", required=True, help="deployment environment (dev, prod, ...)")
    query.add_argument("sql", help="one SQL statement in Athena's dialect, "
                       "e.g. \"SELECT * FROM daily_anomaly_summary\"")
    query.add_argument("--out", type=_table_out, help="write every row to a .csv or .parquet file")

    experiment = sub.add_parser("experiment", help="train a candidate on SageMaker (the pipeline's image) and "
                                "compare it with the champion")  # fmt: skip
    experiment.add_argument("--env", required=True, help="deployment environment (dev, prod, ...)")
    experiment.add_argument("--detector", required=True, help="isolation_forest, lof, tails, lstm or ensemble")
    experiment.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                            help="a hyperparameter of the detector (repeatable), e.g. --param n_estimators=300")
    experiment.add_argument("--budget", type=share, default=0.01, help="alert budget (share) of the evaluation")
    experiment.add_argument("--no-register", action="store_true",
                            help="do not add the candidate to the model registry (pending approval)")
    experiment.add_argument("--poll", type=float, default=15.0, help=argparse.SUPPRESS)  # seconds between status checks

    models = sub.add_parser("models", help="the model registry of a deployment: versions, figures, approval, served")
    models.add_argument("--env", required=True, help="deployment environment (dev, prod, ...)")

    promote = sub.add_parser("promote", help="approve a registered version and point the scorer at it (or roll back)")
    promote.add_argument("--env", required=True, help="deployment environment (dev, prod, ...)")
    which = promote.add_mutually_exclusive_group(required=True)
    which.add_argument("version", nargs="?", type=positive_int, help="the version number (`finsentry models`)")
    which.add_argument("--rollback", action="store_true",
                       help="reject the served version and serve the newest approved older one")


    smoke = sub.add_parser("smoke", help="after a deploy: synthetic transactions through the stream, each output "
                           "checked (S3, Athena, SNS, quarantine, metrics); exit 0 if all pass, 1 if not")  # fmt: skip
    smoke.add_argument("--env", required=True, help="deployment environment (dev, prod, ...)")
    smoke.add_argument("--timeout", type=_timeout, default=None, metavar="SECONDS",
                       help="longest wait for the outputs (default: Firehose's buffer interval + 240 s)")
    smoke.add_argument("--poll", type=float, default=10.0, help=argparse.SUPPRESS)  # seconds between looks


def _timeout(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= 24 * 3600:
        raise argparse.ArgumentTypeError(f"must be a number of seconds from 1 to 86400, got {text}")
    return value


def _resolve(env: str):
    from finsentry.deployment import resolve

    deployment = resolve(env)
    _progress(f"deployment {env}: account {deployment.account}, {deployment.region}, database {deployment.database}")
    return deployment


def _print_table(frame: pd.DataFrame, title: str, widths: dict[str, int] | None = None) -> None:
    console.print(title)
    table = Table(show_lines=False)
    for column in frame.columns:
        numeric = pd.api.types.is_numeric_dtype(frame[column])
        table.add_column(str(column), justify="right" if numeric else "left",
                         max_width=(widths or {}).get(str(column)), overflow="fold")  # fmt: skip
    for row in frame.head(SHOWN_ROWS).itertuples(index=False):
        table.add_row(*(_cell(v) for v in row))
    console.print(table)


def _cell(value) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:,.2f}"
    return str(value)


def _write(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
    console.print(f"{len(frame):,} rows -> {path}")


def cmd_alerts(args: argparse.Namespace) -> int:
    from finsentry import lake

    if args.local is not None:
        return _local_alerts(args)
    args.since = lake.since_day(args.since or "2d")
    deployment = _resolve(args.env)
    frame = lake.alerts(deployment, since=args.since, types=args.types or (), limit=args.limit)
    kinds = f", types {', '.join(args.types)}" if args.types else ""
    labelled = "verdict" in frame
    verdicts = f"; {int((frame['verdict'] != '').sum())} with an analyst's verdict" if labelled else \
        "; no labels table yet: no verdicts"  # fmt: skip
    _print_table(frame.drop(columns=["model_version"]), f"alerts since {args.since}{kinds} (highest score first)",
                 {"reasons": REASONS_WIDTH})  # fmt: skip
    console.print(f"{len(frame):,} alerts{' (the --limit)' if len(frame) == args.limit else ''}{verdicts}")
    if args.out:
        _write(frame, args.out)
    return 0


def _local_alerts(args: argparse.Namespace) -> int:
    """The local run's alerts through the deployment's views (finsentry.local.alerts), and precision by day."""
    import datetime as dt

    from finsentry.lake import since_day
    from finsentry.local.alerts import last_day, local_alerts

    since = since_day(args.since, today=dt.date.fromisoformat(last_day(args.local))) if args.since else None
    found = local_alerts(args.local, since=since, types=args.types or (), limit=args.limit)
    kinds = f", types {', '.join(args.types)}" if args.types else ""
    _print_table(found.alerts.rename(columns={"analyst_verdict": "verdict"}),
                 f"alerts of the local run in {args.local}{f' since {since}' if since else ''}{kinds} "
                 "(highest score first)", {"reasons": REASONS_WIDTH})  # fmt: skip
    limited = " (the --limit)" if len(found.alerts) == args.limit else ""
    console.print(f"{len(found.alerts):,} alerts listed{limited}; {found.reviewed:,} of the run's {found.total:,} "
                  "alerts have an analyst's verdict (`finsentry label`)")  # fmt: skip
    reviewed = found.precision[found.precision["confirmed"] + found.precision["dismissed"] > 0]
    if len(reviewed):
        _print_table(reviewed.drop(columns=["txn_date"]), "precision of the alerts by day (days with a verdict; "
                     "precision = confirmed / (confirmed + dismissed))")  # fmt: skip
    if args.out:
        _write(found.alerts, args.out)
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    from finsentry import lake

    deployment = _resolve(args.env)
    frame = lake.query(args.sql, deployment)
    if args.out:
        _write(frame, args.out)
        return 0
    _print_table(frame, f"{deployment.database} on {deployment.workgroup}")
    more = f" (first {SHOWN_ROWS} shown; --out FILE for all)" if len(frame) > SHOWN_ROWS else ""
    console.print(f"{len(frame):,} rows{more}")
    return 0


def _versions_frame(versions) -> pd.DataFrame:
    from finsentry.training.workflow import FIGURES

    rows = [{"version": v.version, "detector": v.detector, "approval": v.approval,
             "served": "<- scorer" if v.serving else "",
             "created": f"{v.created:%Y-%m-%d %H:%M}" if v.created else "",
             **{k: v.figures.get(k) for k in FIGURES if k != "threshold"},
             "threshold": v.threshold, "execution": v.execution} for v in versions]  # fmt: skip
    return pd.DataFrame(rows)


def cmd_models(args: argparse.Namespace) -> int:
    from finsentry.training import workflow

    deployment = _resolve(args.env)
    versions = workflow.list_versions(deployment)
    if not versions:
        console.print(f"{deployment.model_package_group}: no versions yet (the training pipeline registers them)")
        return 0
    _print_table(_versions_frame(versions), f"{deployment.model_package_group} (figures: evaluation.json of the "
                 "run that registered the version)")  # fmt: skip
    pointer = workflow.current_pointer(deployment)
    if pointer and not any(v.serving for v in versions):
        console.print(f"the scorer serves a model outside the registry: {pointer.get('model_uri')}")
    return 0


def cmd_experiment(args: argparse.Namespace) -> int:
    from finsentry.training import workflow

    params = workflow.parse_params(args.param)
    deployment = _resolve(args.env)
    result = workflow.experiment(deployment, args.detector, params, budget=args.budget, progress=_progress,
                                 poll_s=args.poll, register=not args.no_register)  # fmt: skip
    rows = pd.DataFrame(result.rows())
    if not rows.empty:
        rows["name"] = [f"{n} (this experiment)" if n == args.detector and r == "candidate" else n
                        for n, r in zip(rows["name"], rows["role"], strict=True)]  # fmt: skip
    _print_table(rows, f"{result.name}: the candidate beside the champion on the labelled validation period "
                 f"(budget {args.budget:g})")  # fmt: skip
    selection = result.evaluation.get("selection") or {}
    console.print(f"selection: {selection.get('reason', '?')}")
    console.print(f"model: {result.model_uri}; evaluation: {result.evaluation_uri}")
    if result.registered:
        console.print(f"registered as version {result.registered.version} (PendingManualApproval): "
                      f"`finsentry promote --env {args.env} {result.registered.version}` serves it")  # fmt: skip
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    from finsentry.training import workflow

    deployment = _resolve(args.env)
    change = workflow.rollback(deployment) if args.rollback else workflow.promote(deployment, args.version)
    before = f"version {change.before.version}" if change.before else "no registered version"
    if change.rejected:
        console.print(f"version {change.rejected.version} ({change.rejected.detector}) rejected")
    console.print(f"scorer now serves version {change.served.version} ({change.served.detector}, threshold "
                  f"{change.served.threshold:g}) instead of {before}: {deployment.model_parameter} "
                  f"v{change.parameter_version}; the scorer picks it up at its next model refresh")  # fmt: skip
    return 0


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def cmd_smoke(args: argparse.Namespace) -> int:
    import signal

    from finsentry import smoke

    deployment = _resolve(args.env)
    previous = signal.signal(signal.SIGTERM, _interrupt)  # a kill still removes the temporary subscription
    try:
        checks = smoke.run_smoke(deployment, timeout_s=args.timeout, poll_s=args.poll, progress=_progress)
    finally:
        signal.signal(signal.SIGTERM, previous)
    frame = pd.DataFrame([{"check": c.name, "result": c.result, "detail": c.detail} for c in checks])
    _print_table(frame, f"smoke test of {args.env} ({deployment.account}, {deployment.region})", {"detail": 110})
    failed = [c.name for c in checks if c.ok is False]
    console.print(f"FAILED: {', '.join(failed)}" if failed else "all checks passed")
    return 1 if failed else 0


COMMANDS = {"alerts": cmd_alerts, "query": cmd_query, "experiment": cmd_experiment, "models": cmd_models,
            "promote": cmd_promote, "smoke": cmd_smoke}


def expected_errors() -> tuple[type[BaseException], ...]:
    """AWS errors that mean a bad environment or request (exit 2, one line), not a finsentry bug."""
    from botocore.exceptions import BotoCoreError, ClientError

    errors: tuple[type[BaseException], ...] = (ClientError, BotoCoreError)
    try:
        from awswrangler import exceptions as wr_exceptions
    except ImportError:  # pragma: no cover - awswrangler is a dependency
        return errors
    return (*errors, wr_exceptions.QueryFailed, wr_exceptions.InvalidArgumentValue, wr_exceptions.NoFilesFound)
