"""The readings of rules.md an audit found the marts violating, each pinned on a small hand-built
county (the pattern of test_marts_rules.py): colour lines include their upper bound; deaths stay
deaths once reported; a medical-insurance gap is 参保缺失; an unmatched 建档立卡户 income row is
a non-registry household; ranking ties and the bottom three."""
from __future__ import annotations

import json

import pytest

from tests.support.marts import Fixture, add_all, good_household, idn, income, person

DEC, JAN = "2020-12", "2021-01"
ID: dict[str, str] = {}


def _i(key: str, birth: str = "1980-05-05") -> str:
    if key not in ID:
        ID[key] = idn(birth)
    return ID[key]


def _snapshot(year: int) -> list[dict]:
    sets = []
    # colour: per-capita income exactly 10000 (yellow), exactly 5000 (yellow), 10000.01 (green)
    sets.append(good_household("H_Y10000", _i("y10000"), [_i("y10000b")], period_year=year,
                               pci_total=20000))
    sets.append(good_household("H_Y5000", _i("y5000"), [_i("y5000b")], period_year=year,
                               pci_total=10000))
    sets.append(good_household("H_G", _i("g"), [_i("gb")], period_year=year, pci_total=20000.02))
    # a member without medical insurance in an exited household: 参保缺失, measure 参保动员
    gap = good_household("H_GAP", _i("gap"), [_i("gap2")], period_year=year, status="已脱贫")
    gap["yibao"] = [r for r in gap["yibao"] if r["id_number"] != _i("gap2")]
    sets.append(gap)
    # a registry member who died in December, still in the registry in January, on 低保
    dead = good_household("H_DEAD", _i("dhead"), [_i("dead", "1940-01-01")], period_year=year)
    dead["minzheng"] = [{"name": "甲", "id_number": _i("dead"), "assistance": "低保",
                         "monthly_amount": 300, "start_month": "2019-01-01", "end_month": None,
                         "village_code": "620523101001"}]
    sets.append(dead)
    return sets


@pytest.fixture(scope="module")
def wh(tmp_path_factory):
    fx = Fixture(tmp_path_factory.mktemp("readings") / "w.duckdb")
    for period, year in ((DEC, 2020), (JAN, 2021)):
        add_all(fx, period, *_snapshot(year))
        # a shouru row typed 建档立卡户 whose household_id is in no registry: below the watch line
        fx.add("shouru", period, [income(_i("stray"), 2, 6000, hh="H_NOT_IN_REGISTRY")])
    # gongan: December lists the death; January's snapshot (the new calendar year) does not
    fx.add("gongan", DEC, [{"id_number": _i("dead"), "name": "甲", "cancelled_on": "2020-12-10",
                            "reason": "死亡"}])
    fx.add("gongan", JAN, [{"id_number": _i("moved"), "name": "乙", "cancelled_on": "2021-01-05",
                            "reason": "迁出"}])
    for period in (DEC, JAN):
        fx.accept(period)
        fx.build(period)
    return fx


def _colour(fx, key, period=JAN):
    return fx.query("SELECT color FROM mart.household_status WHERE period = ? AND household_key = ?",
                    [period, key])[0][0]


def test_colour_lines_include_their_upper_bound(wh):
    assert _colour(wh, "H_Y10000") == "yellow"    # exactly 10000 per person
    assert _colour(wh, "H_Y5000") == "yellow"     # exactly 5000: not red
    assert _colour(wh, "H_G") == "green"          # 10000.01


def test_a_december_death_is_still_a_death_in_january(wh):
    for period in (DEC, JAN):
        codes = {c for (c,) in wh.query(
            "SELECT code FROM mart.problem_findings WHERE period = ? AND subject_id = ?",
            [period, _i("dead")])}
        assert "P07" in codes, period
    # the 低保 still paid in January, the month after the death
    assert wh.query("SELECT count(*) FROM mart.problem_findings WHERE period = ? AND code = 'P07b' "
                    "AND subject_id = ?", [JAN, _i("dead")])[0][0] == 1
    # and the ledger keeps it open (not closed by the January snapshot's silence)
    status = wh.query("SELECT status FROM mart.ledger_as_of(?) WHERE code = 'P07' AND subject_id = ?",
                      [JAN, _i("dead")])
    assert status == [("open",)]


def test_a_medical_insurance_gap_is_canbao_queshi_not_yinbing(wh):
    reasons = wh.query("SELECT reasons FROM mart.monitoring WHERE period = ? AND household_key = 'H_GAP'",
                       [JAN])[0][0]
    assert "参保缺失" in reasons and "因病" not in reasons
    plan = wh.query("SELECT measure, dept_code, reason FROM mart.household_plan "
                    "WHERE period = ? AND household_key = 'H_GAP'", [JAN])
    assert ("参保动员", "yibao", "参保缺失") in plan
    assert not [m for m in plan if m[2] == "因病"]


def test_a_registry_typed_income_row_outside_the_registry_is_a_non_registry_household(wh):
    row = wh.query("SELECT household_id, registry_status, object_type, monitored "
                   "FROM mart.household_status WHERE period = ? AND household_key = ?",
                   [JAN, _i("stray")])
    assert row == [(None, "非建档立卡", "建档立卡户", True)]
    cats = wh.query("SELECT category FROM mart.monitoring WHERE period = ? AND household_key = ?",
                    [JAN, _i("stray")])
    assert cats == [("marginal",)]   # 3000 per person: under the watch line


# --------------------------------------------------------------------------------- ranking

def _township_world(fx: Fixture, period: str, townships: list[str], failing: dict[str, int]) -> None:
    """One good registry household per township; ``failing[t]`` households without water there."""
    sets = []
    for t in townships:
        village = t + "001"
        sets.append(good_household(f"H_{t}", _i(f"ok{t}"), village=village))
        for k in range(failing.get(t, 0)):
            rs = good_household(f"H_{t}_{k}", _i(f"w{t}{k}"), village=village)
            rs["shuili"] = []
            sets.append(rs)
    add_all(fx, period, *sets)
    fx.accept(period)


def test_ranking_ties_are_broken_by_township_code_and_every_rank_is_distinct(tmp_path):
    fx = Fixture(tmp_path / "r.duckdb")
    towns = ["620523104", "620523102", "620523103", "620523101", "620523105"]
    # 101 and 102 tie (nothing open), 103 and 104 tie (one problem each), 105 worst
    _township_world(fx, "2020-06", towns, {"620523103": 1, "620523104": 1, "620523105": 3})
    fx.build("2020-06")
    ranks = fx.query("SELECT township_code, rank, bottom3_streak FROM mart.township_ranking "
                     "WHERE period = '2020-06' ORDER BY rank")
    assert [r[0] for r in ranks] == ["620523101", "620523102", "620523103", "620523104", "620523105"]
    assert [r[1] for r in ranks] == [1, 2, 3, 4, 5]
    assert [r[2] for r in ranks] == [0, 0, 1, 1, 1]


def test_a_county_of_three_townships_has_no_bottom_three(tmp_path):
    fx = Fixture(tmp_path / "r3.duckdb")
    _township_world(fx, "2020-06", ["620523101", "620523102", "620523103"], {"620523103": 2})
    fx.build("2020-06")
    rows = fx.query("SELECT rank, bottom3_streak FROM mart.township_ranking WHERE period = '2020-06' "
                    "ORDER BY rank")
    assert [r[0] for r in rows] == [1, 2, 3]
    assert all(streak == 0 for _, streak in rows)


# --------------------------------------------------------------------------------- resubmission

def test_a_resubmission_keeps_what_was_recorded_as_withdrawn(tmp_path):
    """June is built with a household lacking its water record (P05 opened); the water bureau
    resubmits June with the record: the replay no longer finds P05, and the opening the office saw
    stays visible as withdrawn, with the run that withdrew it."""
    fx = Fixture(tmp_path / "resub.duckdb")
    rs = good_household("H_RESUB", _i("resub"))
    water = rs.pop("shuili")
    add_all(fx, "2020-06", rs)
    fx.accept("2020-06")
    fx.build("2020-06", run_id="run-first")
    opened = fx.query("SELECT problem_key FROM mart.problem_events WHERE code = 'P05' AND event = 'opened'")
    assert len(opened) == 1
    fx.add("shuili", "2020-06", water)                       # the resubmitted snapshot
    fx.build("2020-06", run_id="run-resubmission")
    assert fx.query("SELECT count(*) FROM mart.problem_events WHERE code = 'P05'") == [(0,)]
    withdrawn = fx.query("SELECT period, problem_key, event, withdrawn_run "
                         "FROM mart.problem_events_withdrawn WHERE code = 'P05'")
    assert withdrawn == [("2020-06", opened[0][0], "opened", "run-resubmission")]
    fx.build("2020-06", run_id="run-again")                   # a rebuild withdraws nothing more
    assert fx.query("SELECT count(*) FROM mart.problem_events_withdrawn") == [(1,)]


def test_an_unmatched_registry_typed_income_row_is_a_validation_warning(tmp_path):
    """Reported by a validation warning, not quarantined: the row is still assessed."""
    from povwatch.tasks.core import db
    from povwatch.tasks.validate.suites import validate_extract
    from tests.test_validate import insert, make_id, village

    path = tmp_path / "v.duckdb"
    con = db.open_warehouse(path)
    try:
        insert(con, "fupin", "2021-01", [
            {"household_id": "H1", "name": "甲", "id_number": make_id(1), "relation": "户主",
             "village_code": village(1), "household_type": "一般贫困户", "poverty_status": "未脱贫"}],
            table="staging")
        shouru = [{"household_id": hh, "head_id_number": make_id(i), "object_type": "建档立卡户",
                   "members": "2", "wage_income": "9000", "business_income": "0", "business_cost": "0",
                   "property_income": "0", "transfer_income": "0", "assessed_on": "2020-12-01",
                   "village_code": village(i)} for i, hh in ((1, "H1"), (2, "H_NOT_IN_REGISTRY"))]
        insert(con, "shouru", "2021-01", shouru)
        outcome = validate_extract(path, "2021-01", "shouru", "run-warn")
        assert [f["expectation"] for f in outcome.failures] == ["registry_household_in_registry"]
        details = con.execute("SELECT details FROM audit.validations WHERE dept = 'shouru' "
                              "AND expectation = 'registry_household_in_registry'").fetchone()[0]
        assert json.loads(details)["result"]["observed_value"] == 1   # H1 is in the registry
        assert not outcome.blocking_failed and outcome.quarantined_rows == 0
    finally:
        con.close()
