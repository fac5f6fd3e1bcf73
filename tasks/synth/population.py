"""The demo county's people: households, members, identity numbers, names (vectorised).

One county is built once, as of the first period's first day, and stays the same population for
every period (the per-period changes are planted in ``gen_world``). Registry households
(建档立卡) are ``n_registry``; the whole rural population is about 13 × that.
"""
from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from povwatch.tasks.ingest.idnumber import check_char

# Address codes before 1985 (GB/T 2260: the counties moved from 天水地区/定西地区 to 天水市 in 1985);
# python-stdnum validates the address code against the birth year, and so do we.
OLD_ADDRESS = {"620523": "622529", "620521": "622523", "620522": "622530", "620524": "622528",
               "620525": "622521", "620502": "622501", "620503": "622501"}

SURNAMES = list("王李张刘杨马赵陈牛汪蒲巩魏谢姚雷郭何董蔡安石田康贾冯邓韩苏潘令包尚毛蒋焦谈裴漆妥")
SURNAME_WEIGHTS = np.array([9, 8, 8, 7, 6, 6, 5, 5, 4, 4, 3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2,
                            2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1], dtype=float)
MALE_CHARS = list("建国军平强伟明刚华军志勇斌海涛亮磊鹏辉兵林文武东峰春生福贵荣忠宝成世杰俊德")
FEMALE_CHARS = list("秀英兰花梅芳霞丽娟燕玲琴红艳萍珍桂敏静莉雪慧娜婷倩芬翠巧")
SHARED_CHARS = list("小永少振学晓佳天宏玉金彦继")
RARE_NAME = "𠮷春花"   # 𠮷 is in GB18030 but not GBK: whichever file carries it must be gb18030

RELATION_HEAD = "户主"


def labels(items: list[str], codes: np.ndarray) -> pl.Series:
    """Text from integer codes without Python objects (fast for millions)."""
    return pl.Series(items, dtype=pl.Utf8).gather(np.asarray(codes, dtype=np.int64))


def make_ids(rng: np.random.Generator, county: str, birth: np.ndarray, male: np.ndarray,
             taken: pl.Series | None = None) -> pl.Series:
    """Unique valid 18-character numbers agreeing with birth date and sex (odd sequence = male).

    ``taken``: numbers already issued (never reissued).
    """
    n = len(birth)
    b = birth.astype("datetime64[D]")
    years = b.astype("datetime64[Y]").astype(np.int64) + 1970
    months = b.astype("datetime64[M]").astype(np.int64) % 12 + 1
    days = (b - b.astype("datetime64[M]").astype("datetime64[D]")).astype(np.int64) + 1
    addr = np.where(years < 1985, int(OLD_ADDRESS.get(county, county)), int(county))
    prefix = (addr * 10**8 + years * 10**4 + months * 100 + days) * 1000   # first 17 digits, as a number
    taken17 = (np.empty(0, dtype=np.int64) if taken is None or len(taken) == 0
               else pl.Series(taken).str.slice(0, 17).cast(pl.Int64).to_numpy())
    taken17 = np.sort(taken17)
    seq = rng.integers(1, 500, size=n) * 2 - 1 + (~male).astype(np.int64)
    for _ in range(60):
        key = prefix + seq
        _, first_idx = np.unique(key, return_index=True)
        clash = np.ones(n, dtype=bool)
        clash[first_idx] = False            # later copies of a number drawn twice
        if len(taken17):                    # numbers already issued elsewhere
            pos = np.minimum(np.searchsorted(taken17, key), len(taken17) - 1)
            clash |= taken17[pos] == key
        todo = np.flatnonzero(clash)
        if len(todo) == 0:
            break
        seq[todo] = rng.integers(1, 500, size=len(todo)) * 2 - 1 + (~male[todo]).astype(np.int64)
    frame = pl.DataFrame({"id17": prefix + seq}).with_columns(pl.col("id17").cast(pl.Utf8))
    return frame.select(pl.col("id17") + check_char(pl.col("id17"))).to_series()


def make_names(rng: np.random.Generator, surname: np.ndarray, male: np.ndarray) -> pl.Series:
    """Names from surname codes (indexes into SURNAMES)."""
    n = len(surname)
    m1, f1 = MALE_CHARS + SHARED_CHARS, FEMALE_CHARS + SHARED_CHARS
    a_m, a_f = rng.integers(0, len(m1), n), rng.integers(0, len(f1), n)
    b_m, b_f = rng.integers(0, len(MALE_CHARS), n), rng.integers(0, len(FEMALE_CHARS), n)
    two = rng.random(n) < 0.7
    first = labels(m1 + f1, np.where(male, a_m, len(m1) + a_f))
    second = labels(MALE_CHARS + FEMALE_CHARS, np.where(male, b_m, len(MALE_CHARS) + b_f))
    return pl.DataFrame({"s": labels(SURNAMES, surname), "a": first, "b": second, "two": two}).select(
        pl.col("s") + pl.col("a") + pl.when(pl.col("two")).then(pl.col("b")).otherwise(pl.lit(""))
    ).to_series()


def birth_dates(rng: np.random.Generator, ref: dt.date, age: np.ndarray) -> np.ndarray:
    """Birth dates so that the age on ``ref`` is ``age`` (whole years)."""
    ref64 = np.datetime64(ref, "D")
    days = (age * 365.2425 + rng.uniform(1, 364, size=len(age))).astype(np.int64)
    return ref64 - days.astype("timedelta64[D]")


def build_population(rng: np.random.Generator, county: str, villages: pl.DataFrame,
                     n_registry: int, ref: dt.date,
                     taken: pl.Series | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(households, persons) of one county.

    households: hh, village_code, township_code, registry, household_id, size, household_type,
    poverty_status, exit_year, cause, head_pid.
    persons: pid, hh, k, relation, sex, male, birth, age, id_number, name, registry, health,
    labor, disability_level, disability_category.
    """
    n_other = int(round(n_registry * 2.75))
    n_hh = n_registry + n_other
    registry = np.zeros(n_hh, dtype=bool)
    registry[:n_registry] = True
    # poorer villages hold more registry households
    vcodes = villages["code"].to_numpy()
    weight_reg = rng.gamma(1.5, 1.0, size=len(vcodes))
    village_idx = np.where(
        registry,
        rng.choice(len(vcodes), size=n_hh, p=weight_reg / weight_reg.sum()),
        rng.integers(0, len(vcodes), size=n_hh),
    )
    size = np.where(
        registry,
        rng.choice(np.arange(1, 9), size=n_hh, p=[.08, .15, .20, .25, .17, .09, .04, .02]),
        rng.choice(np.arange(1, 9), size=n_hh, p=[.10, .20, .22, .23, .14, .07, .03, .01]),
    )
    head_age = rng.integers(26, 83, size=n_hh)
    head_male = rng.random(n_hh) < 0.88
    surname_idx = rng.choice(len(SURNAMES), size=n_hh, p=SURNAME_WEIGHTS / SURNAME_WEIGHTS.sum())

    # --- members ---
    total = int(size.sum())
    hh = np.repeat(np.arange(n_hh), size)
    starts = np.cumsum(size) - size
    k = np.arange(total) - np.repeat(starts, size)
    hsize = size[hh]
    ha = head_age[hh]
    u1, u2, u3 = rng.random(total), rng.random(total), rng.random(total)
    is_head = k == 0
    is_spouse = (k == 1) & (u1 < 0.88)
    is_parent = (~is_head) & (~is_spouse) & (k == hsize - 1) & (k >= 2) & (ha <= 52) & (u2 < 0.25)
    is_grand = (~is_head) & (~is_spouse) & (~is_parent) & (ha >= 56) & (u2 < 0.5)
    is_other = (~is_head) & (~is_spouse) & (~is_parent) & (~is_grand) & (u3 < 0.02)
    is_child = (~is_head) & (~is_spouse) & (~is_parent) & (~is_grand) & (~is_other)

    age = np.select(
        [is_head, is_spouse, is_parent, is_grand, is_child],
        [ha,
         np.clip(ha + rng.integers(-6, 6, size=total), 19, 95),
         np.clip(ha + rng.integers(20, 33, size=total), 40, 97),
         rng.integers(0, np.maximum(np.minimum(19, ha - 38), 1)),
         rng.integers(np.maximum(0, ha - 45), np.maximum(1, ha - 19))],
        default=rng.integers(5, 70, size=total),
    ).astype(np.int64)
    male = np.select(
        [is_head, is_spouse],
        [head_male[hh], ~head_male[hh]],
        default=rng.random(total) < 0.51,
    )
    relation = labels(["户主", "配偶", "之父", "之母", "之孙子", "之孙女", "之子", "之女", "其他"], np.select(
        [is_head, is_spouse, is_parent & male, is_parent, is_grand & male, is_grand,
         is_child & male, is_child], [0, 1, 2, 3, 4, 5, 6, 7], default=8))
    birth = birth_dates(rng, ref, age)

    # surnames: the head's line (head, children, grandchildren, father) share it
    own_line = is_head | is_child | is_grand | (is_parent & male)
    surname = np.where(own_line, surname_idx[hh],
                       rng.choice(len(SURNAMES), size=total, p=SURNAME_WEIGHTS / SURNAME_WEIGHTS.sum()))
    names = make_names(rng, surname, male)
    ids = make_ids(rng, county, birth, male, taken)

    # health, disability, labour
    r = rng.random(total)
    old = age >= 50
    health_code = np.select(
        [r < np.where(old, 0.16, 0.05), r < np.where(old, 0.20, 0.07), r < np.where(old, 0.26, 0.11)],
        [0, 1, 2], default=3)
    health = labels(["长期慢性病", "患有大病", "残疾", "健康"], health_code)
    dis_level = np.where(health_code == 2, rng.choice([1, 2, 3, 4], size=total, p=[.1, .2, .35, .35]), 0)
    dis_cat = labels(["视力", "听力", "言语", "肢体", "智力", "精神", "多重"],
                     rng.choice(7, size=total, p=[.12, .12, .04, .45, .12, .10, .05]))
    healthy = health_code == 3
    lr = rng.random(total)
    working = (age >= 16) & (age <= 59)
    labor = np.select(
        [age < 16,
         working & healthy & (lr < 0.80),
         working & healthy & (lr < 0.95),
         working & (lr < 0.5),
         working,
         lr < 0.45,
         lr < 0.8],
        [0, 1, 2, 3, 4, 3, 4], default=0)
    labor = labels(["无劳动力", "普通劳动力", "技能劳动力", "弱劳动力或半劳动力", "丧失劳动力"], labor)

    persons = pl.DataFrame({
        "pid": np.arange(total), "hh": hh, "k": k, "relation": relation,
        "male": male, "birth": birth, "age": age, "id_number": ids, "name": names,
        "health": health, "disability_level": dis_level, "disability_category": dis_cat,
        "labor": labor,
    }).with_columns(
        pl.when(pl.col("male")).then(pl.lit("男")).otherwise(pl.lit("女")).alias("sex"),
        pl.col("birth").cast(pl.Date),
    )

    # --- household attributes ---
    vill = villages["code"].gather(village_idx)
    hh_code = np.where(rng.random(n_hh) < 0.25, 1, 0)
    elderly_small = (size <= 2) & (head_age >= 60)
    hh_code = np.where(elderly_small & (rng.random(n_hh) < 0.5), 2, hh_code)
    hh_type = labels(["一般贫困户", "低保贫困户", "特困供养贫困户"], hh_code)
    exited = rng.random(n_hh) >= 0.05
    status = labels(["未脱贫", "已脱贫"], exited.astype(np.int64))
    exit_year = np.where(exited, rng.integers(2014, 2020, size=n_hh), 0)
    causes = ["因病", "因残", "因学", "因灾", "缺土地", "缺水", "缺技术", "缺劳力", "缺资金",
              "交通条件落后", "自身发展动力不足"]
    cause = labels(causes, rng.choice(len(causes), size=n_hh, p=[.2, .1, .08, .04, .06, .05, .15, .1, .12, .04, .06]))
    households = pl.DataFrame({
        "hh": np.arange(n_hh), "village_code": vill, "registry": registry, "size": size,
        "household_type": hh_type, "poverty_status": status, "exit_year": exit_year,
        "cause": cause, "head_pid": starts,
    }).with_columns(
        pl.col("village_code").str.slice(0, 9).alias("township_code"),
    )
    # 户编号: village code + 4-digit number within the village (registry only)
    households = households.with_columns(
        pl.when(pl.col("registry")).then(
            pl.col("village_code")
            + (pl.int_range(pl.len()).over("village_code", "registry") + 1).cast(pl.Utf8).str.zfill(4)
        ).alias("household_id")
    )
    persons = persons.join(households.select("hh", "registry"), on="hh", how="left", maintain_order="left")
    return households, persons


def make_departed(rng: np.random.Generator, county: str, n: int, first_month: int, last_month: int,
                  pid_offset: int, taken: pl.Series) -> pl.DataFrame:
    """People whose registration was cancelled (died, moved away, ...): they are in no other extract.

    Months are month indexes (year*12 + month-1); every cancellation falls in [first, last].
    """
    reason_code = rng.choice(4, size=n, p=[.45, .40, .05, .10])
    reason = labels(["死亡", "迁出", "服兵役", "其他"], reason_code)
    age = np.where(reason_code == 0, rng.integers(55, 98, size=n),
                   np.where(reason_code == 2, rng.integers(18, 23, size=n), rng.integers(1, 70, size=n)))
    month = rng.integers(first_month, last_month + 1, size=n)
    day = rng.integers(1, 29, size=n)
    years = month // 12
    months0 = month % 12
    cancelled = (years - 1970).astype("datetime64[Y]").astype("datetime64[M]") + months0.astype("timedelta64[M]")
    cancelled = cancelled.astype("datetime64[D]") + (day - 1).astype("timedelta64[D]")
    ref = dt.date(int(last_month // 12), int(last_month % 12) + 1, 1)
    birth = birth_dates(rng, ref, age)
    male = rng.random(n) < 0.5
    surname = rng.choice(len(SURNAMES), size=n, p=SURNAME_WEIGHTS / SURNAME_WEIGHTS.sum())
    return pl.DataFrame({
        "pid": np.arange(pid_offset, pid_offset + n),
        "id_number": make_ids(rng, county, birth, male, taken),
        "name": make_names(rng, surname, male), "birth": birth, "cancelled_on": cancelled,
        "reason": reason, "month": month,
    }).with_columns(pl.col("birth").cast(pl.Date), pl.col("cancelled_on").cast(pl.Date))
