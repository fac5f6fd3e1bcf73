"""The demo county's townships return verification workbooks (核实反馈), and the ledger's truth.

Every FEEDBACK_EVERY periods from the third on, each township returns the workbook it was given
after the previous period's run (its problems open then, one row each, the rows it did not verify
left blank) into ``<period>/feedback/``. Of the problems it verifies:

- 不属实 on most P08 and P14 problems (a namesake on the state payroll, a car registered in a
  poor person's name by someone else: 挂名) and on a few P03 (the family-doctor contract exists
  but is not in the data);
- 已整改 on some problems that the data of the same period no longer shows (closed by the data)
  and on some it still shows (整改未见数据);
- 属实 on the rest of those picked.

A few rows are filled in badly, each with one defect the pipeline must quarantine: an unknown
problem key, a problem of another township, a result outside the list, 不属实 without 说明,
已整改 without 佐证材料, a 核实日期 after the period's end. Clerks bypass the drop-down with free
text it accepts (情况属实) and type dates as text (2021年3月5日).

Truth written: ``truth/ledger.csv`` (period, code, subject_id, status open / closed / dismissed,
rectification_unconfirmed) for every problem in every period from its first sighting, and the
bad rows appended to ``truth/quarantine.csv`` through the generator's quarantine list.

Assumptions this truth rests on (the generator keeps them): every department delivers every
period, so a problem not seen is closed; the detail of a dismissed P08 / P03 problem is its
employer / health status, tracked here to know when it changes (a new spell).
"""
from __future__ import annotations

import hashlib

import duckdb
import numpy as np
import polars as pl

from povwatch.tasks.core.rules import rule_catalogue
from povwatch.tasks.ingest import reasons
from povwatch.tasks.synth.world import month_end, month_index
from povwatch.tasks.synth.writers import write_xlsx

FEEDBACK_EVERY = 2          # townships return feedback every second period …
FIRST_FEEDBACK = 2          # … from the third period on (index 2)
VERIFY_SHARE = 0.5          # share of a township's open problems it verifies each time
# share refuted (不属实) of those verified, by rule: the 挂名 rules — a namesake on the payroll, a
# car registered in a poor person's name by someone else — and a few family-doctor contracts
REFUTED_CODES = {"P08": 0.8, "P14": 0.8, "P03": 0.3}
REPORTED_FIXED = 0.3        # share of the other verified problems reported 已整改
NOT_MAPPED = {"P07b", "P11"}   # subjects whose township the workbook cannot pin to one household
HEADERS = {"problem_key": "问题编号", "code": "问题类型", "township_code": "乡镇代码",
           "result": "核实结果", "note": "说明", "evidence": "佐证材料", "verifier": "核实人",
           "verified_on": "核实日期"}
LEDGER_COLUMNS = ["period", "code", "subject_id", "status", "rectification_unconfirmed"]
FRAMES = ("fupin", "caizheng", "cheliang")   # what this module reads of each period's extracts


def delivered_depts(loaded: dict[str, list]) -> pl.DataFrame:
    """The departments that delivered in a period (generate.py's per-period ``loaded`` lists)."""
    return pl.DataFrame({"dept": [d for d, parts in loaded.items() if parts]}, schema={"dept": pl.Utf8})

BAD_KEY = "问题编号：问题台账中没有这个问题（problem_key_known）"
OTHER_TOWNSHIP = "问题编号：不是本乡镇的问题（problem_of_this_township）"
LATE_DATE = "核实日期：晚于本期末（verified_on_within_period）"
BAD_KINDS = 6   # unknown key, another township's problem, result outside the list, 不属实 without
                # 说明, 已整改 without 佐证材料, 核实日期 after the period: one file each per period


def with_problem_key(frame: pl.DataFrame) -> pl.DataFrame:
    """Adds the pipeline's problem key: the first 16 hex digits of md5('code:subject_id')."""
    return duckdb.sql("SELECT *, substr(md5(code || ':' || subject_id), 1, 16) AS problem_key "
                      "FROM frame").pl()


def subjects(fupin: pl.DataFrame) -> pl.DataFrame:
    """subject_id -> township and the head's household, for person and household subjects."""
    f = fupin.filter(pl.col("id_number").is_not_null())
    persons = f.group_by("id_number").agg(pl.col("village_code").min()).rename({"id_number": "subject_id"})
    homes = f.group_by("household_id").agg(pl.col("village_code").min()).rename({"household_id": "subject_id"})
    return pl.concat([persons, homes]).unique("subject_id").with_columns(
        pl.col("village_code").str.slice(0, 9).alias("township_code"))


def details(frames: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """(code, subject_id, detail) for the rules a township may refute: what the finding says."""
    payroll = frames["caizheng"].group_by("id_number").agg(
        pl.col("employer").unique().sort().str.join("；").alias("detail"))
    health = frames["fupin"].group_by("id_number").agg(
        pl.col("health").unique().sort().str.join("；").alias("detail"))
    parts = [payroll.select(pl.lit("P08").alias("code"), pl.col("id_number").alias("subject_id"), "detail"),
             health.select(pl.lit("P03").alias("code"), pl.col("id_number").alias("subject_id"), "detail")]
    if "cheliang" in frames:   # P14: the counted cars (type, use, status, plate) of the owner
        cars = frames["cheliang"].filter(
            pl.col("vehicle_type").is_in(["小型载客汽车", "微型载客汽车"]) & (pl.col("use") == "非营运")
            & pl.col("status").is_in(["正常", "查封"]))
        parts.append(cars.group_by("id_number").agg(
            pl.concat_str("vehicle_type", "use", "status", "plate", separator="，").unique().sort()
            .str.join("；").alias("detail"))
            .select(pl.lit("P14").alias("code"), pl.col("id_number").alias("subject_id"), "detail"))
    return pl.concat(parts)


class FeedbackPlan:
    """Chooses the verifications, writes the workbooks, replays the ledger's truth."""

    def __init__(self, generator, frames: list[dict[str, pl.DataFrame]]):
        self.gen, self.periods, self.seed = generator, generator.periods, generator.seed
        everything = generator.problems   # every rule's truth, all periods (set by _write_truth)
        self.problems = [everything.filter(pl.col("period") == p).select("code", "subject_id")
                         for p in self.periods]
        self.frames = frames
        self.verifications: list[pl.DataFrame] = []
        self.quarantine: list[pl.DataFrame] = []

    def run(self) -> pl.DataFrame:
        for t in range(FIRST_FEEDBACK, len(self.periods), FEEDBACK_EVERY):
            self._feedback_period(t)
        return self.ledger()

    # ------------------------------------------------------------ one period's workbooks
    def _feedback_period(self, t: int) -> None:
        rng = np.random.default_rng([self.seed, t, 16])
        period, prev = self.periods[t], self.periods[t - 1]
        where = subjects(self.frames[t - 1]["fupin"])
        open_prev = (self.ledger_until(t - 1).filter((pl.col("period") == prev) & (pl.col("status") == "open"))
                     .filter(~pl.col("code").is_in(list(NOT_MAPPED)))
                     .join(where, on="subject_id", how="inner"))
        open_prev = with_problem_key(open_prev).sort("township_code", "code", "subject_id")
        if open_prev.is_empty():
            return
        seen_now = self.problems[t].with_columns(pl.lit(True).alias("seen_now"))
        rows = open_prev.join(seen_now, on=["code", "subject_id"], how="left").with_columns(
            pl.col("seen_now").fill_null(False))
        n = rows.height
        u = rng.random(n)
        refute_share = pl.col("code").replace_strict(REFUTED_CODES, default=0.0, return_dtype=pl.Float64)
        rows = rows.with_columns(pl.Series("u", u), pl.Series("v", rng.random(n)),
                                 pl.Series("day", rng.integers(1, 28, n)))
        verified = pl.col("u") < VERIFY_SHARE
        rows = rows.with_columns(
            pl.when(~verified).then(None)
            .when(pl.col("v") < refute_share).then(pl.lit("不属实"))
            .when(pl.col("v") > 1 - REPORTED_FIXED).then(pl.lit("已整改"))
            .otherwise(pl.lit("属实")).alias("result"))
        end = month_end(month_index(period))
        rows = rows.with_columns(
            pl.when(pl.col("result") == "不属实").then(pl.lit("经入户核实，系同名同姓或他人冒用，本人不符合"))
            .alias("note"),
            pl.when(pl.col("result") == "已整改").then(pl.format("{}整改〔{}〕{}号", pl.lit(period[:4]),
                                                               pl.col("township_code").str.slice(6, 3),
                                                               pl.col("day"))).alias("evidence"),
            pl.when(pl.col("result").is_not_null()).then(pl.lit("村干部")).alias("verifier"),
            pl.when(pl.col("result").is_not_null())
            .then(pl.format("{}-{}-{}", pl.lit(end.year), pl.lit(f"{end.month:02d}"),
                            pl.col("day").cast(pl.Utf8).str.zfill(2))).alias("verified_on"),
        )
        # clerks: free text the contract accepts, dates typed as text
        clerk = pl.Series("w", rng.random(n))
        rows = rows.with_columns(clerk).with_columns(
            pl.when((pl.col("result") == "属实") & (pl.col("w") < 0.3)).then(pl.lit("情况属实"))
            .otherwise(pl.col("result")).alias("result"),
            pl.when(pl.col("verified_on").is_not_null() & (pl.col("w") > 0.7))
            .then(pl.format("{}年{}月{}日", pl.lit(end.year), pl.lit(end.month), pl.col("day")))
            .otherwise(pl.col("verified_on")).alias("verified_on"))
        good = rows.filter(pl.col("result").is_not_null())
        self.verifications.append(good.select(
            pl.lit(t).alias("t"), "code", "subject_id",
            pl.col("result").replace({"情况属实": "属实"}).alias("result")))
        self._write(rows, period, prev, rng)

    def _bad_row(self, kind: int, rows: pl.DataFrame, town: str, others: pl.DataFrame,
                 period: str) -> tuple[dict, str] | None:
        """One badly filled row of defect ``kind`` for a township's file, with its reason."""
        end = month_end(month_index(period))
        day = f"{end.year}-{end.month:02d}-10"
        blank = rows.filter(pl.col("result").is_null())
        base = dict(township_code=town, verifier="村干部", note=None, evidence=None, verified_on=day)
        if kind == 0:
            fake = hashlib.md5(f"{self.seed}:{period}:{town}".encode()).hexdigest()[:16]
            return {**base, "problem_key": fake, "code": "P02", "result": "属实"}, BAD_KEY
        if kind == 1 and others.height:
            o = others.row(0, named=True)
            return {**base, "problem_key": o["problem_key"], "code": o["code"], "result": "属实"}, OTHER_TOWNSHIP
        if blank.is_empty():
            return None
        b = blank.row(0, named=True)
        row = {**base, "problem_key": b["problem_key"], "code": b["code"]}
        late = f"{end.year + (end.month == 12)}-{end.month % 12 + 1:02d}-03"
        return {2: ({**row, "result": "待核实"}, reasons.cell_reason("核实结果", reasons.CODE_NOT_IN_LIST)),
                3: ({**row, "result": "不属实"}, reasons.cell_reason("说明", reasons.REQUIRED_BLANK)),
                4: ({**row, "result": "已整改"}, reasons.cell_reason("佐证材料", reasons.REQUIRED_BLANK)),
                5: ({**row, "result": "属实", "verified_on": late}, LATE_DATE)}.get(kind)

    def _write(self, rows: pl.DataFrame, period: str, prev: str, rng) -> None:
        towns = rows["township_code"].unique().sort().to_list()
        defect_of = dict(zip(rng.permutation(towns).tolist(), range(BAD_KINDS)))
        for town in towns:
            mine = rows.filter(pl.col("township_code") == town)
            others = rows.filter((pl.col("township_code") != town) & pl.col("result").is_null())
            body = mine.select(list(HEADERS))
            bad = self._bad_row(defect_of[town], mine, town, others, period) if town in defect_of else None
            why = []
            if bad is not None:
                row, reason = bad
                why.append(reason)
                # the bad row stands in for the blank row of its problem, as a clerk fills it in
                body = body.filter(pl.col("problem_key") != row["problem_key"])
                body = pl.concat([body, pl.DataFrame([row], schema={c: pl.Utf8 for c in HEADERS})])
            name = f"核实反馈表-{town}-{prev}.xlsx"
            path = self.gen.out / period / "feedback" / name
            titles = (f"问题核实反馈表（{prev}）：黄色列由乡镇核实后填写",)
            write_xlsx(path, body.rename(HEADERS), titles=titles)
            first_row = len(titles) + 2
            rel = f"{period}/feedback/{name}"
            self.quarantine.append(pl.DataFrame({
                "period": [period] * len(why), "dept": ["feedback"] * len(why), "file": [rel] * len(why),
                "row_number": [first_row + body.height - 1] * len(why), "reason": why},
                schema={"period": pl.Utf8, "dept": pl.Utf8, "file": pl.Utf8, "row_number": pl.Int64,
                        "reason": pl.Utf8}))
            self.gen.rows["feedback"] += body.height
            self.gen.files["feedback"] += 1

    # ------------------------------------------------------------ the ledger's truth
    def ledger_until(self, last: int) -> pl.DataFrame:
        """Status of every problem in every period up to index ``last`` (loop.md §3): the ledger's
        replay over the planted findings, the departments that delivered and the verifications."""
        seen = pl.concat([p.with_columns(pl.lit(t).alias("t")) for t, p in enumerate(self.problems[:last + 1])])
        keys = seen.group_by("code", "subject_id").agg(pl.col("t").min().alias("first"))
        grid = (keys.join(pl.DataFrame({"t": list(range(last + 1))}), how="cross")
                .filter(pl.col("t") >= pl.col("first"))
                .join(seen.with_columns(pl.lit(True).alias("seen")), on=["code", "subject_id", "t"], how="left")
                .with_columns(pl.col("seen").fill_null(False))
                .join(self._deliveries(last), on=["code", "t"], how="left")
                .with_columns((~pl.col("seen") & pl.col("closable_if_unseen")).alias("closable")))
        det = pl.concat([details(f).with_columns(pl.lit(t).alias("t")) for t, f in enumerate(self.frames[:last + 1])])
        grid = grid.join(det, on=["code", "subject_id", "t"], how="left")
        ver = (pl.concat(self.verifications) if self.verifications
               else pl.DataFrame(schema={"t": pl.Int64, "code": pl.Utf8, "subject_id": pl.Utf8, "result": pl.Utf8}))
        ver = ver.filter(pl.col("t") <= last).rename({"t": "vt"})
        # the verification in force at t: the latest delivered up to t (one per problem and period)
        grid = (grid.join(ver, on=["code", "subject_id"], how="left")
                .with_columns(pl.when(pl.col("vt") <= pl.col("t")).then(pl.col("vt")).alias("vt"))
                .with_columns(pl.when(pl.col("vt").is_not_null()).then(pl.col("result")).alias("result"))
                .sort("code", "subject_id", "t", "vt", nulls_last=False)
                .unique(["code", "subject_id", "t"], keep="last", maintain_order=True))
        by = ["code", "subject_id"]
        per_v = ["code", "subject_id", "vt"]
        applies = pl.col("vt").is_not_null()
        at_v = pl.col("t") == pl.col("vt")
        # a refutation holds while the subject is found with the detail it had when refuted
        grid = grid.with_columns(pl.col("detail").forward_fill().over(by).alias("detail_so_far"))
        grid = grid.with_columns(pl.when(at_v).then(pl.col("detail_so_far")).max().over(per_v).alias("detail_at_v"))
        changed = applies & pl.col("seen") & (pl.col("detail") != pl.col("detail_at_v")).fill_null(False)
        grid = grid.with_columns(changed.cast(pl.Int32).cum_sum().over(per_v).alias("changes"))
        dismissed = applies & (pl.col("result") == "不属实") & (pl.col("changes") == 0)
        # found: open; not found and every department the rule reads delivered: closed; else as was
        mark = (pl.when(dismissed).then(pl.lit("D")).when(pl.col("seen")).then(pl.lit("S"))
                .when(pl.col("closable")).then(pl.lit("C")))
        grid = grid.with_columns(mark.alias("mark")).with_columns(
            pl.col("mark").forward_fill().over(by).alias("state"))
        prev = pl.col("state").shift(1).over(by).fill_null("C")
        grid = grid.with_columns(((pl.col("state") == "S") & prev.is_in(["C", "D"]))
                                 .cast(pl.Int32).cum_sum().over(by).alias("spell"))
        grid = grid.with_columns(pl.when(at_v).then(pl.col("spell")).max().over(per_v).alias("spell_at_v"))
        # 已整改 still shown by the responsible department's data in that spell: 整改未见数据
        shown = (applies & (pl.col("result") == "已整改") & (pl.col("state") == "S") & pl.col("seen")
                 & pl.col("responsible_delivered") & (pl.col("spell") == pl.col("spell_at_v")))
        grid = grid.with_columns(shown.cast(pl.Int32).cum_max().over(per_v + ["spell"]).alias("shown"))
        unconfirmed = (pl.col("shown") == 1) & (pl.col("state") == "S")
        status = pl.col("state").replace_strict({"S": "open", "C": "closed", "D": "dismissed"},
                                               return_dtype=pl.Utf8)
        return grid.with_columns(
            status.alias("status"),
            unconfirmed.alias("rectification_unconfirmed"),
            pl.col("t").replace_strict(dict(enumerate(self.periods)), return_dtype=pl.Utf8).alias("period"),
        ).select(LEDGER_COLUMNS).sort("period", "code", "subject_id")

    def _deliveries(self, last: int) -> pl.DataFrame:
        """Per rule and period: could the rule close a problem (every department it reads
        delivered), and did its responsible department deliver."""
        rules = pl.DataFrame([(r.code, list(r.reads), r.responsible) for r in rule_catalogue()],
                             schema=["code", "reads", "responsible"], orient="row")
        delivered = pl.concat([f["delivered"].with_columns(pl.lit(t).alias("t"))
                               for t, f in enumerate(self.frames[:last + 1])])
        per_period = delivered.group_by("t").agg(pl.col("dept").alias("depts"))
        return rules.join(per_period, how="cross").select(
            "code", "t",
            pl.col("reads").list.set_difference(pl.col("depts")).list.len().eq(0).alias("closable_if_unseen"),
            pl.col("depts").list.contains(pl.col("responsible")).alias("responsible_delivered"))

    def ledger(self) -> pl.DataFrame:
        return self.ledger_until(len(self.periods) - 1)


def plant_feedback(generator, frames: list[dict[str, pl.DataFrame]]) -> None:
    """Write the townships' returned workbooks, truth/ledger.csv and their rows of
    truth/quarantine.csv. Called by generate.py once the other truth is written; ``frames`` holds
    each period's loaded fupin and caizheng."""
    plan = FeedbackPlan(generator, frames)
    ledger = plan.run()
    truth = generator.out / "truth"
    ledger.write_csv(truth / "ledger.csv")
    if plan.quarantine:
        path = truth / "quarantine.csv"
        before = pl.read_csv(path, schema_overrides={"period": pl.Utf8, "row_number": pl.Int64},
                             infer_schema_length=0).with_columns(pl.col("row_number").cast(pl.Int64))
        pl.concat([before, *plan.quarantine], how="vertical_relaxed").sort(
            "period", "dept", "file", "row_number").write_csv(path)
