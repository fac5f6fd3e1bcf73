"""Loading extracts into the warehouse: stage → promote / reject, accounting, reruns,
resubmissions, broken files, neighbours untouched, receipts, and the generator's planted truth."""
from __future__ import annotations

import csv
import io
import threading
from pathlib import Path

import polars as pl
import pytest
import xlsxwriter

from povwatch.tasks.ingest import reasons
from povwatch.tasks.core.db import connect, open_warehouse
from povwatch.tasks.ingest.load import (discover_periods, drop_pending_rows, extract_files, lake_root, load_parts,
                          prepare_part, promote_extract, reject_extract, stage_extract)
from povwatch.tasks.ingest.receipts import write_receipt

PERIOD = "2020-06"
HEADER = ["姓名", "身份证号", "救助类型", "月保障金额", "起始年月", "终止年月", "村代码"]
VILLAGE = "620523100201"
IDS = ["11010519491231002X", "110105194912310038", "110105194912310046", "110105194912310054",
       "110105194912310062", "110105194912310070", "110105194912310089"]
L = reasons.cell_reason


def row(i: int, **kw) -> list[str]:
    base = {"姓名": f"居民{i}", "身份证号": IDS[i], "救助类型": "低保", "月保障金额": "450",
            "起始年月": "2019-01", "终止年月": "", "村代码": VILLAGE}
    base.update(kw)
    return [base[h] for h in HEADER]


def write_csv(path: Path, rows: list[list[str]], encoding="gb18030", header=HEADER) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([header, *rows])
    path.write_bytes(buf.getvalue().encode(encoding))


def write_xlsx(path: Path, rows: list[list[str]], title: str | None = None, extra: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    wb = xlsxwriter.Workbook(str(path))
    ws = wb.add_worksheet()
    r0 = 0
    if title:
        ws.merge_range(0, 0, 0, len(HEADER) - 1, title)
        r0 = 1
    ws.write_row(r0, 0, HEADER + ([extra] if extra else []))
    for i, r in enumerate(rows, start=r0 + 1):
        ws.write_row(i, 0, r + (["备注内容"] if extra and i == r0 + 1 else []))
    wb.close()


def q(warehouse: Path, sql: str, params=None) -> list[tuple]:
    con = connect(warehouse)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def accounting_holds(result) -> None:
    for f in result.files:
        assert f.rows_read == f.rows_loaded + f.rows_quarantined, f


@pytest.fixture()
def inbox(tmp_path: Path) -> Path:
    """minzheng of 2020-06 from two townships: a GB18030 CSV and an xlsx with a title row."""
    d = tmp_path / "inbox" / PERIOD / "minzheng"
    write_csv(d / "城关镇.csv", [
        row(0),
        row(1, 身份证号=IDS[1][:-1] + "1"),          # line 3: check digit wrong
        row(2, 月保障金额="1,200.00元"),              # line 4: repaired
        row(0),                                        # line 5: duplicate of line 2
    ])
    write_xlsx(d / "新兴镇.xlsx", [
        row(3),
        row(4, 救助类型="救济"),                       # Excel row 4: code not in list
        row(0),                                        # Excel row 5: duplicate across files
    ], title="2020年6月低保名单", extra="备注")
    (tmp_path / "inbox" / "notes").mkdir()
    return tmp_path / "inbox"


@pytest.fixture()
def warehouse(tmp_path: Path) -> Path:
    path = tmp_path / "wh" / "povwatch.duckdb"
    open_warehouse(path).close()
    return path


def test_stage_reads_conforms_and_accounts_for_every_row(inbox: Path, warehouse: Path) -> None:
    assert discover_periods(inbox) == [PERIOD]
    result = stage_extract(warehouse, inbox, PERIOD, "minzheng", "r1")
    assert result.status == "staged"
    accounting_holds(result)
    by_file = {Path(f.file).name: f for f in result.files}
    assert (by_file["城关镇.csv"].rows_read, by_file["城关镇.csv"].rows_loaded) == (4, 2)
    assert (by_file["新兴镇.xlsx"].rows_read, by_file["新兴镇.xlsx"].rows_loaded) == (3, 1)
    assert by_file["新兴镇.xlsx"].extra_columns == ["备注"]

    quarantined = q(warehouse, "SELECT file, row_number, reasons, stage FROM quarantine.rows "
                               "ORDER BY file, row_number")
    assert [(Path(f).name, n, r, s) for f, n, r, s in quarantined] == [
        ("城关镇.csv", 3, [L("身份证号", reasons.ID_CHECK_DIGIT)], "conform"),
        ("城关镇.csv", 5, [reasons.DUPLICATE_ROW], "conform"),
        ("新兴镇.xlsx", 4, [L("救助类型", reasons.CODE_NOT_IN_LIST)], "conform"),
        ("新兴镇.xlsx", 5, [reasons.DUPLICATE_ROW], "conform"),
    ]
    pending = q(warehouse, "SELECT id_number, monthly_amount, source_row, repairs FROM pending.minzheng "
                           "ORDER BY source_file, source_row")
    assert [(p[0], float(p[1]), p[2]) for p in pending] == [
        (IDS[0], 450.0, 2), (IDS[2], 1200.0, 4), (IDS[3], 450.0, 3)]
    assert pending[1][3] == "monthly_amount:去除千分位或单位"
    assert q(warehouse, "SELECT count(*) FROM staging.minzheng") == [(0,)]   # not before promote
    raw = q(warehouse, "SELECT count(*), count(extra) FROM raw.minzheng")
    assert raw == [(7, 3)]
    row_data = q(warehouse, "SELECT row_data FROM quarantine.rows WHERE row_number = 4 "
                            "AND file LIKE '%xlsx'")[0][0]
    assert '"救助类型":"救济"' in row_data and '"备注":null' in row_data
    audit = q(warehouse, "SELECT status, rows_read, rows_loaded, rows_quarantined, extra_columns "
                         "FROM audit.extracts ORDER BY file")
    assert audit == [("staged", 4, 2, 2, None), ("staged", 3, 1, 2, '["备注"]')]


def test_promote_rerun_unchanged_and_resubmission(inbox: Path, warehouse: Path) -> None:
    stage_extract(warehouse, inbox, PERIOD, "minzheng", "r1")
    promoted = promote_extract(warehouse, PERIOD, "minzheng", "r1")
    assert promoted.status == "accepted"
    accounting_holds(promoted)
    assert q(warehouse, "SELECT count(*) FROM staging.minzheng WHERE period = ?", [PERIOD]) == [(3,)]
    assert q(warehouse, "SELECT count(*) FROM pending.minzheng") == [(0,)]

    # the same files again: nothing written but an audit row
    before = q(warehouse, "SELECT (SELECT count(*) FROM raw.minzheng), (SELECT count(*) FROM quarantine.rows)")
    again = stage_extract(warehouse, inbox, PERIOD, "minzheng", "r2")
    assert again.status == "unchanged"
    assert promote_extract(warehouse, PERIOD, "minzheng", "r2").status == "unchanged"
    assert q(warehouse, "SELECT (SELECT count(*) FROM raw.minzheng), (SELECT count(*) FROM quarantine.rows)") == before
    assert q(warehouse, "SELECT count(*) FROM staging.minzheng") == [(3,)]
    assert q(warehouse, "SELECT DISTINCT status FROM audit.extracts WHERE run_id = 'r2'") == [("unchanged",)]

    # a resubmission: one township's file only, changed — replaces the whole period
    d = inbox / PERIOD / "minzheng"
    (d / "新兴镇.xlsx").unlink()
    write_csv(d / "城关镇.csv", [row(5), row(6)], encoding="utf-8-sig")
    third = stage_extract(warehouse, inbox, PERIOD, "minzheng", "r3")
    assert third.status == "staged"
    assert q(warehouse, "SELECT count(*) FROM staging.minzheng") == [(3,)]   # old until promoted
    promote_extract(warehouse, PERIOD, "minzheng", "r3")
    assert q(warehouse, "SELECT id_number FROM staging.minzheng ORDER BY id_number") == [(IDS[5],), (IDS[6],)]
    assert q(warehouse, "SELECT count(*) FROM quarantine.rows") == [(0,)]
    assert q(warehouse, "SELECT count(*) FROM raw.minzheng") == [(2,)]


def test_broken_file_rejects_the_extract_and_keeps_the_last_good_one(inbox: Path, warehouse: Path) -> None:
    stage_extract(warehouse, inbox, PERIOD, "minzheng", "r1")
    promote_extract(warehouse, PERIOD, "minzheng", "r1")
    good = q(warehouse, "SELECT * FROM staging.minzheng ORDER BY source_file, source_row")
    write_csv(inbox / PERIOD / "weijian" / "签约.csv", [[IDS[0], "是", "2020-01-10", "无"]],
              header=["身份证号", "家庭医生签约", "签约日期", "病种类别"])

    d = inbox / PERIOD / "minzheng"
    (d / "大庄镇.csv").write_bytes("姓名,身份证号\n张三,1\n".encode())   # required columns missing
    results = {}

    def stage(dept: str) -> None:
        results[dept] = stage_extract(warehouse, inbox, PERIOD, dept, "r2")

    threads = [threading.Thread(target=stage, args=(dept,)) for dept in ("minzheng", "weijian")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rejected = results["minzheng"]
    assert rejected.status == "rejected"
    assert "大庄镇.csv" in rejected.message and "救助类型" in rejected.message
    accounting_holds(rejected)
    assert promote_extract(warehouse, PERIOD, "minzheng", "r2").status == "rejected"
    assert q(warehouse, "SELECT * FROM staging.minzheng ORDER BY source_file, source_row") == good
    assert q(warehouse, "SELECT count(*) FROM pending.minzheng") == [(0,)]
    # every readable row is quarantined with the refusal, so the department fixes all at once
    held = q(warehouse, "SELECT file, count(*) FROM quarantine.rows WHERE run_id = 'r2' "
                        "AND dept = 'minzheng' GROUP BY file ORDER BY file")
    assert [(Path(f).name, n) for f, n in held] == [("城关镇.csv", 4), ("新兴镇.xlsx", 3)]
    assert all(r[0][-1].startswith("整批退回：") for r in
               q(warehouse, "SELECT reasons FROM quarantine.rows WHERE run_id = 'r2'"))
    # the neighbour staged in parallel is untouched by it
    assert results["weijian"].status == "staged"
    assert promote_extract(warehouse, PERIOD, "weijian", "r2").status == "accepted"
    assert q(warehouse, "SELECT count(*) FROM staging.weijian") == [(1,)]


def test_reject_after_validation_and_promote_recount(inbox: Path, warehouse: Path) -> None:
    stage_extract(warehouse, inbox, PERIOD, "minzheng", "r1")
    promote_extract(warehouse, PERIOD, "minzheng", "r1")
    write_csv(inbox / PERIOD / "minzheng" / "城关镇.csv", [row(5), row(6)])

    # a validator moves one pending row to quarantine, then the extract is refused
    staged = stage_extract(warehouse, inbox, PERIOD, "minzheng", "r2")
    _validator_moves_one_row(warehouse)
    refused = reject_extract(warehouse, PERIOD, "minzheng", "r2", "月保障金额合计异常")
    assert refused.status == "rejected"
    accounting_holds(refused)
    assert refused.rows_read == staged.rows_read and refused.rows_loaded == 0
    assert q(warehouse, "SELECT count(*) FROM staging.minzheng") == [(3,)]     # last good data
    assert q(warehouse, "SELECT count(*) FROM pending.minzheng") == [(0,)]
    reasons_ = [r[0] for r in q(warehouse, "SELECT reasons FROM quarantine.rows WHERE run_id = 'r2' "
                                           "AND stage = 'validate'")]
    assert ["整批退回：月保障金额合计异常"] in reasons_
    data = q(warehouse, "SELECT row_data FROM quarantine.rows WHERE run_id = 'r2' "
                        "AND reasons[1] LIKE '整批退回%' LIMIT 1")[0][0]
    assert '"身份证号":"1101' in data

    # the same extract again, promoted after the validator moved a row: counts recomputed
    write_csv(inbox / PERIOD / "minzheng" / "城关镇.csv", [row(5), row(6), row(4)])
    stage_extract(warehouse, inbox, PERIOD, "minzheng", "r3")
    _validator_moves_one_row(warehouse)
    accepted = promote_extract(warehouse, PERIOD, "minzheng", "r3")
    assert accepted.status == "accepted"
    accounting_holds(accepted)
    assert accepted.rows_loaded == accepted.rows_read - accepted.rows_quarantined
    assert q(warehouse, "SELECT count(*) FROM staging.minzheng") == [(accepted.rows_loaded,)]


def _validator_moves_one_row(warehouse: Path) -> None:
    con = connect(warehouse)
    try:
        con.execute("""
            INSERT INTO quarantine.rows
            SELECT run_id, period, 'minzheng', source_file, source_row, ['月保障金额：与低保标准不符'],
                   'validate', '{}'
            FROM pending.minzheng ORDER BY source_row LIMIT 1""")
        con.execute("CREATE TEMP TABLE moved AS SELECT source_file, source_row FROM pending.minzheng "
                    "ORDER BY source_row LIMIT 1")
        assert drop_pending_rows(con, "minzheng", PERIOD, "moved") == 1
    finally:
        con.close()


def test_missing_extract(inbox: Path, warehouse: Path) -> None:
    result = stage_extract(warehouse, inbox, PERIOD, "gongan", "r1")
    assert result.status == "missing" and result.files == []


def test_receipt_lists_rows_masked(inbox: Path, warehouse: Path, tmp_path: Path) -> None:
    stage_extract(warehouse, inbox, PERIOD, "minzheng", "r1")
    promote_extract(warehouse, PERIOD, "minzheng", "r1")
    path = write_receipt(warehouse, PERIOD, "minzheng", tmp_path / "out")
    assert path is not None and path.suffix == ".xlsx"
    detail = pl.read_excel(path, sheet_name="问题明细")
    assert detail.columns == ["文件", "行号", "列", "原因", "原始内容"]
    assert detail.select("文件", "行号", "列", "原因").rows() == [
        ("城关镇.csv", 3, "身份证号", reasons.ID_CHECK_DIGIT),
        ("城关镇.csv", 5, None, reasons.DUPLICATE_ROW),
        ("新兴镇.xlsx", 4, "救助类型", reasons.CODE_NOT_IN_LIST),
        ("新兴镇.xlsx", 5, None, reasons.DUPLICATE_ROW),
    ]
    content = "\n".join(detail["原始内容"].to_list())
    assert "110105********0381" in content or "110105********0031" in content
    for full in IDS:
        assert full not in content
    assert "姓名：居民1" in content
    summary = pl.read_excel(path, sheet_name="汇总")
    assert summary["读取行数"].sum() == 7 and set(summary["状态"]) == {"已入库"}
    # everything in the receipt file, not only the cells we looked at, is masked
    import zipfile

    with zipfile.ZipFile(path) as z:
        blob = b"".join(z.read(n) for n in z.namelist())
    assert not any(full.encode() in blob for full in IDS)


def test_no_receipt_when_nothing_to_report(tmp_path: Path, warehouse: Path) -> None:
    inbox = tmp_path / "clean"
    write_csv(inbox / PERIOD / "minzheng" / "a.csv", [row(0), row(1)])
    stage_extract(warehouse, inbox, PERIOD, "minzheng", "r1")
    assert write_receipt(warehouse, PERIOD, "minzheng", tmp_path / "out") is None


def test_receipt_of_a_refused_file_names_it(inbox: Path, warehouse: Path, tmp_path: Path) -> None:
    (inbox / PERIOD / "minzheng" / "坏.csv").write_bytes(b"")
    assert stage_extract(warehouse, inbox, PERIOD, "minzheng", "r1").status == "rejected"
    path = write_receipt(warehouse, PERIOD, "minzheng", tmp_path / "out")
    detail = pl.read_excel(path, sheet_name="问题明细")
    assert any(f == "坏.csv" and "0字节" in r for f, r in detail.select("文件", "原因").rows())


# --- the Parquet lake: raw rows and prepared parts ---------------------------------------------

def _lake_files(warehouse: Path, layer: str) -> list[Path]:
    return sorted((lake_root(warehouse) / layer).rglob("*.parquet"))


def test_raw_rows_land_as_parquet_readable_by_the_owner_only(inbox: Path, warehouse: Path) -> None:
    stage_extract(warehouse, inbox, PERIOD, "minzheng", "r1")
    raw_files = _lake_files(warehouse, "raw")
    assert [f.relative_to(lake_root(warehouse)).as_posix() for f in raw_files] == [
        f"raw/dept=minzheng/period={PERIOD}/part=all/r1.parquet"]
    assert raw_files[0].stat().st_mode & 0o077 == 0          # identity numbers: owner only
    # pending is Parquet too until promoted; quarantine rows went straight into DuckDB
    assert [f.name for f in _lake_files(warehouse, "pending")] == ["r1.parquet"]
    assert _lake_files(warehouse, "quarantine") == []
    assert q(warehouse, "SELECT count(*) FROM raw.minzheng") == [(7,)]
    assert promote_extract(warehouse, PERIOD, "minzheng", "r1").status == "accepted"
    assert _lake_files(warehouse, "pending") == []                 # written once, into staging
    assert q(warehouse, "SELECT count(*) FROM pending.minzheng") == [(0,)]

    # a resubmission replaces the period's raw file; the old one is deleted after the commit
    write_csv(inbox / PERIOD / "minzheng" / "城关镇.csv", [row(5), row(6)])
    (inbox / PERIOD / "minzheng" / "新兴镇.xlsx").unlink()
    stage_extract(warehouse, inbox, PERIOD, "minzheng", "r2")
    assert [f.name for f in _lake_files(warehouse, "raw")] == ["r2.parquet"]
    assert q(warehouse, "SELECT source_row, id_number FROM raw.minzheng ORDER BY 1") == [
        (2, IDS[5]), (3, IDS[6])]


def test_a_copy_of_the_warehouse_file_still_reads_its_raw_rows(inbox: Path, warehouse: Path,
                                                               tmp_path: Path) -> None:
    import shutil

    stage_extract(warehouse, inbox, PERIOD, "minzheng", "r1")
    copy = tmp_path / "backup" / "povwatch.duckdb"
    copy.parent.mkdir()
    shutil.copy(warehouse, copy)
    assert q(copy, "SELECT count(*) FROM raw.minzheng") == [(7,)]
    # the copy loads its own new data into its own lake and leaves the original's files alone
    write_csv(inbox / PERIOD / "minzheng" / "城关镇.csv", [row(5)])
    stage_extract(copy, inbox, PERIOD, "minzheng", "r2")
    assert q(copy, "SELECT count(*) FROM raw.minzheng") == [(4,)]
    assert q(warehouse, "SELECT count(*) FROM raw.minzheng") == [(7,)]


def test_parts_prepared_apart_load_as_one_extract(inbox: Path, warehouse: Path, tmp_path: Path) -> None:
    """Two parts (as two counties on two Dask workers would be) loaded by the one writer equal one
    stage of the whole extract — including the row duplicated across the two parts' files, which
    conforming each part cannot see and the writer finds."""
    files = extract_files(inbox, PERIOD, "minzheng")
    lake = lake_root(warehouse)
    parts = [prepare_part(inbox, PERIOD, "minzheng", [f], lake, f"part{i}", "r1")
             for i, f in enumerate(files)]
    assert all(p.pending and Path(p.pending).exists() for p in parts)   # what a Dask worker leaves
    result = load_parts(warehouse, inbox, PERIOD, "minzheng", parts, "r1")
    assert result.status == "staged"
    accounting_holds(result)
    listed = q(warehouse, "SELECT path FROM audit.lake_files WHERE layer = 'pending'")
    assert sorted(r[0] for r in listed) == sorted(  # pending reads them in place (lake-relative)
        Path(p.pending).resolve().relative_to(lake.resolve()).as_posix() for p in parts)
    whole = tmp_path / "whole" / "povwatch.duckdb"
    expected = stage_extract(whole, inbox, PERIOD, "minzheng", "r1")

    def counts(r) -> list[tuple]:
        return sorted((Path(f.file).name, f.rows_read, f.rows_loaded, f.rows_quarantined) for f in r.files)

    assert counts(result) == counts(expected)
    held = "SELECT file, row_number, reasons FROM quarantine.rows ORDER BY file, row_number"
    assert q(warehouse, held) == q(whole, held)
    assert ("2020-06/minzheng/新兴镇.xlsx", 5, [reasons.DUPLICATE_ROW]) in q(warehouse, held)
    pending = "SELECT * EXCLUDE (run_id) FROM pending.minzheng ORDER BY source_file, source_row"
    assert q(warehouse, pending) == q(whole, pending)
    assert q(warehouse, "SELECT count(*) FROM raw.minzheng") == q(whole, "SELECT count(*) FROM raw.minzheng")


def test_an_unreadable_file_in_one_part_refuses_every_part(inbox: Path, warehouse: Path) -> None:
    d = inbox / PERIOD / "minzheng"
    (d / "大庄镇.csv").write_bytes("姓名,身份证号\n张三,1\n".encode())   # required columns missing
    files = extract_files(inbox, PERIOD, "minzheng")
    good = [f for f in files if f.name != "大庄镇.csv"]
    parts = [prepare_part(inbox, PERIOD, "minzheng", good, lake_root(warehouse), "620523", "r1"),
             prepare_part(inbox, PERIOD, "minzheng", [d / "大庄镇.csv"], lake_root(warehouse), "620521", "r1")]
    assert parts[0].errors == [] and parts[1].errors
    result = load_parts(warehouse, inbox, PERIOD, "minzheng", parts, "r1")
    assert result.status == "rejected" and "大庄镇.csv" in result.message
    accounting_holds(result)
    assert result.rows_loaded == 0 and result.rows_quarantined == 7
    assert q(warehouse, "SELECT count(*) FROM pending.minzheng") == [(0,)]
    reasons_ = q(warehouse, "SELECT row_number, reasons FROM quarantine.rows WHERE file LIKE '%城关镇.csv' "
                            "ORDER BY row_number")
    assert [n for n, _ in reasons_] == [2, 3, 4, 5]
    assert all(r[-1].startswith("整批退回：") and "大庄镇.csv" in r[-1] for _, r in reasons_)
    assert reasons_[1][1][0] == L("身份证号", reasons.ID_CHECK_DIGIT)   # its own defect kept, first
    data = q(warehouse, "SELECT row_data FROM quarantine.rows WHERE file LIKE '%城关镇.csv' "
                        "AND row_number = 2")[0][0]
    assert '"身份证号":"' + IDS[0] + '"' in data


def test_a_warehouse_with_raw_tables_keeps_their_rows(inbox: Path, warehouse: Path) -> None:
    """Warehouses made before the lake held raw.<dept> as a table: its rows move to Parquet."""
    con = connect(warehouse)
    try:
        con.execute("DROP VIEW raw.minzheng")
        cols = ", ".join(f'CAST(NULL AS VARCHAR) AS "{c}"' for c in
                         ("assistance", "monthly_amount", "start_month", "end_month", "village_code"))
        con.execute(f"CREATE TABLE raw.minzheng AS SELECT '2020-05' AS period, 'r0' AS run_id, "
                    f"'old.csv' AS source_file, 2 AS source_row, '居民0' AS name, '{IDS[0]}' AS id_number, "
                    f"{cols}, CAST(NULL AS VARCHAR) AS extra")
    finally:
        con.close()
    stage_extract(warehouse, inbox, PERIOD, "minzheng", "r1")
    assert q(warehouse, "SELECT period, count(*) FROM raw.minzheng GROUP BY 1 ORDER BY 1") == [
        ("2020-05", 1), (PERIOD, 7)]
    assert q(warehouse, "SELECT table_type FROM information_schema.tables WHERE table_schema = 'raw' "
                        "AND table_name = 'minzheng'") == [("VIEW",)]


# --- the generator's planted truth -----------------------------------------------------------

@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    generate = pytest.importorskip("povwatch.tasks.synth.generate")
    out = tmp_path_factory.mktemp("gen")
    generate.generate(out, period="2020-06", periods=1, households=120, seed=11, defects=0.05,
                      counties=1)
    return out


def test_ingesting_the_generated_inbox_quarantines_exactly_the_planted_rows(
        generated: Path, tmp_path: Path) -> None:
    from povwatch.tasks.ingest.contracts import department_codes

    warehouse = tmp_path / "gen.duckdb"
    for period in discover_periods(generated):
        for dept in department_codes():
            result = stage_extract(warehouse, generated, period, dept, "gen")
            assert result.status in ("staged", "missing"), result.message
            accounting_holds(result)
    got = pl.DataFrame(
        q(warehouse, "SELECT period, dept, file, row_number, unnest(reasons) FROM quarantine.rows"),
        schema=["period", "dept", "file", "row_number", "reason"], orient="row",
    ).with_columns(pl.col("row_number").cast(pl.Int64))
    truth = pl.read_csv(generated / "truth" / "quarantine.csv",
                        schema_overrides={"row_number": pl.Int64, "period": pl.Utf8})
    # rows sharing a unique key (重复键) are quarantined by validation, after staging
    truth = truth.filter(~pl.col("reason").str.starts_with("重复键"))
    assert truth.height > 0
    key = ["period", "dept", "file", "row_number", "reason"]
    assert sorted(got.select(key).rows()) == sorted(truth.select(key).rows())
