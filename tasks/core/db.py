"""Opening the warehouse and creating its tables.

Pass paths between tasks, never connections: each task opens what it needs. DuckDB allows one
writing process per file; inside one process, connections to the same file share one database.
"""
from __future__ import annotations

import contextlib as _contextlib
import hashlib
import os
import re
import time as _time
from pathlib import Path

import duckdb

from povwatch.tasks.ingest.contracts import Contract, all_contracts
from povwatch.tasks.core.lake import relative_lake_paths, use_lake
from povwatch.tasks.core.readers import warehouse_held
from povwatch.tasks.core.settings import WAREHOUSE_DIR, load_settings


def connect(warehouse: Path | str, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open the warehouse; a new one is created readable by its owner only.

    DuckDB refuses a writer while another process has the file open, even read-only: a
    ``povwatch sql`` or a report in the middle of a run. A read-write open therefore waits for
    such a reader to let go, up to ``POVWATCH_DB_LOCK_WAIT`` seconds (default 60).
    """
    warehouse = Path(warehouse)
    if read_only:
        con = duckdb.connect(str(warehouse), read_only=True)
        use_lake(con, warehouse)
        return con
    warehouse.parent.mkdir(parents=True, exist_ok=True)
    wait = load_settings().db_lock_wait
    deadline = _time.monotonic() + wait
    while True:
        old_umask = os.umask(0o077)  # personal data: owner-only file and WAL
        try:
            con = duckdb.connect(str(warehouse))
            use_lake(con, warehouse)
            return con
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower():
                raise
            if _time.monotonic() >= deadline:   # name the holder and the setting, not DuckDB's text
                raise warehouse_held(exc, warehouse, wait) from exc
        finally:
            os.umask(old_umask)
        _time.sleep(0.2)


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create every schema, audit table and department table that does not exist yet, and bring
    a warehouse of an earlier release up to this one (ddl.sql's ALTER/DROP, contract columns)."""
    ddl = (WAREHOUSE_DIR / "ddl.sql").read_text(encoding="utf-8")
    contracts = all_contracts()
    fingerprint = _schema_fingerprint(ddl, contracts)
    if _schema_present(con, ddl, contracts) and _stored_fingerprint(con) == fingerprint:
        return  # every statement below would be a no-op
    con.execute(ddl)
    for contract in contracts.values():
        ensure_department_tables(con, contract)
    con.execute("CREATE TABLE IF NOT EXISTS audit.schema_state (fingerprint VARCHAR)")
    con.execute("DELETE FROM audit.schema_state")
    con.execute("INSERT INTO audit.schema_state VALUES (?)", [fingerprint])


def _schema_fingerprint(ddl: str, contracts: dict[str, Contract]) -> str:
    """What the warehouse's structure follows from: ddl.sql and every contract's staged columns.
    It changes with a release (a new ALTER in ddl.sql, a column a contract gained) or a county
    folder's contracts, and then the idempotent set-up runs once."""
    columns = [(code, c.staged_ddl_columns()) for code, c in sorted(contracts.items())]
    return hashlib.sha256(repr((ddl, columns)).encode("utf-8")).hexdigest()


def _stored_fingerprint(con: duckdb.DuckDBPyConnection) -> str | None:
    try:
        row = con.execute("SELECT fingerprint FROM audit.schema_state").fetchone()
    except duckdb.CatalogException:   # a warehouse from before the fingerprint was kept
        return None
    return row[0] if row else None


_DDL_SCHEMA = re.compile(r"CREATE\s+SCHEMA\s+IF\s+NOT\s+EXISTS\s+(\w+)", re.IGNORECASE)
_DDL_TABLE = re.compile(r"CREATE\s+TABLE\s+IF\s+NOT\s+EXISTS\s+(\w+)\.(\w+)", re.IGNORECASE)


def _schema_present(con: duckdb.DuckDBPyConnection, ddl: str, contracts: dict[str, Contract]) -> bool:
    """True when every schema and table that ddl.sql and the contracts create already exists:
    two catalog queries instead of ~300 statements, which cost ~0.05 s of CPU on every
    open_warehouse (a run opens the warehouse dozens of times). What ddl.sql alters or drops is
    covered by the fingerprint (ensure_schema), not here."""
    schemas = {s.lower() for s in _DDL_SCHEMA.findall(ddl)}
    tables = {(s.lower(), t.lower()) for s, t in _DDL_TABLE.findall(ddl)}
    for code in contracts:
        tables |= {(schema, code.lower()) for schema in ("raw", "pending", "staging")}
    present_schemas = {r[0] for r in con.execute(
        "SELECT lower(schema_name) FROM duckdb_schemas() WHERE database_name = current_database()"
    ).fetchall()}
    present_tables = set(con.execute(
        "SELECT lower(schema_name), lower(table_name) FROM duckdb_tables() "
        "WHERE database_name = current_database() UNION ALL "
        "SELECT lower(schema_name), lower(view_name) FROM duckdb_views() "
        "WHERE database_name = current_database() AND NOT internal").fetchall())
    return schemas <= present_schemas and tables <= present_tables


def insert_rows(con: duckdb.DuckDBPyConnection, table: str, rows: list[tuple]) -> None:
    """The rows into ``table`` in one statement. ``executemany`` runs one statement per row, and
    every statement DuckDB runs for Python takes the GIL several times, waiting its turn beside
    Python threads (docs/performance.md, *The GIL beside DuckDB*)."""
    if not rows:
        return
    one = "(" + ", ".join("?" * len(rows[0])) + ")"
    con.execute(f"INSERT INTO {table} VALUES " + ", ".join([one] * len(rows)),
                [value for row in rows for value in row])


def raw_column_names(contract: Contract) -> list[str]:
    """raw.<dept>: lineage, the contract's columns as delivered text, and the extra columns (JSON)."""
    return ["period", "run_id", "source_file", "source_row", *[c.name for c in contract.columns], "extra"]


def empty_layer_select(contract: Contract, layer: str = "raw") -> str:
    """The columns of raw.<dept> (text) or pending.<dept> (typed as staging), and no row."""
    if layer == "raw":
        columns = [(n, "INTEGER" if n == "source_row" else "VARCHAR") for n in raw_column_names(contract)]
    else:
        columns = contract.staged_ddl_columns()
    typed = ", ".join(f'CAST(NULL AS {t}) AS "{n}"' for n, t in columns)
    return f"SELECT {typed} WHERE false"



def ensure_department_tables(con: duckdb.DuckDBPyConnection, contract: Contract) -> None:
    # raw.<dept> is a view over Parquet files (tasks.ingest.load.define_layer_view); until a first
    # delivery it is an empty view of the same columns. A table of that name (a warehouse from
    # before the lake) is left for tasks.ingest.load to move into Parquet.
    # pending.<dept> likewise: the conformed rows as Parquet until validated and promoted.
    for layer in ("raw", "pending"):
        exists = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = ? "
                             "AND table_name = ?", [layer, contract.code]).fetchall()[0][0]
        if not exists:
            con.execute(f"CREATE VIEW {layer}.{contract.code} AS {empty_layer_select(contract, layer)}")
    typed = ", ".join(f'"{name}" {dtype}' for name, dtype in contract.staged_ddl_columns())
    con.execute(f"CREATE TABLE IF NOT EXISTS staging.{contract.code} ({typed})")
    # A column the contract gained since the table was made (a warehouse of an earlier release):
    # added empty, so the snapshots staged before it read as "not delivered then" and the models,
    # which name every contract column, can rebuild them.
    present = {r[0] for r in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'staging' "
        "AND table_name = ?", [contract.code]).fetchall()}
    for name, dtype in contract.staged_ddl_columns():
        if name not in present:
            con.execute(f'ALTER TABLE staging.{contract.code} ADD COLUMN "{name}" {dtype}')


def open_warehouse(warehouse: Path | str) -> duckdb.DuckDBPyConnection:
    """Connect read-write and make sure every table exists.

    While a run holds the warehouse (held_open), its schema was made sure of when it was opened and
    nothing in a run drops what ensure_schema creates: the check is skipped. It cost ~6 ms of CPU
    a call (every contract read again for the fingerprint, two catalog queries), and a run opens
    the warehouse a hundred times at M (each department's stage, validation, promotion, receipt).
    """
    con = connect(warehouse)
    if _held.get(_held_key(warehouse)):
        return con
    ensure_schema(con)
    with write_lock:   # once per process: a warehouse from before lake paths were relative
        relative_lake_paths(con, warehouse)
    return con


# warehouse (resolved path) -> how many held_open are holding it, its schema made sure of
_held: dict[str, int] = {}


def _held_key(warehouse: Path | str) -> str:
    return str(Path(warehouse).resolve())


@_contextlib.contextmanager
def held_open(warehouse: Path | str):
    """Keep the warehouse open in this process while a run's tasks open and close it.

    Connections of one process with the same configuration share one DuckDB database instance.
    When the last one closes, DuckDB checkpoints and unloads the file, and the next ``connect``
    loads it again: every task paid that (~0.05 s CPU and a checkpoint per open, dozens of opens
    per period). One connection held for the run keeps the instance loaded; DuckDB then
    checkpoints when its WAL fills, and once more when this connection closes. Only for tasks that
    run in this process (threads): another process cannot open the file while it is held.

    While it is held, DuckDB runs each query on the thread that asks (``POVWATCH_DUCKDB_THREADS``,
    default 1; ``threads`` is a setting of the database instance, so it holds for every connection
    of the run, GX's too): the run's own threads already keep the cores busy (four departments
    staged at once, a department promoted while the next one validates), and DuckDB's workers,
    handed parts of each of a run's thousands of mostly small queries, added CPU (M, whole runs
    alternating: -1.5 to -2 s CPU with one thread; the marts alone -0.3 to -0.5 s) and, on the
    shared 2-core machine measured, no shorter wall time. The instance's own setting is put back
    when the run lets go; ``POVWATCH_DUCKDB_THREADS=0`` leaves DuckDB its own (more cores).
    """
    con = open_warehouse(warehouse)
    key = _held_key(warehouse)
    _held[key] = _held.get(key, 0) + 1
    try:
        threads = load_settings().duckdb_threads
        before = con.execute("SELECT current_setting('threads')").fetchone()[0]
        if threads > 0:
            con.execute(f"SET threads = {int(threads)}")
        try:
            yield con
        finally:
            con.execute(f"SET threads = {int(before)}")
    finally:
        _held[key] -= 1
        if not _held[key]:
            del _held[key]
        con.close()


# DuckDB's optimistic concurrency lets two transactions that delete from the same table conflict.
# Tasks of one run execute in threads of one process: they read and conform in parallel and take
# this lock only for their short write transactions.
import threading as _threading

write_lock = _threading.RLock()
