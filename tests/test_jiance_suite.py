"""The official roster's suite (expectations/jiance.json), run by GX on a pending batch: each bad
row of a roster is quarantined with its reason and the rest is kept (docs/monitoring.md)."""
from __future__ import annotations

import pytest

from povwatch.tasks.core import db
from tests.test_validate import insert, make_id, village


def roster_rows(n: int) -> list[dict]:
    return [{"household_id": f"62052310020{i % 10}{i:04d}", "head_id_number": make_id(i),
             "village_code": village(i), "category": "脱贫不稳定户", "identified_on": "2020-01-10",
             "risks": "因病", "risk_status": "未消除", "cleared_on": None, "clear_way": None}
            for i in range(n)]


@pytest.fixture(scope="module")
def wh(tmp_path_factory):
    path = tmp_path_factory.mktemp("jiance") / "povwatch.duckdb"
    con = db.open_warehouse(path)
    yield path, con
    con.close()


def test_bad_roster_rows_are_quarantined_with_their_reasons(wh):
    from povwatch.tasks.validate.suites import validate_extract

    path, con = wh
    period = "2020-02"
    rows = roster_rows(40)
    rows[1].update(risk_status="已消除", cleared_on=None)                    # cleared without a date
    rows[2].update(category="一般户")                                        # unknown category
    rows[3].update(identified_on="2020-03-01")                              # after the period's end
    rows[4].update(risk_status="已消除", cleared_on="2020-03-02", clear_way="帮扶消除")  # after the end
    rows[5].update(risk_status="已消除", cleared_on="2020-01-05", clear_way="自然消除")  # before identified
    rows[7]["household_id"] = rows[6]["household_id"]                       # a household twice
    rows[9]["head_id_number"] = rows[8]["head_id_number"]                   # ... by the head's number
    rows[10].update(risk_status="已消除", cleared_on="2020-02-29", clear_way="帮扶消除")  # fine: on the last day
    insert(con, "jiance", period, rows)

    outcome = validate_extract(path, period, "jiance", "run-roster")

    assert not outcome.blocking_failed
    reasons = dict(con.execute(
        "SELECT row_number, reasons FROM quarantine.rows WHERE period = ? AND dept = 'jiance'",
        [period]).fetchall())
    expected = {3: "cleared_on_required_when", 4: "category_in_list",
                5: "identified_on_not_after_period_end", 6: "cleared_on_not_after_period_end",
                7: "cleared_on_not_before_identified_on", 8: "household_listed_once",
                9: "household_listed_once", 10: "household_listed_once", 11: "household_listed_once"}
    assert sorted(reasons) == sorted(expected)            # rows 2.. (row 2 is the first data row)
    for row, name in expected.items():
        assert any(name in r for r in reasons[row]), (row, reasons[row])
    left = con.execute("SELECT count(*) FROM pending.jiance WHERE period = ?", [period]).fetchone()[0]
    assert left == 40 - len(expected)
    # the outcome (and so the receipt and the audit) counts exactly those rows
    assert outcome.quarantined_rows == len(expected)
