"""Bad extracts never crash the pipeline, never lose a row and never spill into other departments.

Every case of tests/support/badcorpus.py is delivered with a good extract of another department beside it.
For each: no exception escapes ``stage_extract``; the extract is rejected with a message naming
the file (and the row and column where there is one), or staged with exactly the broken rows
quarantined under reasons that name the column; the neighbour is accepted whole; and every row
read is accounted for: rows_read = rows_loaded + rows_quarantined per file, and quarantine.rows
holds exactly rows_quarantined rows for the file.
"""
from __future__ import annotations

import atexit
import contextlib
import hashlib
import shutil
from pathlib import Path

import duckdb
import pytest

from povwatch.tasks.core.lake import use_lake
from tests.support import badcorpus as bc
from tests.support.badcorpus import BAD_DEPT, GOOD_DEPT, PERIOD

CASES = bc.cases()



def _read_only(warehouse: Path) -> duckdb.DuckDBPyConnection:
    """A plain read-only connection that reads the lake's relative paths, as a BI client would
    after setting file_search_path (docs/operations.md)."""
    con = duckdb.connect(str(warehouse), read_only=True)
    use_lake(con, warehouse)
    return con

def _ingest():
    return pytest.importorskip("povwatch.tasks.ingest.load")


_TEMPLATE: list[Path] = []


def _fresh_warehouse(path: Path) -> Path:
    """An empty warehouse with every table: made once, then copied (schema creation is slow)."""
    from povwatch.tasks.core.db import open_warehouse

    if not _TEMPLATE:
        import tempfile

        folder = tempfile.mkdtemp(prefix="povwatch-bad-")
        atexit.register(shutil.rmtree, folder, True)
        template = Path(folder) / "template.duckdb"
        open_warehouse(template).close()
        _TEMPLATE.append(template)
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(_TEMPLATE[0], path)
    path.chmod(0o600)
    return path


def _file_matches(recorded: str | None, name: str) -> bool:
    return recorded is not None and Path(str(recorded)).name == name


def _all_messages(result) -> str:
    parts = [result.message or ""]
    parts += [f.message or "" for f in result.files]
    return "\n".join(parts)


def _accounting(con, result, dept: str, run_id: str) -> None:
    """rows_read = rows_loaded + rows_quarantined, and quarantine.rows agrees, per file."""
    for f in result.files:
        assert f.rows_read == f.rows_loaded + f.rows_quarantined, (
            f"{f.file}: read {f.rows_read} != loaded {f.rows_loaded} + quarantined "
            f"{f.rows_quarantined}")
        held = con.execute(
            "SELECT count(*) FROM quarantine.rows WHERE run_id = ? AND dept = ? AND file = ?",
            [run_id, dept, str(f.file)]).fetchone()[0]
        assert held == f.rows_quarantined, (
            f"{f.file}: quarantine.rows holds {held}, the file says {f.rows_quarantined}")
    for file, read, loaded, quarantined in con.execute(
            "SELECT file, rows_read, rows_loaded, rows_quarantined FROM audit.extracts "
            "WHERE run_id = ? AND dept = ?", [run_id, dept]).fetchall():
        if read is None:
            continue
        assert read == (loaded or 0) + (quarantined or 0), f"audit.extracts {file}"
        held = con.execute(
            "SELECT count(*) FROM quarantine.rows WHERE run_id = ? AND dept = ? AND file = ?",
            [run_id, dept, file]).fetchone()[0]
        assert held == (quarantined or 0), f"audit.extracts {file}: quarantine holds {held}"


def _quarantined(con, run_id: str, dept: str) -> list[tuple[str, int, list[str]]]:
    return con.execute(
        "SELECT file, row_number, reasons FROM quarantine.rows WHERE run_id = ? AND dept = ? "
        "ORDER BY file, row_number", [run_id, dept]).fetchall()


def _check_quarantine(case: bc.Case, rows) -> None:
    """Exactly the expected rows quarantined, with a reason naming the column."""
    got = {(Path(f).name, n) for f, n, _ in rows}
    want = {(q.file, q.row) for q in case.quarantined}
    assert got == want, f"quarantined rows: got {sorted(got)}, want {sorted(want)}"
    by_row = {(Path(f).name, n): " ".join(r or []) for f, n, r in rows}
    for q in case.quarantined:
        text = by_row[(q.file, q.row)]
        assert text.strip(), f"row {q.row} of {q.file} quarantined without a reason"
        if q.label:
            assert q.label in text, f"row {q.row}: reason {text!r} does not name {q.label}"
        assert q.reason in text, f"row {q.row}: reason {text!r} lacks {q.reason!r}"


def _growing_sha_consistent(inbox: Path, result) -> None:
    """A file read while it grew: the sha256 recorded must be of exactly the bytes loaded.

    Otherwise a later run sees "unchanged" for a file whose tail was never loaded: rows lost.
    """
    if result.status != "staged":
        return
    f = next(f for f in result.files if _file_matches(f.file, bc.GROWING_FILE))
    data = (bc.dept_dir(inbox) / bc.GROWING_FILE).read_bytes()
    lines = data.split(b"\n")
    prefix = b"\n".join(lines[: 1 + f.rows_read]) + b"\n"
    assert f.sha256 == hashlib.sha256(prefix).hexdigest(), (
        f"sha256 recorded is not that of the {f.rows_read} rows read: a rerun would call the "
        "grown file unchanged or load a different snapshot")


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_extract(case: bc.Case, tmp_path: Path) -> None:
    ingest = _ingest()
    inbox = tmp_path / "inbox"
    case.build(inbox)
    neighbour_rows = bc.good_neighbour(inbox)
    warehouse = _fresh_warehouse(tmp_path / "wh" / "povwatch.duckdb")
    outside_before = sorted(p.name for p in tmp_path.iterdir())
    run_id = f"bad-{case.name}"

    during = case.during(inbox) if case.during else contextlib.nullcontext()
    with during:
        result = ingest.stage_extract(warehouse, inbox, PERIOD, case.dept, run_id)
    neighbour = ingest.stage_extract(warehouse, inbox, PERIOD, GOOD_DEPT, run_id)

    allowed = {"rejected": {"rejected"}, "staged": {"staged"},
               "either": {"rejected", "staged"}}[case.outcome]
    assert result.status in allowed, f"{case.name}: status {result.status}: {_all_messages(result)}"

    # the department beside it is accepted whole
    assert neighbour.status == "staged", _all_messages(neighbour)
    assert sum(f.rows_loaded for f in neighbour.files) == neighbour_rows
    assert sum(f.rows_quarantined for f in neighbour.files) == 0

    con = _read_only(warehouse)
    try:
        _accounting(con, result, case.dept, run_id)
        _accounting(con, neighbour, GOOD_DEPT, run_id)
        quarantined = _quarantined(con, run_id, case.dept)
        if result.status == "rejected":
            text = _all_messages(result)
            for fragment in case.message:
                assert fragment in text, f"rejection message lacks {fragment!r}: {text}"
            if case.quarantined and not quarantined:
                # rejected as a whole: the message must still say where
                assert str(case.quarantined[0].row) in text, (
                    f"rejection does not name row {case.quarantined[0].row}: {text}")
            staged = con.execute(
                f"SELECT count(*) FROM staging.{case.dept} WHERE period = ?", [PERIOD]).fetchone()[0]
            assert staged == 0, "a rejected extract reached staging"
        else:
            if case.quarantined or case.outcome == "staged":
                _check_quarantine(case, quarantined)
            if case.loaded is not None:
                assert sum(f.rows_loaded for f in result.files) == case.loaded
        for f, n, reasons_ in quarantined:
            assert f and n and n >= 1 and reasons_, f"quarantine row without file/row/reason: {f}"
        if case.check:
            case.check(result, con)
        if case.during is not None:
            _growing_sha_consistent(inbox, result)
    finally:
        con.close()
    # nothing was written beside the inbox (a traversal in a file name goes nowhere)
    assert sorted(p.name for p in tmp_path.iterdir()) == outside_before


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 40


def test_rejected_resubmission_keeps_previous_extract(tmp_path: Path) -> None:
    """A good extract staged and promoted, then a broken resubmission: the previous data stays."""
    ingest = _ingest()
    inbox = tmp_path / "inbox"
    d = bc.dept_dir(inbox)
    bc.write_csv(d / "名单.csv", bc.CAIZHENG_HEADER, bc.caizheng_rows(4))
    warehouse = _fresh_warehouse(tmp_path / "wh.duckdb")
    first = ingest.stage_extract(warehouse, inbox, PERIOD, BAD_DEPT, "r1")
    assert first.status == "staged"
    ingest.promote_extract(warehouse, PERIOD, BAD_DEPT, "r1")

    shutil.rmtree(d)
    d = bc.dept_dir(inbox)
    (d / "名单.csv").write_bytes(bc._garbage())
    second = ingest.stage_extract(warehouse, inbox, PERIOD, BAD_DEPT, "r2")
    assert second.status == "rejected"
    con = _read_only(warehouse)
    try:
        ids = {r[0] for r in con.execute(
            f"SELECT id_number FROM staging.{BAD_DEPT} WHERE period = ?", [PERIOD]).fetchall()}
    finally:
        con.close()
    assert ids == {r[0] for r in bc.caizheng_rows(4)}


@pytest.mark.slow
def test_bad_extracts_through_a_whole_run(tmp_path: Path) -> None:
    """A handful of corpus cases in one period beside good departments, through run_inbox."""
    from tests.support import robust as rs

    _ingest()
    inbox = rs.subset_inbox(tmp_path / "inbox", (PERIOD,))      # fupin, shouru, weijian: good
    by_name = {c.name: c for c in CASES}
    by_name["formulas_and_error_values"].build(inbox)           # caizheng: 3 rows quarantined
    by_name["negative_money"].build(inbox)                      # minzheng: 1 row quarantined
    (bc.dept_dir(inbox, "gongan") / "注销名单.csv").write_bytes(bc._garbage())   # unreadable
    outside = bc.write_csv(tmp_path / "elsewhere" / "学籍.csv", ["学生姓名"], [["张三"]])
    (bc.dept_dir(inbox, "jiaoyu") / "学籍.csv").symlink_to(outside)              # a link out
    warehouse = tmp_path / "wh" / "povwatch.duckdb"

    code = rs.run_in_process(inbox, warehouse, tmp_path)
    assert code == 3, f"run_inbox exited {code}"

    con = _read_only(warehouse)
    try:
        status = dict(con.execute(
            "SELECT dept, string_agg(DISTINCT status, ',') FROM audit.extracts GROUP BY dept").fetchall())
        messages = dict(con.execute(
            "SELECT dept, string_agg(message, ' ') FROM audit.extracts GROUP BY dept").fetchall())
        unaccounted = con.execute(
            "SELECT dept, file FROM audit.extracts "
            "WHERE rows_read <> rows_loaded + rows_quarantined").fetchall()
        per_file = con.execute(
            "SELECT a.dept, a.file, a.rows_quarantined, count(q.row_number) FROM audit.extracts a "
            "LEFT JOIN quarantine.rows q ON q.period = a.period AND q.dept = a.dept AND q.file = a.file "
            "GROUP BY ALL HAVING a.rows_quarantined <> count(q.row_number)").fetchall()
        quarantined = set(con.execute(
            "SELECT dept, row_number FROM quarantine.rows WHERE stage = 'conform'").fetchall())
        staged_bad = con.execute(
            "SELECT (SELECT count(*) FROM staging.gongan) + (SELECT count(*) FROM staging.jiaoyu)"
        ).fetchone()[0]
        households = con.execute(
            "SELECT count(*) FROM mart.household_status WHERE period = ?", [PERIOD]).fetchone()[0]
    finally:
        con.close()

    for good in rs.SMALL_DEPTS:
        assert status.get(good) == "accepted", (good, status.get(good), messages.get(good))
    assert status.get("gongan") == "rejected" and "注销名单.csv" in messages["gongan"]
    assert status.get("jiaoyu") == "rejected" and "学籍.csv" in messages["jiaoyu"]
    assert staged_bad == 0, "a rejected department reached staging"
    assert {("caizheng", 3), ("caizheng", 4), ("caizheng", 5), ("minzheng", 4)} <= quarantined
    assert not unaccounted, unaccounted
    assert not per_file, f"quarantine.rows disagrees with rows_quarantined: {per_file}"
    assert households > 0, "the good departments' marts were not built"
