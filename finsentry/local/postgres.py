"""A throwaway PostgreSQL server on a free loopback port (the tests' and the benchmark's database).

Debian's server binaries (``/usr/lib/postgresql/<version>/bin``: ``initdb``, ``pg_ctl``) create
a cluster in a temporary folder and serve it on 127.0.0.1 only (no Unix socket), trust
authentication for the one local superuser. The server refuses to run as root: as root the
cluster is created and run as the ``postgres`` OS user (``runuser``). ``stop()`` stops the
server and deletes the folder.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess  # noqa: S404 - runs the local PostgreSQL binaries, fixed argument lists
import tempfile
import time
from pathlib import Path

import pandas as pd

BIN_GLOB = "/usr/lib/postgresql/*/bin"
SERVICE_USER = "postgres"  # the Debian package's OS user


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries on this machine, or the server did not start."""


def server_bin() -> Path | None:
    """The newest installed ``/usr/lib/postgresql/<version>/bin`` holding initdb, or None."""
    found = [Path(p) for p in glob.glob(BIN_GLOB) if (Path(p) / "initdb").is_file()]
    return max(found, key=lambda p: int(p.parent.name), default=None) if found else None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalPostgres:
    """``with LocalPostgres() as pg: pg.url`` — a started server and its database ``finsentry``."""

    def __init__(self, database: str = "finsentry", user: str = "finsentry") -> None:
        bin_dir = server_bin()
        if bin_dir is None:
            raise PostgresUnavailable("no PostgreSQL server binaries under /usr/lib/postgresql "
                                      "(apt install postgresql)")
        self.bin = bin_dir
        self.database, self.user = database, user
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="finsentry-pg-"))
        self.data = self.root / "data"
        self.as_service_user = os.geteuid() == 0

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{self.database}"

    @property
    def jdbc_url(self) -> str:
        return f"jdbc:postgresql://127.0.0.1:{self.port}/{self.database}"

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        command = [str(a) for a in args]
        if self.as_service_user:
            command = ["runuser", "-u", SERVICE_USER, "--", *command]
        return subprocess.run(command, capture_output=True, text=True, check=False, cwd=self.root)  # noqa: S603

    def start(self) -> LocalPostgres:
        if self.as_service_user:
            shutil.chown(self.root, SERVICE_USER)
            self.root.chmod(0o700)
        done = self._run(self.bin / "initdb", "-D", self.data, "-U", self.user, "--auth=trust", "-E", "UTF8",
                         "--no-sync", "--locale=C.UTF-8")  # fmt: skip
        if done.returncode != 0:
            raise PostgresUnavailable(f"initdb failed: {' '.join(done.stderr.split())[:300]}")
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off")  # fmt: skip
        done = self._run(self.bin / "pg_ctl", "-D", self.data, "-l", self.root / "server.log", "-o", options,
                         "-w", "-t", "60", "start")  # fmt: skip
        if done.returncode != 0:
            log = (self.root / "server.log").read_text(errors="replace") if (self.root / "server.log").exists() else ""
            raise PostgresUnavailable(f"pg_ctl start failed: {' '.join((done.stderr + log).split())[-300:]}")
        self._create_database()
        return self

    def _create_database(self) -> None:
        import psycopg

        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(f"postgresql://{self.user}@127.0.0.1:{self.port}/postgres",
                                     autocommit=True) as conn:  # fmt: skip
                    conn.execute(f'CREATE DATABASE "{self.database}"')
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def load(self, table: str, frame: pd.DataFrame, types: dict[str, str]) -> int:
        """Create ``table`` (``types``: column -> SQL type, in order) and COPY ``frame``'s rows in
        (None, NaN and empty text = NULL); returns the rows loaded. ``table`` may be ``schema.table``."""
        import psycopg
        from psycopg import sql

        name = sql.Identifier(*table.split("."))
        columns = sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t)) for c, t in types.items())
        names = sql.SQL(", ").join(sql.Identifier(c) for c in types)
        copy_sql = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv)").format(name, names)  # empty cell = NULL
        with psycopg.connect(self.url, autocommit=True) as conn:
            if "." in table:
                conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(table.split(".")[0])))
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(name))
            conn.execute(sql.SQL("CREATE TABLE {} ({})").format(name, columns))
            with conn.cursor() as cursor, cursor.copy(copy_sql) as copy:
                for start in range(0, len(frame), 100_000):
                    copy.write(frame[list(types)].iloc[start:start + 100_000].to_csv(index=False, header=False))
        return len(frame)

    def stop(self) -> None:
        if self.data.exists():
            self._run(self.bin / "pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> LocalPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- a canonical bank as another bank's table (tests, bench.etl) -------------------------------

BANK_TYPES = {
    "tx_id": "text", "account_no": "bigint", "customer_no": "integer", "booked_at": "timestamp",
    "amount": "numeric(14,2)", "dc": "text", "operation": "text", "purpose": "text", "partner_bank": "text",
    "partner_account": "text", "balance_after": "numeric(14,2)", "region": "text", "is_fraud": "boolean",
}  # fmt: skip
BANK_COLUMNS = {"trans_id": "tx_id", "account_id": "account_no", "client_id": "customer_no", "ts": "booked_at",
                "amount": "amount", "direction": "dc", "operation": "operation", "k_symbol": "purpose",
                "partner_bank": "partner_bank", "partner_account": "partner_account", "balance_after": "balance_after",
                "region": "region"}  # fmt: skip


def bank_table(canonical: pd.DataFrame) -> pd.DataFrame:
    """Canonical rows in ``BANK_TYPES``' columns, in (booked_at, tx_id) order, every cell as
    PostgreSQL prints it (timestamps ``YYYY-MM-DD HH:MM:SS``, two-decimal amounts, t/f)."""
    c = canonical
    table = pd.DataFrame({
        "tx_id": "tx" + c["trans_id"].astype(str).str.zfill(9), "account_no": c["account_id"].astype(str),
        "customer_no": c["client_id"].astype(str),
        "booked_at": c["ts"].dt.strftime("%Y-%m-%d %H:%M:%S"), "amount": c["amount"].map(lambda v: f"{v:.2f}"),
        "dc": c["direction"].map({"debit": "D", "credit": "C"}), "operation": c["operation"].astype(str),
        "purpose": c["k_symbol"].astype(str), "partner_bank": c["partner_bank"].astype(str),
        "partner_account": c["partner_account"].astype(str),
        "balance_after": c["balance_after"].map(lambda v: f"{v:.2f}"), "region": c["region"].astype(str),
        "is_fraud": "f",
    })  # fmt: skip
    return table.sort_values(["booked_at", "tx_id"], kind="stable").reset_index(drop=True)


def bank_mapping(table: str = "bank.transactions", watermark: str | None = "booked_at", **database) -> dict:
    """The mapping (as YAML data) that reads ``bank_table`` back from ``table``."""
    spec = {"table": table, "watermark": watermark, "key": "tx_id", **database}
    return {"columns": BANK_COLUMNS, "values": {"direction": {"D": "debit", "C": "credit"}}, "label": "is_fraud",
            "database": {k: v for k, v in spec.items() if v is not None}}  # fmt: skip
