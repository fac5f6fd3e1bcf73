"""Monitoring and the official roster held against the generator's planted truth, over the shared
eight-period county (tests/conftest.py: loop_county, 2020-09..2021-04, across a year boundary):
every planted case found, nothing else found (recall and precision 1.0)."""
from __future__ import annotations

import polars as pl
import pytest


def _truth(loop_county, name: str) -> pl.DataFrame:
    return pl.read_csv(loop_county.truth / name, infer_schema_length=0)


def _mart(loop_county, sql: str) -> pl.DataFrame:
    return loop_county.con.sql(sql).pl()


def _same(found: pl.DataFrame, planted: pl.DataFrame) -> None:
    keys = planted.columns
    missing = planted.join(found.select(keys), on=keys, how="anti")
    extra = found.select(keys).join(planted, on=keys, how="anti")
    assert missing.is_empty(), f"planted but not found:\n{missing}"
    assert extra.is_empty(), f"found but not planted:\n{extra}"


def test_the_run_accepted_the_roster(loop_county):
    assert loop_county.exit_code == 0
    accepted = loop_county.con.execute(
        "SELECT DISTINCT period FROM audit.extracts WHERE dept = 'jiance' AND status = 'accepted' "
        "ORDER BY period").fetchall()
    assert [p for (p,) in accepted] == ["2020-10", "2020-11", "2020-12", "2021-01", "2021-02",
                                        "2021-03", "2021-04"]   # from the second period on


def test_monitoring_status_per_period_is_the_planted_one(loop_county):
    planted = _truth(loop_county, "monitored.csv")
    assert set(planted["status"]) >= {"monitoring", "proposed_clear", "manual_review", "cleared"}
    _same(_mart(loop_county, "SELECT period, household_key, status FROM mart.monitoring_states"),
          planted)


def test_household_status_monitored_is_under_monitoring(loop_county):
    planted = _truth(loop_county, "monitored.csv").filter(pl.col("status") != "cleared")
    found = _mart(loop_county, "SELECT period, household_key FROM mart.household_status WHERE monitored")
    # a household under monitoring is counted where the period's data has it
    in_data = _mart(loop_county, "SELECT period, household_key FROM mart.household_status")
    _same(found, planted.select("period", "household_key").join(in_data, on=["period", "household_key"]))


def test_warnings_are_the_planted_ones(loop_county):
    _same(_mart(loop_county, "SELECT period, household_key, category FROM mart.monitoring"),
          _truth(loop_county, "monitoring.csv"))


def test_problems_including_p17_p18_are_the_planted_ones(loop_county):
    planted = _truth(loop_county, "problems.csv")
    assert {"P17", "P18"} <= set(planted["code"])
    _same(_mart(loop_county, "SELECT period, code, subject_id FROM mart.problem_findings"), planted)


@pytest.mark.parametrize("event", ["entered", "proposed_clear", "cleared", "reflagged_after_clear"])
def test_the_demo_shows_each_transition(loop_county, event):
    assert loop_county.con.execute("SELECT count(*) FROM mart.monitoring_events WHERE event = ?",
                                   [event]).fetchall()[0][0] > 0


def test_the_roster_row_of_nobody_is_listed(loop_county):
    rows = loop_county.con.execute(
        "SELECT count(DISTINCT head_id_number) FROM mart.roster_unmatched").fetchall()[0][0]
    assert rows == 1
