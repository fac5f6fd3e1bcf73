"""A movable warehouse: the lake's files are listed relative to the lake, resolved at open."""
from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from povwatch.flows.cli import main
from povwatch.tasks.core.db import connect, open_warehouse
from povwatch.tasks.core.lake import lake_root
from povwatch.tasks.ingest.load import promote_extract, stage_extract
from tests.test_ingest import row, write_csv

JUNE, JULY = "2020-06", "2020-07"


def deliver(inbox: Path, period: str, rows: list[list[str]]) -> None:
    write_csv(inbox / period / "minzheng" / "城关镇.csv", rows)


def load(warehouse: Path, inbox: Path, period: str, run_id: str) -> None:
    assert stage_extract(warehouse, inbox, period, "minzheng", run_id).status == "staged"
    promote_extract(warehouse, period, "minzheng", run_id)


def loaded_with_june(warehouse: Path, inbox: Path) -> None:
    """A new warehouse with June's three rows of minzheng, delivered into ``inbox``."""
    deliver(inbox, JUNE, [row(0), row(1), row(2)])
    open_warehouse(warehouse).close()
    load(warehouse, inbox, JUNE, "r1")


def sql(warehouse: Path, query: str) -> str:
    result = CliRunner().invoke(main, ["sql", query, "--format", "csv", "--warehouse", str(warehouse)])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture()
def moved(tmp_path: Path) -> Path:
    """A warehouse loaded with June, then its folder (.duckdb and .lake) moved elsewhere."""
    old = tmp_path / "old" / "povwatch.duckdb"
    loaded_with_june(old, tmp_path / "inbox")
    new_folder = tmp_path / "elsewhere" / "county"
    new_folder.parent.mkdir()
    shutil.move(old.parent, new_folder)
    assert not old.parent.exists()
    return new_folder / "povwatch.duckdb"


def test_a_moved_warehouse_reads_its_lake_and_takes_the_next_month(moved: Path, tmp_path: Path):
    assert sql(moved, "SELECT count(*) AS n FROM raw.minzheng").splitlines() == ["n", "3"]
    inbox = tmp_path / "inbox"
    deliver(inbox, JULY, [row(0), row(1), row(2), row(3)])
    load(moved, inbox, JULY, "r2")                                   # the next run writes there
    counts = sql(moved, "SELECT period, count(*) AS n FROM raw.minzheng GROUP BY 1 ORDER BY 1")
    assert counts.splitlines() == ["period,n", f"{JUNE},3", f"{JULY},4"]
    con = connect(moved, read_only=True)
    try:
        listed = [r[0] for r in con.execute("SELECT path FROM audit.lake_files").fetchall()]
    finally:
        con.close()
    assert listed and all(not Path(p).is_absolute() for p in listed)


def test_another_duckdb_client_reads_the_lake_with_the_documented_search_path(moved: Path):
    con = duckdb.connect(str(moved), read_only=True)      # a BI tool: not through povwatch
    try:
        with pytest.raises(duckdb.Error):
            con.execute("SELECT count(*) FROM raw.minzheng").fetchall()
        con.execute(f"SET file_search_path = '{lake_root(moved).as_posix()}'")
        assert con.execute("SELECT count(*) FROM raw.minzheng").fetchone() == (3,)
    finally:
        con.close()


def test_a_compat_copy_is_in_a_storage_format_duckdb_1_reads(moved: Path, tmp_path: Path):
    from povwatch.tasks.office.compat_copy import storage_version_number

    assert storage_version_number(moved) > 68                # DuckDB 1.x refuses the warehouse
    out = tmp_path / "bi" / "povwatch-duckdb1.duckdb"
    result = CliRunner().invoke(main, ["compat-copy", str(out), "--warehouse", str(moved)])
    assert result.exit_code == 0, result.output
    assert 64 <= storage_version_number(out) <= 68            # what DuckDB 1.0 … 1.5 read
    assert out.stat().st_mode & 0o077 == 0                    # personal data: owner-only
    con = duckdb.connect(str(out), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM staging.minzheng").fetchone() == (3,)
        assert con.execute("SELECT count(*) FROM audit.extracts").fetchone()[0] >= 1
        con.execute(f"SET file_search_path = '{lake_root(moved).as_posix()}'")
        assert con.execute("SELECT count(*) FROM raw.minzheng").fetchone() == (3,)
    finally:
        con.close()


def test_a_run_blocked_by_a_reader_names_it_and_the_setting_that_waits(tmp_path, monkeypatch):
    """A BI tool holding the file open: the run waits POVWATCH_DB_LOCK_WAIT, then says who."""
    import subprocess
    import sys

    from povwatch.flows.run_command import run_inbox
    from tests.support.fakes import Fakes, make_inbox

    inbox = make_inbox(tmp_path)
    warehouse = tmp_path / "wh.duckdb"
    open_warehouse(warehouse).close()
    reader = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1], read_only=True); "
         "print('open', flush=True); time.sleep(60)", str(warehouse)], stdout=subprocess.PIPE, text=True)
    try:
        assert reader.stdout.readline().strip() == "open"
        monkeypatch.setenv("POVWATCH_DB_LOCK_WAIT", "0.5")
        said: list[str] = []
        code = run_inbox(inbox, warehouse=warehouse, mode="local", echo=said.append,
                         pipeline=Fakes().pipeline)
    finally:
        reader.kill()
        reader.wait()
    text = "\n".join(said)
    assert code == 1
    assert f"PID {reader.pid}" in text and "python" in text              # who holds the file
    assert "POVWATCH_DB_LOCK_WAIT" in text and "Could not set lock" not in text


def test_a_warehouse_from_before_relative_paths_is_converted_by_its_next_run(tmp_path: Path):
    """Files listed with absolute paths (the old format), then the folder moved: the next
    read-write open lists them relative to the lake and redefines the views."""
    from povwatch.tasks.ingest.contracts import load_contract
    from povwatch.tasks.ingest.load import define_layer_view

    inbox = tmp_path / "inbox"
    old = tmp_path / "old" / "povwatch.duckdb"
    loaded_with_june(old, inbox)
    con = connect(old)
    try:   # back to how a warehouse of the previous release listed its files
        lake = lake_root(old.resolve()).as_posix()
        con.execute("UPDATE audit.lake_files SET path = ? || '/' || path", [lake])
        con.execute("DELETE FROM audit.lake_homes")
        define_layer_view(con, "raw", load_contract("minzheng"), lake_root(old))
        assert lake in con.execute("SELECT sql FROM duckdb_views() WHERE view_name = 'minzheng' "
                                   "AND schema_name = 'raw'").fetchone()[0]
    finally:
        con.close()
    moved = tmp_path / "elsewhere" / "povwatch.duckdb"
    moved.parent.mkdir()
    shutil.move(old, moved)
    shutil.move(lake_root(old), lake_root(moved))
    open_warehouse(moved).close()                                      # the next run's first open
    assert sql(moved, "SELECT count(*) AS n FROM raw.minzheng").splitlines() == ["n", "3"]
    deliver(inbox, JULY, [row(3)])
    load(moved, inbox, JULY, "r2")
    assert sql(moved, "SELECT count(*) AS n FROM raw.minzheng").splitlines() == ["n", "4"]


def test_a_copy_of_the_whole_folder_reads_each_row_once_while_the_original_stays(tmp_path: Path):
    """cp -r of the warehouse folder (a backup, a test copy): the copy's relative paths exist in
    its own lake and in the original's, which it lists as a home; every row is still read once."""
    inbox = tmp_path / "inbox"
    original = tmp_path / "office" / "povwatch.duckdb"
    loaded_with_june(original, inbox)
    copy = tmp_path / "backup" / "povwatch.duckdb"
    shutil.copytree(original.parent, copy.parent)
    assert sql(copy, "SELECT count(*) AS n FROM raw.minzheng").splitlines() == ["n", "3"]
    assert sql(copy, "SELECT count(*) AS n FROM staging.minzheng").splitlines() == ["n", "3"]
    deliver(inbox, JULY, [row(0), row(1), row(2), row(3)])
    load(copy, inbox, JULY, "r2")
    counts = sql(copy, "SELECT period, count(*) AS n FROM raw.minzheng GROUP BY 1 ORDER BY 1")
    assert counts.splitlines() == ["period,n", f"{JUNE},3", f"{JULY},4"]
    assert sql(original, "SELECT count(*) AS n FROM raw.minzheng").splitlines() == ["n", "3"]
