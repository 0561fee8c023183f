"""The Athena views Tableau reads: one place that lists, loads and checks them.

The views are kept as ``infra/athena/views/<view_name>.sql``, each one
``CREATE OR REPLACE VIEW <view_name> AS SELECT ...`` in Athena's (Trino) dialect over the Glue
table ``scored`` (``finsentry.scoring.SCORED_COLUMNS`` plus the partition column ``dt``) and, for
the analysts' views, the table ``labels`` (analysts' verdicts, ``finsentry.lake.TABLES``). The
CDK app creates them from that folder; the tests run the same files on DuckDB (transpiled with
sqlglot) over the Parquet the pipeline writes; ``finsentry alerts --local`` runs them on DuckDB
over the local run's output.

Privacy rule of the views: no view exposes a raw client or account identifier. The client is
``client_ref`` (keyed HMAC pseudonym, written by the scorer); ``account_id`` is never
selected, because in the canonical record an account has exactly one owner, so its id
identifies the client as directly as the client id does, and it cannot be masked inside a view
(an unkeyed hash of a small integer space is reversed by enumeration; a keyed one would put the
secret key into the view text, readable from the Glue catalog).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path

import sqlglot
from sqlglot import exp

VIEWS_DIR = Path(__file__).resolve().parents[1] / "infra" / "athena" / "views"
SOURCE_TABLE = "scored"
LABELS_TABLE = "labels"  # analysts' verdicts (finsentry.feedback / finsentry label)
SOURCE_TABLES = frozenset({SOURCE_TABLE, LABELS_TABLE})  # what a view may read
ATHENA_DIALECT = "athena"  # sqlglot's name for Athena (Trino for DML and views)
# Columns of ``scored`` that no view may pass through: raw identifiers of the client.
RAW_IDENTIFIERS: tuple[str, ...] = ("account_id", "client_id")

# Output columns of each view with their Athena (Presto) types, in order: what the Glue
# catalog needs to register a view (TableType VIRTUAL_VIEW) and what Tableau shows. A test
# runs every view on DuckDB and checks its result against this list.
VIEW_COLUMNS: dict[str, dict[str, str]] = {
    "scored_transactions": {
        "trans_id": "varchar", "client_ref": "varchar", "ts": "timestamp", "txn_date": "date",
        "hour_of_day": "bigint", "amount": "double", "direction": "varchar", "operation": "varchar",
        "district_id": "integer", "region": "varchar", "score": "double", "verdict": "varchar",
        "anomaly_type": "varchar", "reasons": "varchar", "model_version": "varchar", "dt": "varchar",
    },
    "daily_anomaly_summary": {
        "dt": "varchar", "txn_date": "date", "transactions": "bigint", "alerts": "bigint",
        "alert_rate": "double", "clients_alerted": "bigint", "clients": "bigint", "mean_score": "double",
        "max_score": "double", "amount_total": "double", "amount_alerted": "double",
    },
    "alert_verdicts": {
        "dt": "varchar", "txn_date": "date", "ts": "timestamp", "trans_id": "varchar", "client_ref": "varchar",
        "amount": "double", "operation": "varchar", "region": "varchar", "score": "double",
        "anomaly_type": "varchar", "reasons": "varchar", "model_version": "varchar",
        "analyst_verdict": "varchar", "outcome": "varchar", "verdict_by": "varchar", "verdict_at": "timestamp",
        "verdicts": "bigint", "note": "varchar",
    },
    "alert_precision_daily": {
        "dt": "varchar", "txn_date": "date", "alerts": "bigint", "confirmed": "bigint", "dismissed": "bigint",
        "unreviewed": "bigint", "precision": "double", "reviewed_share": "double",
    },
    "anomaly_counts_by_type_region": {
        "dt": "varchar", "txn_date": "date", "region": "varchar", "district_id": "integer",
        "anomaly_type": "varchar", "transactions": "bigint", "alerts": "bigint", "amount_total": "double",
    },
}  # fmt: skip


# Presto type of a view column -> Hive type of the Glue table's storage descriptor
HIVE_TYPE_OF: dict[str, str] = {"varchar": "string", "bigint": "bigint", "integer": "int", "double": "double",
                                "date": "date", "timestamp": "timestamp"}  # fmt: skip


class ViewDefinitionError(ValueError):
    """A view file is not one ``CREATE OR REPLACE VIEW <its file name> AS SELECT`` statement."""


@dataclass(frozen=True)
class AthenaView:
    """One view: its name (= file stem), the Athena SQL text and its declared output columns."""

    name: str
    sql: str
    path: Path

    @property
    def columns(self) -> dict[str, str]:
        return VIEW_COLUMNS[self.name]

    @property
    def statement(self) -> str:
        """The CREATE statement as Athena should run it: the file, normalised, comments dropped."""
        return _parse(self.sql, self.path).sql(dialect=ATHENA_DIALECT, comments=False)

    @property
    def select_sql(self) -> str:
        """The SELECT after ``AS`` (Athena dialect): the ``originalSql`` of a Glue view."""
        return _parse(self.sql, self.path).expression.sql(dialect=ATHENA_DIALECT, comments=False)

    @property
    def scored_columns(self) -> tuple[str, ...]:
        """The columns of ``scored`` the view reads (what Athena scans of each Parquet file), sorted;
        the partition key ``dt`` included when read (it is in the path, not in the files)."""
        body = _parse(self.sql, self.path).expression
        aliases = {t.alias_or_name for t in body.find_all(exp.Table) if t.name == SOURCE_TABLE}
        # bare names are scored's only when it is the one table read (a join qualifies its columns)
        unqualified_scored = {t.name for t in body.find_all(exp.Table)} == {SOURCE_TABLE}
        names = {c.name for c in body.find_all(exp.Column)
                 if c.table in aliases or (not c.table and unqualified_scored)}  # fmt: skip
        return tuple(sorted(names))

    def to_duckdb(self) -> str:
        """The CREATE statement in DuckDB's dialect (for tests and local inspection)."""
        return sqlglot.transpile(self.sql, read=ATHENA_DIALECT, write="duckdb")[0]


def _parse(sql: str, path: Path) -> exp.Create:
    try:
        statements = [s for s in sqlglot.parse(sql, read=ATHENA_DIALECT) if s is not None]
    except sqlglot.errors.ParseError as err:
        raise ViewDefinitionError(f"{path.name}: not valid Athena SQL: {err}") from err
    if len(statements) != 1:
        raise ViewDefinitionError(f"{path.name}: expected one statement, found {len(statements)}")
    create = statements[0]
    if not (isinstance(create, exp.Create) and create.kind == "VIEW" and create.args.get("replace")):
        raise ViewDefinitionError(f"{path.name}: must be CREATE OR REPLACE VIEW ... AS SELECT ...")
    if not isinstance(create.expression, exp.Select):
        raise ViewDefinitionError(f"{path.name}: the view body must be a SELECT")
    return create


def check_view(view: AthenaView) -> None:
    """Raise ``ViewDefinitionError`` unless the file keeps the views' contract.

    Name equals the file stem; it reads only the ``scored`` table (and ``labels``); its output
    columns are the declared ones, in order; no raw client identifier is selected.
    """
    create = _parse(view.sql, view.path)
    name = create.this.name if isinstance(create.this, exp.Table) else create.this.this.name
    if name != view.name:
        raise ViewDefinitionError(f"{view.path.name}: creates view {name!r}, expected {view.name!r}")
    tables = {t.name for t in create.expression.find_all(exp.Table)}
    if SOURCE_TABLE not in tables or not tables <= SOURCE_TABLES:
        raise ViewDefinitionError(f"{view.path.name}: must read only {SOURCE_TABLE!r} (and {LABELS_TABLE!r}), "
                                  f"reads {sorted(tables)}")
    leaked = sorted({c.name for c in create.expression.selects for c in c.find_all(exp.Column)}
                    & set(RAW_IDENTIFIERS))  # fmt: skip
    if leaked:
        raise ViewDefinitionError(f"{view.path.name}: exposes raw identifiers {leaked}")
    if view.name not in VIEW_COLUMNS:
        raise ViewDefinitionError(f"{view.path.name}: no declared columns in finsentry.analytics.VIEW_COLUMNS")
    selected = create.expression.named_selects
    if selected != list(view.columns):
        raise ViewDefinitionError(f"{view.path.name}: selects {selected}, declared {list(view.columns)}")


def load_views(directory: Path | str = VIEWS_DIR) -> list[AthenaView]:
    """Every view in ``directory`` (sorted by name), each checked by ``check_view``."""
    paths = sorted(Path(directory).glob("*.sql"))
    if not paths:
        raise ViewDefinitionError(f"no view files (*.sql) in {directory}")
    views = [AthenaView(name=p.stem, sql=p.read_text(encoding="utf-8"), path=p) for p in paths]
    for view in views:
        check_view(view)
    return views


def glue_view_input(view: AthenaView, database: str, catalog: str = "awsdatacatalog") -> dict:
    """The Glue ``TableInput`` that registers ``view`` as an Athena view (no query at deploy time).

    Athena stores a view in the Glue catalog as a ``VIRTUAL_VIEW`` whose original text is
    ``/* Presto View: <base64 JSON> */`` with the SELECT, the catalog, the schema and the typed
    output columns; CloudFormation's ``AWS::Glue::Table`` takes the same structure.
    """
    spec = {
        "originalSql": view.select_sql,
        "catalog": catalog,
        "schema": database,
        "columns": [{"name": n, "type": t} for n, t in view.columns.items()],
    }
    encoded = base64.b64encode(json.dumps(spec).encode()).decode()
    return {
        "Name": view.name,
        "TableType": "VIRTUAL_VIEW",
        "Parameters": {"presto_view": "true", "comment": "Presto View"},
        "ViewOriginalText": f"/* Presto View: {encoded} */",
        "ViewExpandedText": "/* Presto View */",
        "StorageDescriptor": {
            "Columns": [{"Name": n, "Type": HIVE_TYPE_OF[t]} for n, t in view.columns.items()],
            "SerdeInfo": {},
        },
    }


def duckdb_connection(scored_root: Path | str, views: list[AthenaView] | None = None, labels=None):
    """An in-memory DuckDB with ``scored`` over ``scored_root/dt=*/*.parquet``, ``labels`` and every view.

    The table is laid out as the deployment's S3 prefix (Hive partitions, ``dt`` a string), so
    the Athena views run unchanged apart from the dialect. ``labels`` is the verdict history (a
    DataFrame of ``finsentry.labels.HISTORY_COLUMNS``, e.g. ``LabelStore.history()``); None = no
    verdict yet (an empty table of the same columns).
    """
    import duckdb

    from finsentry.labels import empty_history

    pattern = (Path(scored_root) / "dt=*" / "*.parquet").as_posix()
    con = duckdb.connect()
    quoted = pattern.replace("'", "''")
    con.execute(
        f"CREATE VIEW {SOURCE_TABLE} AS SELECT * FROM read_parquet('{quoted}', "  # noqa: S608 - a path, quoted
        "hive_partitioning = true, hive_types = {'dt': VARCHAR})"
    )
    history = empty_history() if labels is None else labels
    con.register("labels_frame", history[list(empty_history().columns)])
    con.execute(  # the table LABELS_TABLE, typed as finsentry.lake.TABLES declares it
        'CREATE TABLE labels AS SELECT trans_id::VARCHAR AS trans_id, verdict::VARCHAR AS verdict, '
                'who::VARCHAR AS who, "when"::TIMESTAMP AS "when", note::VARCHAR AS note, '
                'label_id::VARCHAR AS label_id, received_at::TIMESTAMP AS received_at FROM labels_frame')
    con.unregister("labels_frame")
    for view in views if views is not None else load_views():
        con.execute(view.to_duckdb())
    return con
