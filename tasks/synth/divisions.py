"""The division reference table (code, name, level, parent) of the demo counties.

``warehouse/reference/divisions.csv`` is committed and is what the generator and the pipeline read;
a user may replace it with their own county's table. This module rebuilds it deterministically
(``python -m tasks.synth.divisions``) and loads it.

Codes: province, city and county as the 6-digit GB/T 2260 codes (620000, 620500, 620523), townships
as 9 digits (county + 3: 1xx 镇, 2xx 乡), villages as 12 digits (township + 3: 2xx 村委会), the
statistical division code's lengths, so ``village_code[:9]`` and ``[:6]`` join straight onto it.
Gangu's (620523) township names are the real ones; the other counties' township names are a
best-effort list from memory; every village name is synthetic (plausible, not real).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import polars as pl

# the shipped table (the generator writes it; a county folder may hold its own copy)
from povwatch.tasks.core.settings import DIVISIONS_CSV

PROVINCE = ("620000", "甘肃省")
CITY = ("620500", "天水市")

# County order: the default first, then its neighbours, as --counties N takes them.
COUNTIES: dict[str, tuple[str, list[str]]] = {
    "620523": ("甘谷县", ["大像山镇", "新兴镇", "磐安镇", "六峰镇", "安远镇", "金山镇", "大石镇",
                         "礼辛镇", "武家河镇", "大庄镇", "古坡镇", "八里湾镇", "白家湾乡", "西坪乡",
                         "谢家湾乡"]),
    "620521": ("清水县", ["永清镇", "红堡镇", "白驼镇", "金集镇", "秦亭镇", "山门镇", "白沙镇",
                         "王河镇", "郭川镇", "黄门镇", "土门镇", "草川铺镇", "陇东镇", "远门镇",
                         "新城乡", "丰望乡", "贾川乡", "松树乡"]),
    "620522": ("秦安县", ["兴国镇", "莲花镇", "西川镇", "陇城镇", "郭嘉镇", "五营镇", "云山镇",
                         "叶堡镇", "刘坪镇", "安伏镇", "中山镇", "千户镇", "王尹镇", "魏店镇",
                         "王窑镇", "兴丰镇", "王铺镇"]),
    "620524": ("武山县", ["城关镇", "洛门镇", "鸳鸯镇", "滩歌镇", "四门镇", "马力镇", "山丹镇",
                         "温泉镇", "桦林镇", "龙台镇", "榆盘镇", "高楼镇", "杨河镇", "咀头乡",
                         "沿安乡"]),
    "620525": ("张家川回族自治县", ["张家川镇", "龙山镇", "恭门镇", "马鹿镇", "梁山镇", "胡川镇",
                                   "大阳镇", "川王镇", "张棉镇", "刘堡镇", "马关镇", "木河乡",
                                   "连五乡", "阎家乡", "平安乡"]),
    "620502": ("秦州区", ["皂郊镇", "汪川镇", "牡丹镇", "关子镇", "平南镇", "天水镇", "娘娘坝镇",
                         "中梁镇", "杨家寺镇", "玉泉镇", "太京镇", "藉口镇", "华岐镇", "秦岭镇",
                         "齐寿镇"]),
    "620503": ("麦积区", ["甘泉镇", "马跑泉镇", "社棠镇", "中滩镇", "新阳镇", "元龙镇", "伯阳镇",
                         "石佛镇", "花牛镇", "琥珀镇", "渭南镇", "东岔镇", "麦积镇", "利桥镇",
                         "党川镇", "五龙镇", "三岔镇"]),
}

_PREFIXES = list("王李张刘陈杨赵黄周吴马牛汪蒲巩魏谢姚雷郭何董蔡安石田康贾冯邓韩苏潘")
_FEATURES = ["柳树", "杏树", "榆树", "红崖", "黑石", "白土", "东沟", "西沟", "南山", "北山", "大湾",
             "小湾", "上庄", "下庄", "中滩", "高庙", "土门", "石门", "水泉", "龙泉", "马家", "杨家",
             "梁家", "何家", "包家", "尚家", "毛家", "令家", "蒋家", "姚家", "焦家", "谈家"]
_SUFFIXES = ["庄", "湾", "河", "沟", "坪", "山", "川", "岔", "峡", "咀", "堡", "寨", "坡", "岘", "坝",
             "塬", "洼", "台", "岭", "滩"]


def _rng(key: str) -> np.random.Generator:
    return np.random.default_rng(int(hashlib.sha256(key.encode()).hexdigest()[:16], 16))


def _village_names(township_code: str, n: int) -> list[str]:
    rng = _rng(township_code)
    names: list[str] = []
    seen: set[str] = set()
    while len(names) < n:  # a handful of names per township, not rows of data
        if rng.random() < 0.55:
            stem = (_PREFIXES[rng.integers(len(_PREFIXES))] + "家"
                    + _SUFFIXES[rng.integers(len(_SUFFIXES))])
        else:
            stem = _FEATURES[rng.integers(len(_FEATURES))] + _SUFFIXES[rng.integers(len(_SUFFIXES))]
        name = stem + "村"
        if name not in seen and stem[-1] != stem[-2]:
            seen.add(name)
            names.append(name)
    return names


def build_divisions() -> pl.DataFrame:
    """The whole reference table, deterministically (no randomness beyond hashed seeds)."""
    rows = [(PROVINCE[0], PROVINCE[1], "province", ""), (CITY[0], CITY[1], "city", PROVINCE[0])]
    for county, (county_name, townships) in COUNTIES.items():
        rows.append((county, county_name, "county", CITY[0]))
        towns = [t for t in townships if t.endswith("镇")]
        xiangs = [t for t in townships if not t.endswith("镇")]
        codes = [f"{county}{100 + i:03d}" for i in range(len(towns))]
        codes += [f"{county}{200 + i:03d}" for i in range(len(xiangs))]
        for code, name in zip(codes, towns + xiangs):
            rows.append((code, name, "township", county))
            n_villages = int(_rng("n" + code).integers(18, 34))
            for j, vname in enumerate(_village_names(code, n_villages)):
                rows.append((f"{code}{201 + j:03d}", vname, "village", code))
    return pl.DataFrame(rows, schema=["code", "name", "level", "parent"], orient="row")


def load_divisions(path: Path | None = None) -> pl.DataFrame:
    """The committed (or user-replaced) table, codes as text."""
    return pl.read_csv(path or DIVISIONS_CSV, schema_overrides={"code": pl.Utf8, "parent": pl.Utf8})


def write_divisions(path: Path = DIVISIONS_CSV) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    build_divisions().write_csv(path)
    return path


if __name__ == "__main__":
    print(write_divisions())
