"""Monitoring as the office counts it, and the official roster (jiance): docs/monitoring.md.

Small hand-built county over nine periods (2020-01..2020-09), one household per edge:

- HA 已脱贫, warned in 2020-01, clean 2020-02..07: still monitoring after 5 clean periods,
  proposed after exactly 6 (2020-07), warned again in 2020-08 (proposal withdrawn, kept as history);
- HC the same until its proposal, cleared on the roster (帮扶消除, 2020-08-10), warned in 2020-09
  (风险再标注: event and P18);
- HN a non-registry household warned in 2020-01, then clean: manual review, never proposed;
- HR never warned, identified on the roster: under monitoring by 名单;
- HB warned every period and never identified: P17 from the first accepted roster on, not before;
- HL first warned in 2020-04 while the roster stopped arriving (none in 2020-04 and 2020-05: the
  2020-03 snapshot stands): P17 in 2020-04 and 2020-05, closed once identified (2020-06);
- one roster row matching no household: 名单无数据.
"""
from __future__ import annotations

import duckdb
import pytest

from tests.support.marts import ALL_DEPTS, Fixture, add_all, good_household, idn, income

PERIODS = [f"2020-{m:02d}" for m in range(1, 10)]
ROSTER_PERIODS = ["2020-02", "2020-03", "2020-06", "2020-07", "2020-08", "2020-09"]
A, C, N, R, B, L, NOBODY = (idn(f"19{60 + i}-03-0{i + 1}") for i in range(7))
LOW, OK = 3000, 12000   # one-person households: per-capita income below / above monitoring_line


def _registry(hh: str, head: str, total: float) -> dict:
    rows = good_household(hh, head, status="已脱贫", pci_total=total)
    return rows


def _roster_row(hh: str | None, head: str, identified_on: str, **extra) -> dict:
    return {"household_id": hh, "head_id_number": head, "village_code": "620523101001",
            "category": "脱贫不稳定户" if hh else "边缘易致贫户", "identified_on": identified_on,
            "risks": "收入不达标", "risk_status": "未消除", "cleared_on": None, "clear_way": None,
            **extra}


def _period_rows(i: int, period: str) -> list[dict]:
    rows = [
        _registry("HA", A, LOW if i in (0, 7) else OK),
        _registry("HC", C, LOW if i in (0, 8) else OK),
        _registry("HR", R, OK),
        _registry("HB", B, LOW),
        _registry("HL", L, LOW if i >= 3 else OK),
        {"shouru": [income(N, 1, LOW if i == 0 else OK, object_type="边缘户")]},
    ]
    return rows


def _roster(period: str) -> list[dict]:
    rows = [_roster_row("HA", A, "2020-01-20"), _roster_row(None, N, "2020-01-25"),
            _roster_row("HR", R, "2020-02-10"), _roster_row(None, NOBODY, "2020-02-11")]
    if period >= "2020-08":
        rows.append(_roster_row("HC", C, "2020-01-15", risk_status="已消除",
                                cleared_on="2020-08-10", clear_way="帮扶消除"))
    else:
        rows.append(_roster_row("HC", C, "2020-01-15"))
    if period >= "2020-06":
        rows.append(_roster_row("HL", L, "2020-04-20"))
    return rows


def _county(path, build_order) -> Fixture:
    fx = Fixture(path)
    for i, period in enumerate(PERIODS):
        add_all(fx, period, *_period_rows(i, period))
        depts = ALL_DEPTS
        if period in ROSTER_PERIODS:
            fx.add("jiance", period, _roster(period))
            depts = (*ALL_DEPTS, "jiance")
        fx.accept(period, depts)
    for period in build_order:
        fx.build(period)
    return fx


@pytest.fixture(scope="module")
def county(tmp_path_factory):
    fx = _county(tmp_path_factory.mktemp("roster") / "w.duckdb", PERIODS)
    yield fx
    fx.con.close()


def _status(fx, key: str) -> dict[str, str]:
    return dict(fx.query("SELECT period, status FROM mart.monitoring_states WHERE household_key = ?",
                         [key]))


def _events(fx, key: str) -> list[tuple[str, str]]:
    return fx.query("SELECT period, event FROM mart.monitoring_events WHERE household_key = ? "
                    "AND event <> 'warned' ORDER BY period, event", [key])


def _findings(fx, code: str) -> set[tuple[str, str]]:
    return set(fx.query("SELECT period, subject_id FROM mart.problem_findings WHERE code = ?", [code]))


def test_proposed_after_exactly_six_clean_periods_and_a_warning_withdraws_it(county):
    status = _status(county, "HA")
    assert status["2020-06"] == "monitoring"          # 5 clean periods
    assert status["2020-07"] == "proposed_clear"      # exactly 6
    assert status["2020-08"] == "monitoring"          # warned the month after the proposal
    assert _events(county, "HA") == [("2020-01", "entered"), ("2020-07", "proposed_clear"),
                                     ("2020-08", "proposal_withdrawn")]
    history = county.query("SELECT proposed_clear_period, status FROM mart.monitoring_history "
                           "WHERE household_key = 'HA'")
    assert history == [("2020-07", "monitoring")]     # the proposal stays history


def test_clearance_followed_by_a_warning_is_reflagged_and_raises_p18(county):
    status = _status(county, "HC")
    assert status["2020-07"] == "proposed_clear"
    assert status["2020-08"] == "cleared"
    assert status["2020-09"] == "monitoring"
    assert ("2020-08", "cleared") in _events(county, "HC")
    assert ("2020-09", "reflagged_after_clear") in _events(county, "HC")
    assert county.query("SELECT detail FROM mart.monitoring_events WHERE household_key = 'HC' "
                        "AND event = 'cleared'") == [("2020-08-10 帮扶消除",)]
    assert _findings(county, "P18") == {("2020-09", "HC")}
    # cleared households are not counted as monitored
    assert county.query("SELECT monitored FROM mart.household_status "
                        "WHERE household_key = 'HC' AND period = '2020-08'") == [(False,)]


def test_non_registry_household_goes_to_manual_review(county):
    status = _status(county, N)
    assert status["2020-07"] == "manual_review"
    assert "proposed_clear" not in status.values()


def test_household_only_on_the_roster_is_monitored_by_the_roster(county):
    assert county.query("SELECT entered_period, entered_by FROM mart.monitoring_history "
                        "WHERE household_key = 'HR'") == [("2020-02", "名单")]
    monitored = county.query("SELECT period FROM mart.household_status WHERE household_key = 'HR' "
                             "AND monitored ORDER BY period")
    assert [p for (p,) in monitored] == PERIODS[1:]
    assert county.query("SELECT count(*) FROM mart.monitoring WHERE household_key = 'HR'") == [(0,)]


def test_p17_only_once_a_roster_is_accepted_and_through_a_stopped_roster(county):
    p17 = _findings(county, "P17")
    assert ("2020-01", "HB") not in p17                       # no roster accepted yet
    assert {p for p, k in p17 if k == "HB"} == set(PERIODS[1:])
    assert {p for p, k in p17 if k == "HL"} == {"2020-04", "2020-05"}   # stale roster stands
    assert {k for _, k in p17} == {"HB", "HL"}
    ledger = dict(county.query("SELECT subject_id, status FROM mart.problem_ledger WHERE code = 'P17'"))
    assert ledger == {"HB": "open", "HL": "closed"}


def test_roster_row_matching_no_household_is_listed_not_counted(county):
    rows = county.query("SELECT DISTINCT head_id_number FROM mart.roster_unmatched")
    assert rows == [(NOBODY,)]
    assert county.query("SELECT count(*) FROM mart.monitoring_states WHERE household_key = ?",
                        [NOBODY]) == [(0,)]


def test_monitored_counts_follow_the_definition_everywhere(county):
    # 2020-05: HA HC HN HR under monitoring by history, HB HL warned: six, of whom two warned
    assert county.query("SELECT count(*) FILTER (WHERE monitored) FROM mart.household_status "
                        "WHERE period = '2020-05'") == [(6,)]
    assert county.query("SELECT sum(monitored_households) FROM mart.township_ranking "
                        "WHERE period = '2020-05'") == [(6,)]
    assert county.query("SELECT count(*) FILTER (WHERE monitored) FROM mart.spot_check "
                        "WHERE period = '2020-05'") == [(6,)]


TABLES = ("monitoring_states", "monitoring_events", "monitoring_history", "roster_unmatched")


def _snapshot(fx) -> dict[str, list]:
    return {t: sorted(map(repr, fx.query(f"SELECT * EXCLUDE (as_of_period) FROM mart.{t}"
                                         if t == "monitoring_history" else f"SELECT * FROM mart.{t}")))
            for t in TABLES}


def test_out_of_order_and_repeated_builds_give_identical_tables(county, tmp_path):
    # out of order (each late arrival rebuilds the periods after it), one period built twice
    shuffled = ["2020-02", "2020-01", "2020-03", "2020-05", "2020-04", "2020-06", "2020-07",
                "2020-09", "2020-08", "2020-08"]
    other = _county(tmp_path / "w.duckdb", shuffled)
    try:
        assert _snapshot(other) == _snapshot(county)
    finally:
        other.con.close()


def test_township_summary_for_the_report(county):
    rows = county.query("SELECT period, monitored, warned, proposed_clear, manual_review, cleared, "
                        "identification_overdue, reflagged FROM mart.township_monitoring "
                        "WHERE period IN ('2020-05', '2020-07', '2020-09') ORDER BY period")
    assert rows == [
        ("2020-05", 6, 2, 0, 0, 0, 2, 0),   # HB overdue since 2020-03; HL past its deadline too
        ("2020-07", 6, 2, 3, 1, 0, 1, 0),   # HA, HC, HR (roster only) proposed; HN manual review
        ("2020-09", 6, 3, 1, 1, 0, 1, 1),   # HR's proposal awaits the office; HC re-flagged (P18)
    ]


def test_report_and_status_show_monitoring_as_the_office_counts_it(county):
    import re

    from povwatch.tasks.office.report import write_report
    from povwatch.tasks.office.status import status_text

    html = write_report(county.path, "2020-09").read_text(encoding="utf-8")
    section = html[html.index("监测对象与防返贫监测名单"):]
    row = re.search(r"<tr><td class=\"t\">[^<]*</td>((?:<td>[^<]*</td>){8})</tr>", section)
    # monitored, warned, proposals awaiting the office (HR), manual review (HN), cleared,
    # not identified (HB), identification overdue (HB), re-flagged (HC)
    assert re.findall(r"<td>([^<]*)</td>", row.group(1)) == ["6", "3", "1", "1", "0", "1", "1", "1"]
    unmatched = html[html.index("<h3>名单无数据</h3>"):]
    assert "2020-09/jiance/jiance.csv" in unmatched[:2000]       # named by file and row
    assert NOBODY not in html and NOBODY[6:14] not in html       # never the identity number
    county.con.close()             # status opens the warehouse read-only, as the office does
    try:
        status = status_text(county.path)
    finally:
        county.con = duckdb.connect(str(county.path))
    monitoring = status[status.index("监测对象 households under monitoring"):]
    line = next(x for x in monitoring.splitlines() if x.startswith("2020-09 "))
    # period, monitored, warned, proposed, manual review, cleared, identification overdue, re-flagged
    assert line.split() == ["2020-09", "6", "3", "1", "1", "0", "1", "1"]
