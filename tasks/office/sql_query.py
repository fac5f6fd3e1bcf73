"""``povwatch sql``: a read-only query against the warehouse.

Read-only by construction: the file is opened with ``duckdb.connect(read_only=True)`` and with
``enable_external_access = false`` except for reading the warehouse's own Parquet lake (the
``raw.<dept>`` views: ``allowed_directories``), and COPY / EXPORT / ATTACH / LOAD are refused, so
neither the warehouse nor any other file can be written (no INSERT/UPDATE/CREATE, no COPY … TO). Problems a person can fix are one clear
message in Chinese and English on stderr, never a stack trace:

exit 0  the result was printed
exit 1  the query itself is wrong (syntax, unknown table or column)
exit 2  the warehouse cannot be queried: missing, locked by a running pipeline, or the statement
        tries to write

Identity numbers are NOT masked here: this is the poverty office querying its own warehouse on its
own machine, and the office needs the real numbers to follow a case up. The masking rule applies
to what leaves the warehouse (reports, exports, alerts, receipts); see docs/outputs.md.
"""
from __future__ import annotations

import datetime as dt
import decimal
import json
from pathlib import Path

import duckdb
import polars as pl

from povwatch.tasks.core.lake import allowed_lake_directories
from povwatch.tasks.office.outputs import open_read

MAX_TABLE_ROWS = 1000  # the aligned-text table is for reading; csv/json print every row


class QueryRefused(Exception):
    """A statement povwatch sql does not run; ``kind`` is write / files / multi."""

    def __init__(self, kind: str, detail: str):
        super().__init__(detail)
        self.kind = kind


REFUSALS = {
    "write": ("povwatch sql 只读，不允许写入仓库（INSERT/UPDATE/DELETE/CREATE/DROP/ATTACH 等）。",
              "povwatch sql is read-only: statements that write the warehouse are refused."),
    "files": ("povwatch sql 只查询仓库本身，不读写其他文件（COPY TO、EXPORT、read_csv、扩展等已禁用）。",
              "povwatch sql queries the warehouse only: reading or writing other files "
              "(COPY TO, EXPORT, read_csv, extensions) is disabled."),
    "multi": ("一次只能执行一条语句。", "One statement at a time."),
}


def run_query(warehouse: Path, query: str) -> pl.DataFrame:
    """Run ``query`` read-only; raise WarehouseUnavailable, QueryRefused or duckdb.Error."""
    con = open_read(Path(warehouse), strict=True)
    try:
        # The raw.<dept> views read Parquet files in the warehouse's lake folder (by paths
        # relative to it): the lake, and no other file, may be read. Set before external access
        # is switched off, after which neither setting can be changed by the query.
        allowed = ", ".join("'" + d.replace("'", "''") + "'"
                            for d in allowed_lake_directories(con, Path(warehouse)))
        con.execute(f"SET allowed_directories = [{allowed}]")
        con.execute("SET enable_external_access = false")
        try:
            return pl.from_arrow(con.sql(query).to_arrow_table()) if _returns_rows(con, query) \
                else _run_statement(con, query)
        except duckdb.PermissionException as exc:
            raise QueryRefused("files", str(exc)) from None
        except duckdb.InvalidInputException as exc:
            if "read-only" in str(exc) or "read only" in str(exc).lower():
                raise QueryRefused("write", str(exc)) from None
            raise
    finally:
        con.close()


# Statements that write or attach files: refused outright (the lake folder is readable, so
# COPY ... TO inside it would otherwise be allowed by DuckDB's file-access settings).
FILE_STATEMENTS = {"COPY", "EXPORT", "ATTACH", "DETACH", "LOAD", "COPY_DATABASE"}


def _returns_rows(con: duckdb.DuckDBPyConnection, query: str) -> bool:
    statements = con.extract_statements(query)
    if len(statements) != 1:
        raise QueryRefused("multi", f"{len(statements)} statements")
    kind = statements[0].type.name
    if kind in FILE_STATEMENTS:
        raise QueryRefused("files", f"{kind} statement")
    return kind in ("SELECT", "EXPLAIN", "PRAGMA", "SHOW", "DESCRIBE")


def _run_statement(con: duckdb.DuckDBPyConnection, query: str) -> pl.DataFrame:
    con.execute(query)
    rows = con.fetchall()
    names = [d[0] for d in (con.description or [])]
    return pl.DataFrame(rows, schema=names, orient="row") if names else pl.DataFrame()


def format_result(df: pl.DataFrame, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(df.to_dicts(), ensure_ascii=False, default=_json_default, indent=1) + "\n"
    if fmt == "csv":
        return _as_text(df).write_csv() if df.columns else ""
    return _table(df)


def _json_default(value):
    if isinstance(value, (dt.date, dt.datetime, dt.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, dt.timedelta):
        return str(value)
    return str(value)


def _as_text(df: pl.DataFrame) -> pl.DataFrame:
    """Every value as display text (nulls empty); lists as [a, b], structs as JSON."""
    exprs = []
    for name, dtype in df.schema.items():
        col = pl.col(name)
        if isinstance(dtype, (pl.List, pl.Array)):
            col = "[" + col.cast(pl.List(pl.Utf8)).list.join(", ") + "]"
        elif isinstance(dtype, pl.Struct):
            col = col.struct.json_encode()
        elif dtype == pl.Object:
            col = col.map_elements(str, return_dtype=pl.Utf8)
        exprs.append(col.cast(pl.Utf8).fill_null("").alias(name))
    return df.select(exprs)


def _text_rows(df: pl.DataFrame) -> list[tuple]:
    return _as_text(df).rows() if df.columns else []


def _width(text: str) -> int:
    return sum(2 if ord(c) > 0x2E80 else 1 for c in text)


def _clip(text: str, limit: int = 60) -> str:
    """Cut text to ``limit`` display columns, with an ellipsis."""
    if _width(text) <= limit:
        return text
    out, used = [], 0
    for ch in text:  # one cell's characters, not rows
        w = _width(ch)
        if used + w > limit - 1:
            break
        out.append(ch)
        used += w
    return "".join(out) + "…"


def _table(df: pl.DataFrame) -> str:
    """Aligned text, CJK characters counted two columns wide, numbers right-aligned."""
    if not df.columns:
        return "（无结果 / no result）\n"
    shown = df.head(MAX_TABLE_ROWS)
    rows = [tuple(df.columns)] + [tuple(_clip(v) for v in r) for r in _text_rows(shown)]
    widths = [max(_width(r[i]) for r in rows) for i in range(len(df.columns))]
    numeric = [dtype.is_numeric() for dtype in df.dtypes]

    def line(r):
        cells = []
        for value, w, right in zip(r, widths, numeric):
            pad = " " * max(0, w - _width(value))
            cells.append(pad + value if right else value + pad)
        return " | ".join(cells).rstrip()

    out = [line(rows[0]), "-+-".join("-" * w for w in widths)] + [line(r) for r in rows[1:]]
    footer = f"（{df.height} 行 / rows）"
    if df.height > MAX_TABLE_ROWS:
        footer = (f"（显示前 {MAX_TABLE_ROWS} 行，共 {df.height} 行；全部结果请用 --format csv / "
                  f"first {MAX_TABLE_ROWS} of {df.height} rows; use --format csv for all）")
    return "\n".join(out + [footer]) + "\n"
