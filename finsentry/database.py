"""A PostgreSQL table or query as a source (``--data postgresql://... --mapping MAP.yaml``).

The rows are read as PostgreSQL prints them (every cell as text, NULL = empty), which is what
the CSV reader gives the mapping, so a table and its CSV export map onto the same canonical
rows; the mapping's ``database:`` section names the table or query (``finsentry.mapping``).

* **Bounded memory**: a server-side (named) cursor fetches ``chunk_rows`` rows at a time; each
  chunk is turned into text columns before the next is fetched (the server never sends the
  whole result at once, and no list of every row's Python tuples is built).
* **Incremental**: with ``database.watermark: COLUMN`` only rows with ``COLUMN`` above the last
  run's high-water mark are read. The mark of this read is ``max(COLUMN)`` taken in the same
  REPEATABLE READ snapshot as the rows (``COLUMN <= mark`` bounds the read, so a row committed
  meanwhile is neither skipped nor read twice). It is stored with the run, in
  ``<out>.watermark.json`` beside the command's output (``watermark_path``), and written only
  after the command's outputs are: a run that fails (a lost connection, a bad mapping) leaves
  the previous mark. Rows whose watermark is NULL are never read by an incremental source (the
  docs say so). Quarantined rows advance the mark too: they are in the quarantine file, and
  reading them again would not repair them.
* **Credentials** come from the URL, or libpq's environment (``PGPASSWORD``, ``PGPASSFILE`` /
  ``~/.pgpass``, ``PGSSLMODE``...); the password is never printed: every message shows
  ``mask_url(url)``.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pandas as pd

from finsentry.mapping import DatabaseSpec, MappingError

SCHEMES = ("postgresql://", "postgres://")
CONNECT_TIMEOUT_SECONDS = 10
CURSOR_NAME = "finsentry_source"
APPLICATION_NAME = "finsentry"  # pg_stat_activity.application_name of the reading session
# types read as their PostgreSQL text (others are text already): the CSV reader's view of them
TEXT_TYPES = ("int2", "int4", "int8", "oid", "numeric", "float4", "float8", "bool", "date", "time", "timetz",
              "timestamp", "timestamptz", "interval", "uuid", "json", "jsonb", "bytea", "money", "inet")  # fmt: skip
Progress = Callable[[str], None]


class DatabaseSourceError(ValueError):
    """The database cannot be reached, the read failed, or the stored watermark does not fit."""


def is_database_url(data: object) -> bool:
    return isinstance(data, str) and data.lower().startswith(SCHEMES)


def mask_url(url: str) -> str:
    """The URL without its password (``postgresql://user:***@host:port/db``) and query string."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        user, host = netloc.rsplit("@", 1)
        if ":" in user:
            user = user.split(":", 1)[0] + ":***"
        netloc = f"{user}@{host}"
    query = "..." if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def _password(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def scrub(message: str, url: str) -> str:
    """``message`` on one line, with the URL masked and its password removed wherever it shows."""
    text = " ".join(str(message).split())
    text = text.replace(url, mask_url(url))
    secret = _password(url)
    return text.replace(secret, "***") if secret else text


@dataclass(frozen=True)
class Watermark:
    """A high-water mark: the column, its PostgreSQL type and its value as PostgreSQL prints it."""

    column: str
    type: str
    value: str

    def to_dict(self) -> dict[str, str]:
        return {"column": self.column, "type": self.type, "value": self.value}


def relation_text(spec: DatabaseSpec) -> str:
    """What is read, for messages and to tell whether a stored mark belongs to this source."""
    if spec.query:
        return "query sha256:" + hashlib.sha256(spec.query.strip().encode()).hexdigest()[:16]
    return f"table {spec.table}"


def watermark_path(out: Path | str) -> Path:
    """Where a run keeps its database source's high-water mark: beside its output."""
    out = Path(out)
    return out.with_name(f"{out.stem}.watermark.json")


def read_watermark(path: Path | None, spec: DatabaseSpec) -> Watermark | None:
    """The last run's mark stored at ``path`` for this relation and column, or None (first run).

    A mark stored for another relation or column is an error (delete the file to read all)."""
    if path is None or spec.watermark is None or not path.is_file():
        return None
    try:
        stored = json.loads(path.read_text())
        mark = Watermark(**stored["watermark"])
        relation = stored["relation"]
    except (ValueError, KeyError, TypeError) as err:
        raise DatabaseSourceError(f"{path}: not a finsentry watermark file ({err}); "
                                  "delete it to read all rows") from err
    if relation != relation_text(spec) or mark.column != spec.watermark:
        raise DatabaseSourceError(f"{path} holds the mark of {relation}, column {mark.column}, not of "
                                  f"{relation_text(spec)}, column {spec.watermark}: give another --out, or "
                                  "delete the file to read all rows")  # fmt: skip
    return mark


def write_watermark(path: Path, mark: Watermark, spec: DatabaseSpec, url: str, rows: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"source": mask_url(url), "relation": relation_text(spec), "watermark": mark.to_dict(),
                                "rows_read": rows, "written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
                               indent=2))  # fmt: skip
    return path


@dataclass
class DatabaseRead:
    """The rows of one read (text cells, '' = NULL) and the marks around it."""

    raw: pd.DataFrame
    since: Watermark | None  # the previous run's mark (rows above it were read)
    mark: Watermark | None  # this read's high-water mark (None: no watermark column, or no row)
    relation: str


def _identifier(name: str):
    from psycopg import sql

    return sql.Identifier(*name.split("."))


def _relation(spec: DatabaseSpec):
    """The FROM clause: the table, or the query as a sub-query."""
    from psycopg import sql

    if spec.query:
        return sql.SQL("({}) AS finsentry_src").format(sql.SQL(spec.query.strip().rstrip(";")))  # noqa: S608 - the user's own query
    if not spec.table:
        raise MappingError("a database source needs database.table or database.query in the mapping (or --query)")
    return _identifier(spec.table)


def _bounds(spec: DatabaseSpec, since: Watermark | None, mark: str | None):
    """WHERE and ORDER BY: the watermark's window (since, mark], then the watermark/key order."""
    from psycopg import sql

    where, params = [], []
    if spec.watermark is not None:
        column = _identifier(spec.watermark)
        if since is not None:
            where.append(sql.SQL("{} > %s").format(column))
            params.append(since.value)
        where.append(sql.SQL("{} <= %s").format(column))
        params.append(mark)
    order = [_identifier(c) for c in (spec.watermark, spec.key) if c]
    clause = sql.SQL(" WHERE ") + sql.SQL(" AND ").join(where) if where else sql.SQL("")
    if order:
        clause += sql.SQL(" ORDER BY ") + sql.SQL(", ").join(order)
    return clause, params


def connect(url: str, **options):
    """A psycopg connection, or ``DatabaseSourceError`` with the masked URL and libpq's reason."""
    import psycopg

    try:
        return psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_SECONDS, application_name=APPLICATION_NAME,
                               **options)  # fmt: skip
    except psycopg.Error as err:
        raise DatabaseSourceError(f"cannot connect to {mask_url(url)}: {scrub(str(err), url)}") from None


def _text_frame(rows: list[tuple], names: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(rows, columns=names)
    return frame.astype(object).where(frame.notna(), "")


def read_rows(url: str, spec: DatabaseSpec, since: Watermark | None = None,
              progress: Progress | None = None) -> DatabaseRead:  # fmt: skip
    """The rows of ``spec`` above ``since`` (all rows without a watermark), read in chunks."""
    import psycopg
    from psycopg import sql
    from psycopg.types.string import TextLoader

    relation = _relation(spec)
    where = relation_text(spec)
    conn = connect(url)
    done, chunks = 0, []
    try:
        conn.read_only = True
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        for name in TEXT_TYPES:
            conn.adapters.register_loader(name, TextLoader)
        with conn.transaction():
            mark = None
            if spec.watermark is not None:
                column = _identifier(spec.watermark)
                top_sql = sql.SQL("SELECT max({c})::text, pg_typeof(max({c}))::text FROM {r}")
                top, kind = conn.execute(top_sql.format(c=column, r=relation)).fetchone()
                mark = None if top is None else Watermark(spec.watermark, kind, top)
            if spec.watermark is not None and (mark is None or (since is not None and _not_above(conn, mark, since))):
                names = _column_names(conn, relation)
                return DatabaseRead(pd.DataFrame({n: pd.Series(dtype=object) for n in names}), since, None, where)
            clause, params = _bounds(spec, since, None if mark is None else mark.value)
            select = sql.SQL("SELECT * FROM {}").format(relation) + clause
            with conn.cursor(name=CURSOR_NAME) as cursor:
                cursor.itersize = spec.chunk_rows
                cursor.execute(select, params)
                names = [d.name for d in cursor.description]
                while rows := cursor.fetchmany(spec.chunk_rows):
                    chunks.append(_text_frame(rows, names))
                    done += len(rows)
                    if progress is not None and len(chunks) % 10 == 0:
                        progress(f"{done:,} rows read from {where}")
    except psycopg.OperationalError as err:
        raise DatabaseSourceError(f"lost the connection to {mask_url(url)} after {done:,} rows of {where}: "
                                  f"{scrub(str(err), url)}; nothing was written and the watermark did not "
                                  "advance") from None  # fmt: skip
    except psycopg.Error as err:
        raise DatabaseSourceError(f"cannot read {where} from {mask_url(url)}: {scrub(str(err), url)}") from None
    finally:
        conn.close()
    raw = pd.concat(chunks, ignore_index=True) if chunks else pd.DataFrame({n: pd.Series(dtype=object) for n in names})
    return DatabaseRead(raw, since, mark, where)


def _not_above(conn, mark: Watermark, since: Watermark) -> bool:
    """``mark <= since`` compared by PostgreSQL in the column's type (nothing new to read)."""
    from psycopg import sql

    kind = sql.SQL(_type_name(mark.type))
    compare = sql.SQL("SELECT %s::{t} <= %s::{t}").format(t=kind)
    answer = conn.execute(compare, [mark.value, since.value]).fetchone()[0]
    return answer in (True, "t")  # booleans are read as PostgreSQL's text ('t'/'f') on this connection


_TYPE_NAME = re.compile(r"^[a-z][a-z0-9 _()\[\],]*$")


def _type_name(name: str) -> str:
    """A type name from ``pg_typeof`` (checked: it is put into the SQL text)."""
    if not _TYPE_NAME.match(name):
        raise DatabaseSourceError(f"unexpected watermark type {name!r}")
    return name


def _column_names(conn, relation) -> list[str]:
    from psycopg import sql

    cursor = conn.execute(sql.SQL("SELECT * FROM {} LIMIT 0").format(relation))
    return [d.name for d in cursor.description]


def masked_name(url: str, spec: DatabaseSpec) -> str:
    """How the source is named in messages and metadata: masked URL and relation."""
    return f"{mask_url(url)} ({relation_text(spec)})"
