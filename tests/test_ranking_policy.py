"""Every number of the township ranking is policy: the same county scored under two policy files.

The score is base − w_open × open per N households − w_overdue × overdue per N households +
w_rate × rectification rate (docs/rules.md), each number a `ranking_*` key of the policy file.
"""
from __future__ import annotations

import pytest

from povwatch.tasks.marts import build as marts
from tests.support.marts import Fixture, add_all, good_household, idn

VILLAGE_B = "620523101201"   # a second township, so that there is something to rank
CHANGED = {"ranking_base_score": 50, "ranking_open_weight": 7, "ranking_overdue_weight": 1,
           "ranking_rate_weight": 3, "ranking_per_households": 10}


def _county(tmp_path_factory) -> Fixture:
    fx = Fixture(tmp_path_factory.mktemp("ranking") / "w.duckdb")
    try:
        add_all(fx, "2020-06",
                good_household("HA", idn("19800101", 1), pci_total=3000),    # P06 in township A
                good_household("HB", idn("19810101", 3), village=VILLAGE_B))
        fx.accept("2020-06")
    finally:
        fx.con.close()
    return fx


def _policy_county(tmp_path_factory, changes: dict):
    county = tmp_path_factory.mktemp("county")
    (county / "policy").mkdir()
    for source in [p for p in marts.POLICY_DIR.glob("*.toml") if p.stem.isdigit()]:
        text = source.read_text(encoding="utf-8")
        for key, value in changes.items():   # a year file that extends another may not say it
            for line in [l for l in text.splitlines() if l.startswith(key + " ")]:
                text = text.replace(line, f"{key} = {value}")
        (county / "policy" / source.name).write_text(text, encoding="utf-8")
    return county


def _ranking(fx: Fixture) -> list[dict]:
    import duckdb

    con = duckdb.connect(str(fx.path), read_only=True)
    try:
        cur = con.execute("SELECT * FROM mart.township_ranking ORDER BY township_code")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]
    finally:
        con.close()


def _expected(row: dict, p: dict) -> float:
    per = float(p["ranking_per_households"]) / max(row["households"], 1)
    return round(float(p["ranking_base_score"])
                 - float(p["ranking_open_weight"]) * row["open_problems"] * per
                 - float(p["ranking_overdue_weight"]) * row["overdue_problems"] * per
                 + float(p["ranking_rate_weight"]) * row["rectification_rate"], 2)


def test_the_ranking_reads_its_numbers_from_the_policy_file(tmp_path_factory, monkeypatch):
    default = _county(tmp_path_factory)
    default.build("2020-06")
    monkeypatch.setenv("POVWATCH_COUNTY", str(_policy_county(tmp_path_factory, CHANGED)))
    changed = _county(tmp_path_factory)
    changed.build("2020-06")
    policy = marts.load_policy(2020)
    assert {k: int(policy[k]) for k in CHANGED} == CHANGED
    monkeypatch.delenv("POVWATCH_COUNTY")

    before, after = _ranking(default), _ranking(changed)
    assert [r["open_problems"] for r in before] == [r["open_problems"] for r in after]
    assert any(r["open_problems"] for r in before)
    for row in before:
        assert row["score"] == pytest.approx(_expected(row, marts.load_policy(2020)))
    for row in after:
        assert row["score"] == pytest.approx(_expected(row, {**marts.load_policy(2020), **CHANGED}))
    assert [r["score"] for r in before] != [r["score"] for r in after]
