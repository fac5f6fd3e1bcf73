"""The demo county as the twelve departments see it, period by period (canonical, clean values).

``CountyWorld`` holds one county's population and what is planted in it; ``frames(t)`` returns the
canonical extracts of period ``t`` (typed values, contract column names, money in integer cents),
with internal columns ``_pid`` (person), ``_hh`` (household), ``_town`` (township code) and
``_protect`` (rows of planted cases: never given an unrepairable defect). Defects and file formats
are ``gen_defects``/``gen_writers``' business; what the rules make of it is ``gen_oracle``'s.

What changes between periods is planted with schedules: a case is present in every period, or
fixed at some period, or new from some period, or fixed and back again (屡改屡犯).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from povwatch.tasks.synth.population import RARE_NAME, build_population, labels, make_departed

ABLE = ("普通劳动力", "技能劳动力")


# ---------------------------------------------------------------- months
def month_index(period: str) -> int:
    y, m = period.split("-")
    return int(y) * 12 + int(m) - 1


def month_label(mi: int) -> str:
    return f"{mi // 12:04d}-{mi % 12 + 1:02d}"


def month_start(mi: int) -> dt.date:
    return dt.date(mi // 12, mi % 12 + 1, 1)


def month_end(mi: int) -> dt.date:
    return month_start(mi + 1) - dt.timedelta(days=1)


def school_ref(mi: int) -> dt.date:
    """1 September of the school year in progress at the end of the period (rules.md)."""
    y, m = mi // 12, mi % 12 + 1
    return dt.date(y if m >= 9 else y - 1, 9, 1)


def _dates(mi: np.ndarray, day: np.ndarray) -> pl.Series:
    """Dates from month indexes and days (vectorised)."""
    return pl.select(pl.date(pl.Series(mi // 12), pl.Series(mi % 12 + 1), pl.Series(day))).to_series()


def schedule(rng: np.random.Generator, n: int, periods: int, n_always: int = 2) -> np.ndarray:
    """[n, periods] activity: always / fixed at a / new from a / fixed at a and back at a+1+gap."""
    act = np.ones((n, periods), dtype=bool)
    if periods == 1 or n == 0:
        return act
    kind = rng.choice(4, size=n, p=[.4, .2, .2, .2])
    kind[:n_always] = 0
    a = rng.integers(1, periods, size=n)
    back = a + 1 + rng.integers(0, max(1, periods - 2), size=n)
    t = np.arange(periods)[None, :]
    fixed = t < a[:, None]
    new = t >= a[:, None]
    ret = fixed | (t >= back[:, None])
    ret = np.where((back < periods)[:, None], ret, fixed)
    return np.select([kind[:, None] == 0, kind[:, None] == 1, kind[:, None] == 2],
                     [act, fixed, new], default=ret)


@dataclass
class Plant:
    """Planted items of one kind: targets (pid or hh), variant, activity per period."""
    code: str
    target: np.ndarray
    variant: np.ndarray
    active: np.ndarray            # [n, periods]
    extra: dict = field(default_factory=dict)

    def on(self, t: int) -> np.ndarray:
        return self.active[:, t]


class CountyWorld:
    def __init__(self, rng: np.random.Generator, county: str, county_name: str,
                 villages: pl.DataFrame, townships: pl.DataFrame, n_registry: int,
                 first_period: str, periods: int, taken: pl.Series | None = None,
                 rare_name: bool = True):
        self.rng = rng
        self.county, self.county_name = county, county_name
        self.m0 = month_index(first_period)
        self.T = periods
        self.n_registry = n_registry
        ref = month_start(self.m0)
        H, P = build_population(rng, county, villages, n_registry, ref, taken)
        self.town_names = dict(zip(townships["code"], townships["name"]))
        self.village_names = dict(zip(villages["code"], villages["name"]))
        n_departed = max(20, int(len(P) * 0.012 * (12 + periods + 2) / 12))
        self.departed = make_departed(rng, county, n_departed, self.m0 - 12, self.m0 + periods - 1,
                                      len(P), P["id_number"] if taken is None else
                                      pl.concat([taken, P["id_number"]]))
        self.H, self.P = H, P
        self._plant()
        self._base(rare_name)

    # ------------------------------------------------------------ planting
    def _plant(self) -> None:
        rng, H, P, T = self.rng, self.H, self.P, self.T
        N = self.n_registry

        def count(rate: float) -> int:
            return max(4 if N >= 300 else 2, int(round(N * rate)))

        reg_hh = H.filter(pl.col("registry"))
        order = rng.permutation(reg_hh["hh"].to_numpy())
        used = np.zeros(len(H), dtype=bool)
        self.protect_hh: set[int] = set()

        members = P.filter(pl.col("registry")).join(H.select("hh", "household_type"), on="hh", how="left", maintain_order="left")
        able_hh = np.zeros(len(H), dtype=bool)
        able_hh[members.filter(pl.col("labor").is_in(ABLE))["hh"].to_numpy()] = True
        is_general = (H["household_type"] == "一般贫困户").to_numpy()
        is_exited = (H["poverty_status"] == "已脱贫").to_numpy()
        is_not_exited = (H["poverty_status"] == "未脱贫").to_numpy()
        hsize = H["size"].to_numpy()

        def take_households(n: int, mask: np.ndarray | None = None) -> np.ndarray:
            ok = ~used[order] if mask is None else (~used[order] & mask[order])
            out = order[ok][:n]
            used[out] = True
            return out.astype(np.int64)

        def take_persons(n: int, frame: pl.DataFrame) -> np.ndarray:
            """n persons from ``frame`` (registry members), one per household, households unused."""
            frame = frame.filter(pl.Series(~used[frame["hh"].to_numpy()])).sort("pid")
            frame = frame.sample(fraction=1.0, shuffle=True, seed=int(rng.integers(2**31)))
            frame = frame.unique("hh", keep="first", maintain_order=True).head(n)
            used[frame["hh"].to_numpy()] = True
            return frame["pid"].to_numpy()

        self.plants: dict[str, Plant] = {}

        def add(code: str, target: np.ndarray, n_variants: int, n_always: int = 2, **extra) -> Plant:
            p = Plant(code, target, np.arange(len(target)) % n_variants,
                      schedule(rng, len(target), T, n_always), extra)
            self.plants[code] = p
            return p

        school_kids = members.filter((pl.col("age") >= 7) & (pl.col("age") <= 14))
        add("P01", take_persons(count(.006), school_kids), 4, n_always=min(4, count(.006)))
        add("P02", take_persons(count(.008), members), 4, n_always=min(4, count(.008)))
        add("P03", take_persons(count(.006), members.filter(pl.col("health").is_in(["长期慢性病", "患有大病"]))), 2)
        add("P04", take_households(count(.006)), 3)
        add("P05", take_households(count(.006)), 5)
        # P06: the first ones in 未脱贫 households, so not_exited_below_line is always there
        p06a = take_households(max(2, count(.004) // 2), is_not_exited)
        p06b = take_households(count(.004))
        add("P06", np.concatenate([p06a, p06b]), 2)
        self.plants["P06"].variant[:len(p06a)] = 0
        self.plants["P06"].variant[1] = 1 if len(p06a) > 2 else 0
        add("P08", take_persons(count(.002), members.filter((pl.col("age") >= 22) & (pl.col("age") <= 55))), 1)
        add("P09", take_persons(count(.004), members.filter(pl.col("health") == "残疾")), 2)
        add("P10", take_households(count(.006), is_exited), 2)
        adults_nonhead = members.filter((pl.col("k") > 0) & (pl.col("age") >= 18))
        p11 = add("P11", take_persons(count(.003), adults_nonhead), 2)
        p11.extra["other_hh"] = take_households(len(p11.target))
        add("P12", take_households(count(.004), (is_general) & (hsize <= 3)), 1)
        p13 = add("P13", take_households(count(.005), hsize >= 2), 3)
        p13.variant[:] = np.where(np.arange(len(p13.target)) == 2, 2, np.arange(len(p13.target)) % 2)
        # sudden hardship: registry (exited) and watched non-registry households
        add("SH", take_households(count(.004), is_exited), 3)
        # clearance: flagged in the first period only, then clean (风险消除 after risk_clear_months)
        clear = take_households(max(2, N // 5000), (is_exited) & able_hh)
        self.plants["CLEAR"] = Plant("CLEAR", clear, np.ones(len(clear), dtype=np.int64),
                                     (np.arange(T) == 0)[None, :].repeat(len(clear), axis=0))
        # edge cases (static): exact lines, the 5000 registry medical alert
        self.edge = {
            "pci_4000": take_households(1, is_not_exited),
            "pci_6000": take_households(1, (is_exited) & able_hh),
            "oop_5000": take_households(1, (is_exited) & (hsize >= 2)),
        }
        # deaths of registry members (P07 / P07b): every month from two months before the first
        # period, about N/3000 a month (at least 2): half in 低保 households whose 低保 goes on
        per_month = max(2, N // 3000)
        months = np.arange(self.m0 - 2, self.m0 + T)
        dibao_elders = members.filter((pl.col("k") > 0) & (pl.col("age") >= 50)
                                      & pl.col("household_type").eq("低保贫困户"))
        elders = members.filter((pl.col("k") > 0) & (pl.col("age") >= 50))
        n_cont = len(months) * ((per_month + 1) // 2)
        n_stop = len(months) * (per_month // 2)
        cont = take_persons(n_cont, dibao_elders)
        stop = take_persons(n_stop, elders)
        dead = np.concatenate([cont, stop])
        dmonth = np.concatenate([np.repeat(months, (per_month + 1) // 2)[:len(cont)],
                                 np.repeat(months, per_month // 2)[:len(stop)]])
        self.deaths = pl.DataFrame({
            "pid": dead, "month": dmonth, "continues": np.arange(len(dead)) < len(cont),
            "day": rng.integers(1, 29, size=len(dead)),
        })
        # non-registry watched households: chosen in _base; their plants need them
        self.protect_hh |= set(np.flatnonzero(used).tolist())

    # ------------------------------------------------------------ base (static) attributes
    def _base(self, rare_name: bool) -> None:
        rng, H, P = self.rng, self.H, self.P
        n_hh, n_p = len(H), len(P)
        pl_ = self.plants
        # static person changes the plants need
        p01 = pl_["P01"]
        dis_kids = p01.target[p01.variant == 3]
        p09 = pl_["P09"]
        care_case = p09.target[p09.variant == 1]
        kids = pl.col("pid").is_in(dis_kids.tolist())
        care = pl.col("pid").is_in(care_case.tolist())
        in_p12 = pl.col("hh").is_in(pl_["P12"].target.tolist())
        rare_pid = -1
        if rare_name:
            # an adult registry member in a 低保 household: the name reaches fupin, minzheng, yibao
            cand = P.filter(pl.col("registry") & (pl.col("k") == 1) & (pl.col("age") >= 30)).join(
                H.filter(pl.col("household_type") == "低保贫困户").select("hh"), on="hh").sort("pid")
            if len(cand):
                rare_pid = int(cand["pid"][0])
        P = P.with_columns(
            pl.when(kids).then(2).when(care).then(pl.col("disability_level").clip(1, 2))
            .otherwise(pl.col("disability_level")).alias("disability_level"),
            pl.when(kids).then(pl.lit("残疾")).otherwise(pl.col("health")).alias("health"),
            pl.when(in_p12 & (pl.col("age") < 16)).then(pl.lit("无劳动力"))
            .when(in_p12 & (pl.col("pid") % 2 == 0)).then(pl.lit("丧失劳动力"))
            .when(in_p12).then(pl.lit("弱劳动力或半劳动力")).otherwise(pl.col("labor")).alias("labor"),
            pl.when(pl.col("pid") == rare_pid).then(pl.lit(RARE_NAME)).otherwise(pl.col("name")).alias("name"),
        )
        P = P.with_columns(pl.when(pl.col("disability_level") > 0).then(pl.col("disability_level"))
                           .alias("disability_level"))

        # --- households: incomes (cents), shouru object type, housing, water ---
        size = H["size"].to_numpy()
        registry = H["registry"].to_numpy()
        status = H["poverty_status"].to_numpy()
        watch_r = rng.random(n_hh)
        head_age = P["age"].to_numpy()[H["head_pid"].to_numpy()]
        watched = (~registry) & (watch_r < 0.075)
        otype = np.select(
            [registry, watched & (size <= 2) & (head_age >= 60) & (watch_r < .02),
             watched & (watch_r < .035), watched & (watch_r < .045), watched & (watch_r < .055), watched],
            ["建档立卡户", "特困供养户", "低保户", "重残户", "重病户", "边缘户"], default=None)
        pci = np.where(
            registry & (status == "已脱贫"), 6200 + np.exp(rng.normal(np.log(3500), 0.6, n_hh)),
            np.where(registry, rng.uniform(4100, 5900, n_hh),
                     3000 + np.exp(rng.normal(np.log(4500), 0.55, n_hh))))
        low_exited = registry & (status == "已脱贫") & (rng.random(n_hh) < 0.03)
        pci = np.where(low_exited, rng.uniform(4100, 5900, n_hh), pci)
        pci_c = np.round(pci * 100).astype(np.int64)
        prev_c = np.round(pci_c * rng.uniform(0.80, 1.05, n_hh)).astype(np.int64)
        oop_c = np.where(rng.random(n_hh) < 0.3, np.round(rng.uniform(100, 1200, n_hh) * 100), 0).astype(np.int64)
        reg_ratio = rng.uniform(0.95, 1.05, n_hh)
        assessed_day = rng.integers(1, 29, size=n_hh)
        assessed_mi = self.m0 - rng.integers(1, 6, size=n_hh)
        # housing (zhujian)
        g = rng.random(n_hh)
        grade = np.select([g < .40, g < .83, g < .95], ["A", "B", "C"], default="D")
        ren = np.where(np.isin(grade, ["A", "B"]), "无需改造", "已竣工").astype(object)
        bad_house = (~registry) & np.isin(grade, ["C", "D"]) & (rng.random(n_hh) < 0.12)
        ren = np.where(bad_house, np.where(rng.random(n_hh) < .5, "未开工", "在建"), ren)
        has_house = registry | (rng.random(n_hh) < 0.96)
        house_mi = self.m0 - rng.integers(3, 20, size=n_hh)
        # water (shuili)
        central = rng.random(n_hh) < 0.85
        rate = np.where(central, rng.integers(92, 101, n_hh), rng.integers(90, 99, n_hh)).astype(float)
        rate = np.where(rng.random(n_hh) < 0.03, 90.0, rate)
        rate = np.where(rng.random(n_hh) < 0.05, rate - 0.5, rate).clip(90, 100)
        wbad = (~registry) & (rng.random(n_hh) < 0.015)
        wkind = rng.integers(0, 4, n_hh)
        has_water = registry | (rng.random(n_hh) < 0.98)
        H = H.with_columns(
            pl.Series("object_type", otype, dtype=pl.Utf8),
            pl.Series("pci_c", pci_c), pl.Series("prev_c", prev_c), pl.Series("oop_c", oop_c),
            pl.Series("reg_ratio", reg_ratio), pl.Series("mix", rng.integers(0, 10**6, n_hh)),
            _dates(assessed_mi, assessed_day).alias("assessed_on"),
            pl.Series("grade", grade), pl.Series("renovation", ren, dtype=pl.Utf8),
            pl.Series("has_house", has_house),
            _dates(house_mi, rng.integers(1, 29, n_hh)).alias("house_on"),
            pl.Series("supply", np.where(central, "集中供水", "分散供水")),
            pl.Series("quantity_ok", ~(wbad & (wkind == 0))), pl.Series("quality_ok", ~(wbad & (wkind == 1))),
            pl.Series("convenience_ok", ~(wbad & (wkind == 2))),
            pl.Series("guarantee_rate", np.where(wbad & (wkind == 3), 85.0, rate)),
            pl.Series("has_water", has_water),
        )
        # edge cases: exact lines and the registry medical alert
        def set_hh(hhs, **cols):
            nonlocal H
            mask = pl.col("hh").is_in(list(map(int, hhs)))
            H = H.with_columns(**{c: pl.when(mask).then(pl.lit(v)).otherwise(pl.col(c)) for c, v in cols.items()})
        set_hh(self.edge["pci_4000"], pci_c=400000)
        set_hh(self.edge["pci_6000"], pci_c=600000)
        set_hh(self.edge["oop_5000"], pci_c=1500000, oop_c=500000)
        # non-registry watched households planted: sudden hardship and the 10000 'other' alert
        wh = H.filter(pl.col("object_type").is_not_null() & ~pl.col("registry"))["hh"].to_numpy()
        wh = rng.permutation(wh)
        n_sh = max(3, int(round(self.n_registry * 0.003)))
        sh_other = wh[:n_sh]
        self.edge["oop_other_6000"] = wh[n_sh:n_sh + 1]
        set_hh(self.edge["oop_other_6000"], pci_c=900000, oop_c=600000)
        self.plants["SHO"] = Plant("SHO", sh_other, np.arange(len(sh_other)) % 3,
                                   schedule(rng, len(sh_other), self.T, 2))
        self.protect_hh |= set(map(int, wh[:n_sh + 1]))
        for v in self.edge.values():
            self.protect_hh |= set(map(int, v))
        self.protect_hh |= set(map(int, self.plants["CLEAR"].target))
        self.protect_hh |= set(map(int, self.plants["P11"].extra["other_hh"]))

        # the head of each household, joined once
        heads = P.select(pl.col("pid").alias("head_pid"), pl.col("id_number").alias("head_id"),
                         pl.col("name").alias("head_name"))
        H = H.join(heads, on="head_pid", how="left", maintain_order="left")
        P = P.join(H.select("hh", "village_code", "township_code", "household_id", "household_type",
                            "poverty_status", "exit_year", "cause", "object_type"), on="hh", how="left", maintain_order="left")
        P = P.with_columns(pl.col("hh").is_in(list(self.protect_hh)).alias("_protect"))
        H = H.with_columns(pl.col("hh").is_in(list(self.protect_hh)).alias("_protect"))
        self.H, self.P = H, P

        # --- minzheng base cases ---
        r = rng.random(n_p)
        dibao_reg = pl.col("household_type") == "低保贫困户"
        tekun_reg = (pl.col("household_type") == "特困供养贫困户") & (pl.col("k") == 0)
        dibao_other = pl.col("object_type") == "低保户"
        tekun_other = (pl.col("object_type") == "特困供养户") & (pl.col("k") == 0)
        P2 = P.with_columns(pl.Series("r", r))
        ongoing = P2.filter(dibao_reg | tekun_reg | dibao_other | tekun_other).with_columns(
            pl.when(tekun_reg | tekun_other).then(pl.lit("特困供养")).otherwise(pl.lit("低保")).alias("assistance"))
        n_on = len(ongoing)
        ongoing = ongoing.with_columns(
            _dates(rng.integers(2015 * 12, self.m0 - 1, n_on), np.ones(n_on, dtype=np.int64)).alias("start_month"),
            pl.lit(None, dtype=pl.Date).alias("end_month"),
            pl.Series("monthly_amount", np.where(ongoing["assistance"].to_numpy() == "特困供养",
                                                 rng.integers(700, 900, n_on), rng.integers(280, 520, n_on)) * 100),
        )
        temp = P2.filter(~pl.col("registry") & (pl.col("r") < 0.006))
        n_t = len(temp)
        tm = rng.integers(self.m0 - 12, self.m0, n_t)
        temp = temp.with_columns(pl.lit("临时救助").alias("assistance"),
                                 _dates(tm, np.ones(n_t, dtype=np.int64)).alias("start_month"),
                                 _dates(tm, np.ones(n_t, dtype=np.int64)).alias("end_month"),
                                 pl.Series("monthly_amount", rng.integers(500, 3000, n_t) * 100))
        # an ended case belongs to someone not on assistance now: a person with both could get two
        # 低保 rows with the same start month, a key the minzheng suite rejects as duplicate
        ended = P2.filter(~pl.col("registry") & (pl.col("r") >= 0.006) & (pl.col("r") < 0.011)
                          & ~(dibao_other | tekun_other))
        n_e = len(ended)
        em = rng.integers(2016 * 12, 2019 * 12 + 6, n_e)
        ended = ended.with_columns(pl.lit("低保").alias("assistance"),
                                   _dates(em - 24, np.ones(n_e, dtype=np.int64)).alias("start_month"),
                                   _dates(em, np.ones(n_e, dtype=np.int64)).alias("end_month"),
                                   pl.Series("monthly_amount", rng.integers(280, 520, n_e) * 100))
        cols = ["name", "id_number", "assistance", "monthly_amount", "start_month", "end_month",
                "village_code", "pid", "hh", "township_code", "_protect"]
        # departed people who died on 低保: their case ended in the month of death (no P07b)
        D = self.departed
        dd = D.filter((pl.col("reason") == "死亡")).sample(fraction=0.3, seed=int(rng.integers(2**31)))
        vill = H["village_code"].to_numpy()
        dd = dd.with_columns(
            pl.lit("低保").alias("assistance"),
            pl.Series("monthly_amount", rng.integers(280, 520, len(dd)) * 100),
            pl.lit(dt.date(2016, 1, 1)).alias("start_month"),
            pl.col("cancelled_on").dt.truncate("1mo").alias("end_month"),
            pl.Series("village_code", vill[rng.integers(0, n_hh, len(dd))]),
            pl.lit(-1).alias("hh"), pl.lit(False).alias("_protect"),
        ).with_columns(pl.col("village_code").str.slice(0, 9).alias("township_code"))
        self.minzheng_base = pl.concat([ongoing.select(cols), temp.select(cols), ended.select(cols),
                                        dd.select(cols)], how="vertical_relaxed")

        # --- canlian base ---
        cert = P.filter(pl.col("disability_level").is_not_null())
        n_c = len(cert)
        in_dibao = cert["pid"].is_in(ongoing["pid"].implode()).to_numpy()
        reg_c = cert["registry"].to_numpy()
        lv = cert["disability_level"].to_numpy()
        self.canlian_base = cert.select("pid", "hh", "township_code", "_protect", "id_number",
                                        pl.col("disability_category").alias("category"),
                                        pl.col("disability_level").alias("level")).with_columns(
            pl.Series("living_subsidy", reg_c | in_dibao | (rng.random(n_c) < 0.3)),
            pl.Series("care_subsidy", (lv <= 2) & (reg_c | (rng.random(n_c) < 0.9))),
        )
        # --- weijian base ---
        ill = P["health"].is_in(["长期慢性病", "患有大病"]).to_numpy()
        age = P["age"].to_numpy()
        regp = P["registry"].to_numpy()
        has_w = regp | ill | (age >= 65) | (age <= 6) | (rng.random(n_p) < 0.35)
        contracted = np.where(regp, ill | (rng.random(n_p) < 0.95), rng.random(n_p) < np.where(ill, 0.8, 0.65))
        w_mi = self.m0 - rng.integers(2, 30, n_p)
        self.weijian_base = P.select("pid", "hh", "township_code", "_protect", "id_number", "health").with_columns(
            pl.Series("contracted", contracted),
            pl.when(pl.Series(contracted)).then(_dates(w_mi, rng.integers(1, 29, n_p))).alias("contracted_on"),
            pl.col("health").replace_strict({"长期慢性病": "慢性病", "患有大病": "大病"}, default="无")
            .alias("disease_class"),
            pl.Series("has", has_w),
        ).filter(pl.col("has")).drop("has", "health")
        # --- renshe base ---
        able = P["labor"].is_in(ABLE).to_numpy() & (age >= 16) & (age <= 59)
        works = able & (rng.random(n_p) < 0.75)
        months = np.where(rng.random(n_p) < 0.15, rng.integers(1, 6, n_p), rng.integers(6, 13, n_p))
        place = labels(["县内", "县外省内", "省外"], rng.choice(3, n_p, p=[.3, .3, .4]))
        self.renshe_base = P.select("pid", "hh", "township_code", "_protect", "id_number").with_columns(
            place.alias("work_place"), pl.Series("months", months),
            pl.Series("monthly_wage", rng.integers(2200, 6500, n_p) * 100),
            pl.Series("public_job", regp & (rng.random(n_p) < 0.08)),
            pl.Series("has", works),
        ).filter(pl.col("has")).drop("has")
        # --- caizheng base ---
        payroll = (~regp) & (age >= 22) & (age <= 59) & (rng.random(n_p) < 0.03)
        employers = [f"{self.county_name}第一中学", f"{self.county_name}人民医院", f"{self.county_name}人民政府办公室",
                     f"{self.county_name}财政局", f"{self.county_name}教育局", f"{self.county_name}公安局",
                     f"{self.county_name}农业农村局", f"{self.county_name}自然资源局"]
        emp = labels(employers, rng.integers(0, len(employers), n_p))
        town_emp = P["township_code"].replace_strict(self.town_names, default="") + "人民政府"
        self.caizheng_base = P.select("pid", "hh", "township_code", "_protect", "id_number", "name").with_columns(
            pl.when(pl.Series(rng.random(n_p) < .4)).then(town_emp).otherwise(emp).alias("employer"),
            _dates(self.m0 - rng.integers(12, 360, n_p), rng.integers(1, 29, n_p)).alias("hired_on"),
            pl.Series("has", payroll),
        ).filter(pl.col("has")).drop("has")
        # --- yibao base (per person; the year is the period's) ---
        no_yibao = (~regp) & (rng.random(n_p) < 0.003)
        ystat_code = np.where((~regp) & (rng.random(n_p) < 0.01), np.where(rng.random(n_p) < .5, 1, 2), 0)
        ystat = labels(["已参保", "未参保", "停保"], ystat_code)
        inpatient = rng.random(n_p) < 0.04
        tot = np.round(rng.uniform(2000, 40000, n_p)) * 100
        self.yibao_base = P.select("pid", "hh", "township_code", "_protect", "name", "id_number").with_columns(
            ystat.alias("status"),
            pl.when(pl.Series(regp & (ystat_code == 0))).then(
                pl.Series(np.where(rng.random(n_p) < .5, 22000, 32000))).alias("subsidy"),
            pl.when(pl.Series(inpatient)).then(pl.Series(tot.astype(np.int64))).alias("inpatient_total"),
            pl.when(pl.Series(inpatient)).then(
                pl.Series(np.round(tot * rng.uniform(.5, .85, n_p)).astype(np.int64))).alias("reimbursed"),
            pl.Series("prev_year_row", rng.random(n_p) < 0.05),
            pl.Series("has", ~no_yibao),
        ).filter(pl.col("has")).drop("has").with_columns(
            pl.col("subsidy").cast(pl.Int64), pl.col("inpatient_total").cast(pl.Int64),
            pl.col("reimbursed").cast(pl.Int64))
        # --- jiaoyu: who is never enrolled (non-registry only, a few) ---
        self.P = self.P.with_columns(pl.Series("never_school", (~regp) & (rng.random(n_p) < 0.005)),
                                     pl.Series("school_r", rng.random(n_p)),
                                     pl.Series("aid_r", rng.random(n_p)))

    # ------------------------------------------------------------ one period
    def frames(self, t: int) -> dict[str, pl.DataFrame]:
        mi = self.m0 + t
        P, H = self.P, self.H
        pl_ = self.plants
        out: dict[str, pl.DataFrame] = {}

        def on(code: str) -> tuple[np.ndarray, np.ndarray]:
            p = pl_[code]
            a = p.on(t)
            return p.target[a], p.variant[a]

        # ---------- deaths ----------
        D = self.deaths
        died = D.filter(pl.col("month") <= mi)
        removed = died.filter(pl.col("month") <= mi - 2)["pid"].to_numpy()  # fixed: off the registry
        # ---------- incomes of the period ----------
        Hh = H.with_columns(pl.col("pci_c").alias("pci_now"), pl.col("prev_c").alias("prev_now"),
                            pl.col("oop_c").alias("oop_now"), pl.col("size").alias("members"))
        def upd(hhs, **exprs):
            nonlocal Hh
            mask = pl.col("hh").is_in(list(map(int, hhs)))
            Hh = Hh.with_columns(**{c: pl.when(mask).then(e).otherwise(pl.col(c)) for c, e in exprs.items()})

        # members shrink when a deceased person is taken off the registry
        if len(removed):
            dec = P.filter(pl.col("pid").is_in(removed)).group_by("hh").len()
            Hh = Hh.join(dec.rename({"len": "dead"}), on="hh", how="left", maintain_order="left").with_columns(
                (pl.col("members") - pl.col("dead").fill_null(0)).alias("members")).drop("dead")
        # P06: income below the line (0) or no assessment at all (1)
        tg, vr = on("P06")
        upd(tg[vr == 0], pci_now=(pl.col("pci_c") * 0 + 250000 + pl.col("hh") * 7919 % 130000))
        no_shouru = set(map(int, tg[vr == 1]))
        # P12: below the line, nobody able to work, no 低保
        upd(pl_["P12"].target, pci_now=(pl.col("pci_c") * 0 + 220000 + pl.col("hh") * 104729 % 150000))
        # sudden hardship, registry (SH) and others (SHO): 0 drop, 1 medical share, 2 medical alert
        for code in ("SH", "SHO", "CLEAR"):
            tg, vr = on(code)
            upd(tg[vr == 0], pci_now=pl.col("prev_c") * 55 // 100, prev_now=pl.col("prev_c"))
            upd(tg[vr == 1], oop_now=pl.col("pci_c") * pl.col("members") * 62 // 100)
            upd(tg[vr == 2], oop_now=pl.when(pl.col("registry")).then(720000).otherwise(1250000))
        # P13: declared size off by one (0: +1, 1: -1); variant 2 is the missing 户主 row (fupin)
        tg, vr = on("P13")
        upd(tg[vr == 0], members=pl.col("members") + 1)
        upd(tg[vr == 1], members=pl.max_horizontal(pl.col("members") - 1, 1))
        no_head = set(map(int, tg[vr == 2]))
        # P10: the registry's own figure far from the assessed one
        tg, vr = on("P10")
        Hh = Hh.with_columns(
            pl.when(pl.col("hh").is_in(list(map(int, tg[vr == 0])))).then(pl.col("pci_now") * 14 // 10)
            .when(pl.col("hh").is_in(list(map(int, tg[vr == 1])))).then(pl.col("pci_now") * 6 // 10)
            .otherwise((pl.col("pci_now") * pl.col("reg_ratio") / 100).round(0).cast(pl.Int64) * 100)
            .alias("registry_pci"))
        # edge: exact poverty line / monitoring line: registry figure equal too
        edge_exact = list(map(int, np.concatenate([self.edge["pci_4000"], self.edge["pci_6000"]])))
        Hh = Hh.with_columns(pl.when(pl.col("hh").is_in(edge_exact)).then(pl.col("pci_now"))
                             .otherwise(pl.col("registry_pci")).alias("registry_pci"))

        # ---------- fupin ----------
        reg = P.filter(pl.col("registry") & ~pl.col("pid").is_in(removed))
        school = self._school(mi)
        reg = reg.join(school.select("pid", "stage", "grade"), on="pid", how="left", maintain_order="left").with_columns(
            pl.when(pl.col("stage").is_null()).then(pl.lit("非在校生"))
            .when(pl.col("stage") == "学前").then(pl.lit("学前教育"))
            .when(pl.col("stage") == "初中").then(pl.concat_str(
                pl.col("grade").replace_strict({7: "七", 8: "八", 9: "九"}, default="九"), pl.lit("年级")))
            .otherwise(pl.col("stage")).alias("in_school"))
        reg = reg.join(Hh.select("hh", "registry_pci"), on="hh", how="left", maintain_order="left")
        fupin = reg.select(
            "household_id",
            (pl.col("household_id") + (pl.col("k") + 1).cast(pl.Utf8).str.zfill(2)).alias("person_no"),
            "name", "id_number",
            pl.when(pl.col("hh").is_in(list(no_head)) & (pl.col("k") == 0)).then(pl.lit("其他"))
            .otherwise(pl.col("relation")).alias("relation"),
            "sex", pl.col("birth").alias("birth_date"), "village_code", "household_type",
            "poverty_status", pl.when(pl.col("poverty_status") == "已脱贫").then(pl.col("exit_year")).alias("exit_year"),
            "health", "labor", "in_school", "cause", pl.col("registry_pci").alias("per_capita_income"),
            pl.col("pid").alias("_pid"), pl.col("hh").alias("_hh"), pl.col("township_code").alias("_town"),
            "_protect",
        )
        # P11: 0 the person also in another registry household, 1 twice in the own household
        tg, vr = on("P11")
        other = pl_["P11"].extra["other_hh"][pl_["P11"].on(t)]
        if len(tg):
            extra_rows = fupin.filter(pl.col("_pid").is_in(tg))
            order = {int(p): i for i, p in enumerate(tg)}
            extra_rows = extra_rows.with_columns(
                pl.col("_pid").replace_strict(order).alias("_i")).sort("_i")
            vr_rows = vr[extra_rows["_i"].to_numpy()]
            oth_rows = other[extra_rows["_i"].to_numpy()]
            other_h = H.filter(pl.col("hh").is_in(oth_rows)).select(
                pl.col("hh").alias("_ohh"), pl.col("household_id").alias("_oid"),
                pl.col("village_code").alias("_ov"), pl.col("household_type").alias("_ot"),
                pl.col("poverty_status").alias("_os"), pl.col("exit_year").alias("_oe"),
                pl.col("township_code").alias("_otown"))
            extra_rows = extra_rows.with_columns(pl.Series("_v", vr_rows), pl.Series("_ohh", oth_rows)).join(
                other_h, on="_ohh", how="left", maintain_order="left").with_columns(
                pl.when(pl.col("_v") == 0).then(pl.col("_oid")).otherwise(pl.col("household_id")).alias("household_id"),
                pl.when(pl.col("_v") == 0).then(pl.lit("其他")).otherwise(pl.col("relation")).alias("relation"),
                pl.when(pl.col("_v") == 0).then(pl.col("_ov")).otherwise(pl.col("village_code")).alias("village_code"),
                pl.when(pl.col("_v") == 0).then(pl.col("_ot")).otherwise(pl.col("household_type")).alias("household_type"),
                pl.when(pl.col("_v") == 0).then(pl.col("_os")).otherwise(pl.col("poverty_status")).alias("poverty_status"),
                pl.when(pl.col("_v") == 0).then(pl.when(pl.col("_os") == "已脱贫").then(pl.col("_oe")))
                .otherwise(pl.col("exit_year")).alias("exit_year"),
                pl.when(pl.col("_v") == 0).then(pl.col("_ohh")).otherwise(pl.col("_hh")).alias("_hh"),
                pl.when(pl.col("_v") == 0).then(pl.col("_otown")).otherwise(pl.col("_town")).alias("_town"),
            ).with_columns((pl.col("household_id") + pl.lit("99")).alias("person_no"))
            extra_rows = extra_rows.join(Hh.select(pl.col("hh").alias("_hh"), pl.col("registry_pci").alias("_rp")),
                                         on="_hh", how="left", maintain_order="left").with_columns(
                pl.col("_rp").alias("per_capita_income")).select(fupin.columns)
            fupin = pl.concat([fupin, extra_rows.with_columns(pl.lit(True).alias("_protect"))])
        out["fupin"] = fupin.sort("household_id", "person_no")

        # ---------- shouru ----------
        sh = Hh.filter(pl.col("object_type").is_not_null() & ~pl.col("hh").is_in(list(no_shouru)))
        total = pl.col("pci_now") * pl.col("members")
        sh = sh.with_columns(total.alias("_total"), pl.col("mix").alias("_h"))
        wage = (pl.col("_total") * (20 + pl.col("_h") % 50) // 100).cast(pl.Int64)
        bnet = (pl.col("_total") * (5 + pl.col("_h") // 50 % 20) // 100).cast(pl.Int64)
        prop = (pl.col("_total") * 2 // 100)
        cost = (bnet * (20 + pl.col("_h") // 1000 % 30) // 100).cast(pl.Int64)
        out["shouru"] = sh.select(
            "household_id", pl.col("head_id").alias("head_id_number"), "object_type", "members",
            wage.alias("wage_income"), (bnet + cost).alias("business_income"), cost.alias("business_cost"),
            prop.alias("property_income"), (pl.col("_total") - wage - bnet - prop).alias("transfer_income"),
            pl.col("prev_now").alias("prev_per_capita_income"), pl.col("oop_now").alias("medical_out_of_pocket"),
            "assessed_on", "village_code",
            pl.col("head_pid").alias("_pid"), pl.col("hh").alias("_hh"), pl.col("township_code").alias("_town"),
            "_protect",
        )

        # ---------- jiaoyu ----------
        tg, vr = on("P01")
        drop = set(map(int, tg[(vr == 0) | (vr == 3)]))
        jy = school.filter(~pl.col("pid").is_in(list(drop))).with_columns(
            pl.when(pl.col("pid").is_in(list(map(int, tg[vr == 1])))).then(pl.lit("辍学"))
            .when(pl.col("pid").is_in(list(map(int, tg[vr == 2])))).then(pl.lit("休学"))
            .otherwise(pl.col("status")).alias("status"))
        out["jiaoyu"] = jy.select("student_name", "id_number", "school", "stage", "grade", "status",
                                  "aid_amount", pl.col("pid").alias("_pid"), pl.col("hh").alias("_hh"),
                                  pl.col("township_code").alias("_town"), "_protect")

        # ---------- zhujian ----------
        tg, vr = on("P04")
        zj = Hh.filter(pl.col("has_house") & ~pl.col("hh").is_in(list(map(int, tg[vr == 2]))))
        c0, c1 = list(map(int, tg[vr == 0])), list(map(int, tg[vr == 1]))
        zj = zj.with_columns(
            pl.when(pl.col("hh").is_in(c0)).then(pl.lit("C")).when(pl.col("hh").is_in(c1)).then(pl.lit("D"))
            .otherwise(pl.col("grade")).alias("grade"),
            pl.when(pl.col("hh").is_in(c0)).then(pl.lit("未开工")).when(pl.col("hh").is_in(c1)).then(pl.lit("在建"))
            .otherwise(pl.col("renovation")).alias("renovation"))
        out["zhujian"] = zj.select("head_name", pl.col("head_id").alias("head_id_number"), "village_code", "grade",
                                   pl.col("house_on").alias("assessed_on"), "renovation",
                                   pl.col("head_pid").alias("_pid"), pl.col("hh").alias("_hh"),
                                   pl.col("township_code").alias("_town"), "_protect")

        # ---------- shuili ----------
        tg, vr = on("P05")
        sl = Hh.filter(pl.col("has_water") & ~pl.col("hh").is_in(list(map(int, tg[vr == 4]))))
        sl = sl.with_columns(
            (pl.col("quantity_ok") & ~pl.col("hh").is_in(list(map(int, tg[vr == 0])))).alias("quantity_ok"),
            (pl.col("quality_ok") & ~pl.col("hh").is_in(list(map(int, tg[vr == 1])))).alias("quality_ok"),
            (pl.col("convenience_ok") & ~pl.col("hh").is_in(list(map(int, tg[vr == 2])))).alias("convenience_ok"),
            pl.when(pl.col("hh").is_in(list(map(int, tg[vr == 3])))).then(86.0)
            .otherwise(pl.col("guarantee_rate")).alias("guarantee_rate"))
        out["shuili"] = sl.select(pl.col("head_id").alias("head_id_number"), "village_code", "supply",
                                  "quantity_ok", "quality_ok", "convenience_ok", "guarantee_rate",
                                  pl.col("head_pid").alias("_pid"), pl.col("hh").alias("_hh"),
                                  pl.col("township_code").alias("_town"), "_protect")

        # ---------- minzheng ----------
        mz = self.minzheng_base
        # registry deaths: 低保 goes on for two months after death when 'continues', else it ends
        dd = died.join(P.select("pid", "hh"), on="pid")
        stop_now = dd.filter(~pl.col("continues") | (pl.col("month") <= mi - 3))
        if len(stop_now):
            ends = stop_now.select("pid", _dates(stop_now["month"].to_numpy(),
                                                 np.ones(len(stop_now), dtype=np.int64)).alias("_end"))
            mz = mz.join(ends, on="pid", how="left", maintain_order="left").with_columns(
                pl.coalesce("end_month", "_end").alias("end_month")).drop("_end")
        # P12 households: covered by 低保 while not active
        p12 = pl_["P12"]
        covered = p12.target[~p12.on(t)]
        if len(covered):
            cov = P.filter(pl.col("hh").is_in(covered)).select(
                "name", "id_number", pl.lit("低保").alias("assistance"), pl.lit(38000).alias("monthly_amount"),
                pl.lit(dt.date(2019, 6, 1)).alias("start_month"), pl.lit(None, dtype=pl.Date).alias("end_month"),
                "village_code", "pid", "hh", "township_code", "_protect")
            mz = pl.concat([mz, cov], how="vertical_relaxed")
        out["minzheng"] = mz.filter(pl.col("start_month") <= month_start(mi)).select(
            "name", "id_number", "assistance", "monthly_amount", "start_month", "end_month", "village_code",
            pl.col("pid").alias("_pid"), pl.col("hh").alias("_hh"), pl.col("township_code").alias("_town"),
            "_protect")

        # ---------- yibao ----------
        year = mi // 12
        tg, vr = on("P02")
        yb = self.yibao_base.filter(~pl.col("pid").is_in(list(map(int, tg[vr == 2]))))
        yb = yb.with_columns(
            pl.when(pl.col("pid").is_in(list(map(int, tg[vr == 0])))).then(pl.lit("未参保"))
            .when(pl.col("pid").is_in(list(map(int, tg[vr == 1])))).then(pl.lit("停保"))
            .otherwise(pl.col("status")).alias("status"),
            pl.when(pl.col("pid").is_in(list(map(int, tg[vr == 3])))).then(year - 1).otherwise(year).alias("year"))
        prev = yb.filter(pl.col("prev_year_row") & (pl.col("year") == year)).with_columns(
            pl.lit(year - 1).alias("year"), pl.lit(None, dtype=pl.Int64).alias("inpatient_total"),
            pl.lit(None, dtype=pl.Int64).alias("reimbursed"))
        yb = pl.concat([yb, prev]).sort("pid", "year")
        out["yibao"] = yb.select("name", "id_number", pl.col("year").cast(pl.Int64), "status", "subsidy",
                                 "inpatient_total", "reimbursed", pl.col("pid").alias("_pid"),
                                 pl.col("hh").alias("_hh"), pl.col("township_code").alias("_town"), "_protect")

        # ---------- weijian ----------
        tg, vr = on("P03")
        wj = self.weijian_base.filter(~pl.col("pid").is_in(list(map(int, tg[vr == 1]))))
        nc = list(map(int, tg[vr == 0]))
        wj = wj.with_columns((pl.col("contracted") & ~pl.col("pid").is_in(nc)).alias("contracted"),
                             pl.when(pl.col("pid").is_in(nc)).then(None).otherwise(pl.col("contracted_on"))
                             .alias("contracted_on"))
        out["weijian"] = wj.select("id_number", "contracted", "contracted_on", "disease_class",
                                   pl.col("pid").alias("_pid"), pl.col("hh").alias("_hh"),
                                   pl.col("township_code").alias("_town"), "_protect")

        # ---------- canlian ----------
        tg, vr = on("P09")
        cl = self.canlian_base.with_columns(
            (pl.col("living_subsidy") & ~pl.col("pid").is_in(list(map(int, tg[vr == 0])))).alias("living_subsidy"),
            (pl.col("care_subsidy") & ~pl.col("pid").is_in(list(map(int, tg[vr == 1])))).alias("care_subsidy"))
        out["canlian"] = cl.select("id_number", "category", "level", "living_subsidy", "care_subsidy",
                                   pl.col("pid").alias("_pid"), pl.col("hh").alias("_hh"),
                                   pl.col("township_code").alias("_town"), "_protect")

        # ---------- renshe ----------
        out["renshe"] = self.renshe_base.select(
            "id_number", "work_place", "months", "monthly_wage", "public_job", pl.col("pid").alias("_pid"),
            pl.col("hh").alias("_hh"), pl.col("township_code").alias("_town"), "_protect")

        # ---------- gongan: the calendar year's cancellations up to the period's end ----------
        year_start = mi - mi % 12   # month index of January of the period's year
        dep = self.departed.filter((pl.col("month") <= mi) & (pl.col("month") >= year_start))
        vill = H["village_code"].to_numpy()
        dep = dep.with_columns(pl.Series("_town", vill[dep["pid"].to_numpy() % len(vill)], dtype=pl.Utf8).str.slice(0, 9))
        recent = died.filter(pl.col("month") >= year_start)
        deaths = recent.with_columns(
            _dates(recent["month"].to_numpy(), recent["day"].to_numpy()).alias("cancelled_on")).join(
            P.select("pid", "id_number", "name", "township_code", "_protect"), on="pid")
        gongan = pl.concat([
            dep.select("id_number", "name", "cancelled_on", "reason", pl.col("pid").alias("_pid"),
                       pl.lit(-1).alias("_hh"), "_town", pl.lit(False).alias("_protect")),
            deaths.select("id_number", "name", "cancelled_on", pl.lit("死亡").alias("reason"),
                          pl.col("pid").alias("_pid"), pl.lit(-1).alias("_hh"),
                          pl.col("township_code").alias("_town"), pl.lit(True).alias("_protect")),
        ]).sort("cancelled_on", "id_number")
        out["gongan"] = gongan

        # ---------- caizheng ----------
        tg, _ = on("P08")
        cz = self.caizheng_base
        if len(tg):
            add = P.filter(pl.col("pid").is_in(tg)).select(
                "pid", "hh", "township_code", "_protect", "id_number", "name",
                pl.lit(f"{self.county_name}教育局").alias("employer"), pl.lit(dt.date(2019, 9, 1)).alias("hired_on"))
            cz = pl.concat([cz, add.with_columns(pl.lit(True).alias("_protect"))])
        out["caizheng"] = cz.select("id_number", "name", "employer", "hired_on", pl.col("pid").alias("_pid"),
                                    pl.col("hh").alias("_hh"), pl.col("township_code").alias("_town"), "_protect")
        # a stable order (joins do not keep one): township, household, person (integer keys: fast)
        def ordered(d: str, f: pl.DataFrame) -> pl.DataFrame:
            keys = [pl.col("_town").cast(pl.Int64), "_hh", "_pid"]
            if d == "fupin":
                keys = [pl.col("household_id").str.slice(0, 12).cast(pl.Int64),
                        pl.col("household_id").str.slice(12).cast(pl.Int64), "_pid"]
            elif d == "gongan":
                keys = ["cancelled_on", "_pid"]
            elif d == "minzheng":
                keys = keys + ["start_month", "assistance"]
            elif d == "yibao":
                keys = keys + ["year"]
            return f.sort(keys)
        return {d: ordered(d, f) for d, f in out.items()}

    # ------------------------------------------------------------ school
    def _school(self, mi: int) -> pl.DataFrame:
        """Who is enrolled (base, before plants) as of the period: ages on 1 September."""
        ref = school_ref(mi)
        P = self.P
        age_s = (pl.lit(ref.year) - pl.col("birth").dt.year()
                 - ((pl.col("birth").dt.month() > 9)
                    | ((pl.col("birth").dt.month() == 9) & (pl.col("birth").dt.day() > 1))).cast(pl.Int32))
        s = P.with_columns(age_s.alias("age_s")).filter(
            (pl.col("age_s") >= 3) & ((pl.col("age_s") <= 17) | ((pl.col("age_s") <= 19) & (pl.col("school_r") < .3)))
            & ~pl.col("never_school") & (pl.col("birth") < pl.lit(month_end(mi))))
        a = pl.col("age_s")
        town = pl.col("township_code").replace_strict(self.town_names, default="")
        vname = pl.col("village_code").replace_strict(self.village_names, default="")
        high = pl.col("school_r") < 0.7
        s = s.with_columns(
            pl.when(a <= 5).then(pl.lit("学前")).when(a <= 11).then(pl.lit("小学")).when(a <= 14).then(pl.lit("初中"))
            .when(a <= 17).then(pl.when(high).then(pl.lit("高中")).otherwise(pl.lit("中职")))
            .otherwise(pl.lit("高职")).alias("stage"),
            pl.when(a <= 5).then(a - 2).when(a <= 14).then(a - 5).when(a <= 17).then(a - 14)
            .otherwise(a - 17).cast(pl.Int64).alias("grade"),
        ).with_columns(
            pl.when(pl.col("stage") == "学前").then(town + "中心幼儿园")
            .when(pl.col("stage") == "小学").then(pl.when(pl.col("school_r") < .6).then(vname.str.replace("村$", "") + "小学")
                                                 .otherwise(town + "中心小学"))
            .when(pl.col("stage") == "初中").then(town + "初级中学")
            .when(pl.col("stage") == "高中").then(pl.lit(f"{self.county_name}第一中学"))
            .when(pl.col("stage") == "中职").then(pl.lit(f"{self.county_name}职业中等专业学校"))
            .otherwise(pl.lit("天水职业技术学院")).alias("school"),
            pl.when((pl.col("disability_level") <= 2) & (a >= 6) & (a <= 15)).then(pl.lit("送教上门"))
            .when((~pl.col("registry")) & (pl.col("school_r") > 0.995)).then(pl.lit("转出"))
            .otherwise(pl.lit("在读")).alias("status"),
            pl.when(pl.col("registry")).then(((pl.col("aid_r") * 20).cast(pl.Int64) + 5) * 10000)
            .when(pl.col("aid_r") < 0.1).then(pl.lit(50000)).alias("aid_amount"),
            pl.col("name").alias("student_name"),
        )
        return s.select("pid", "hh", "township_code", "_protect", "student_name", "id_number", "school",
                        "stage", "grade", "status", "aid_amount")
