"""The shared eight-period county (2020-09..2021-04, across a year boundary, `povwatch run`) held
against the generator's planted truth for what #17 added: the asset registers' problems
(P14–P16, delivered quarterly, 挂名 and the non-firing edges), the negative list, deaths that stay
deaths in January (P07/P07b over the calendar-year gongan snapshots) and the 2021 watch line after
unavoidable costs — every planted case found, nothing else found."""
from __future__ import annotations

import polars as pl
import pytest

ASSET_CODES = ("P14", "P15", "P16")
DEATH_CODES = ("P07", "P07b")


def _truth(loop_county, name: str) -> pl.DataFrame:
    return pl.read_csv(loop_county.truth / name, infer_schema=False)


def _mart(loop_county, sql: str) -> pl.DataFrame:
    return loop_county.con.sql(sql).pl()


def _compare(got: pl.DataFrame, truth: pl.DataFrame) -> None:
    missed = truth.join(got, on=truth.columns, how="anti")
    extra = got.join(truth, on=truth.columns, how="anti")
    assert missed.is_empty(), f"recall < 1: {missed.head(10)}"
    assert extra.is_empty(), f"precision < 1: {extra.head(10)}"


@pytest.mark.parametrize("codes", [ASSET_CODES, DEATH_CODES], ids=["assets", "deaths"])
def test_problems_match_the_planted_truth(loop_county, codes):
    assert loop_county.exit_code == 0
    truth = _truth(loop_county, "problems.csv").filter(pl.col("code").is_in(codes))
    got = _mart(loop_county, "SELECT period, code, subject_id FROM mart.problem_findings").filter(
        pl.col("code").is_in(codes))
    assert set(truth["code"]) == set(codes)          # every rule planted …
    assert truth["period"].n_unique() == 8           # … over all eight periods
    _compare(got, truth)


def test_asset_registers_come_quarterly_and_their_snapshot_stands(loop_county):
    delivered = _mart(loop_county, "SELECT period, dept FROM mart.period_deliveries "
                                   "WHERE dept IN ('cheliang', 'budongchan', 'shichang')")
    assert sorted(set(delivered["period"])) == ["2020-09", "2020-12", "2021-03"]
    # a car 注销 from the second delivery on: its P14 closes in 2020-12
    closed = _mart(loop_county, "SELECT code, closed_period FROM mart.problem_ledger "
                                "WHERE code = 'P14' AND status = 'closed'")
    assert closed.rows() and set(closed["closed_period"]) == {"2020-12"}


def test_the_negative_list_and_the_2021_watch_line_match_the_truth(loop_county):
    truth = _truth(loop_county, "monitoring.csv").filter(pl.col("category") == "marginal")
    got = _mart(loop_county, "SELECT period, household_key, category FROM mart.monitoring "
                             "WHERE category = 'marginal'")
    _compare(got, truth)
    excluded = _mart(loop_county, "SELECT DISTINCT household_key FROM mart.monitoring_exclusions")
    assert excluded.height >= 1                      # planted watched heads with a car / a flat
    costs = _mart(loop_county, "SELECT DISTINCT period FROM mart.monitoring "
                               "WHERE list_contains(reasons, '刚性支出较大')")
    assert set(costs["period"]) == {"2021-01", "2021-02", "2021-03", "2021-04"}
