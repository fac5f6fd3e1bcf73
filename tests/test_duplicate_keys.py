"""Two bad rows never cost a department its month; an empty snapshot is accepted where it can be
genuine (docs/contract.md).

One warehouse, one period, each department's delivery staged, validated by its GX suite and
promoted or rejected as the flow does:

- ``minzheng``: two rows share (身份证号, 救助类型, 起始年月) with different amounts: both are
  quarantined under 重复键 naming the key (identity number masked), the rest is accepted, the
  receipt lists the pair together; an exact copy of a row is still 重复行 (loaded once);
- ``caizheng``: a third of the rows share identity numbers: systematically broken, rejected;
- ``gongan`` header only: accepted as an empty snapshot, visible in the receipt and status;
- ``fupin`` header only: rejected with a message saying why;
- ``yibao`` with shifted columns (every value one column to the right): still rejected.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest

from tests.support import badcorpus as bc
from tests.test_bad_extracts import _fresh_warehouse

PERIOD = bc.PERIOD
GONGAN_HEADER = ["身份证号", "姓名", "注销日期", "注销原因"]
FUPIN_HEADER = ["户编号", "姓名", "身份证号", "与户主关系", "村代码", "贫困户属性", "脱贫状态"]


def _minzheng(inbox: Path) -> None:
    rows = bc.minzheng_rows(30)
    clash = list(rows[3])
    clash[3] = "600.00"                  # same person, type and start month, another amount
    copy = list(rows[10])                # an exact copy: 重复行, loaded once
    bc.write_csv(bc.dept_dir(inbox, "minzheng") / "低保.csv", bc.MINZHENG_HEADER,
                 rows + [clash, copy])   # clash on line 32, copy on line 33


def _caizheng(inbox: Path) -> None:
    rows = bc.caizheng_rows(12)
    twins = [[r[0], "王五", "某单位", "2011-01-01"] for r in rows[:4]]   # 8 of 16 rows share ids
    bc.write_csv(bc.dept_dir(inbox, "caizheng") / "名单.csv", bc.CAIZHENG_HEADER, rows + twins)


def _yibao_shifted(inbox: Path) -> None:
    """A good yibao extract, then every value moved one column to the right."""
    from povwatch.tasks.ingest.contracts import load_contract

    header = [c.header for c in load_contract("yibao").columns]
    good = {"姓名": "张伟", "参保年度": "2020", "参保状态": "已参保", "财政资助金额": "280",
            "住院费用总额": "0", "报销金额": "0"}
    rows = [[good.get(h, bc.make_id(400 + i)) for h in header] for i in range(12)]
    shifted = [[""] + r[:-1] for r in rows]
    bc.write_csv(bc.dept_dir(inbox, "yibao") / "参保.csv", header, shifted)


NEXT = "2020-07"


def _fupin_two_villages(inbox: Path) -> None:
    """Twelve households of two members; H0005 is also used for a household of another village
    (lines 12-13 and 26): the two must not be merged into one."""
    rows = []
    for h in range(12):
        for k, relation in enumerate(("户主", "配偶")):
            rows.append([f"H{h:04d}", bc.NAMES[k], bc.make_id(500 + 2 * h + k), relation, bc.VILLAGE,
                         "一般贫困户", "未脱贫"])
    rows.append(["H0005", "孙强", bc.make_id(560), "户主", "620523100202", "一般贫困户", "未脱贫"])
    bc.write_csv(bc.dept_dir(inbox, "fupin", NEXT) / "建档立卡.csv", FUPIN_HEADER, rows)


@pytest.fixture(scope="module")
def delivered(tmp_path_factory):
    from povwatch.tasks.ingest import load
    from povwatch.tasks.ingest.receipts import write_receipt
    from povwatch.tasks.validate.suites import validate_extract

    tmp = tmp_path_factory.mktemp("dupkeys")
    inbox = tmp / "inbox"
    _minzheng(inbox)
    _caizheng(inbox)
    _yibao_shifted(inbox)
    bc.write_csv(bc.dept_dir(inbox, "gongan") / "注销.csv", GONGAN_HEADER, [])
    bc.write_csv(bc.dept_dir(inbox, "fupin") / "建档立卡.csv", FUPIN_HEADER, [])
    warehouse = _fresh_warehouse(tmp / "wh" / "povwatch.duckdb")
    results, outcomes = {}, {}
    for dept in ("minzheng", "caizheng", "gongan", "fupin", "yibao"):
        result = load.stage_extract(warehouse, inbox, PERIOD, dept, "r1")
        if result.status == "staged":
            outcome = validate_extract(warehouse, PERIOD, dept, "r1")
            outcomes[dept] = outcome
            if outcome.blocking_failed:
                result = load.reject_extract(warehouse, PERIOD, dept, "r1", outcome.message or "")
            else:
                result = load.promote_extract(warehouse, PERIOD, dept, "r1")
        results[dept] = result
    receipts = {d: write_receipt(warehouse, PERIOD, d, tmp / "receipts") for d in results}
    # the next month: a registry where one 户编号 is used in two villages
    _fupin_two_villages(inbox)
    result = load.stage_extract(warehouse, inbox, NEXT, "fupin", "r2")
    outcome = validate_extract(warehouse, NEXT, "fupin", "r2")
    assert not outcome.blocking_failed, outcome.message
    results["fupin_next"] = load.promote_extract(warehouse, NEXT, "fupin", "r2")
    yield warehouse, results, outcomes, receipts
    shutil.rmtree(tmp, ignore_errors=True)


def _quarantine(warehouse: Path, dept: str) -> dict[int, list[str]]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return dict(con.execute("SELECT row_number, reasons FROM quarantine.rows WHERE dept = ?",
                                [dept]).fetchall())
    finally:
        con.close()


def _receipt_rows(path: Path) -> list[tuple]:
    import openpyxl

    ws = openpyxl.load_workbook(path, read_only=True)["问题明细"]
    return [r for r in ws.iter_rows(min_row=2, values_only=True)]


def test_conflicting_rows_are_quarantined_and_the_month_accepted(delivered):
    warehouse, results, _, receipts = delivered
    result = results["minzheng"]
    assert result.status == "accepted", result.message
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (32, 29, 3)
    quarantined = _quarantine(warehouse, "minzheng")
    assert set(quarantined) == {5, 32, 33}            # the pair (row 5 and its clash) and the copy
    assert quarantined[33] == ["重复行"]
    masked = bc.make_id(303)[:6] + "********" + bc.make_id(303)[-4:]
    for row in (5, 32):
        (reason,) = quarantined[row]
        assert reason.startswith("重复键：身份证号 " + masked + "、救助类型 低保、起始年月 2019-01")
        assert "共2行" in reason and bc.make_id(303) not in reason
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        staged = {r[0] for r in con.execute(
            "SELECT id_number FROM staging.minzheng WHERE period = ?", [PERIOD]).fetchall()}
        reported = con.execute(
            "SELECT success, blocking FROM audit.validations WHERE dept = 'minzheng' "
            "AND expectation = 'unique_id_number_assistance_start_month'").fetchall()
    finally:
        con.close()
    assert bc.make_id(303) not in staged and len(staged) == 29
    assert reported == [(False, False)], "the GX result of the uniqueness check is still recorded"
    # the receipt shows the two rows of the key one after the other
    lines = [r for r in _receipt_rows(receipts["minzheng"]) if str(r[3]).startswith("重复键")]
    assert [r[1] for r in lines] == [5, 32]


def test_many_duplicate_keys_reject_the_extract(delivered):
    warehouse, results, outcomes, _ = delivered
    assert results["caizheng"].status == "rejected"
    assert "重复键" in outcomes["caizheng"].message and "整批退回" in outcomes["caizheng"].message
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM staging.caizheng").fetchone()[0] == 0
    finally:
        con.close()


def test_shifted_columns_still_reject(delivered):
    assert delivered[1]["yibao"].status == "rejected"


def test_empty_gongan_is_accepted_as_an_empty_snapshot(delivered, capsys):
    from povwatch.tasks.office.status import status_text

    warehouse, results, _, receipts = delivered
    result = results["gongan"]
    assert result.status == "accepted"
    assert result.rows_read == 0 and "空快照" in result.files[0].message
    assert receipts["gongan"] is not None, "the department is told its empty snapshot was taken"
    import openpyxl

    summary = openpyxl.load_workbook(receipts["gongan"], read_only=True)["汇总"]
    assert any("空快照" in str(r[5]) for r in summary.iter_rows(min_row=2, values_only=True))
    text = status_text(warehouse)
    empty_line = next(line for line in text.splitlines() if line.startswith(PERIOD))
    assert "gongan" in empty_line
    from povwatch.tasks.office.outputs import provenance   # the report's data sources

    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        sources = provenance(con, PERIOD)
    finally:
        con.close()
    assert [s for s in sources.filter(sources["部门"] == "公安局")["状态"]] == ["已接收（空快照，本期无记录）"]


def test_empty_registry_is_rejected_with_the_reason(delivered):
    result = delivered[1]["fupin"]
    assert result.status == "rejected"
    assert "只有表头" in result.message and "不可能为空" in result.message


def test_one_household_number_in_two_villages_is_not_merged(delivered):
    """#13 item 11: every row of the 户编号 is quarantined with the cause; the rest is accepted."""
    warehouse, results, _, _ = delivered
    result = results["fupin_next"]
    assert result.status == "accepted" and (result.rows_loaded, result.rows_quarantined) == (22, 3)
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        rows = con.execute("SELECT row_number, reasons FROM quarantine.rows WHERE dept = 'fupin' "
                           "AND period = ? ORDER BY row_number", [NEXT]).fetchall()
    finally:
        con.close()
    assert [r[0] for r in rows] == [12, 13, 26]
    assert all("户编号" in r[1][0] and "不同村" in r[1][0] for r in rows)
