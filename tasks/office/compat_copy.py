"""A copy of the warehouse that DuckDB 1.x clients (the BI tools that still bundle it) can open.

The warehouse itself is written in the installed DuckDB's own storage format, which DuckDB 1.x
refuses. ``povwatch compat-copy OUT`` writes every schema, table and view into a new file in an
older storage format (DuckDB's ``ATTACH ... (STORAGE_VERSION 'v1.0.0')`` then ``COPY FROM
DATABASE``), to be opened read-only. The copy holds the same personal data as the warehouse:
owner-only, like it. Its ``raw.<dept>`` views read the warehouse's lake: a client sets
``file_search_path`` to that folder (docs/operations.md).
"""
from __future__ import annotations

import os
from pathlib import Path

import duckdb

from povwatch.tasks.office.outputs import open_read

DEFAULT_STORAGE_VERSION = "v1.0.0"   # readable by every DuckDB from 1.0 on
HEADER_VERSION_OFFSET = 12            # the storage version number in a DuckDB file's header


def write_compat_copy(warehouse: Path, out: Path, storage_version: str = DEFAULT_STORAGE_VERSION) -> Path:
    """Write ``out`` (replaced if it exists) in ``storage_version``'s format; return it."""
    out = Path(out).resolve()
    if out == Path(warehouse).resolve():
        raise ValueError("the copy must not replace the warehouse itself")
    source = open_read(Path(warehouse))   # fails with a clear message while a run writes
    source.close()
    out.parent.mkdir(parents=True, exist_ok=True)
    for stale in (out, out.with_name(out.name + ".wal")):
        stale.unlink(missing_ok=True)
    con = duckdb.connect()
    old_umask = os.umask(0o077)   # personal data, as in the warehouse
    try:
        con.execute(f"ATTACH '{_quoted(Path(warehouse).resolve())}' AS source (READ_ONLY)")
        con.execute(f"ATTACH '{_quoted(out)}' AS copy (STORAGE_VERSION '{_quoted(storage_version)}')")
        con.execute("COPY FROM DATABASE source TO copy")
        con.execute("DETACH copy")
    finally:
        os.umask(old_umask)
        con.close()
    return out


def storage_version_number(path: Path) -> int:
    """The storage version a DuckDB file's header declares (DuckDB 1.x reads 64 to 68)."""
    header = Path(path).read_bytes()[:HEADER_VERSION_OFFSET + 8]
    if header[8:12] != b"DUCK":
        raise ValueError(f"{path} is not a DuckDB file")
    return int.from_bytes(header[HEADER_VERSION_OFFSET:HEADER_VERSION_OFFSET + 8], "little")


def _quoted(value) -> str:
    return str(value).replace("'", "''")
