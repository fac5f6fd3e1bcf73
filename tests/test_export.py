"""Excel exports: Chinese headers, counts that match the marts, masked ids, no runnable formulas."""
from __future__ import annotations

import stat
from pathlib import Path

import duckdb
import openpyxl
import pytest
from click.testing import CliRunner

from povwatch.flows.cli import main
from povwatch.tasks.office.export import write_exports
from tests.support.fixtures_marts import INJECTION_TEXTS, PERIODS, full_ids_in, marts_warehouse  # noqa: F401

PERIOD = PERIODS[-1]


@pytest.fixture(scope="module")
def workbooks(marts_warehouse, tmp_path_factory) -> dict[str, openpyxl.Workbook]:  # noqa: F811
    out = tmp_path_factory.mktemp("exports")
    paths = write_exports(marts_warehouse, None, out)
    assert [p.name for p in paths] == [f"monitoring-{PERIOD}.xlsx", f"ledger-{PERIOD}.xlsx",
                                       f"spot-check-{PERIOD}.xlsx"]
    for path in paths:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    return {p.name.rsplit("-", 2)[0]: openpyxl.load_workbook(p) for p in paths}


def _one(warehouse: Path, sql: str, params=()):
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return con.execute(sql, list(params)).fetchall()
    finally:
        con.close()


def _headers(ws) -> list[str]:
    return [c.value for c in ws[1]]


def _all_cells(wb):
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for cell in row:
                yield ws, cell


def test_every_workbook_starts_with_what_it_was_built_from(workbooks):
    for wb in workbooks.values():
        assert wb.sheetnames[0] == "说明"
        text = " ".join(str(c.value) for _, c in _all_cells(wb) if c.parent.title == "说明"
                        and c.value is not None)
        assert PERIOD in text and "2020-11-30" in text
        assert f"{PERIOD}/fupin/fupin_{PERIOD}.xlsx" in text
        assert f"沿用{PERIODS[-2]}" in text           # 水利 did not deliver: its older file
        assert "run-" not in text and "已脱敏" in text
    for kind, sensitive in (("monitoring", True), ("ledger", True), ("spot-check", False)):
        about = " ".join(str(c.value) for _, c in _all_cells(workbooks[kind])
                         if c.parent.title == "说明" and c.value)
        assert ("敏感" in about) is sensitive          # the exports that act on 因病 / 因残


def test_monitoring_one_row_per_household_with_reasons_and_measures(workbooks, marts_warehouse):  # noqa: F811
    ws = workbooks["monitoring"]["监测对象"]
    headers = _headers(ws)
    for h in ("乡镇", "村", "户编号", "户标识", "监测类别", "风险类型", "建议措施（责任单位）"):
        assert h in headers
    (expected,) = _one(marts_warehouse, "SELECT count(DISTINCT household_key) FROM mart.monitoring "
                       "WHERE period = ?", [PERIOD])[0]
    assert ws.max_row - 1 == expected
    rows = [dict(zip(headers, r)) for r in ws.iter_rows(min_row=2, values_only=True)]
    two = [r for r in rows if "、" in (r["监测类别"] or "")]
    assert two and "突发严重困难户" in two[0]["监测类别"]
    assert any("（人社局）" in (r["建议措施（责任单位）"] or "") for r in rows)
    assert {r["乡镇"] for r in rows} <= {"城关镇", "新寨镇", "马营乡", "红山乡"}
    assert ws.freeze_panes == "A2" and ws.auto_filter.ref.startswith("A1:")
    assert ws.column_dimensions["K"].width > 20        # the measures column is wide enough


def test_ledger_has_a_sheet_per_department_with_overdue_marked(workbooks, marts_warehouse):  # noqa: F811
    wb = workbooks["ledger"]
    expected = dict(_one(marts_warehouse, """
        SELECT d.name, count(*) FROM mart.ledger_as_of(?) l JOIN mart.departments d
            ON d.code = l.responsible_dept
        WHERE l.status = 'open' OR l.closed_period = ? GROUP BY d.name""", [PERIOD, PERIOD]))
    assert set(wb.sheetnames) == {"说明", "汇总", *expected}
    for dept, n in expected.items():
        ws = wb[dept]
        headers = _headers(ws)
        assert {"问题编号", "问题类型", "对象标识", "整改期限", "是否逾期", "问题说明"} <= set(headers)
        assert ws.max_row - 1 == n
        assert ws.freeze_panes == "A2" and ws.auto_filter.ref == f"A1:{ws.cell(1, ws.max_column).column_letter}{ws.max_row}"
        rules = [r for cf in ws.conditional_formatting for r in cf.rules]
        letter = ws.cell(1, headers.index("是否逾期") + 1).column_letter
        assert any(f'${letter}2="是"' in (r.formula or [""])[0] for r in rules)
        assert rules[0].dxf.fill is not None         # the red fill of an overdue row
    overdue = sum(1 for ws in wb.worksheets[2:] for r in ws.iter_rows(min_row=2, values_only=True)
                  if "是" in r)
    (n_overdue,) = _one(marts_warehouse, "SELECT count(*) FROM mart.ledger_as_of(?) "
                        "WHERE status = 'open' AND overdue", [PERIOD])[0]
    assert overdue == n_overdue


def test_spot_check_sheet_per_county(workbooks, marts_warehouse):  # noqa: F811
    wb = workbooks["spot-check"]
    assert wb.sheetnames == ["说明", "示范县"]
    ws = wb["示范县"]
    (n,) = _one(marts_warehouse, "SELECT count(*) FROM mart.spot_check WHERE period = ?",
                [PERIOD])[0]
    assert ws.max_row - 1 == n
    assert {"县", "村", "户标识", "抽样层", "随机种子"} <= set(_headers(ws))
    assert "20201" in " ".join(str(c.value) for c in wb["说明"]["B"] if c.value)


def test_no_full_identity_number_anywhere(workbooks):
    masked = 0
    for wb in workbooks.values():
        for _, cell in _all_cells(wb):
            text = str(cell.value) if cell.value is not None else ""
            assert not full_ids_in(text), f"{cell.parent.title}!{cell.coordinate}: {text}"
            masked += "********" in text
    assert masked > 10                                # masked numbers are there, as numbers


def test_text_that_looks_like_a_formula_cannot_run(workbooks, marts_warehouse):  # noqa: F811
    guarded = []
    for wb in workbooks.values():
        for _, cell in _all_cells(wb):
            assert cell.data_type != "f", f"{cell.parent.title}!{cell.coordinate} is a formula"
            if isinstance(cell.value, str) and cell.value[:1] in "=+-@\t\r":
                pytest.fail(f"unguarded {cell.parent.title}!{cell.coordinate}: {cell.value!r}")
            if isinstance(cell.value, str) and cell.value.startswith("'"):
                guarded.append(cell.value[1:])
    planted = {d for (d,) in _one(marts_warehouse, """
        SELECT detail FROM mart.ledger_as_of(?) WHERE (status = 'open' OR closed_period = ?)
        AND regexp_matches(detail, '^[=+@\t\r-]')""", [PERIOD, PERIOD])}
    assert len(planted) >= 3 and planted <= set(INJECTION_TEXTS)
    assert planted <= set(guarded)


def test_export_cli_kind_and_bad_period(marts_warehouse, tmp_path):  # noqa: F811
    runner = CliRunner()
    result = runner.invoke(main, ["export", "--kind", "ledger", "--period", PERIODS[0],
                                  "--out", str(tmp_path), "--warehouse", str(marts_warehouse)])
    assert result.exit_code == 0, result.output
    assert [p.name for p in tmp_path.iterdir()] == [f"ledger-{PERIODS[0]}.xlsx"]
    result = runner.invoke(main, ["export", "--period", "1999-01", "--out", str(tmp_path),
                                  "--warehouse", str(marts_warehouse)])
    assert result.exit_code == 2 and "1999-01" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_default_out_dir_is_beside_the_warehouse(marts_warehouse):  # noqa: F811
    paths = write_exports(marts_warehouse, PERIOD, kinds=("spot-check",))
    assert paths[0].parent == marts_warehouse.parent / "output" / "exports" / PERIOD
