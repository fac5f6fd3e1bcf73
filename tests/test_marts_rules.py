"""Each rule of rules.md pinned at its edges, on a hand-written county built for two periods:
2020-06 (school age taken on 2019-09-01) and 2020-09 (taken on 2020-09-01)."""
from __future__ import annotations

import json

import pytest

from tests.support.marts import Fixture, add_all, good_household, idn, income, person

P6, P9 = "2020-06", "2020-09"
V2 = "620523102001"     # a second township
NR_VILLAGE = "620523103001"

ID = {}


def _i(key: str, birth: str = "1980-05-05") -> str:
    if key not in ID:
        ID[key] = idn(birth)
    return ID[key]


def _world() -> dict:
    """dept -> rows, the same snapshot for both periods."""
    sets = []
    # A. income exactly at the poverty line (ok), one cent below (not ok).
    sets.append(good_household("H_LINE", _i("line"), [_i("line2")], pci_total=8000))
    sets.append(good_household("H_BELOW", _i("below"), [_i("below2")], pci_total=7999.98))
    # B. school-age edges, nobody enrolled.
    kids = {"k15": "2004-09-01", "k14": "2004-09-02", "k16": "2003-09-01",
            "k6": "2013-09-01", "k5": "2013-09-02"}
    age = good_household("H_AGE", _i("age"))
    for k, b in kids.items():
        age["fupin"].append(person("H_AGE", _i(k, b), "之子"))
        age["yibao"].append({"name": "娃", "id_number": _i(k), "year": 2020, "status": "已参保"})
    age["shouru"] = [income(_i("age"), 6, 6 * 12000, hh="H_AGE")]
    sets.append(age)
    # C. housing: C 在建 fails, C 已竣工 passes, no assessment fails.
    for hh, grade, renov in (("H_C_BUILD", "C", "在建"), ("H_C_DONE", "C", "已竣工"),
                             ("H_D_NONE", "D", None)):
        rs = good_household(hh, _i(hh), status="已脱贫")
        rs["zhujian"][0].update(grade=grade, renovation=renov)
        sets.append(rs)
    rs = good_household("H_NOASSESS", _i("noassess"))
    rs["zhujian"] = []
    sets.append(rs)
    # Q. water: guarantee exactly 90 passes, 89.9 fails, one failing flag fails, no row fails.
    for hh, rate, flag in (("H_W90", 90, True), ("H_W89", 89.9, True), ("H_WQ", 99, False)):
        rs = good_household(hh, _i(hh))
        rs["shuili"][0].update(guarantee_rate=rate, quality_ok=flag)
        sets.append(rs)
    rs = good_household("H_WNONE", _i("wnone"))
    rs["shuili"] = []
    sets.append(rs)
    # D. deaths: on the last day of June; on 1 July; assistance after / in the month of death.
    rs = good_household("H_DEATH", _i("dhead"), [_i("d0630"), _i("d0701")])
    rs["gongan"] = [
        {"id_number": _i("d0630"), "name": "甲", "cancelled_on": "2020-06-30", "reason": "死亡"},
        {"id_number": _i("d0701"), "name": "乙", "cancelled_on": "2020-07-01", "reason": "死亡"},
        {"id_number": _i("dmay"), "name": "丙", "cancelled_on": "2020-05-15", "reason": "死亡"},
        {"id_number": _i("djun"), "name": "丁", "cancelled_on": "2020-06-10", "reason": "死亡"},
        {"id_number": _i("moved"), "name": "戊", "cancelled_on": "2020-05-15", "reason": "迁出"},
    ]
    rs["minzheng"] = [
        {"name": "丙", "id_number": _i("dmay"), "assistance": "低保", "monthly_amount": 300,
         "start_month": "2019-01-01", "end_month": None, "village_code": V2},
        {"name": "丁", "id_number": _i("djun"), "assistance": "特困供养", "monthly_amount": 300,
         "start_month": "2019-01-01", "end_month": None, "village_code": V2},
        {"name": "戊", "id_number": _i("moved"), "assistance": "低保", "monthly_amount": 300,
         "start_month": "2019-01-01", "end_month": None, "village_code": V2},
    ]
    sets.append(rs)
    # E. P10: (assessed, registry) per capita, single-member households.
    for hh, assessed, registry in (("H_P10_150", 10000, 10150), ("H_P10_6PCT", 5000, 5300),
                                   ("H_P10_200", 8000, 8200), ("H_P10_FIRE", 5000, 5600),
                                   ("H_P10_10PCT", 5000, 5500)):
        rs = good_household(hh, _i(hh), pci_total=assessed)
        rs["fupin"][0]["per_capita_income"] = registry
        sets.append(rs)
    # F. P12: below the line, no labour-able member, coverage variants.
    for hh, cover in (("H_P12_NONE", None), ("H_P12_DIBAO", ("低保", None)),
                      ("H_P12_ENDED", ("低保", "2020-05-01")), ("H_P12_TEMP", ("临时救助", None))):
        rs = good_household(hh, _i(hh), [_i(hh + "2")], pci_total=6000)
        for r in rs["fupin"]:
            r["labor"] = "丧失劳动力"
        if cover:
            rs["minzheng"] = [{"name": "某", "id_number": _i(hh + "2"), "assistance": cover[0],
                               "monthly_amount": 300, "start_month": "2019-01-01",
                               "end_month": cover[1], "village_code": "620523101001"}]
        sets.append(rs)
    # G. P13: no 户主 row; declared size disagrees.
    rs = good_household("H_NOHEAD", _i("nohead"), [_i("nohead2")])
    for r in rs["fupin"]:
        r["relation"] = "配偶"
    sets.append(rs)
    rs = good_household("H_SIZE", _i("size"), [_i("size2")])
    rs["shouru"][0]["members"] = 3
    rs["shouru"][0]["wage_income"] = 36000
    sets.append(rs)
    # H. non-registry households (keyed by the head's id, matched to housing / water by it).
    nr = {"shouru": [
        income(_i("nr_rich"), 2, 40000, object_type="边缘户", village=NR_VILLAGE),
        income(_i("nr_house"), 2, 40000, object_type="低保户", village=NR_VILLAGE),
        income(_i("nr_5999"), 1, 5999, object_type="边缘户", village=NR_VILLAGE),
        income(_i("nr_6000"), 1, 6000, object_type="边缘户", village=NR_VILLAGE),
        income(_i("nr_oop5k"), 1, 40000, object_type="重病户", village=NR_VILLAGE, oop=5000),
        income(_i("nr_oop10k"), 1, 40000, object_type="重病户", village=NR_VILLAGE, oop=10000),
    ], "zhujian": [{"head_name": "某", "head_id_number": _i("nr_house"), "village_code": NR_VILLAGE,
                    "grade": "D", "assessed_on": "2019-01-01", "renovation": "未开工"}]}
    sets.append(nr)
    # I. unknown income: no shouru row.
    for hh, status in (("H_UNK", "未脱贫"), ("H_UNK_EXIT", "已脱贫")):
        rs = good_household(hh, _i(hh), status=status)
        rs["shouru"] = []
        rs["fupin"][0]["labor"] = "无劳动力"
        sets.append(rs)
    # J. sudden hardship.
    rs = good_household("H_OOP5K", _i("oop5k"), pci_total=40000)
    rs["shouru"][0]["medical_out_of_pocket"] = 5000
    sets.append(rs)
    for hh, pci in (("H_DROP30", 7000), ("H_DROP29", 7001)):
        rs = good_household(hh, _i(hh), pci_total=pci)
        rs["shouru"][0]["prev_per_capita_income"] = 10000
        sets.append(rs)
    rs = good_household("H_ZERO", _i("zero"), pci_total=0)
    rs["shouru"][0]["medical_out_of_pocket"] = 1
    sets.append(rs)
    # K. exited households: fine at 7000; below the monitoring line; a member uninsured.
    sets.append(good_household("H_EXIT_OK", _i("exit_ok"), status="已脱贫", pci_total=7000))
    sets.append(good_household("H_EXIT_5999", _i("exit_5999"), status="已脱贫", pci_total=5999))
    rs = good_household("H_EXIT_NOINS", _i("exit_noins"), [_i("noins")], status="已脱贫")
    rs["yibao"][1]["status"] = "停保"
    sets.append(rs)
    # L. P11: one person in two households.
    rs = good_household("H_DUP_A", _i("dup_a"), [_i("dup")])
    rs2 = good_household("H_DUP_B", _i("dup_b"), [_i("dup")])
    rs2["yibao"] = rs2["yibao"][:1]
    rs2["renshe"] = rs2["renshe"][:1]
    sets += [rs, rs2]
    # M. P09 and P01 with a disability; N. P08; O. P03.
    rs = good_household("H_DIS", _i("dis"), [_i("dis_l2"), _i("dis_l3ok"), _i("dis_l3no")])
    rs["fupin"].append(person("H_DIS", _i("dis_kid", "2010-03-03"), "之子"))
    rs["yibao"].append({"name": "娃", "id_number": _i("dis_kid"), "year": 2020, "status": "已参保"})
    rs["shouru"][0].update(members=5, wage_income=60000)
    rs["canlian"] = [
        {"id_number": _i("dis_l2"), "category": "肢体", "level": 2, "living_subsidy": True, "care_subsidy": False},
        {"id_number": _i("dis_l3ok"), "category": "视力", "level": 3, "living_subsidy": True, "care_subsidy": False},
        {"id_number": _i("dis_l3no"), "category": "听力", "level": 3, "living_subsidy": False, "care_subsidy": False},
        {"id_number": _i("dis_kid"), "category": "智力", "level": 1, "living_subsidy": True, "care_subsidy": True},
        {"id_number": _i("outsider"), "category": "肢体", "level": 1, "living_subsidy": False, "care_subsidy": False},
    ]
    rs["caizheng"] = [{"id_number": _i("dis_l3ok"), "name": "某", "employer": "县政府"}]
    sets.append(rs)
    rs = good_household("H_ILL", _i("ill"), [_i("ill_ok")])
    rs["fupin"][0]["health"] = "患有大病"
    rs["fupin"][1]["health"] = "长期慢性病"
    rs["weijian"] = [{"id_number": _i("ill_ok"), "contracted": True, "disease_class": "慢性病"}]
    sets.append(rs)
    # a township the divisions table does not know
    sets.append(good_household("H_UNKNOWN_TWP", _i("unknown_twp"), village="620523999001"))
    world: dict[str, list] = {}
    for s in sets:
        for d, rows in s.items():
            world.setdefault(d, []).extend(rows)
    return world


@pytest.fixture(scope="module")
def wh(tmp_path_factory):
    fx = Fixture(tmp_path_factory.mktemp("rules") / "w.duckdb")
    world = _world()
    for p in (P6, P9):
        add_all(fx, p, world)
        fx.accept(p)
    fx.build(P6)
    fx.build(P9)
    return fx


def findings(fx, period, code):
    return {r[0] for r in fx.query("SELECT subject_id FROM mart.problem_findings "
                                   "WHERE period = ? AND code = ?", [period, code])}


def categories(fx, period, key):
    return {r[0] for r in fx.query("SELECT category FROM mart.monitoring "
                                   "WHERE period = ? AND household_key = ?", [period, key])}


def status(fx, period, key):
    cur = fx.query("SELECT * FROM mart.household_status WHERE period = ? AND household_key = ?",
                   [period, key])
    cols = [r[0] for r in fx.query("SELECT column_name FROM duckdb_columns() WHERE schema_name = "
                                   "'mart' AND table_name = 'household_status' ORDER BY column_index")]
    assert len(cur) == 1, (key, cur)
    return dict(zip(cols, cur[0]))


def test_income_exactly_at_the_poverty_line_is_ok(wh):
    at, below = status(wh, P6, "H_LINE"), status(wh, P6, "H_BELOW")
    assert at["income_ok"] is True and str(at["per_capita_income"]) == "4000.00"
    assert below["income_ok"] is False
    assert "H_LINE" not in findings(wh, P6, "P06")
    assert "H_BELOW" in findings(wh, P6, "P06")
    assert categories(wh, P6, "H_LINE") == set()
    assert categories(wh, P6, "H_BELOW") == {"not_exited_below_line"}
    assert at["color"] == "red"  # below the first colour line (5000)


def test_school_age_on_first_september_of_the_school_year(wh):
    p01_jun, p01_sep = findings(wh, P6, "P01"), findings(wh, P9, "P01")
    # 2020-06: ages on 2019-09-01.  2020-09: ages on 2020-09-01.
    assert ID["k15"] in p01_jun and ID["k15"] not in p01_sep      # 15, then 16
    assert ID["k14"] in p01_jun and ID["k14"] in p01_sep          # 14, then 15
    assert ID["k16"] not in p01_jun and ID["k16"] not in p01_sep  # 16, 17
    assert ID["k6"] in p01_jun and ID["k6"] in p01_sep            # 6, 7
    assert ID["k5"] not in p01_jun and ID["k5"] in p01_sep        # 5, then 6
    assert status(wh, P6, "H_AGE")["education_ok"] is False


def test_housing_grades(wh):
    assert status(wh, P6, "H_C_BUILD")["housing_ok"] is False
    assert status(wh, P6, "H_C_DONE")["housing_ok"] is True
    assert status(wh, P6, "H_D_NONE")["housing_ok"] is False
    assert status(wh, P6, "H_NOASSESS")["housing_ok"] is False
    assert {"H_C_BUILD", "H_D_NONE", "H_NOASSESS"} <= findings(wh, P6, "P04")
    assert "H_C_DONE" not in findings(wh, P6, "P04")
    detail = wh.query("SELECT detail FROM mart.problem_findings WHERE code='P04' "
                      "AND subject_id='H_NOASSESS' AND period=?", [P6])[0][0]
    assert "未鉴定" in detail


def test_water_all_flags_and_guarantee_rate(wh):
    assert status(wh, P6, "H_W90")["water_ok"] is True
    for hh in ("H_W89", "H_WQ", "H_WNONE"):
        assert status(wh, P6, hh)["water_ok"] is False
        assert hh in findings(wh, P6, "P05")


def test_death_on_the_period_last_day(wh):
    assert ID["d0630"] in findings(wh, P6, "P07")
    assert ID["d0701"] not in findings(wh, P6, "P07")
    assert {ID["d0630"], ID["d0701"]} <= findings(wh, P9, "P07")
    # P07b: assistance active in a period after the month of death (any person, not only registry)
    assert findings(wh, P6, "P07b") == {ID["dmay"]}
    assert findings(wh, P9, "P07b") == {ID["dmay"], ID["djun"]}


def test_p10_needs_both_thresholds(wh):
    assert findings(wh, P6, "P10") & {"H_P10_150", "H_P10_6PCT", "H_P10_200", "H_P10_FIRE",
                                       "H_P10_10PCT"} == {"H_P10_FIRE"}


def test_p12_coverage(wh):
    got = findings(wh, P6, "P12")
    assert {"H_P12_NONE", "H_P12_ENDED", "H_P12_TEMP"} <= got
    assert "H_P12_DIBAO" not in got
    assert "H_UNK" not in got  # unknown income is not below the line for P12


def test_p13_no_head_and_size(wh):
    got = findings(wh, P6, "P13")
    assert {"H_NOHEAD", "H_SIZE"} <= got and "H_LINE" not in got
    # the household without a head is still a household, keyed by its household_id
    assert status(wh, P6, "H_NOHEAD")["housing_ok"] is False


def test_non_registry_missing_record_is_not_a_failure(wh):
    rich = status(wh, P6, ID["nr_rich"])
    assert rich["registry_status"] == "非建档立卡" and rich["household_id"] is None
    assert rich["housing_ok"] is None and rich["water_ok"] is None
    assert categories(wh, P6, ID["nr_rich"]) == set()
    assert categories(wh, P6, ID["nr_house"]) == {"marginal"}
    reasons = wh.query("SELECT reasons FROM mart.monitoring WHERE household_key = ? AND period = ?",
                       [ID["nr_house"], P6])[0][0]
    assert "住房安全" in reasons
    assert categories(wh, P6, ID["nr_5999"]) == {"marginal"}
    assert categories(wh, P6, ID["nr_6000"]) == set()
    # non-registry households raise no registry problems
    assert not wh.query("SELECT * FROM mart.problem_findings WHERE household_key = ?", [ID["nr_house"]])


def test_unknown_income(wh):
    unk = status(wh, P6, "H_UNK")
    assert unk["income_ok"] is None and unk["per_capita_income"] is None
    assert categories(wh, P6, "H_UNK") == {"not_exited_below_line"}
    assert categories(wh, P6, "H_UNK_EXIT") == {"unstable_exited"}
    detail = wh.query("SELECT detail FROM mart.problem_findings WHERE code='P06' "
                      "AND subject_id='H_UNK' AND period=?", [P6])[0][0]
    assert detail == "未测算"
    reasons = wh.query("SELECT reasons FROM mart.monitoring WHERE household_key='H_UNK' "
                       "AND period=?", [P6])[0][0]
    assert "未测算" in reasons
    assert "H_UNK" not in findings(wh, P6, "P10")
    assert "H_UNK" not in findings(wh, P6, "P13")


def test_sudden_hardship(wh):
    assert "sudden_hardship" in categories(wh, P6, "H_OOP5K")            # registry: 5000
    assert "sudden_hardship" not in categories(wh, P6, ID["nr_oop5k"])   # others: 10000
    assert "sudden_hardship" in categories(wh, P6, ID["nr_oop10k"])
    assert "sudden_hardship" in categories(wh, P6, "H_DROP30")           # fell by exactly 30 %
    assert "sudden_hardship" not in categories(wh, P6, "H_DROP29")
    assert "sudden_hardship" in categories(wh, P6, "H_ZERO")             # net 0, oop > 0
    reasons = wh.query("SELECT reasons FROM mart.monitoring WHERE household_key='H_DROP30' "
                       "AND category='sudden_hardship' AND period=?", [P6])[0][0]
    assert "收入骤减" in reasons


def test_exited_households(wh):
    assert categories(wh, P6, "H_EXIT_OK") == set()
    assert categories(wh, P6, "H_EXIT_5999") == {"unstable_exited"}
    assert categories(wh, P6, "H_EXIT_NOINS") == {"unstable_exited"}
    assert ID["noins"] in findings(wh, P6, "P02")
    assert status(wh, P6, "H_EXIT_NOINS")["medical_ok"] is False


def test_p11_p09_p08_p03_p01_disability(wh):
    assert ID["dup"] in findings(wh, P6, "P11")
    assert ID["dup_a"] not in findings(wh, P6, "P11")
    assert findings(wh, P6, "P09") == {ID["dis_l2"], ID["dis_l3no"]}
    assert findings(wh, P6, "P08") == {ID["dis_l3ok"]}
    assert ID["ill"] in findings(wh, P6, "P03") and ID["ill_ok"] not in findings(wh, P6, "P03")
    detail = wh.query("SELECT detail FROM mart.problem_findings WHERE code='P01' AND subject_id=? "
                      "AND period=?", [ID["dis_kid"], P6])[0][0]
    assert detail == "送教上门待核实"


def test_problem_columns_and_deadlines(wh):
    row = wh.query("SELECT responsible_dept, responsible_name, deadline, township_code "
                   "FROM mart.problem_ledger WHERE code='P04' AND subject_id='H_NOASSESS'")[0]
    assert row[0] == "zhujian" and row[1] == "住建局"
    assert str(row[2]) == "2020-08-29"  # 2020-06-30 + 60 days
    assert row[3] == "620523101"


def test_evidence_names_the_rows(wh):
    ev = json.loads(wh.query("SELECT evidence FROM mart.monitoring WHERE household_key='H_C_BUILD' "
                             "AND period=?", [P6])[0][0])
    housing = [e for e in ev if e["reason"] == "住房安全"]
    assert housing and housing[0]["dept"] == "zhujian"
    assert housing[0]["source_file"].endswith("zhujian.csv") and housing[0]["source_row"] >= 2


def test_household_plan(wh):
    plan = {(m, d) for m, d in wh.query("SELECT measure, dept_code FROM mart.household_plan "
                                        "WHERE household_key='H_C_BUILD' AND period=?", [P6])}
    assert ("危房改造", "zhujian") in plan
    dibao = wh.query("SELECT dept_code FROM mart.household_plan WHERE household_key='H_P12_NONE' "
                     "AND period=?", [P6])
    assert ("minzheng",) in dibao


def test_every_mart_column_has_a_chinese_comment(wh):
    missing = wh.query("SELECT table_name, column_name FROM duckdb_columns() WHERE schema_name='mart' "
                       "AND (comment IS NULL OR comment = '')")
    assert missing == []
    tables = wh.query("SELECT table_name FROM duckdb_tables() WHERE schema_name='mart' "
                      "AND (comment IS NULL OR comment = '')")
    assert tables == []


def test_interface_columns_in_order(wh):
    expected = {
        "household_status": "period household_key household_id county_code township_code village_code "
                            "registry_status object_type members per_capita_income education_ok "
                            "medical_ok housing_ok water_ok income_ok color",
        "monitoring": "period household_key category reasons evidence",
        "problem_ledger": "problem_key code subject_id household_key township_code village_code "
                          "responsible_dept status first_seen_period last_seen_period deadline "
                          "overdue closed_period reopen_count detail",
        "township_ranking": "period township_code township_name households open_problems "
                            "overdue_problems closed_in_period rectification_rate "
                            "monitored_households score rank bottom3_streak",
        "spot_check": "period county_code village_code household_key stratum seed",
        "household_plan": "period household_key measure department",
    }
    for table, cols in expected.items():
        got = [r[0] for r in wh.query("SELECT column_name FROM duckdb_columns() WHERE schema_name="
                                      "'mart' AND table_name=? ORDER BY column_index", [table])]
        assert got[:len(cols.split())] == cols.split(), table


def test_township_names_from_divisions_else_the_code(wh):
    names = dict(wh.query("SELECT township_code, township_name FROM mart.township_ranking "
                          "WHERE period = ?", [P6]))
    assert names["620523999"] == "620523999"
    known = wh.query("SELECT name FROM read_csv('warehouse/reference/divisions.csv', "
                     "all_varchar = true) WHERE code = '620523101'")
    if known:
        assert names["620523101"] == known[0][0]


def test_member_reasons_name_the_registry_row_and_the_missing_record(wh):
    ev = json.loads(wh.query("SELECT evidence FROM mart.monitoring WHERE household_key='H_EXIT_NOINS' "
                             "AND period=?", [P6])[0][0])
    ill = [e for e in ev if e["reason"] == "参保缺失"]
    assert {e["dept"] for e in ill} == {"fupin", "yibao"}
    fupin = [e for e in ill if e["dept"] == "fupin"][0]
    assert fupin["source_file"].endswith("fupin.csv") and fupin["period"] == P6
