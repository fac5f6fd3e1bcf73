"""Is the warehouse file whole? Checked when a run opens it, before anything is written.

A DuckDB file cut short (a disk that filled during a copy, a backup restored half-way) may still
open, and answer some queries, while other tables throw "Corrupt database file": a run over it
would say "nothing new" and then write to it. Two checks that cost no scan of the data:

- the file opens, and its catalog can be listed;
- it is long enough to hold every block DuckDB's catalog points to: 3 header blocks of 4 KiB,
  then blocks of ``block_size`` up to the highest block id any table's storage or the metadata
  uses (``pragma_storage_info``, ``pragma_metadata_info``: metadata only, ~0.1 s for the
  warehouse of size M). Free blocks at the end may legitimately be cut off, so DuckDB's
  ``total_blocks`` is not the measure. Skipped while a write-ahead log stands beside the file.

A damaged warehouse is refused with a message saying what to do; the file is left untouched.
"""
from __future__ import annotations

from pathlib import Path

import duckdb

HEADER_BYTES = 3 * 4096


class DamagedWarehouse(RuntimeError):
    """The warehouse file fails an integrity check: nothing may write to it."""


def _refusal(warehouse: Path, why: str) -> DamagedWarehouse:
    return DamagedWarehouse(
        f"数据仓库文件已损坏，本次运行不写入：{warehouse}（{why}）。请从备份恢复该文件，或移走它后"
        f"重新运行以重建 / the warehouse file is damaged and was not written ({why}): restore it "
        f"from a backup, or move it away and run again to rebuild it")


def check_warehouse(warehouse: Path) -> None:
    """Raise DamagedWarehouse when the file exists and is not whole; a new (absent) file passes."""
    warehouse = Path(warehouse)
    if not warehouse.exists():
        return
    try:
        con = duckdb.connect(str(warehouse), read_only=True)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise            # held by another process: not damage (the caller reports it as busy)
        raise _refusal(warehouse, f"无法打开 cannot be opened: {str(exc)[:200]}") from exc
    except duckdb.Error as exc:
        raise _refusal(warehouse, f"无法打开 cannot be opened: {str(exc)[:200]}") from exc
    try:
        block_size = int(con.execute("PRAGMA database_size").fetchone()[2])
        highest = _highest_block(con)
    except duckdb.Error as exc:
        raise _refusal(warehouse, f"目录不可读 catalog unreadable: {str(exc)[:200]}") from exc
    finally:
        con.close()
    needed = HEADER_BYTES + (highest + 1) * block_size
    actual = warehouse.stat().st_size
    if actual < needed and not warehouse.with_name(warehouse.name + ".wal").exists():
        raise _refusal(warehouse, f"文件被截断 truncated: {actual} of at least {needed} bytes")


def _highest_block(con) -> int:
    """The highest block id the metadata or any table's data uses (-1 for none)."""
    highest = con.execute("SELECT coalesce(max(block_id), -1) FROM pragma_metadata_info()").fetchone()[0]
    for schema, table in con.execute("SELECT schema_name, table_name FROM duckdb_tables()").fetchall():
        name = '"' + schema.replace('"', '""') + '"."' + table.replace('"', '""') + '"'
        used = con.execute("SELECT max(block_id) FROM pragma_storage_info(?) WHERE block_id >= 0",
                           [name]).fetchone()[0]
        if used is not None and used > highest:
            highest = used
    return int(highest)
