"""The demo county's official roster (`jiance`): an office that identifies warned households and
clears their risk in the national monitoring system, as offices do — mostly on time, some late, a
few never (docs/generator.md, "The roster").

From the second period on, each period's roster is a full snapshot of every household identified
by the period's end, cleared ones included:

- a household first warned is identified in the same month (most), in the next month's first
  fortnight (within the deadline), late (two or three months on), or never; about half of those
  already warned in the first period were identified before it (they entered by the roster, 名单);
- a household the marts propose for 风险消除 is cleared (帮扶消除) one or two periods later;
- one household is cleared naturally (自然消除) and stays clean; another is cleared naturally and
  warned again later (风险再标注, P18), and re-identified two periods after that warning;
- two households that were never warned are identified (one registry, one not: entered by 名单),
  and one roster row matches no household in the data (名单无数据).

The office's decisions are drawn from the generator's seed, all households at once (no loop over
rows); what the marts must find is computed by ``monitored.monitored_truth`` over the rosters as
they will be loaded.
"""
from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from povwatch.tasks.synth.monitored import (
    ROSTER_COLUMNS, MonitoringReplay, period_end, period_start, standing_rosters,
)

CATEGORY = {"not_exited_below_line": "脱贫不稳定户", "unstable_exited": "脱贫不稳定户",
            "marginal": "边缘易致贫户", "sudden_hardship": "突发严重困难户"}
RISKS = {"not_exited_below_line": "收入不达标", "unstable_exited": "收入不达标",
         "marginal": "收入不达标", "sudden_hardship": "因病、收入骤减"}
# identification after the period of the first warning (cumulative shares): same month, next
# month's first fortnight (within identification_days), two or three months late, else never
SAME, NEXT, LATE = 0.60, 0.80, 0.92
PLAN_SCHEMA = {"household_key": pl.Utf8, "category": pl.Utf8, "ident_t": pl.Int32,
               "identified_on": pl.Date, "cleared_t": pl.Int32, "cleared_on": pl.Date,
               "clear_way": pl.Utf8, "again_t": pl.Int32, "again_on": pl.Date}


class RosterOffice:
    def __init__(self, rng: np.random.Generator, periods: list[str], warnings: pl.DataFrame,
                 households: list[pl.DataFrame], risk_clear_months: int, outsider_id: str):
        self.rng, self.periods, self.households = rng, periods, households
        self.months, self.outsider_id = risk_clear_months, outsider_id
        index = {p: i for i, p in enumerate(periods)}
        self.warned = warnings.with_columns(
            pl.col("period").replace_strict(index, return_dtype=pl.Int32).alias("t"))
        self.starts = {i: period_start(p) for i, p in enumerate(periods)}
        self.lengths = {i: period_end(p).day for i, p in enumerate(periods)}

    def _day(self, t: pl.Expr, u: pl.Expr, within: int | None = None) -> pl.Expr:
        """A day of period ``t`` (of its first ``within`` days) from a uniform number ``u``."""
        span = t.replace_strict(self.lengths, default=28, return_dtype=pl.Int32)
        if within:
            span = pl.min_horizontal(span, pl.lit(within))
        start = t.replace_strict(self.starts, default=None, return_dtype=pl.Date)
        return start + pl.duration(days=(u * span).floor().cast(pl.Int32))

    # ------------------------------------------------------------------ the office's plan
    def _identification(self) -> pl.DataFrame:
        first = (self.warned.sort("t", "category").group_by("household_key", maintain_order=True)
                 .agg(pl.col("t").first().alias("t0"), pl.col("category").first()).sort("household_key"))
        u = self.rng.random((3, first.height))
        n = len(self.periods)
        f = first.with_columns(pl.Series("u0", u[0]), pl.Series("u1", u[1]), pl.Series("u2", u[2]))
        before = (pl.col("t0") == 0) & (pl.col("u0") < 0.5)
        ident_t = (pl.when(before).then(0).when(pl.col("u2") < SAME).then(pl.col("t0"))
                   .when(pl.col("u2") < NEXT).then(pl.col("t0") + 1)
                   .when(pl.col("u2") < LATE).then(pl.col("t0") + 2 + (pl.col("u1") * 2).floor().cast(pl.Int32)))
        f = f.with_columns(ident_t.cast(pl.Int32).alias("ident_t")).with_columns(
            pl.when(pl.col("ident_t") < n).then(pl.col("ident_t")).alias("ident_t"))
        day = (pl.when(before).then(pl.lit(self.starts[0]) - pl.duration(days=30 + (pl.col("u1") * 300).floor().cast(pl.Int32)))
               .when(pl.col("ident_t") == pl.col("t0")).then(self._day(pl.col("ident_t"), pl.col("u1")))
               .otherwise(self._day(pl.col("ident_t"), pl.col("u1"), within=15)))
        return f.select("household_key", "category", "ident_t",
                        pl.when(pl.col("ident_t").is_not_null()).then(day).alias("identified_on"))

    def _natural_clearances(self) -> pl.DataFrame:
        """自然消除 in the period after the first warning, of a household clean in that period:
        one warned again later (风险再标注), one never warned again."""
        n = len(self.periods)
        per = self.warned.select("household_key", "t").unique().group_by("household_key").agg(
            pl.col("t").min().alias("a"), pl.col("t").sort().alias("ts"))
        per = per.filter((pl.col("a") + 2 < n) & ~pl.col("ts").list.contains(pl.col("a") + 1)).with_columns(
            pl.col("ts").list.eval(pl.element().filter(pl.element() > pl.element().first())).list.first()
            .alias("again"))
        back = per.filter(pl.col("again").is_not_null()).sort("household_key").head(1)
        stays = per.filter(pl.col("ts").list.len() == 1).sort("household_key").head(1)
        picks = pl.concat([back, stays]).with_columns(pl.lit(0.5).alias("u"))
        return picks.select(
            "household_key", pl.col("a").cast(pl.Int32).alias("ident_t"),
            self._day(pl.col("a"), pl.lit(0.1)).alias("identified_on"),
            (pl.col("a") + 1).cast(pl.Int32).alias("cleared_t"),
            self._day(pl.col("a") + 1, pl.col("u")).alias("cleared_on"),
            pl.lit("自然消除").alias("clear_way"),
            pl.when(pl.col("again") + 2 < n).then(pl.col("again") + 2).cast(pl.Int32).alias("again_t"),
        ).with_columns(self._day(pl.col("again_t"), pl.lit(0.15)).alias("again_on"))

    def _roster_only(self) -> tuple[pl.DataFrame, pl.DataFrame]:
        """Two never-warned households identified in the second period, and one roster row that
        matches nobody in the data."""
        warned = self.warned["household_key"].unique().implode()
        hh = self.households[1].filter(~pl.col("household_key").is_in(warned) & pl.col("head_id").is_not_null()
                                       & pl.col("income_at_line")).sort("household_key")
        picks = pl.concat([hh.filter(pl.col("registry") & pl.col("has_able") & pl.col("three_plus_one")).head(1),
                           hh.filter(~pl.col("registry")).head(1)])
        day = period_start(self.periods[1]) + dt.timedelta(days=9)
        plan = picks.select("household_key",
                            pl.when(pl.col("registry")).then(pl.lit("unstable_exited"))
                            .otherwise(pl.lit("marginal")).alias("category"),
                            pl.lit(1, dtype=pl.Int32).alias("ident_t"), pl.lit(day).alias("identified_on"))
        village = self.households[1]["village_code"].drop_nulls().min()   # the frame's order is not fixed
        outsider = pl.DataFrame([{"household_id": None, "head_id_number": self.outsider_id,
                                  "village_code": village, "category": "边缘易致贫户",
                                  "identified_on": day, "risks": "因病", "risk_status": "未消除",
                                  "cleared_on": None, "clear_way": None}],
                                schema={c: (pl.Date if c.endswith("_on") else pl.Utf8) for c in ROSTER_COLUMNS})
        return plan, outsider

    def _plan(self) -> tuple[pl.DataFrame, pl.DataFrame]:
        ident = self._identification()
        natural = self._natural_clearances()
        only, outsider = self._roster_only()
        plan = pl.concat([
            ident.join(natural, on="household_key", how="anti"),
            natural.join(ident.select("household_key", "category"), on="household_key"),
            only,
        ], how="diagonal_relaxed")
        return pl.DataFrame(schema=PLAN_SCHEMA).vstack(plan.select(
            [pl.col(c).cast(t) if c in plan.columns else pl.lit(None, dtype=t).alias(c)
             for c, t in PLAN_SCHEMA.items()])), outsider

    # ------------------------------------------------------------------ the snapshots
    def snapshots(self) -> list[pl.DataFrame | None]:
        """The roster of each period as delivered (canonical, before damage); None in the first."""
        if len(self.periods) < 2:      # the roster comes from the second period on: none to plan
            return [None] * len(self.periods)
        plan, outsider = self._plan()
        replay = MonitoringReplay(self.periods, self.warned, self.months)
        delivered: list[pl.DataFrame | None] = []
        for t in range(len(self.periods)):     # periods, a handful: each step is vectorised
            delivered.append(self._snapshot(plan, t, outsider) if t >= 1 else None)
            states, _ = replay.step(t, self.households[t], standing_rosters(delivered)[-1])
            plan = self._clear_proposals(plan, t, states)
        return delivered

    def _clear_proposals(self, plan: pl.DataFrame, t: int, states: pl.DataFrame) -> pl.DataFrame:
        """帮扶消除 one or two periods after the proposal, of households on the roster by then."""
        proposed = states.filter(pl.col("status") == "proposed_clear").select("household_key")
        new = plan.join(proposed, on="household_key", how="semi").filter(
            pl.col("cleared_t").is_null() & (pl.col("ident_t") <= t)).sort("household_key")  # draws in a fixed order
        if new.is_empty():
            return plan
        u = self.rng.random((2, new.height))
        later = (t + 1 + (pl.Series(u[0]) < 0.4).cast(pl.Int32)).alias("later")
        new = new.with_columns(later, pl.Series("u", u[1])).filter(pl.col("later") < len(self.periods)).select(
            "household_key", pl.col("later").cast(pl.Int32).alias("cleared_t"),
            self._day(pl.col("later"), pl.col("u")).alias("cleared_on"),
            pl.lit("帮扶消除").alias("clear_way"))
        return plan.update(new, on="household_key", how="left")

    def _snapshot(self, plan: pl.DataFrame, t: int, outsider: pl.DataFrame) -> pl.DataFrame:
        hh = self.households[t].select("household_key", "household_id", "head_id", "village_code", "registry")
        again = pl.col("again_t").is_not_null() & (pl.col("again_t") <= t)
        cleared = (pl.col("cleared_t") <= t).fill_null(False) & ~again
        rows = plan.filter(pl.col("ident_t") <= t).join(hh, on="household_key", how="inner").select(
            pl.when(pl.col("registry")).then(pl.col("household_id")).alias("household_id"),
            pl.col("head_id").alias("head_id_number"), "village_code",
            pl.col("category").replace_strict(CATEGORY),
            pl.when(again).then(pl.col("again_on")).otherwise(pl.col("identified_on")).alias("identified_on"),
            pl.col("category").replace_strict(RISKS).alias("risks"),
            pl.when(cleared).then(pl.lit("已消除")).otherwise(pl.lit("未消除")).alias("risk_status"),
            pl.when(cleared).then(pl.col("cleared_on")).alias("cleared_on"),
            pl.when(cleared).then(pl.col("clear_way")).alias("clear_way"),
        ).filter(pl.col("head_id_number").is_not_null()).sort("head_id_number")   # joins keep no order: same seed, same bytes
        return pl.concat([rows, outsider], how="vertical_relaxed").select(ROSTER_COLUMNS)


def deliver_roster(generator, worlds, monitoring: list[pl.DataFrame], households: list[pl.DataFrame],
                   policy: dict) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The generator's hook: write each county's roster from the second period on (the jiance
    extract, rows never damaged beyond repair) and return (truth/monitored.csv, P17/P18 truth),
    computed over the rosters as they will be loaded."""
    from povwatch.tasks.synth.monitored import monitored_truth

    periods = generator.periods
    warnings = pl.concat(monitoring)
    office = RosterOffice(np.random.default_rng([generator.seed, 15]), periods, warnings, households,
                          int(policy["risk_clear_months"]), worlds[0].departed["id_number"][0])
    loaded: list[pl.DataFrame | None] = []
    for t, roster in enumerate(office.snapshots()):
        if roster is None:
            loaded.append(None)
            continue
        parts = []
        for i, w in enumerate(worlds):
            canon = roster.filter(pl.col("village_code").str.starts_with(w.county)).with_columns(
                pl.lit(0).alias("_pid"), pl.lit(0).alias("_hh"),
                pl.col("village_code").str.slice(0, 9).alias("_town"), pl.lit(True).alias("_protect"))
            rng = np.random.default_rng([generator.seed, i, t, 15, 7])
            parts.append(generator._deliver("jiance", canon, rng, periods[t], t, w))
        loaded.append(pl.concat(parts, how="vertical_relaxed"))
    return monitored_truth(periods, warnings, households, loaded, int(policy["risk_clear_months"]))


ROSTER_CODES = ("P17", "P18")   # follow the roster's timing: not planted in every period


def roster_summary(monitored: pl.DataFrame, problems: pl.DataFrame) -> str:
    """One line for the generator's summary: the last period's monitoring, the roster problems."""
    last = monitored.filter(pl.col("period") == monitored["period"].max())
    count = dict(last.group_by("status").len().iter_rows())
    roster = problems.filter(pl.col("code").is_in(ROSTER_CODES)).group_by("code").agg(
        pl.col("subject_id").n_unique())
    seen = dict(roster.iter_rows())
    under = sum(count.get(s, 0) for s in ("monitoring", "proposed_clear", "manual_review"))
    return (f"监测对象（truth/monitored.csv，{last['period'][0] if last.height else '—'}）：监测中 {under} 户"
            f"（其中建议风险消除 {count.get('proposed_clear', 0)}，需人工评估 {count.get('manual_review', 0)}），"
            f"已消除 {count.get('cleared', 0)} 户；识别不及时 P17 {seen.get('P17', 0)} 户，"
            f"风险再标注 P18 {seen.get('P18', 0)} 户")
