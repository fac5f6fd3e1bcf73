"""The demo county's genuine-month cases (#20): duplicate keys and an empty snapshot.

- ``plant_key_clashes``: in ``minzheng`` and ``yibao`` (the large extracts), a few clean rows get a
  twin right after them with the same key (身份证号 + 救助类型 + 起始年月; 身份证号 + 参保年度) and
  another amount — a clerk's double entry. Both rows are quarantined as 重复键 and neither is
  loaded (the department must say which is right); the rest of the extract is accepted.
- ``empty_snapshot``: ``gongan`` lists the calendar year's cancellations, so its January
  snapshot is delivered empty (a header row only): accepted as empty, December's deaths still
  count (the oracle reads every gongan snapshot up to the period).

Both are called from the generator's ``_deliver`` (small hooks); the truth rows travel in the
delivered text's ``_q`` like every other quarantine truth.
"""
from __future__ import annotations

import numpy as np
import polars as pl

from povwatch.tasks.core.privacy import mask_id_expr
from povwatch.tasks.ingest import reasons
from povwatch.tasks.ingest.contracts import Contract

PAIRS_PER_EXTRACT = {"minzheng": 2, "yibao": 2}
EMPTY_IN_JANUARY = ("gongan",)
_CHANGED = {"minzheng": "monthly_amount", "yibao": "subsidy"}   # the cell the twin differs in


def empty_snapshot(dept: str, period: str, canon: pl.DataFrame) -> pl.DataFrame:
    """No rows for a department whose January snapshot is genuinely empty."""
    return canon.clear() if dept in EMPTY_IN_JANUARY and period.endswith("-01") else canon


def plant_key_clashes(contract: Contract, canon: pl.DataFrame, text: pl.DataFrame,
                      loaded: pl.DataFrame, rng: np.random.Generator) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(text with the twins, loaded without the clashing keys). ``text`` as defects.render gives
    it (``_src`` the canonical row, ``_q`` the truth reason or null)."""
    pairs = PAIRS_PER_EXTRACT.get(contract.code, 0)
    changed = _CHANGED.get(contract.code)
    if not pairs or not contract.unique or text.is_empty() or changed not in text.columns:
        return text, loaded
    key = list(contract.unique[0])
    protect = (canon["_protect"].gather(text["_src"]) if "_protect" in canon.columns
               else pl.Series([False] * text.height))
    once = text["_src"].is_in(text["_src"].filter(text["_src"].is_duplicated()).implode()).not_()
    candidates = np.flatnonzero((text["_q"].is_null() & once & ~protect.fill_null(False)).to_numpy())
    if len(candidates) == 0:
        return text, loaded
    chosen = np.sort(rng.choice(candidates, size=min(pairs, len(candidates)), replace=False))
    originals = text[chosen]
    srcs = originals["_src"]
    why = _reasons(contract, canon[srcs.to_numpy()], key)
    twins = originals.with_columns(   # another amount: 37 yuan more
        ((pl.col(changed).cast(pl.Float64, strict=False).fill_null(0) + 37).round(2)).cast(pl.Utf8).alias(changed))
    mark = pl.DataFrame({"_src": srcs, "_why": why})
    text = pl.concat([text.with_columns(pl.lit(0).alias("_copy")),
                      twins.with_columns(pl.lit(1).alias("_copy"))], how="vertical_relaxed")
    text = (text.join(mark, on="_src", how="left", maintain_order="left")
            .with_columns(pl.when(pl.col("_why").is_not_null() & (pl.col("_q").is_null() | (pl.col("_copy") == 1)))
                          .then(pl.col("_why")).otherwise(pl.col("_q")).alias("_q"))
            .sort("_src", "_copy", maintain_order=True).drop("_copy", "_why"))
    loaded = loaded.join(canon[srcs.to_numpy()].select(key), on=key, how="anti")
    return text, loaded


def _reasons(contract: Contract, rows: pl.DataFrame, key: list[str]) -> list[str]:
    """The 重复键 reason of each chosen row, as the validation writes it."""
    types = {c.name: c.type for c in contract.columns}
    labels = {c.name: c.header for c in contract.columns}
    shown = []
    for name in key:
        v = pl.col(name)
        if types[name] == "id":
            v = mask_id_expr(v)
        elif types[name] == "month":
            v = v.dt.strftime("%Y-%m")
        else:
            v = v.cast(pl.Utf8)
        shown.append(v.alias(name))
    values = rows.select(shown)
    check = "unique_" + "_".join(key)
    return [reasons.duplicate_key_reason([(labels[n], r[n]) for n in key], 2, check)
            for r in values.iter_rows(named=True)]
