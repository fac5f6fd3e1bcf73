"""Unavoidable costs (刚性支出) in the demo county's income assessments (shouru).

From 2021 the assessment carries 自付教育费用 (education_out_of_pocket; before 2021 the column is
empty) and the watch line reads income after medical and schooling costs. Planted from the first
2021 period on (docs/generator.md, "Unavoidable costs"):

* households just above the watch line whose schooling costs push them under it (watched:
  刚性支出较大) — the cost is set so that income after costs is one yuan per person under the
  line, or exactly at it for one household (not watched: the line is "below");
* households with small schooling costs that leave them above the line (not watched).

Chosen by a hash of the head's identity number, so the same households carry costs every 2021
period and nothing depends on row order.
"""
from __future__ import annotations

import polars as pl

FIRST_YEAR = 2021
WATCH_LINE_CENTS = 600_000    # the 2021 watch line (warehouse/policy/2021.toml), in cents


def add_unavoidable_costs(shouru: pl.DataFrame, period: str) -> pl.DataFrame:
    """``shouru`` with education_out_of_pocket (cents): empty before 2021, planted from 2021."""
    if int(period[:4]) < FIRST_YEAR:
        return shouru.with_columns(pl.lit(None, dtype=pl.Int64).alias("education_out_of_pocket"))
    total = (pl.col("wage_income") + pl.col("business_income") - pl.col("business_cost")
             + pl.col("property_income") + pl.col("transfer_income"))
    oop = pl.col("medical_out_of_pocket").fill_null(0)
    line = pl.col("members") * WATCH_LINE_CENTS
    headroom = total - oop - line                     # above the line by this much (cents)
    pick = pl.col("head_id_number").hash(2021) % 4
    near = (headroom >= 0) & (headroom < line // 3)   # within a third of the line above it
    exact = near & (pick == 0) & (pl.col("head_id_number").hash(7) % 5 == 0)
    education = (
        pl.when(exact).then(headroom)                                  # exactly at the line
        .when(near & (pick == 0)).then(headroom + pl.col("members") * 100)   # 1 yuan/person under
        .when(near & (pick == 1)).then(headroom // 4)                  # small: stays above
    )
    return shouru.with_columns(education.cast(pl.Int64).alias("education_out_of_pocket"))
