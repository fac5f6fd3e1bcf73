"""``povwatch generate``: a synthetic county's departmental extracts, as offices send them, plus the
truth of what was planted (see docs/generator.md).

    <out>/<period>/<dept>/<file>            the extracts (docs/contract.md's delivery layout)
    <out>/truth/monitoring.csv              period, household_key, category
    <out>/truth/problems.csv                period, code, subject_id
    <out>/truth/quarantine.csv              period, dept, file, row_number, reason
    <out>/truth/clearance.csv               period, household_key (风险消除 proposals; extra)

Pieces: gen_divisions (reference table), gen_population (people), gen_world (departments' canonical
frames per period, planted cases), gen_defects (text, damage, duplicates), gen_writers (CSV/xlsx),
gen_oracle (rules.md over the data as it will be loaded).
"""
from __future__ import annotations

import re
import shutil
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from povwatch.tasks.core.rules import rule_codes
from povwatch.tasks.ingest.contracts import load_contract
from povwatch.tasks.synth.assets import ASSET_DEPTS, AssetRegisters, delivers, wan_text
from povwatch.tasks.synth.costs import add_unavoidable_costs
from povwatch.tasks.synth.defects import render
from povwatch.tasks.synth.divisions import load_divisions
from povwatch.tasks.synth.feedback import (FRAMES as FEEDBACK_FRAMES, delivered_depts,
                                         plant_feedback)
from povwatch.tasks.synth.keyclash import empty_snapshot, plant_key_clashes
from povwatch.tasks.synth.oracle import clearance, evaluate, load_policy
from povwatch.tasks.synth.roster import ROSTER_CODES, deliver_roster, roster_summary
from povwatch.tasks.synth.world import CountyWorld, month_end, month_index, month_label
from povwatch.tasks.synth.writers import write_csv, write_xlsx

DEPTS = ["fupin", "shouru", "jiaoyu", "zhujian", "minzheng", "yibao", "weijian", "shuili",
         "canlian", "renshe", "gongan", "caizheng", *ASSET_DEPTS]
DEFAULT_COUNTY = "620523"
NEIGHBOURS = ["620521", "620522", "620524", "620525", "620502", "620503"]


@dataclass(frozen=True)
class Delivery:
    """How a department delivers: file kind, encoding, title rows, date habit, split, synonyms."""
    kind: str                          # "csv" | "xlsx"
    encoding: str = "utf-8"
    titles: int = 0                    # title rows above the header (xlsx)
    date_format: str = "%Y-%m-%d"
    per_township: bool = False
    reverse_columns: bool = False


DELIVERY = {
    "fupin": Delivery("xlsx", titles=2),
    "shouru": Delivery("xlsx", titles=1, date_format="%Y/%-m/%-d"),
    "jiaoyu": Delivery("csv", "gbk"),
    "renshe": Delivery("csv", "gbk"),
    "minzheng": Delivery("csv", "gb18030"),
    "yibao": Delivery("csv", "utf-8-sig", per_township=True),
    "zhujian": Delivery("csv", "utf-8", date_format="%Y年%-m月%-d日"),
    "weijian": Delivery("csv", "utf-8", date_format="%Y%m%d", reverse_columns=True),
    "shuili": Delivery("xlsx"),
    "canlian": Delivery("csv", "utf-8", per_township=True),
    "gongan": Delivery("xlsx", date_format="%Y/%-m/%-d"),
    "caizheng": Delivery("csv", "utf-8"),
    "cheliang": Delivery("xlsx", titles=1, date_format="%Y/%-m/%-d"),
    "budongchan": Delivery("csv", "gbk", date_format="%Y年%-m月%-d日"),
    "shichang": Delivery("csv", "utf-8", date_format="%Y%m%d"),
    "jiance": Delivery("xlsx"),          # the official roster, from the second period on (roster.py)
}
CANLIAN_CATEGORY_DIGIT = {c: str(i + 1) for i, c in enumerate(["视力", "听力", "言语", "肢体", "智力", "精神", "多重"])}
LEVEL_WORDS = {"1": "一级", "2": "二级", "3": "三级", "4": "四级"}
TRUTH_QUARANTINE = ["period", "dept", "file", "row_number", "reason"]


def choose_counties(divisions: pl.DataFrame, n: int) -> list[tuple[str, str]]:
    counties = divisions.filter(pl.col("level") == "county").select("code", "name")
    names = dict(counties.iter_rows())
    preferred = [DEFAULT_COUNTY] + NEIGHBOURS
    order = [c for c in preferred if c in names] + sorted(c for c in names if c not in preferred)
    if n > len(order):
        raise ValueError(f"区划表只有 {len(order)} 个县，无法生成 {n} 个县")
    return [(c, names[c]) for c in order[:n]]


def _headers(dept: str, t: int) -> dict[str, str]:
    """Column → header for this delivery: the contract's header, or a synonym some offices use."""
    contract = load_contract(dept)
    h = {c.name: c.header for c in contract.columns}
    if dept == "fupin":
        if t % 2 == 1:
            h["id_number"] = "身份证号"
        if t % 3 == 2:
            h["village_code"] = "行政区划代码"
    elif dept == "jiaoyu" and t % 2 == 1:
        h["id_number"] = "身份证号"
    elif dept == "shouru" and t % 2 == 0:
        h["head_id_number"] = "户主身份证号"
    return h


def _numeric_columns(dept: str) -> set[str]:
    return {c.name for c in load_contract(dept).columns if c.type in ("int", "money", "percent")}


class Generator:
    def __init__(self, out: Path, period: str, periods: int, households: int, seed: int,
                 defects: float, counties: int):
        self.out = Path(out)
        self.periods = [month_label(month_index(period) + t) for t in range(periods)]
        self.households, self.seed, self.defects = households, seed, defects
        self.divisions = load_divisions()
        self.counties = choose_counties(self.divisions, counties)
        self.multi = counties > 1
        self.rows: Counter = Counter()
        self.files: Counter = Counter()
        self.quarantine: list[pl.DataFrame] = []

    def run(self) -> str:
        started = time.perf_counter()
        self._clear_previous()
        worlds, registers = [], []   # registers: the asset registers (assets.py), per county
        last_assets: dict[str, pl.DataFrame] = {}   # a register's last delivery stands
        gongan_seen: list[pl.DataFrame] = []        # deaths are facts once reported (P07/P07b)
        taken = None
        for i, (code, name) in enumerate(self.counties):
            villages = self.divisions.filter((pl.col("level") == "village") & pl.col("parent").str.starts_with(code))
            towns = self.divisions.filter((pl.col("level") == "township") & (pl.col("parent") == code))
            if villages.is_empty():
                raise ValueError(f"区划表中 {code} 没有村级区划")
            w = CountyWorld(np.random.default_rng([self.seed, i]), code, name, villages, towns,
                            self.households, self.periods[0], len(self.periods), taken, rare_name=(i == 0))
            issued = pl.concat([w.P["id_number"], w.departed["id_number"]])
            taken = issued if taken is None else pl.concat([taken, issued])
            worlds.append(w)
            registers.append(AssetRegisters(np.random.default_rng([self.seed, i, 17]), w.P, w.H, code))
        monitoring, problems, households = [], [], []
        feedback_frames: list[dict[str, pl.DataFrame]] = []   # what feedback.py reads
        for t, period in enumerate(self.periods):
            loaded: dict[str, list[pl.DataFrame]] = {d: [] for d in DEPTS}
            for i, w in enumerate(worlds):
                frames = w.frames(t)
                frames["shouru"] = add_unavoidable_costs(frames["shouru"], period)
                if delivers(period, t):
                    frames.update(registers[i].frames(t))
                for j, dept in enumerate(DEPTS):
                    if dept not in frames:
                        continue
                    rng = np.random.default_rng([self.seed, i, t, j, 7])
                    loaded[dept].append(self._deliver(dept, frames[dept], rng, period, t, w))
            merged = {d: pl.concat(v, how="vertical_relaxed") for d, v in loaded.items() if v}
            last_assets.update({d: merged[d] for d in ASSET_DEPTS if d in merged})
            merged.update({d: f for d, f in last_assets.items() if d not in merged})
            gongan_seen.append(merged["gongan"])
            merged["gongan_all"] = pl.concat(gongan_seen, how="vertical_relaxed")
            policy = load_policy(int(period[:4]))
            m, p, h = evaluate(merged, period, policy)
            monitoring.append(m)
            problems.append(p)
            households.append(h)
            feedback_frames.append({**{d: merged[d] for d in FEEDBACK_FRAMES if d in merged},
                                    "delivered": delivered_depts(loaded)})
        monitored, roster_problems = deliver_roster(self, worlds, monitoring, households,
                                                    load_policy(int(self.periods[0][:4])))
        self._write_truth(monitoring, problems + [roster_problems], households)
        monitored.write_csv(self.out / "truth" / "monitored.csv")
        plant_feedback(self, feedback_frames)   # the townships' 核实反馈 and truth/ledger.csv
        # the feedback's badly filled rows were appended to truth/quarantine.csv: count them too
        self.quarantined = pl.read_csv(self.out / "truth" / "quarantine.csv", infer_schema=False)
        self.monitored = monitored
        return self._summary(monitoring, problems, time.perf_counter() - started)

    def _clear_previous(self) -> None:
        """A folder generated before (it has truth/) is regenerated from scratch: its period
        folders and truth/ go, so no stale extract of another run stays beside the new truth.
        Nothing is removed from a folder without truth/."""
        if not (self.out / "truth").is_dir():
            return
        for child in self.out.iterdir():   # a handful of folders
            if child.is_dir() and (child.name == "truth" or re.fullmatch(r"\d{4}-\d{2}", child.name)):
                shutil.rmtree(child)

    # ------------------------------------------------------------------ one extract
    def _deliver(self, dept: str, canon: pl.DataFrame, rng: np.random.Generator, period: str, t: int,
                 world: CountyWorld) -> pl.DataFrame:
        contract = load_contract(dept)
        how = DELIVERY[dept]
        if dept == "canlian":
            return self._deliver_canlian(canon, rng, period, t, world)
        canon = empty_snapshot(dept, period, canon)          # gongan's January: header only (#20)
        text, loaded = render(contract, canon, rng, self.defects, how.date_format, excel=how.kind == "xlsx")
        text, loaded = plant_key_clashes(contract, canon, text, loaded,   # 重复键 pairs (#20)
                                         np.random.default_rng([self.seed, t, int(world.county), 20]))
        text = text.with_columns(canon["_town"].gather(text["_src"]).alias("_town"))
        if dept == "shichang":
            text = wan_text(text, canon)
        if how.per_township:
            for town, part in text.group_by("_town", maintain_order=True):
                self._write(dept, part, period, t, world, town=town[0])
        else:
            self._write(dept, text, period, t, world)
        return loaded.drop(["_pid", "_hh", "_town", "_protect", "_wan"], strict=False)

    def _deliver_canlian(self, canon: pl.DataFrame, rng, period, t, world) -> pl.DataFrame:
        """Per township; one township sends the 20-character 残疾证号, another writes 一级…四级."""
        contract = load_contract("canlian")
        towns = sorted(world.town_names)
        cert_town, words_town = towns[0], towns[1 % len(towns)]
        is_cert = canon["_town"] == cert_town
        loaded_parts = []
        for part_cert in (True, False):
            part = canon.filter(is_cert if part_cert else ~is_cert)
            if part.is_empty():
                continue
            if part_cert:
                text, loaded = render(contract, part, rng, self.defects, allow_unrepairable={"living_subsidy", "care_subsidy"},
                                      no_repair={"id_number"})
                cert = (part["id_number"] + part["category"].replace_strict(CANLIAN_CATEGORY_DIGIT)
                        + part["level"].cast(pl.Utf8)).gather(text["_src"])
                text = text.with_columns(cert.alias("certificate")).drop(["id_number", "category", "level"])
                text = text.select(["certificate"] + [c for c in text.columns if c != "certificate"])
            else:
                text, loaded = render(contract, part, rng, self.defects)
                words = part["_town"].gather(text["_src"]) == words_town
                text = text.with_columns(pl.when(pl.lit(words)).then(pl.col("level").replace(LEVEL_WORDS))
                                         .otherwise(pl.col("level")).alias("level"))
            text = text.with_columns(part["_town"].gather(text["_src"]).alias("_town"))
            for town, sub in text.group_by("_town", maintain_order=True):
                self._write("canlian", sub, period, t, world, town=town[0])
            loaded_parts.append(loaded)
        return pl.concat(loaded_parts).drop(["_pid", "_hh", "_town", "_protect"])

    def _write(self, dept: str, text: pl.DataFrame, period: str, t: int, world: CountyWorld,
               town: str | None = None) -> None:
        how = DELIVERY[dept]
        contract = load_contract(dept)
        headers = _headers(dept, t)
        if "certificate" in text.columns:
            headers["certificate"] = contract.certificate["header"]
        cols = [c for c in text.columns if not c.startswith("_")]
        if how.reverse_columns:
            cols = cols[::-1]
        body = text.select([pl.col(c).alias(headers[c]) for c in cols])
        stem = f"{dept}_{world.county}_{period}" if self.multi else f"{dept}_{period}"
        if town is not None:
            stem += f"_{world.town_names.get(town, town)}"
        name = f"{stem}.{how.kind}"
        path = self.out / period / dept / name
        year, end = period[:4], month_end(month_index(period))
        if how.kind == "xlsx":
            titles = ()
            if how.titles and dept == "fupin":
                titles = (f"{year}年建档立卡贫困人口信息表",
                          f"填报单位：{world.county_name}扶贫开发办公室　　统计截至：{end.year}年{end.month}月{end.day}日")
            elif how.titles:
                titles = (f"{year}年农村低收入人口家庭收入测算表",)
            numeric = {headers[c] for c in _numeric_columns(dept) if c in headers}
            ids = {headers[c.name] for c in contract.columns if c.type == "id" and c.name in cols}
            write_xlsx(path, body, numeric=numeric, titles=titles, floats=ids)
            first_row = len(titles) + 2
        else:
            write_csv(path, body, how.encoding)
            first_row = 2
        rel = f"{period}/{dept}/{name}"
        q = text.with_columns((pl.int_range(pl.len()) + first_row).alias("row_number")).filter(
            pl.col("_q").is_not_null()).select(
            pl.lit(period).alias("period"), pl.lit(dept).alias("dept"), pl.lit(rel).alias("file"),
            pl.col("row_number").cast(pl.Int64), pl.col("_q").alias("reason"))
        self.quarantine.append(q)
        self.rows[dept] += text.height
        self.files[dept] += 1

    # ------------------------------------------------------------------ truth and summary
    def _write_truth(self, monitoring, problems, households) -> None:
        truth = self.out / "truth"
        truth.mkdir(parents=True, exist_ok=True)
        self.monitoring = pl.concat(monitoring)
        self.problems = pl.concat(problems)
        self.monitoring.write_csv(truth / "monitoring.csv")
        self.problems.write_csv(truth / "problems.csv")
        q = pl.concat(self.quarantine) if self.quarantine else pl.DataFrame(schema={c: pl.Utf8 for c in TRUTH_QUARANTINE})
        q.sort("period", "dept", "file", "row_number").write_csv(truth / "quarantine.csv")
        self.quarantined = q
        policy = load_policy(int(self.periods[0][:4]))
        self.clearance = clearance(self.monitoring, households, self.periods, int(policy["risk_clear_months"]))
        self.clearance.write_csv(truth / "clearance.csv")

    def _summary(self, monitoring, problems, seconds: float) -> str:
        counties = "、".join(f"{n}({c})" for c, n in self.counties)
        lines = [f"已生成 {counties}，{len(self.periods)} 期（{self.periods[0]} … {self.periods[-1]}），"
                 f"每县建档立卡户 {self.households} 户，缺陷率 {self.defects:g}，种子 {self.seed}，用时 {seconds:.1f} 秒",
                 f"输出目录：{self.out}"]
        lines.append("各部门（全部期次）：" + "；".join(f"{d} {self.rows[d]} 行/{self.files[d]} 个文件" for d in DEPTS))
        lines.append(f"合计 {sum(self.rows.values())} 行，{sum(self.files.values())} 个文件；"
                     f"应隔离 {self.quarantined.height} 行（其中重复行 "
                     f"{self.quarantined.filter(pl.col('reason') == '重复行').height}）")
        pc = self.problems.group_by("period", "code").len().sort("period", "code")
        mc = self.monitoring.group_by("period", "category").len().sort("period", "category")
        for period in self.periods:
            p = ", ".join(f"{c}={n}" for _, c, n in pc.filter(pl.col("period") == period).iter_rows())
            m = ", ".join(f"{c}={n}" for _, c, n in mc.filter(pl.col("period") == period).iter_rows())
            lines.append(f"{period} 问题：{p}")
            lines.append(f"{period} 监测：{m}")
        codes = [c for c in rule_codes() if c not in ROSTER_CODES]
        categories = ["not_exited_below_line", "unstable_exited", "marginal", "sudden_hardship"]
        for period in self.periods:
            missing = (set(codes) - set(pc.filter(pl.col("period") == period)["code"])) | (
                set(categories) - set(mc.filter(pl.col("period") == period)["category"]))
            if missing:
                lines.append(f"注意：{period} 未能种下 {', '.join(sorted(missing))}（户数太少？）")
        lines.append(f"风险消除建议（truth/clearance.csv）：{self.clearance.height} 户")
        lines.append(roster_summary(self.monitored, self.problems))
        return "\n".join(lines)


def generate(out: Path, period: str = "2020-06", periods: int = 1, households: int = 600,
             seed: int = 20201, defects: float = 0.02, counties: int = 1) -> str:
    """Write the extracts and truth/ under ``out``; return a short summary (Chinese, for the CLI)."""
    if periods < 1 or households < 20 or counties < 1:
        raise ValueError("periods ≥ 1, households ≥ 20, counties ≥ 1")
    if not 0 <= defects <= 0.5:
        raise ValueError("defects 应在 0 到 0.5 之间")
    month_index(period)
    return Generator(out, period, periods, households, seed, defects, counties).run()
