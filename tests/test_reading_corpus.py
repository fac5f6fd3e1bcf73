"""Reading without guessing: the #13 reading classes of tests/support/badcorpus.py (reading_cases).

Each case is read and conformed as the loader does (prepare_part: every file of the delivery,
no warehouse) and held to what a clerk relies on: every row read is loaded or quarantined
(per file, and the quarantine rows agree), exactly the listed rows are quarantined under a
reason naming the column, values that can mean one thing are loaded as that thing, a file that
cannot be read is refused with a message naming it, and sheets not read are named. A few cases
then go through staging over an accepted extract: the last good data stays when one is refused.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import polars as pl
import pytest

from tests.support import badcorpus as bc
from tests.test_bad_extracts import _fresh_warehouse

CASES = bc.reading_cases()


def _prepare(case: bc.ReadCase, tmp_path: Path):
    from povwatch.tasks.ingest import load

    inbox = tmp_path / "inbox"
    case.build(inbox)
    files = load.extract_files(inbox, bc.PERIOD, case.dept)
    return load.prepare_part(inbox, bc.PERIOD, case.dept, files, tmp_path / "lake", "all", "t",
                             in_memory=True)


def _short(file: str) -> str:
    return file.rsplit("/", 1)[-1]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_reading_case(case: bc.ReadCase, tmp_path: Path) -> None:
    from povwatch.tasks.ingest.contracts import load_contract

    part = _prepare(case, tmp_path)
    messages = "；".join([*part.errors, *(f.message or "" for f in part.files)])
    if case.refused:
        assert part.errors, f"{case.name}: not refused"
        for fragment in case.refused:
            assert fragment in messages, f"refusal lacks {fragment!r}: {messages}"
        assert all(f.rows_loaded == 0 for f in part.files)
        return
    assert not part.errors, messages
    quarantine = (part.frames or {}).get("quarantine")
    rows = [] if quarantine is None else quarantine.select("file", "row_number", "reasons").rows()
    for f in part.files:   # every row read is loaded or quarantined, and quarantine agrees
        assert f.rows_read == f.rows_loaded + f.rows_quarantined, f
        assert sum(1 for file, _, _ in rows if file == f.file) == f.rows_quarantined, f
    got = {(_short(file), n) for file, n, _ in rows}
    assert got == {(q.file, q.row) for q in case.quarantined}, f"quarantined {sorted(got)}"
    for file, n, reasons_ in rows:
        q = next(q for q in case.quarantined if (q.file, q.row) == (_short(file), n))
        text = " ".join(reasons_)
        assert (q.label or "") in text and q.reason in text, f"row {n}: {text}"
    if case.loaded is not None:
        assert sum(f.rows_loaded for f in part.files) == case.loaded
    for fragment in case.notes:
        assert fragment in messages, f"notes lack {fragment!r}: {messages}"
    if case.staged:
        names = {c.header: c.name for c in load_contract(case.dept).columns}
        staged = pl.read_parquet(part.pending)
        for (label, file, row), want in case.staged.items():
            cell = staged.filter(pl.col("source_file").str.ends_with("/" + file)
                                 & (pl.col("source_row") == row))[names[label]]
            assert cell.to_list() == [want], (label, file, row, cell.to_list())


def test_reading_corpus_covers_the_classes() -> None:
    prefixes = ("date_", "month_", "money_", "xlsx_", "parquet_", "sheet_", "cr_only", "blank_", "header_")
    for prefix in prefixes:
        assert sum(c.name.startswith(prefix) for c in CASES) >= 2, prefix
    assert len(CASES) + len(bc.cases()) >= 100


def test_last_good_data_stays_through_staging(tmp_path: Path) -> None:
    """An accepted extract, then three resubmissions of the period: data only in a hidden sheet
    (refused: the accepted rows stay), a CR-only CSV (accepted: its rows replace them), a
    workbook of two township sheets (accepted, every sheet's rows, unchanged when delivered
    again)."""
    from povwatch.tasks.ingest import load

    by_name = {c.name: c for c in CASES}
    warehouse = _fresh_warehouse(tmp_path / "wh" / "povwatch.duckdb")
    inbox = tmp_path / "inbox"
    folder = bc.dept_dir(inbox)

    def deliver(run: str, case: str | None) -> str:
        shutil.rmtree(folder, ignore_errors=True)
        if case is None:
            bc.write_csv(bc.dept_dir(inbox) / "名单.csv", bc.CAIZHENG_HEADER, bc.caizheng_rows(4, offset=200))
        else:
            by_name[case].build(inbox)
        result = load.stage_extract(warehouse, inbox, bc.PERIOD, bc.BAD_DEPT, run)
        if result.status == "staged":
            load.promote_extract(warehouse, bc.PERIOD, bc.BAD_DEPT, run)
        return result.status

    def staged() -> set[str]:
        con = duckdb.connect(str(warehouse), read_only=True)
        try:
            return {r[0] for r in con.execute(f"SELECT id_number FROM staging.{bc.BAD_DEPT}").fetchall()}
        finally:
            con.close()

    assert deliver("r1", None) == "staged"
    first = {r[0] for r in bc.caizheng_rows(4, offset=200)}
    assert staged() == first
    assert deliver("r2", "sheet_only_hidden_data") == "rejected"
    assert staged() == first, "a refused resubmission replaced the last good data"
    assert deliver("r3", "cr_only_gbk") == "staged"
    assert len(staged()) == 3 and not staged() & first
    assert deliver("r4", "sheet_one_per_township") == "staged"
    assert len(staged()) == 5
    assert load.stage_extract(warehouse, inbox, bc.PERIOD, bc.BAD_DEPT, "r5").status == "unchanged"
