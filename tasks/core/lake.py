"""Where the warehouse's Parquet lake is, resolved when the warehouse is opened.

``audit.lake_files`` lists each file relative to its lake (``raw/dept=…/…parquet``), and the
``raw.<dept>`` / ``pending.<dept>`` views read those relative paths. DuckDB resolves a relative
path through its ``file_search_path``; every povwatch connection sets it to the lake beside the
warehouse file, then to the lakes the warehouse has listed files from (``audit.lake_homes``).
So a warehouse moved with its ``.lake`` folder reads its files where they now are, and a copy of
the ``.duckdb`` file alone (a backup, a test's "before" state) goes on reading the lake it was
copied from while writing its new files into its own. Another DuckDB client (a BI tool) sets
the same search path itself: ``SET file_search_path = '<folder>/povwatch.lake'``.

Rows listed before lake paths were relative hold absolute paths, which DuckDB reads as they are.
"""
from __future__ import annotations

from pathlib import Path

import duckdb

LAKE_SUFFIX = ".lake"
LAYERS = ("raw", "pending")


def lake_root(warehouse: Path | str) -> Path:
    """``<name>.duckdb`` → ``<name>.lake/`` beside it."""
    warehouse = Path(warehouse)
    return warehouse.with_name(warehouse.stem + LAKE_SUFFIX)


def lake_roots(con: duckdb.DuckDBPyConnection, warehouse: Path | str) -> list[Path]:
    """The lake beside the warehouse, then every lake its files were listed from that still
    exists elsewhere (the original of a copied .duckdb file)."""
    own = lake_root(Path(warehouse).resolve())
    try:
        homes = [Path(r[0]) for r in con.execute("SELECT path FROM audit.lake_homes ORDER BY path").fetchall()]
    except duckdb.CatalogException:   # a new warehouse, or one from before lake_homes
        homes = []
    others = [h for h in homes if h != own and h.is_dir()]
    if others and _holds_every_listed_file(con, own):
        # A copy of the whole folder (.duckdb and .lake) while the original stays: DuckDB reads
        # a relative path in *every* search-path folder that has it, so searching the original's
        # lake too would give every raw and pending row twice.
        return [own]
    return [own] + others


def _holds_every_listed_file(con: duckdb.DuckDBPyConnection, lake: Path) -> bool:
    """Whether every relative path audit.lake_files lists is a file in ``lake`` (a loop over the
    listed files, a few per department and period; asked only of a warehouse with another home)."""
    if not lake.is_dir():
        return False
    try:
        listed = [r[0] for r in con.execute(
            "SELECT DISTINCT path FROM audit.lake_files WHERE NOT starts_with(path, '/')").fetchall()]
    except duckdb.CatalogException:
        return False
    return all((lake / path).is_file() for path in listed)


def use_lake(con: duckdb.DuckDBPyConnection, warehouse: Path | str) -> None:
    """Let this connection (and the others of the process on the same file) resolve the lake's
    relative paths."""
    roots = ",".join(p.as_posix() for p in lake_roots(con, warehouse))
    con.execute(f"SET GLOBAL file_search_path = '{_quoted(roots)}'")


def allowed_lake_directories(con: duckdb.DuckDBPyConnection, warehouse: Path | str) -> list[str]:
    """What a connection with external access off must still be allowed to read: the lakes, and
    the relative layer paths the views name (DuckDB checks a path before and after resolving)."""
    return [p.as_posix() + "/" for p in lake_roots(con, warehouse)] + [f"{layer}/" for layer in LAYERS]


def listed_path(con: duckdb.DuckDBPyConnection, path: Path | str) -> str:
    """How a lake file is listed in audit.lake_files: relative to the connection's own lake (its
    home recorded once), or absolute when it lies outside it."""
    warehouse = con.execute("SELECT path FROM duckdb_databases() "
                            "WHERE database_name = current_database()").fetchone()[0]
    lake = lake_root(Path(warehouse).resolve())
    resolved = Path(path).resolve()
    try:
        relative = resolved.relative_to(lake)
    except ValueError:
        return resolved.as_posix()
    con.execute("INSERT INTO audit.lake_homes SELECT ? WHERE ? NOT IN (SELECT path FROM audit.lake_homes)",
                [lake.as_posix(), lake.as_posix()])
    return relative.as_posix()


_MIGRATED: set[str] = set()


def relative_lake_paths(con: duckdb.DuckDBPyConnection, warehouse: Path | str) -> int:
    """A warehouse from before lake paths were relative: list its files relative to their lake,
    record that lake as a home, and redefine the raw/pending views that named them absolutely.
    Checked once per process and file (the first read-write open); returns the files relisted.
    A view whose files cannot be found now is left as it was."""
    key = str(Path(warehouse).resolve())
    if key in _MIGRATED:
        return 0
    _MIGRATED.add(key)
    try:
        absolute = [p for (p,) in con.execute(
            "SELECT DISTINCT path FROM audit.lake_files WHERE starts_with(path, '/') "
            "AND contains(path, ?)", [LAKE_SUFFIX + "/"]).fetchall()]
    except duckdb.CatalogException:
        return 0
    roots = sorted({p[: p.index(LAKE_SUFFIX + "/") + len(LAKE_SUFFIX)] for p in absolute})
    if not roots:
        return 0
    con.execute("BEGIN TRANSACTION")
    try:
        for root in roots:
            con.execute("INSERT INTO audit.lake_homes SELECT ? WHERE ? NOT IN (SELECT path FROM audit.lake_homes)",
                        [root, root])
            con.execute("UPDATE audit.lake_files SET path = substr(path, ?) WHERE starts_with(path, ?)",
                        [len(root) + 2, root + "/"])
        use_lake(con, warehouse)
        for sql in [r[0] for r in con.execute("SELECT sql FROM duckdb_views() WHERE NOT internal "
                                              "AND schema_name IN ('raw', 'pending')").fetchall()]:
            relative = sql
            for root in roots:
                relative = relative.replace(f"'{_quoted(root)}/", "'")
            if relative != sql:
                con.execute(relative.replace("CREATE VIEW", "CREATE OR REPLACE VIEW", 1))
        con.execute("COMMIT")
    except duckdb.Error:
        con.execute("ROLLBACK")
        use_lake(con, warehouse)
        return 0
    return len(absolute)


def _quoted(text: str) -> str:
    return text.replace("'", "''")
