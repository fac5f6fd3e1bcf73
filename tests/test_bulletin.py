"""周调度 / 旬通报: what opened, closed and became overdue in a date range."""
from __future__ import annotations

import re
from datetime import date

import duckdb
import pytest
from click.testing import CliRunner

from povwatch.flows.cli import main
from povwatch.tasks.office.bulletin import (beijing_today, dekad_of, last_complete, range_title, resolve_range,
                            write_bulletin)
from tests.support.fixtures_marts import PERIODS, full_ids_in, marts_warehouse  # noqa: F401


def test_dekads_and_weeks():
    assert dekad_of(date(2020, 2, 29)) == (date(2020, 2, 21), date(2020, 2, 29))
    assert dekad_of(date(2020, 10, 10)) == (date(2020, 10, 1), date(2020, 10, 10))
    assert dekad_of(date(2020, 10, 11)) == (date(2020, 10, 11), date(2020, 10, 20))
    # defaults: the last complete dekad / Monday-Sunday week before today
    assert last_complete("dekad", date(2020, 11, 3)) == (date(2020, 10, 21), date(2020, 10, 31))
    assert last_complete("dekad", date(2020, 11, 11)) == (date(2020, 11, 1), date(2020, 11, 10))
    assert last_complete("weekly", date(2020, 11, 4)) == (date(2020, 10, 26), date(2020, 11, 1))
    assert last_complete("weekly", date(2020, 11, 2)) == (date(2020, 10, 26), date(2020, 11, 1))
    assert resolve_range("weekly", None, date(2020, 11, 8)) == (date(2020, 11, 2), date(2020, 11, 8))
    assert resolve_range("dekad", date(2020, 11, 21), None) == (date(2020, 11, 21), date(2020, 11, 30))
    assert range_title("dekad", date(2020, 10, 11), date(2020, 10, 20)) == "2020年10月中旬"
    assert range_title("weekly", date(2020, 10, 26), date(2020, 11, 1)) == "2020-10-26 至 2020-11-01"


def _totals(html: str) -> dict[str, int]:
    m = re.search(r"新增问题 <b>(\d+)</b> 个（其中重新打开 (\d+) 个），销号 <b>(\d+)</b> 个，新逾期 "
                  r"<b[^>]*>(\d+)</b> 个；截至 \S+ 未整改 <b>(\d+)</b> 个，其中逾期 <b[^>]*>(\d+)</b>", html)
    keys = ("opened", "reopened", "closed", "became_overdue", "open_end", "overdue_end")
    return dict(zip(keys, map(int, m.groups())))


def _q(warehouse, sql, params=()):
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return con.execute(sql, list(params)).fetchall()[0]
    finally:
        con.close()


def test_dekad_with_a_month_end_counts_that_period_s_transitions(marts_warehouse):  # noqa: F811
    period = PERIODS[-1]
    path = write_bulletin(marts_warehouse, "dekad", date(2020, 11, 21), date(2020, 11, 30))
    assert path.name == "dekad-2020-11-21_2020-11-30.html"
    got = _totals(path.read_text(encoding="utf-8"))
    opened, reopened, closed = _q(marts_warehouse, """
        SELECT count(*) FILTER (WHERE event IN ('opened', 'reopened')),
               count(*) FILTER (WHERE event = 'reopened'), count(*) FILTER (WHERE event = 'closed')
        FROM mart.problem_events WHERE period = ?""", [period])
    open_end, overdue_end = _q(marts_warehouse, """
        SELECT count(*) FILTER (WHERE status = 'open'),
               count(*) FILTER (WHERE status = 'open' AND overdue) FROM mart.ledger_as_of(?)""",
                               [period])
    assert (got["opened"], got["reopened"], got["closed"]) == (opened, reopened, closed)
    assert reopened == 1                              # the planted 屡改屡犯
    assert (got["open_end"], got["overdue_end"]) == (open_end, overdue_end)
    # problems whose 60-day deadline (2020-11-29) passed while still open became overdue 11-30;
    # "still open on 11-29" is their state after the last month end before it (2020-10)
    (due,) = _q(marts_warehouse, "SELECT count(*) FROM mart.ledger_as_of('2020-10') "
                "WHERE deadline = DATE '2020-11-29' AND status = 'open'")
    assert got["became_overdue"] == due > 0
    md = path.with_suffix(".md").read_text(encoding="utf-8")
    assert md.startswith("# 防返贫问题整改旬通报（2020年11月下旬）")
    assert "| 责任单位 | 新增 | 销号 | 新逾期 |" in md and "| 住建局 |" in md


def test_week_without_a_month_end_shows_only_deadlines(marts_warehouse):  # noqa: F811
    quiet = _totals(write_bulletin(marts_warehouse, "weekly", date(2020, 11, 2),
                                   date(2020, 11, 8)).read_text(encoding="utf-8"))
    assert quiet["opened"] == quiet["closed"] == quiet["became_overdue"] == 0
    assert quiet["open_end"] > 0                      # still open at the end of the week
    week = _totals(write_bulletin(marts_warehouse, "weekly", date(2020, 10, 26),
                                  date(2020, 11, 1)).read_text(encoding="utf-8"))
    (due,) = _q(marts_warehouse, "SELECT count(*) FROM mart.ledger_as_of('2020-09') "
                "WHERE deadline = DATE '2020-10-30' AND status = 'open'")
    assert week["became_overdue"] == due > 0 and week["opened"] > 0


def test_bulletin_leaves_out_every_person(marts_warehouse):  # noqa: F811
    path = write_bulletin(marts_warehouse, "dekad", date(2020, 10, 21), date(2020, 10, 31))
    for text in (path.read_text(encoding="utf-8"), path.with_suffix(".md").read_text("utf-8")):
        assert not full_ids_in(text) and not re.search(r"\d{12}", text)  # no ids, no 户编号
        assert "<script" not in text and "http:" not in text and "https:" not in text


def test_cli_defaults_and_bad_dates(marts_warehouse):  # noqa: F811
    runner = CliRunner()
    result = runner.invoke(main, ["bulletin", "--kind", "dekad", "--warehouse",
                                  str(marts_warehouse)])
    assert result.exit_code == 0 and "旬通报" in result.output
    start, end = last_complete("dekad", beijing_today())
    assert f"dekad-{start}_{end}.html" in result.output
    bad = runner.invoke(main, ["bulletin", "--since", "2020-13-01", "--warehouse",
                               str(marts_warehouse)])
    assert bad.exit_code == 2 and "YYYY-MM-DD" in bad.output
    with pytest.raises(Exception, match="晚于"):
        write_bulletin(marts_warehouse, "weekly", date(2020, 11, 8), date(2020, 11, 2))
