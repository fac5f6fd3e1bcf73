"""The oracle of monitoring as the office defines it (docs/rules.md, "Monitoring and the official
roster"): who is under monitoring (监测对象) in each period, who is proposed for 风险消除, and the
roster problems P17 识别不及时 / P18 风险再标注 — in polars, independently of the SQL marts.

Inputs per period: the warnings (``evaluate``'s monitoring truth), the households of the period
(``evaluate``'s households frame) and the roster snapshot that stands for the period (the last
accepted ``jiance`` extract at or before it, as loaded), or None before any was accepted.

The replay walks the periods in order (a handful: a loop over periods, each step a few joins over
all households); a household's streak of clean periods is carried from one period to the next.
"""
from __future__ import annotations

import datetime as dt

import polars as pl

MONITORED_COLUMNS = ["period", "household_key", "status"]
ROSTER_COLUMNS = ["household_id", "head_id_number", "village_code", "category", "identified_on",
                  "risks", "risk_status", "cleared_on", "clear_way"]


def period_start(period: str) -> dt.date:
    y, m = map(int, period.split("-"))
    return dt.date(y, m, 1)


def period_end(period: str) -> dt.date:
    y, m = map(int, period.split("-"))
    return dt.date(y + (m == 12), m % 12 + 1, 1) - dt.timedelta(days=1)


def match_roster(roster: pl.DataFrame, households: pl.DataFrame) -> pl.DataFrame:
    """Roster rows with the household_key they match (null when none): a registry household by
    户编号, else any household whose head has the row's 户主证件号码."""
    by_id = households.filter(pl.col("registry")).select("household_id", pl.col("household_key").alias("_k1"))
    by_head = (households.filter(pl.col("head_id").is_not_null())
               .sort("household_key")
               .select(pl.col("head_id").alias("head_id_number"), pl.col("household_key").alias("_k2"))
               .unique("head_id_number", keep="first"))
    return (roster.join(by_id, on="household_id", how="left")
            .join(by_head, on="head_id_number", how="left")
            .with_columns(pl.coalesce("_k1", "_k2").alias("household_key")).drop("_k1", "_k2"))


class MonitoringReplay:
    """Period by period: ``step`` returns the period's states and its P17/P18 problems."""

    def __init__(self, periods: list[str], warnings: pl.DataFrame, risk_clear_months: int):
        self.periods = periods
        self.index = {p: i for i, p in enumerate(periods)}
        self.months = risk_clear_months
        self.warned = warnings.select("period", "household_key").unique().with_columns(
            pl.col("period").replace_strict(self.index, return_dtype=pl.Int32).alias("t"))
        self.previous = pl.DataFrame(schema={"household_key": pl.Utf8, "streak": pl.Int32})

    def step(self, t: int, households: pl.DataFrame,
             roster: pl.DataFrame | None) -> tuple[pl.DataFrame, pl.DataFrame]:
        period = self.periods[t]
        start, end = period_start(period), period_end(period)
        upto = self.warned.filter(pl.col("t") <= t).group_by("household_key").agg(
            pl.col("t").min().alias("first_t"), pl.col("t").max().alias("last_t"))
        upto = upto.with_columns(
            pl.col("last_t").replace_strict({i: period_start(p) for i, p in enumerate(self.periods)},
                                            return_dtype=pl.Date).alias("last_warned_start"))
        matched = self._matched(roster, households)
        keys = pl.concat([upto.select("household_key"), matched.select("household_key")]).unique()
        s = (keys.join(upto, on="household_key", how="left")
             .join(matched, on="household_key", how="left")
             .join(households.select("household_key", "registry", "has_able", "income_at_line",
                                     "three_plus_one"), on="household_key", how="left")
             .join(self.previous, on="household_key", how="left"))
        s = s.with_columns(
            (pl.col("last_t") == t).fill_null(False).alias("warned_now"),
            ((pl.col("risk_status") == "已消除") & (pl.col("cleared_on") <= end)
             & ~(pl.col("last_warned_start") > pl.col("cleared_on")).fill_null(False))
            .fill_null(False).alias("cleared"),
        ).with_columns(
            (~pl.col("cleared")).alias("under"),
        ).with_columns(
            (pl.col("under") & ~pl.col("warned_now") & pl.col("income_at_line").fill_null(False))
            .alias("clean_now"),
        ).with_columns(
            pl.when(pl.col("clean_now")).then(pl.col("streak").fill_null(0) + 1).otherwise(0)
            .cast(pl.Int32).alias("streak"),
        ).with_columns(
            (pl.col("under") & (pl.col("streak") >= self.months)
             & (pl.col("three_plus_one").fill_null(False) | ~pl.col("registry").fill_null(True)))
            .alias("eligible"),
        ).with_columns(
            pl.when(pl.col("cleared")).then(pl.lit("cleared"))
            .when(pl.col("eligible") & pl.col("has_able").fill_null(False)).then(pl.lit("proposed_clear"))
            .when(pl.col("eligible")).then(pl.lit("manual_review"))
            .otherwise(pl.lit("monitoring")).alias("status"),
        )
        self.previous = s.select("household_key", "streak")
        states = s.select(pl.lit(period).alias("period"), "household_key", "status")
        problems = self._problems(s, roster is not None, start, period)
        return states.sort("household_key"), problems

    @staticmethod
    def _matched(roster: pl.DataFrame | None, households: pl.DataFrame) -> pl.DataFrame:
        if roster is None:
            return pl.DataFrame(schema={"household_key": pl.Utf8, "risk_status": pl.Utf8,
                                        "cleared_on": pl.Date, "on_roster": pl.Boolean})
        return (match_roster(roster, households).filter(pl.col("household_key").is_not_null())
                .unique("household_key", keep="first")
                .select("household_key", "risk_status", "cleared_on", pl.lit(True).alias("on_roster")))

    @staticmethod
    def _problems(s: pl.DataFrame, roster_accepted: bool, start: dt.date, period: str) -> pl.DataFrame:
        if not roster_accepted:
            return pl.DataFrame(schema={"period": pl.Utf8, "code": pl.Utf8, "subject_id": pl.Utf8})
        p17 = s.filter(pl.col("warned_now") & pl.col("on_roster").is_null())
        p18 = s.filter(pl.col("warned_now") & (pl.col("risk_status") == "已消除") & (pl.col("cleared_on") < start))
        return pl.concat([
            p17.select(pl.lit(period).alias("period"), pl.lit("P17").alias("code"), pl.col("household_key").alias("subject_id")),
            p18.select(pl.lit(period).alias("period"), pl.lit("P18").alias("code"), pl.col("household_key").alias("subject_id")),
        ])


def standing_rosters(delivered: list[pl.DataFrame | None]) -> list[pl.DataFrame | None]:
    """The roster that stands for each period: the last accepted snapshot at or before it."""
    out, last = [], None
    for roster in delivered:
        last = roster if roster is not None else last
        out.append(last)
    return out


def monitored_truth(periods: list[str], warnings: pl.DataFrame, households: list[pl.DataFrame],
                    delivered: list[pl.DataFrame | None], risk_clear_months: int
                    ) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(truth/monitored.csv, the P17/P18 rows of truth/problems.csv) over every period."""
    replay = MonitoringReplay(periods, warnings, risk_clear_months)
    states, problems = [], []
    for t, roster in enumerate(standing_rosters(delivered)):
        s, p = replay.step(t, households[t], roster)
        states.append(s)
        problems.append(p)
    return (pl.concat(states).sort(MONITORED_COLUMNS),
            pl.concat(problems).sort("period", "code", "subject_id"))
