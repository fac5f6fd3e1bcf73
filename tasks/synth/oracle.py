"""An independent implementation of rules.md in polars: the oracle the SQL marts are held against.

It reads the generator's canonical frames *as they will be loaded* (quarantined rows removed,
duplicate rows loaded once) for one period and returns the monitoring categories and the problems
of that period. Money is compared in integer cents and ratios as exact fractions, so the edges the
demo plants on purpose (income exactly 4000.00, out-of-pocket exactly 5000.00) fall the way the
rules say ("≥"), with no floating-point luck.

Readings taken where rules.md leaves room are listed in docs/generator.md.
"""
from __future__ import annotations

import datetime as dt
import tomllib
from fractions import Fraction

import polars as pl

from povwatch.tasks.core.rules import rule_codes
from povwatch.tasks.core.settings import load_settings
from povwatch.tasks.synth.assets import asset_problems, empty_frame, excluded_heads

ABLE = ["普通劳动力", "技能劳动力"]
ENROLLED = ["在读", "送教上门"]
ILL = ["患有大病", "长期慢性病"]

DEFAULT_POLICY = {
    "poverty_line": 4000, "monitoring_line": 6000, "income_drop_ratio": 0.30,
    "medical_burden_ratio": 0.50, "school_age_min": 6, "school_age_max": 15,
    "water_guarantee_min": 90, "medical_alert_amount_registry": 5000,
    "medical_alert_amount_other": 10000, "risk_clear_months": 6, "color_red_below": 5000,
    "color_yellow_below": 10000, "income_mismatch_ratio": 0.10, "income_mismatch_yuan": 200,
    "deduct_unavoidable_costs": False, "enterprise_capital_line": 500000,
}
MONITORING_COLUMNS = ["period", "household_key", "category"]
PROBLEM_COLUMNS = ["period", "code", "subject_id"]


def load_policy(year: int) -> dict:
    """warehouse/policy/<year>.toml, else the latest earlier year's file, else the rules.md defaults."""
    policy = dict(DEFAULT_POLICY)
    policy_dir = load_settings().policy_dir   # the county folder's files when it has them, as the marts
    files = sorted((int(p.stem), p) for p in policy_dir.glob("*.toml") if p.stem.isdigit()) if policy_dir.exists() else []
    chosen = [p for y, p in files if y <= year] or [p for _, p in files[:1]]
    if chosen:
        raw = tomllib.loads(chosen[-1].read_text(encoding="utf-8"))
        if "extends" in raw:   # a year file says only what changed (2021.toml: extends = 2020)
            base = tomllib.loads((chosen[-1].parent / f"{raw['extends']}.toml").read_text(encoding="utf-8"))
            raw = {**base, **raw}
        policy.update({k: v for k, v in raw.items() if k in DEFAULT_POLICY})
    return policy


def _frac(x) -> Fraction:
    return Fraction(str(x))


def _period_bounds(period: str) -> tuple[dt.date, dt.date, dt.date]:
    y, m = map(int, period.split("-"))
    start = dt.date(y, m, 1)
    end = (dt.date(y + (m == 12), m % 12 + 1, 1) - dt.timedelta(days=1))
    school = dt.date(y if m >= 9 else y - 1, 9, 1)
    return start, end, school


def _age_on(id_number: pl.Expr, on: dt.date) -> pl.Expr:
    by = id_number.str.slice(6, 4).cast(pl.Int32)
    md = id_number.str.slice(10, 4).cast(pl.Int32)
    return pl.lit(on.year) - by - (md > on.month * 100 + on.day).cast(pl.Int32)


def evaluate(frames: dict[str, pl.DataFrame], period: str, policy: dict) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(monitoring, problems, households) of one period from the as-loaded canonical frames.

    ``households`` (household_key, registry, has_able) serves the 风险消除 truth.
    """
    start, end, school_day = _period_bounds(period)
    F = frames["fupin"]
    S = frames["shouru"]
    J, Y, W = frames["jiaoyu"], frames["yibao"], frames["weijian"]
    Z, WA = frames["zhujian"], frames["shuili"]
    M, C, G, CZ = frames["minzheng"], frames["canlian"], frames["gongan"], frames["caizheng"]
    line, mline = policy["poverty_line"] * 100, policy["monitoring_line"] * 100
    drop, burden = _frac(policy["income_drop_ratio"]), _frac(policy["medical_burden_ratio"])
    mis_r, mis_y = _frac(policy["income_mismatch_ratio"]), policy["income_mismatch_yuan"] * 100

    # ---------------- registry households ----------------
    members = F.select("household_id", "id_number", "relation", "poverty_status", "health", "labor",
                       "per_capita_income").filter(pl.col("id_number").is_not_null())
    heads = members.filter(pl.col("relation") == "户主").group_by("household_id").agg(
        pl.col("id_number").first().alias("head_id"), pl.col("per_capita_income").first().alias("reg_pci"))
    RH = members.group_by("household_id").agg(
        pl.col("poverty_status").first().alias("status"),
        pl.col("id_number").n_unique().alias("n_ids"),
        pl.col("labor").is_in(ABLE).any().alias("has_able"),
    ).join(heads, on="household_id", how="left")

    # ---------------- incomes (shouru) ----------------
    if "education_out_of_pocket" not in S.columns:
        S = S.with_columns(pl.lit(None, dtype=pl.Int64).alias("education_out_of_pocket"))
    S = S.with_columns(
        (pl.col("wage_income") + pl.col("business_income") - pl.col("business_cost")
         + pl.col("property_income") + pl.col("transfer_income")).alias("total"),
        pl.col("medical_out_of_pocket").fill_null(0).alias("oop"),
        pl.coalesce("household_id", "head_id_number").alias("household_key"),
        # registry = matched to a registry household (a row typed 建档立卡户 whose household_id
        # is not in the registry is assessed as a non-registry household)
        pl.col("household_id").is_in(F["household_id"].unique().implode()).fill_null(False).alias("is_reg_type"),
    ).with_columns(
        (pl.col("total") >= pl.col("members") * line).alias("income_ok"),
        # the watch line reads income after unavoidable costs in years that deduct them
        (pl.col("total") - (pl.col("oop") + pl.col("education_out_of_pocket").fill_null(0)
                            if policy["deduct_unavoidable_costs"] else 0)
         < pl.col("members") * mline).alias("below_m"),
        (pl.col("prev_per_capita_income").is_not_null() & (pl.col("prev_per_capita_income") > 0)
         & (pl.col("total") * drop.denominator
            <= (drop.denominator - drop.numerator) * pl.col("prev_per_capita_income") * pl.col("members"))
         ).alias("income_drop"),
        (((pl.col("total") > 0) & (pl.col("oop") * burden.denominator >= burden.numerator * pl.col("total")))
         | ((pl.col("total") <= 0) & (pl.col("oop") > 0))
         | (pl.col("oop") >= pl.when(pl.col("is_reg_type"))
            .then(policy["medical_alert_amount_registry"] * 100)
            .otherwise(policy["medical_alert_amount_other"] * 100))).alias("medical"),
    )
    S_reg = S.filter(pl.col("household_id").is_not_null()).unique("household_id", keep="first")

    RH = RH.join(S_reg.select("household_id", "total", "members", "income_ok", "below_m"),
                 on="household_id", how="left").with_columns(pl.col("total").is_null().alias("unknown"))

    # ---------------- 3 + 1 ----------------
    amin, amax = policy["school_age_min"], policy["school_age_max"]
    person = members.unique(["household_id", "id_number"]).with_columns(
        _age_on(pl.col("id_number"), school_day).alias("school_age"))
    enrolled = J.filter(pl.col("status").is_in(ENROLLED)).select("id_number").unique()
    kids = person.filter(pl.col("school_age").is_between(amin, amax))
    p01 = kids.join(enrolled, on="id_number", how="anti")
    insured = Y.filter((pl.col("year") == start.year) & (pl.col("status") == "已参保")).select("id_number").unique()
    p02 = person.join(insured, on="id_number", how="anti")
    contracted = W.filter(pl.col("contracted") == True).select("id_number").unique()  # noqa: E712
    p03 = person.filter(pl.col("health").is_in(ILL)).join(contracted, on="id_number", how="anti")

    house_ok = Z.select(
        pl.col("head_id_number").alias("head_id"),
        (pl.col("grade").is_in(["A", "B"]) | (pl.col("grade").is_in(["C", "D"]) & (pl.col("renovation") == "已竣工")))
        .alias("h_ok")).group_by("head_id").agg(pl.col("h_ok").all())
    water_ok = WA.select(
        pl.col("head_id_number").alias("head_id"),
        (pl.col("quantity_ok") & pl.col("quality_ok") & pl.col("convenience_ok")
         & (pl.col("guarantee_rate") >= policy["water_guarantee_min"])).alias("w_ok")
    ).group_by("head_id").agg(pl.col("w_ok").all())

    RH = RH.join(house_ok, on="head_id", how="left").join(water_ok, on="head_id", how="left").with_columns(
        pl.col("household_id").is_in(p01["household_id"].implode()).not_().alias("education_ok"),
        pl.col("household_id").is_in(p02["household_id"].implode()).not_().alias("medical_ok"),
        pl.col("h_ok").fill_null(False).alias("housing_ok"),
        pl.col("w_ok").fill_null(False).alias("water_ok"),
        pl.col("income_ok").fill_null(False),
        pl.col("below_m").fill_null(True),
    )

    # ---------------- monitoring ----------------
    cats = []
    cats.append(RH.filter((pl.col("status") == "未脱贫") & ~pl.col("income_ok"))
                .select(pl.col("household_id").alias("household_key"), pl.lit("not_exited_below_line").alias("category")))
    cats.append(RH.filter((pl.col("status") == "已脱贫") & (
        pl.col("below_m") | ~pl.col("education_ok") | ~pl.col("medical_ok") | ~pl.col("housing_ok")
        | ~pl.col("water_ok") | ~pl.col("income_ok")))
        .select(pl.col("household_id").alias("household_key"), pl.lit("unstable_exited").alias("category")))
    nonreg = S.filter(~pl.col("is_reg_type")).join(
        house_ok.rename({"head_id": "head_id_number"}), on="head_id_number", how="left").join(
        water_ok.rename({"head_id": "head_id_number"}), on="head_id_number", how="left")
    cats.append(nonreg.filter(pl.col("below_m") | (pl.col("h_ok") == False) | (pl.col("w_ok") == False))  # noqa: E712
                .select("household_key", pl.lit("marginal").alias("category")))
    cats.append(S.filter(pl.col("income_drop") | pl.col("medical")).select("household_key", pl.lit("sudden_hardship").alias("category")))
    monitoring = pl.concat(cats).unique().with_columns(pl.lit(period).alias("period")).select(MONITORING_COLUMNS)
    # the negative list: a non-registry household whose head owns a counted asset is not marginal
    registers = {d: frames.get(d, empty_frame(d)) for d in ("cheliang", "budongchan", "shichang")}
    capital_line = int(policy.get("enterprise_capital_line", 500000)) * 100
    excluded = excluded_heads(registers, capital_line).with_columns(pl.lit("marginal").alias("category"))
    monitoring = monitoring.join(excluded, on=["household_key", "category"], how="anti")

    # ---------------- problems ----------------
    probs = [
        p01.select(pl.lit("P01").alias("code"), pl.col("id_number").alias("subject_id")),
        p02.select(pl.lit("P02").alias("code"), pl.col("id_number").alias("subject_id")),
        p03.select(pl.lit("P03").alias("code"), pl.col("id_number").alias("subject_id")),
        RH.filter(~pl.col("housing_ok")).select(pl.lit("P04").alias("code"), pl.col("household_id").alias("subject_id")),
        RH.filter(~pl.col("water_ok")).select(pl.lit("P05").alias("code"), pl.col("household_id").alias("subject_id")),
        RH.filter(pl.col("unknown") | ~pl.col("income_ok")).select(pl.lit("P06").alias("code"), pl.col("household_id").alias("subject_id")),
    ]
    # every gongan snapshot up to the period (a January snapshot no longer lists December)
    deaths = frames.get("gongan_all", G).filter((pl.col("reason") == "死亡") & (pl.col("cancelled_on") <= end)).group_by("id_number").agg(
        pl.col("cancelled_on").min())
    reg_ids = person.select("id_number").unique()
    probs.append(deaths.join(reg_ids, on="id_number", how="semi").select(
        pl.lit("P07").alias("code"), pl.col("id_number").alias("subject_id")))
    active = M.filter((pl.col("start_month") <= start) & (pl.col("end_month").is_null() | (pl.col("end_month") >= start)))
    probs.append(deaths.filter(pl.col("cancelled_on").dt.truncate("1mo") < start).join(
        active.select("id_number").unique(), on="id_number", how="semi").select(
        pl.lit("P07b").alias("code"), pl.col("id_number").alias("subject_id")))
    probs.append(reg_ids.join(CZ.select("id_number").unique(), on="id_number", how="semi").select(
        pl.lit("P08").alias("code"), pl.col("id_number").alias("subject_id")))
    cert_bad = C.filter((pl.col("living_subsidy") == False)  # noqa: E712
                        | ((pl.col("level") <= 2) & (pl.col("care_subsidy") == False))).select("id_number").unique()  # noqa: E712
    probs.append(reg_ids.join(cert_bad, on="id_number", how="semi").select(
        pl.lit("P09").alias("code"), pl.col("id_number").alias("subject_id")))
    diff = (pl.col("reg_pci") * pl.col("members") - pl.col("total")).abs()
    probs.append(RH.filter(pl.col("reg_pci").is_not_null() & ~pl.col("unknown")
                           & (diff * mis_r.denominator > mis_r.numerator * pl.col("total").abs())
                           & (diff > mis_y * pl.col("members")))
                 .select(pl.lit("P10").alias("code"), pl.col("household_id").alias("subject_id")))
    dup_ids = members.group_by("id_number").agg(pl.len().alias("rows"), pl.col("household_id").n_unique().alias("hhs"))
    probs.append(dup_ids.filter((pl.col("rows") > 1) | (pl.col("hhs") > 1)).select(
        pl.lit("P11").alias("code"), pl.col("id_number").alias("subject_id")))
    covered = active.filter(pl.col("assistance").is_in(["低保", "特困供养"])).select("id_number").unique()
    covered_hh = person.join(covered, on="id_number", how="semi").select("household_id").unique()
    probs.append(RH.filter(~pl.col("unknown") & ~pl.col("income_ok") & ~pl.col("has_able")
                           & ~pl.col("household_id").is_in(covered_hh["household_id"].implode()))
                 .select(pl.lit("P12").alias("code"), pl.col("household_id").alias("subject_id")))
    probs.append(RH.filter((~pl.col("unknown") & (pl.col("members") != pl.col("n_ids"))) | pl.col("head_id").is_null())
                 .select(pl.lit("P13").alias("code"), pl.col("household_id").alias("subject_id")))
    probs.append(asset_problems(registers, person.select("id_number").unique(), capital_line))
    problems = pl.concat(probs).unique().with_columns(pl.lit(period).alias("period")).select(PROBLEM_COLUMNS)
    uncatalogued = set(problems["code"].unique()) - set(rule_codes())
    if uncatalogued:   # a planted rule the marts would not know (warehouse/rules.toml)
        raise ValueError(f"rules not in the catalogue: {sorted(uncatalogued)}")

    # the monitoring truth (monitored.py) also needs: the head's number and village (roster
    # matching), income at or above the monitoring line, and 3 + 1 held (registry only)
    villages = F.select("household_id", "village_code").unique("household_id", keep="first")
    households = pl.concat([
        RH.join(villages, on="household_id", how="left").select(
            pl.col("household_id").alias("household_key"), pl.lit(True).alias("registry"), "has_able",
            "household_id", "head_id", "village_code", (~pl.col("below_m")).alias("income_at_line"),
            (pl.col("education_ok") & pl.col("medical_ok") & pl.col("housing_ok") & pl.col("water_ok")
             & pl.col("income_ok")).alias("three_plus_one")),
        S.filter(~pl.col("is_reg_type")).select(
            "household_key", pl.lit(False).alias("registry"), pl.lit(False).alias("has_able"),
            pl.lit(None, dtype=pl.Utf8).alias("household_id"), pl.col("head_id_number").alias("head_id"),
            "village_code", (~pl.col("below_m").fill_null(True)).alias("income_at_line"),
            pl.lit(True).alias("three_plus_one")),
    ]).unique("household_key", keep="first")
    return monitoring.sort(MONITORING_COLUMNS), problems.sort(PROBLEM_COLUMNS), households


def clearance(monitoring: pl.DataFrame, households: list[pl.DataFrame], periods: list[str],
              months: int) -> pl.DataFrame:
    """Households proposed for 风险消除: flagged once, then ``months`` consecutive periods with no
    category, with a labour-able member (never proposed automatically without one). One row per
    household: the period of the proposal."""
    rows = []
    flagged = monitoring.select("period", "household_key").unique()
    for i, p in enumerate(periods):   # over periods (a handful), not rows
        if i < months:
            continue
        window = periods[i - months + 1:i + 1]
        before = periods[:i - months + 1]
        was = flagged.filter(pl.col("period").is_in(before)).select("household_key").unique()
        clean = was.join(flagged.filter(pl.col("period").is_in(window)), on="household_key", how="anti")
        able = households[i].filter(pl.col("has_able")).select("household_key")
        # the last flag must be right before the window (the streak starts there) — first proposal
        last = flagged.filter(pl.col("period").is_in(before)).group_by("household_key").agg(pl.col("period").max())
        clean = clean.join(able, on="household_key", how="semi").join(last, on="household_key").filter(
            pl.col("period") == before[-1])
        rows.append(clean.select(pl.lit(p).alias("period"), "household_key"))
    if not rows:
        return pl.DataFrame(schema={"period": pl.Utf8, "household_key": pl.Utf8})
    return pl.concat(rows).sort("period", "household_key")
