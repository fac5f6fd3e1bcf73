"""The masking rule's three forms (Python, polars, DuckDB SQL) agree on one corpus, and each
example shows what a reader of a receipt, report or export sees."""
from __future__ import annotations

import duckdb
import polars as pl
import pytest

from povwatch.tasks.core import privacy

# (text, what scrub shows): free text, written every way a clerk or a file name writes a number.
SCRUB_CORPUS = [
    ("620523198001018004", "620523********8004"),
    ("62052319800101800x", "620523********800X"),                   # lower-case check character
    ("620523800101800", "620523*****1800"),                         # 15-digit legacy number
    ("６２０５２３１９８００１０１８００４", "620523********8004"),     # full-width digits
    ("６２０５２３１９８００１０１８００Ｘ", "620523********800X"),
    ("6205 2319 8001 0180 04", "620523********8004"),               # grouped by spaces
    ("620523\u300019800101\u30008004", "620523********8004"),       # ideographic spaces
    ("620523-19800101-8004", "620523********8004"),                 # hyphens
    ("620523－19800101－8004", "620523********8004"),               # full-width hyphens
    ("6 2 0 5 2 3 1 9 8 0 0 1 0 1 8 0 0 4", "620523********8004"),  # one digit at a time
    ("户主_620523198001018004.xlsx", "户主_620523********8004.xlsx"),  # in a file name
    ("身份证号620523198001018004（户主）", "身份证号620523********8004（户主）"),  # in a header
    ("第 12 行 620523198001018004", "第 12 行 620523********8004"),  # a short number beside it stays
    ("620523198001018004 620523198001018012", "620523********8004 620523********8012"),
    ("6205231980010180041", "620523*********0041"),                 # one digit too many: still hidden
    ("=HYPERLINK(\"http://x\",\"620523198001018004\")", "=HYPERLINK(\"http://x\",\"620523********8004\")"),
    ("2020-09 2020-10 2020-11", "2020-09 2020-10 2020-11"),         # periods are not a number
    ("2020-06-01 12:30:45", "2020-06-01 12:30:45"),
    ("收入 12345.67 元", "收入 12345.67 元"),
    ("6205231980", "6205231980"),                                   # 10 digits: not a number
    ("", ""),
    ("无", "无"),
]

# (value of an identity column, what mask_id shows)
ID_CORPUS = [
    ("620523198001018004", "620523********8004"),
    ("62052319800101800x", "620523********800X"),
    ("620523800101800", "620523*****1800"),
    ("６２０５２３１９８００１０１８００４", "620523********8004"),
    ("6205 2319 8001 0180 04", "620523********8004"),
    ("620523-1980", "6205231980"),          # damaged, 10 characters: first 6 and last 4 is all
    ("62052319", "******"),                 # damaged, too short to mask by position
    ("不详", "不详"),
    ("", ""),
]

# (household key or subject, what mask_key shows): a person's number masked, a 户编号 kept
KEY_CORPUS = [("620523198001018004", "620523********8004"), ("62052319800101800x", "620523********800X"),
              ("620523800101800", "620523*****1800"), ("6205231002010001", "6205231002010001"),
              ("H-0001", "H-0001"), ("", "")]

PLATE_CORPUS = [("甘A12345", "甘A***45"), ("甘AD12345", "甘A****45"), ("甘A·12345", "甘A***45"),
                ("甘A 1234", "甘A**34"), ("甘A1", "***"), ("", "")]


def _three_forms(name: str, values: list[str | None]) -> tuple[list, list, list]:
    python = [getattr(privacy, name)(v) for v in values]
    frame = pl.DataFrame({"v": values}, schema={"v": pl.Utf8})
    polars = frame.select(getattr(privacy, f"{name}_expr")(pl.col("v")))["v"].to_list()
    con = duckdb.connect()
    con.register("corpus", frame.to_arrow())
    sql = [r[0] for r in con.execute(
        f"SELECT {getattr(privacy, f'{name}_sql')('v')} FROM corpus").fetchall()]
    return python, polars, sql


@pytest.mark.parametrize("name, corpus", [("scrub", SCRUB_CORPUS), ("mask_id", ID_CORPUS),
                                          ("mask_key", KEY_CORPUS), ("mask_plate", PLATE_CORPUS)])
def test_three_forms_show_the_same_on_one_corpus(name, corpus) -> None:
    values = [text for text, _ in corpus]
    expected = [shown for _, shown in corpus]
    python, polars, sql = _three_forms(name, values)
    assert python == expected
    assert polars == expected
    assert sql == expected


def test_null_stays_null_in_polars_and_sql_and_is_empty_text_in_python() -> None:
    for name in ("scrub", "mask_id", "mask_key", "mask_plate"):
        _, polars, sql = _three_forms(name, [None])
        assert polars == [None] and sql == [None]
    assert privacy.scrub(None) == ""          # messages are concatenated: never "None"
    assert privacy.mask_id(None) is None


def test_scrub_value_masks_every_string_inside_json_like_results() -> None:
    value = {"unexpected": ["620523198001018004", 3], "note": ("6205 2319 8001 0180 04",),
             "count": 2}
    assert privacy.scrub_value(value) == {
        "unexpected": ["620523********8004", 3], "note": ("620523********8004",), "count": 2}


def test_scrub_frame_keeps_the_named_registry_column_readable() -> None:
    df = pl.DataFrame({"household_id": ["6205231002010001"], "note": ["户主 620523198001018004"]})
    out = privacy.scrub_frame(df, keep=("household_id",))
    assert out.row(0) == ("6205231002010001", "户主 620523********8004")
