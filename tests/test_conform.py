"""Conforming text to the contract: what is loaded, what is repaired (and recorded), what is
quarantined and why — each defect the contract names, one cell at a time."""
from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from povwatch.tasks.ingest import reasons
from povwatch.tasks.ingest.conform import conform
from povwatch.tasks.ingest.contracts import load_contract
from povwatch.tasks.ingest.read import CERTIFICATE

ID = "11010519491231002X"
ID2 = "110105194912310038"
VILLAGE = "620523100201"

BASE = {
    "fupin": {"household_id": "H1", "name": "张三", "id_number": ID, "relation": "户主",
              "village_code": VILLAGE, "household_type": "一般贫困户", "poverty_status": "未脱贫",
              "birth_date": "1949-12-31", "per_capita_income": "3000"},
    "minzheng": {"name": "张三", "id_number": ID, "assistance": "低保", "monthly_amount": "450",
                 "start_month": "2019-01", "end_month": None, "village_code": VILLAGE},
    "shuili": {"head_id_number": ID, "village_code": VILLAGE, "supply": "集中供水",
               "quantity_ok": "是", "quality_ok": "是", "convenience_ok": "否", "guarantee_rate": "95"},
    "canlian": {"id_number": ID, "category": "肢体", "level": "2", "living_subsidy": "是",
                "care_subsidy": "否"},
    "renshe": {"id_number": ID, "work_place": "县内", "months": "6", "monthly_wage": "2000",
               "public_job": "否"},
}


def run(dept: str, *changes: dict) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Conform one row per change (each the base row with some cells replaced)."""
    rows = [{**BASE[dept], **c} for c in changes]
    frame = pl.DataFrame(rows, schema={k: pl.Utf8 for k in rows[0]}).with_columns(
        pl.lit("t.csv").alias("source_file"),
        pl.int_range(2, len(rows) + 2, dtype=pl.Int32).alias("source_row"),
    )
    out = conform(frame, load_contract(dept))
    return out.staged, out.quarantined


def one_staged(dept: str, change: dict) -> dict:
    staged, quarantined = run(dept, change)
    assert quarantined.height == 0, quarantined["reasons"].to_list()
    return staged.row(0, named=True)


def one_reasons(dept: str, change: dict) -> list[str]:
    staged, quarantined = run(dept, change)
    assert staged.height == 0
    return quarantined["reasons"][0].to_list()


# --- repairs: loaded, and recorded -----------------------------------------------------------

@pytest.mark.parametrize("dept,change,column,value,repair", [
    ("fupin", {"id_number": ID.lower()}, "id_number", ID, "id_number:" + reasons.REPAIR_LOWER_X),
    ("fupin", {"id_number": "１１０１０５１９４９１２３１００３８"}, "id_number", ID2,
     "id_number:" + reasons.REPAIR_FULL_WIDTH),
    ("fupin", {"id_number": "110105 19491231 0038"}, "id_number", ID2,
     "id_number:" + reasons.REPAIR_SPACES),
    ("fupin", {"id_number": "110105491231002"}, "id_number", ID, "id_number:" + reasons.REPAIR_15_TO_18),
    ("fupin", {"birth_date": "1949/12/31"}, "birth_date", dt.date(1949, 12, 31), "birth_date:日期格式转换"),
    ("fupin", {"birth_date": "19491231"}, "birth_date", dt.date(1949, 12, 31), "birth_date:日期格式转换"),
    ("fupin", {"birth_date": "1949年12月31日"}, "birth_date", dt.date(1949, 12, 31), "birth_date:日期格式转换"),
    ("fupin", {"birth_date": "43831"}, "birth_date", dt.date(2020, 1, 1), "birth_date:Excel日期序号转换"),
    ("fupin", {"per_capita_income": "1,234.50"}, "per_capita_income", 1234.5,
     "per_capita_income:去除千分位或单位"),
    ("fupin", {"per_capita_income": "1234.5元"}, "per_capita_income", 1234.5,
     "per_capita_income:去除千分位或单位"),
    ("minzheng", {"start_month": "201901"}, "start_month", dt.date(2019, 1, 1), "start_month:年月格式转换"),
    ("minzheng", {"start_month": "2019年1月"}, "start_month", dt.date(2019, 1, 1), "start_month:年月格式转换"),
    ("canlian", {"level": "三级"}, "level", 3, "level:文字转代码"),
    ("shuili", {"quality_ok": "Y"}, "quality_ok", True, "quality_ok:是否格式转换"),
])
def test_repairable_values_are_loaded_and_recorded(dept, change, column, value, repair) -> None:
    row = one_staged(dept, change)
    assert row[column] == value
    assert row["repairs"] == repair


def test_clean_row_is_loaded_typed_without_repairs() -> None:
    row = one_staged("minzheng", {})
    assert row == {"name": "张三", "id_number": ID, "assistance": "低保", "monthly_amount": 450.0,
                   "start_month": dt.date(2019, 1, 1), "end_month": None, "village_code": VILLAGE,
                   "source_file": "t.csv", "source_row": 2, "repairs": None}
    row = one_staged("shuili", {})
    assert (row["quantity_ok"], row["convenience_ok"], row["guarantee_rate"]) == (True, False, 95.0)


def test_a_file_of_percent_fractions_is_read_as_percent() -> None:
    """A 供水保证率 column stored as fractions (a workbook formatted as percentages: 95% is 0.95)
    is read as percentages, per file; a file already in percent keeps its small values, and a file
    of only 0 and 1 (either reading) is read as written."""
    rows = [{**BASE["shuili"], "guarantee_rate": v} for v in ("0.95", "0.9", "1", "0")]
    rows += [{**BASE["shuili"], "guarantee_rate": v} for v in ("95", "0.5", "1.00", "0.0")]
    frame = pl.DataFrame(rows, schema={k: pl.Utf8 for k in rows[0]}).with_columns(
        pl.Series("source_file", ["a.xlsx"] * 4 + ["b.csv"] * 2 + ["c.csv"] * 2),
        pl.Series("source_row", [2, 3, 4, 5, 2, 3, 2, 3], dtype=pl.Int32))
    staged = conform(frame, load_contract("shuili")).staged.sort("source_file", "source_row")
    assert staged["guarantee_rate"].to_list() == [95.0, 90.0, 100.0, 0.0, 95.0, 0.5, 1.0, 0.0]
    assert staged["repairs"].to_list() == ["guarantee_rate:小数折算为百分数"] * 4 + [None] * 4


# --- defects: quarantined, with the reason naming the column ---------------------------------

L = reasons.cell_reason


@pytest.mark.parametrize("dept,change,expected", [
    ("fupin", {"name": "  "}, L("姓名", reasons.REQUIRED_BLANK)),
    ("fupin", {"id_number": "6.20523E+17"}, L("证件号码", reasons.ID_SCIENTIFIC)),
    ("fupin", {"id_number": ID[:-1] + "1"}, L("证件号码", reasons.ID_CHECK_DIGIT)),
    ("fupin", {"id_number": "11010519491331002X"}, L("证件号码", reasons.ID_BIRTH_DATE)),
    ("fupin", {"id_number": ID[:17]}, L("证件号码", reasons.ID_FORMAT)),
    ("fupin", {"relation": "邻居"}, L("与户主关系", reasons.CODE_NOT_IN_LIST)),
    ("fupin", {"village_code": "62052310020"}, L("村代码", reasons.VILLAGE_FORMAT)),
    ("fupin", {"birth_date": "去年"}, L("出生日期", reasons.DATE_UNPARSEABLE)),
    ("fupin", {"birth_date": "2020-02-30"}, L("出生日期", reasons.DATE_UNPARSEABLE)),
    ("fupin", {"birth_date": "2999-01-01"}, L("出生日期", reasons.OUT_OF_RANGE)),
    ("fupin", {"per_capita_income": "三千"}, L("人均纯收入", reasons.MONEY_UNPARSEABLE)),
    ("fupin", {"poverty_status": "已脱贫"}, L("脱贫年度", reasons.REQUIRED_BLANK)),     # required_when
    ("fupin", {"name": "张" * 300}, L("姓名", reasons.TEXT_TOO_LONG)),
    ("minzheng", {"start_month": "2019-13"}, L("起始年月", reasons.MONTH_UNPARSEABLE)),
    ("minzheng", {"monthly_amount": "-1"}, L("月保障金额", reasons.OUT_OF_RANGE)),
    ("renshe", {"months": "13"}, L("务工月数", reasons.OUT_OF_RANGE)),
    ("renshe", {"months": "6个月"}, L("务工月数", reasons.INT_UNPARSEABLE)),
    ("renshe", {"public_job": "可能"}, L("公益性岗位", reasons.BOOL_UNPARSEABLE)),
    ("shuili", {"guarantee_rate": "很高"}, L("供水保证率", reasons.NUMBER_UNPARSEABLE)),
    ("shuili", {"guarantee_rate": "120"}, L("供水保证率", reasons.OUT_OF_RANGE)),
    ("canlian", {"level": "五级"}, L("残疾等级", reasons.INT_UNPARSEABLE)),
    ("canlian", {"level": "5"}, L("残疾等级", reasons.OUT_OF_RANGE)),
])
def test_defects_are_quarantined_with_the_column_named(dept, change, expected) -> None:
    assert one_reasons(dept, change) == [expected]


def test_every_defect_of_a_row_is_listed() -> None:
    got = one_reasons("minzheng", {"name": None, "assistance": "救济", "village_code": "x"})
    assert got == [L("姓名", reasons.REQUIRED_BLANK), L("救助类型", reasons.CODE_NOT_IN_LIST),
                   L("村代码", reasons.VILLAGE_FORMAT)]


def test_required_when_satisfied_loads() -> None:
    row = one_staged("fupin", {"poverty_status": "已脱贫", "exit_year": "2019"})
    assert row["exit_year"] == 2019


# --- duplicates ------------------------------------------------------------------------------

def test_exact_duplicates_load_once_and_defective_copies_keep_their_defect() -> None:
    staged, quarantined = run(
        "minzheng",
        {}, {"id_number": ID2}, {}, {},                      # rows 2..5: row 4 and 5 copy row 2
        {"id_number": "6.20523E+17"}, {"id_number": "6.20523E+17"},   # rows 6, 7: damaged alike
        {"name": "张三 "},                                   # row 8: differs as delivered
    )
    assert staged["source_row"].to_list() == [2, 3, 8]
    got = dict(zip(quarantined["source_row"].to_list(), quarantined["reasons"].to_list()))
    assert got == {4: [reasons.DUPLICATE_ROW], 5: [reasons.DUPLICATE_ROW],
                   6: [L("身份证号", reasons.ID_SCIENTIFIC)], 7: [L("身份证号", reasons.ID_SCIENTIFIC)]}


def test_quarantined_rows_keep_the_text_as_delivered() -> None:
    _, quarantined = run("minzheng", {"monthly_amount": "四百五", "name": " 张三"})
    row = quarantined.row(0, named=True)
    assert row["monthly_amount"] == "四百五" and row["name"] == " 张三"


# --- canlian's 残疾证号 ----------------------------------------------------------------------

def test_certificate_carries_id_category_and_level() -> None:
    frame = pl.DataFrame({
        CERTIFICATE: [ID + "43", ID2 + "71", ID + "93", ID[:-1] + "1" + "43"],
        "living_subsidy": ["是"] * 4, "care_subsidy": ["否"] * 4,
        "source_file": ["c.csv"] * 4, "source_row": pl.Series([2, 3, 4, 5], dtype=pl.Int32),
    })
    out = conform(frame, load_contract("canlian"))
    assert out.staged.select("id_number", "category", "level").rows() == [(ID, "肢体", 3), (ID2, "多重", 1)]
    got = dict(zip(out.quarantined["source_row"].to_list(), out.quarantined["reasons"].to_list()))
    assert got == {4: [L("残疾证号", reasons.CERTIFICATE_FORMAT)],
                   5: [L("残疾证号", reasons.ID_CHECK_DIGIT)]}
