"""P14–P16 and the negative list (负面清单) at their edges, on a hand-built county: what counts as a
car, a town flat or a company, capital exactly at the line, and a non-registry household kept out
of ``marginal`` by an asset, with the exclusion recorded and sudden hardship still applying."""
from __future__ import annotations

import json

import pytest

from tests.support.marts import Fixture, add_all, good_household, idn, income

P = "2020-09"
ID: dict[str, str] = {}


def _i(key: str, birth: str = "1980-05-05") -> str:
    if key not in ID:
        ID[key] = idn(birth)
    return ID[key]


def _car(owner, plate, vtype="小型载客汽车", use="非营运", status="正常"):
    return {"id_number": _i(owner), "plate": plate, "vehicle_type": vtype, "use": use,
            "registered_on": "2015-01-01", "status": status}


def _home(owner, location="城镇", usage="住宅", kind="商品房"):
    return {"id_number": _i(owner), "location_type": location, "usage": usage, "kind": kind,
            "area_m2": 89.5, "registered_on": "2016-01-01"}


def _firm(owner, capital, status="存续", role="法定代表人"):
    return {"id_number": _i(owner), "company": f"{owner}商贸有限公司", "role": role,
            "registered_capital": capital, "status": status, "founded_on": "2017-01-01"}


CARS = {"car": {}, "seized": {"status": "查封", "vtype": "微型载客汽车"},
        "taxi": {"use": "营运"}, "scrapped": {"status": "报废"}, "cancelled": {"status": "注销"},
        "truck": {"vtype": "轻型货车", "use": "货运"}, "tractor": {"vtype": "拖拉机"},
        "bus": {"vtype": "中型载客汽车"}}
HOMES = {"flat": {}, "rural": {"location": "农村", "kind": "自建房"},
         "townbuilt": {"kind": "自建房"}, "shop": {"usage": "商业"}}
FIRMS = {"rich": (800000, "存续"), "atline": (500000, "在业"), "under": (499999.99, "存续"),
         "closed": (2000000, "注销"), "revoked": (1000000, "吊销")}


@pytest.fixture(scope="module")
def wh(tmp_path_factory):
    fx = Fixture(tmp_path_factory.mktemp("assets") / "w.duckdb")
    owners = [*CARS, *HOMES, *FIRMS]
    add_all(fx, P, *[good_household(f"H_{o}", _i(o)) for o in owners])
    # non-registry households: under the watch line, heads own a car / a 营运 car / nothing;
    # one with a car also has a sudden medical expense
    for key, total, oop in (("nr_car", 8000, None), ("nr_taxi", 8000, None), ("nr_none", 8000, None),
                            ("nr_car_ill", 8000, 20000)):
        fx.add("shouru", P, [income(_i(key), 2, total, object_type="边缘户", oop=oop)])
    fx.add("cheliang", P, [_car(o, f"甘J{n:05d}", **kw) for n, (o, kw) in enumerate(CARS.items())]
           + [_car("nr_car", "甘J90001"), _car("nr_taxi", "甘J90002", use="营运"),
              _car("nr_car_ill", "甘J90003")])
    fx.add("budongchan", P, [_home(o, **kw) for o, kw in HOMES.items()])
    fx.add("shichang", P, [_firm(o, c, s) for o, (c, s) in FIRMS.items()])
    fx.accept(P, depts=("fupin", "shouru", "jiaoyu", "zhujian", "minzheng", "yibao", "weijian",
                        "shuili", "canlian", "renshe", "gongan", "caizheng", "cheliang",
                        "budongchan", "shichang"))
    fx.build(P)
    return fx


def _found(fx, code):
    return {s for (s,) in fx.query("SELECT subject_id FROM mart.problem_findings "
                                   "WHERE period = ? AND code = ?", [P, code])}


def test_p14_a_non_operating_passenger_car_still_owned(wh):
    assert _found(wh, "P14") == {_i("car"), _i("seized")}


def test_p15_a_commercial_town_dwelling(wh):
    assert _found(wh, "P15") == {_i("flat")}


def test_p16_an_active_company_with_capital_at_or_above_the_line(wh):
    assert _found(wh, "P16") == {_i("rich"), _i("atline")}


def test_asset_problems_are_in_the_ledger_with_the_plate_masked(wh):
    rows = wh.query("SELECT code, responsible_dept, detail, status FROM mart.ledger_as_of(?) "
                    "WHERE code IN ('P14', 'P15', 'P16') ORDER BY code, subject_id", [P])
    assert {r[0] for r in rows} == {"P14", "P15", "P16"}
    assert all(r[1] == "fupin" and r[3] == "open" for r in rows)
    assert not any("甘J0000" in r[2] for r in rows)   # 甘J00000 → 甘J***00
    assert any("甘J***" in r[2] for r in rows if r[0] == "P14")


def test_negative_list_keeps_asset_owners_out_of_marginal_and_says_why(wh):
    cats = {(k, c) for k, c in wh.query("SELECT household_key, category FROM mart.monitoring "
                                        "WHERE period = ?", [P])}
    assert (_i("nr_car"), "marginal") not in cats
    assert (_i("nr_taxi"), "marginal") in cats       # a 营运 car counts for nothing
    assert (_i("nr_none"), "marginal") in cats
    assert (_i("nr_car_ill"), "sudden_hardship") in cats   # hardship still applies
    assert (_i("nr_car_ill"), "marginal") not in cats
    excl = wh.query("SELECT household_key, asset, evidence FROM mart.monitoring_exclusions "
                    "WHERE period = ? ORDER BY household_key", [P])
    assert {(k, a) for k, a, _ in excl} == {(_i("nr_car"), "car"), (_i("nr_car_ill"), "car")}
    evidence = json.loads(excl[0][2])
    assert evidence[0]["dept"] == "cheliang" and evidence[0]["source_row"] is not None
