"""A wholly refused extract is stated once per file in the department's receipt, not row by row.

The refused rows stay in quarantine.rows one by one (nothing is lost and rows read = loaded +
quarantined); the receipt says per file why, and which rows, once — while rows quarantined for
their own reason are still listed with file, row, column and reason.
"""
from __future__ import annotations

from pathlib import Path

import polars as pl

from povwatch.tasks.ingest.load import promote_extract, reject_extract, stage_extract
from povwatch.tasks.ingest.receipts import write_receipt
from tests.test_ingest import IDS, PERIOD, inbox, q, row, warehouse, write_csv  # noqa: F401


def test_a_refused_extract_is_stated_once_per_file(inbox: Path, warehouse: Path,  # noqa: F811
                                                   tmp_path: Path) -> None:
    stage_extract(warehouse, inbox, PERIOD, "minzheng", "r1")
    promote_extract(warehouse, PERIOD, "minzheng", "r1")
    write_csv(inbox / PERIOD / "minzheng" / "城关镇.csv",   # changed: a resubmission
              [row(5), row(6), row(1, 身份证号=IDS[1][:-1] + "1")])   # line 4: check digit wrong
    staged = stage_extract(warehouse, inbox, PERIOD, "minzheng", "r2")
    reject_extract(warehouse, PERIOD, "minzheng", "r2", "月保障金额合计异常")

    held = q(warehouse, "SELECT file, count(*) FROM quarantine.rows WHERE run_id = 'r2' "
                        "AND reasons = ['整批退回：月保障金额合计异常'] GROUP BY file ORDER BY file")
    detail = pl.read_excel(write_receipt(warehouse, PERIOD, "minzheng", tmp_path / "out"),
                           sheet_name="问题明细")
    refusals = detail.filter(pl.col("原因").str.starts_with("整批退回："))
    # one line per file, naming how many rows and which
    assert sorted(refusals["文件"].to_list()) == sorted(Path(f).name for f, _ in held)
    for (file, n), line in zip(held, refusals.sort("文件").iter_rows(named=True)):
        assert line["行号"] is None and f"共{n}行" in line["原因"] and "均未入库" in line["原因"]
    # the rows with their own reasons are still listed one by one
    own = detail.filter(~pl.col("原因").str.starts_with("整批退回："))
    assert own.height == staged.rows_quarantined > 0
    assert own["行号"].null_count() == 0
