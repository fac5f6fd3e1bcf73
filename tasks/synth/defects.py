"""From canonical frames to the text a department delivers, with the damage Excel and hand entry do.

``render`` turns one canonical extract into delivered text (per the contract's column types and a
department's habits), damages a share of its rows, appends exact duplicate rows, and returns:

- the delivered text frame (contract headers, in delivery order) with internal ``_src`` (index of
  the canonical row) and ``_q`` (the quarantine reason, or null);
- the canonical rows *as they will be loaded* (quarantined rows dropped, duplicates loaded once).

Repairable damage (any row): lower-case x, full-width digits, spaces, 15-digit legacy numbers (only
for people born 1900–1999), dates in every form of the contract and as Excel serial numbers, money
as "1,234.50" and "1234.5元". Unrepairable damage (never on rows of planted cases, never on a
registry 户主 row; one per row): identity numbers as Excel floats ("6.20523E+17") or with a wrong
check character, a blank required cell, a code outside the list. Duplicates: exact copies of
undamaged-or-repairable rows, placed right after the original.
"""
from __future__ import annotations

import numpy as np
import polars as pl

from povwatch.tasks.ingest import reasons
from povwatch.tasks.ingest.contracts import Contract
from povwatch.tasks.ingest.idnumber import CHECK_CHARS

_FULL = str.maketrans("0123456789", "０１２３４５６７８９")
DATE_FORMATS = ("%Y-%m-%d", "%Y/%-m/%-d", "%Y%m%d", "%Y年%-m月%-d日")
EXCEL_EPOCH = pl.date(1899, 12, 30)


def money_text(cents: pl.Expr) -> pl.Expr:
    return (cents // 100).cast(pl.Utf8) + pl.lit(".") + (cents % 100).cast(pl.Utf8).str.zfill(2)


def base_text(contract: Contract, frame: pl.DataFrame, date_format: str) -> pl.DataFrame:
    """Every contract column as the text a clean export would hold."""
    exprs = []
    for c in contract.columns:
        if c.name not in frame.columns:
            continue
        v = pl.col(c.name)
        if c.type == "money":
            e = money_text(v)
        elif c.type == "date":
            e = v.dt.strftime(date_format)
        elif c.type == "month":
            e = v.dt.strftime("%Y-%m")
        elif c.type == "bool":
            e = pl.when(v).then(pl.lit("是")).when(v.is_not_null()).then(pl.lit("否"))
        elif c.type == "percent":
            e = pl.when(v == v.floor()).then(v.cast(pl.Int64).cast(pl.Utf8)).otherwise(v.round(1).cast(pl.Utf8))
        else:
            e = v.cast(pl.Utf8)
        exprs.append(e.alias(c.name))
    return frame.select(exprs)


def _scatter(text: pl.DataFrame, col: str, idx: np.ndarray, values: pl.Series) -> pl.DataFrame:
    if len(idx) == 0:
        return text
    series = text[col].clone()
    series.scatter(idx, values.cast(pl.Utf8))
    return text.with_columns(series)


def _on(frame: pl.DataFrame, idx: np.ndarray, expr: pl.Expr) -> pl.Series:
    """``expr`` evaluated on the rows ``idx`` of ``frame`` only (a handful of rows, not all)."""
    return frame[idx].select(expr).to_series()


def render(contract: Contract, canon: pl.DataFrame, rng: np.random.Generator, rate: float,
           date_format: str = "%Y-%m-%d", allow_unrepairable: set[str] | None = None,
           no_repair: set[str] = frozenset(), excel: bool = False) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(delivered text + ``_src``/``_q``, canonical rows as loaded). See the module docstring.

    ``excel``: the extract is an .xlsx: an identity number Excel turned into a float keeps its 15
    significant digits ("6.22529199001011E+17", written as a number cell), where a CSV saved from
    Excel holds what Excel displayed ("6.22529E+17").

    ``allow_unrepairable``: the columns that may be blanked / set outside the list (default: every
    required column); ``no_repair``: columns never touched (e.g. a 残疾证号 built later).
    Every change is computed on the chosen rows only and scattered back.
    """
    n = canon.height
    text = base_text(contract, canon, date_format)
    cols = {c.name: c for c in contract.columns if c.name in canon.columns}
    id_cols = [c for c, col in cols.items() if col.type == "id" and c not in no_repair]
    date_cols = [c for c, col in cols.items() if col.type == "date" and c not in no_repair]
    money_cols = [c for c, col in cols.items() if col.type == "money" and c not in no_repair]
    req = [c for c, col in cols.items() if col.required and (allow_unrepairable is None or c in allow_unrepairable)]
    req_codes = [c for c in req if cols[c].type == "code"]
    id_col = id_cols[0] if id_cols else None
    label = {c: col.header for c, col in cols.items()}

    u = rng.random(n)
    kind = rng.integers(0, 1 << 30, n)
    protect = canon["_protect"].to_numpy() if "_protect" in canon.columns else np.zeros(n, dtype=bool)
    if "relation" in canon.columns:
        protect = protect | (canon["relation"] == "户主").to_numpy()
    repair = u < rate * 0.70
    unrep = (u >= rate * 0.70) & (u < rate * 0.90) & ~protect
    dup = (u >= rate * 0.90) & (u < rate)

    # ---------------- repairable: 0-3 id, 4-5 date, 6-7 money (families present only) ----------
    families = (["id"] * 4 if id_col else []) + (["date"] * 2 if date_cols else []) + (["money"] * 2 if money_cols else [])
    fam_codes = np.asarray([{"id": 0, "date": 1, "money": 2}[f] for f in families] or [-1])
    fam = fam_codes[kind % len(fam_codes)]
    sub = (kind // 16) % 5
    if id_col:
        idx = np.flatnonzero(repair & (fam == 0))
        v = pl.col(id_col)
        full = v
        for d in "0123456789":
            full = full.str.replace_all(d, d.translate(_FULL), literal=True)
        s = pl.lit(pl.Series(sub[idx]))
        new = _on(canon, idx, pl.when((s == 0) & v.str.ends_with("X")).then(v.str.to_lowercase())
                  .when(s <= 1).then(full)
                  .when(s == 2).then(v.str.slice(0, 6) + " " + v.str.slice(6, 8) + " " + v.str.slice(14))
                  .when(v.str.slice(6, 2) == "19").then(v.str.slice(0, 6) + v.str.slice(8, 9))
                  .otherwise(pl.lit(" ") + v + pl.lit(" ")))
        text = _scatter(text, id_col, idx, new)
    for i, dc in enumerate(date_cols):
        idx = np.flatnonzero(repair & (fam == 1) & ((kind // 64) % len(date_cols) == i))
        idx = idx[canon[dc].gather(idx).is_not_null().to_numpy()] if len(idx) else idx
        v, s = pl.col(dc), pl.lit(pl.Series(sub[idx]))
        new = _on(canon, idx, pl.when(s == 0).then(v.dt.strftime("%Y/%-m/%-d")).when(s == 1).then(v.dt.strftime("%Y%m%d"))
                  .when(s == 2).then(v.dt.strftime("%Y年%-m月%-d日")).when(s == 3).then(v.dt.strftime("%Y-%m-%d"))
                  .otherwise((v - EXCEL_EPOCH).dt.total_days().cast(pl.Utf8)))
        text = _scatter(text, dc, idx, new)
    for i, mc in enumerate(money_cols):
        idx = np.flatnonzero(repair & (fam == 2) & ((kind // 64) % len(money_cols) == i))
        idx = idx[canon[mc].gather(idx).is_not_null().to_numpy()] if len(idx) else idx
        v, s = pl.col(mc), pl.lit(pl.Series(sub[idx] % 2))
        yuan = v // 100
        thousands = (pl.when(yuan >= 1000).then((yuan // 1000).cast(pl.Utf8) + "," + (yuan % 1000).cast(pl.Utf8).str.zfill(3))
                     .otherwise(yuan.cast(pl.Utf8)) + "." + (v % 100).cast(pl.Utf8).str.zfill(2))
        plain = (v.cast(pl.Float64) / 100).round(2).cast(pl.Utf8) + "元"
        text = _scatter(text, mc, idx, _on(canon, idx, pl.when(s == 0).then(thousands).otherwise(plain)))

    # ---------------- unrepairable: one per row ----------------
    base = text
    ufam_codes = np.asarray(([0, 1] if id_col else []) + ([2] if req else []) + ([3] if req_codes else []) or [-1])
    ufam = ufam_codes[(kind // 4096) % len(ufam_codes)]
    unrep &= ufam >= 0
    reason = np.full(n, None, dtype=object)
    pick = kind // 65536
    blank_i = pick % max(1, len(req))
    code_i = pick % max(1, len(req_codes))

    def wrong_check(idx: np.ndarray) -> pl.Series:
        v = pl.col(id_col)
        shift = pl.lit(pl.Series((kind[idx] // 8) % 10 + 1))
        digit = v.str.slice(17, 1).replace_strict({ch: i for i, ch in enumerate(CHECK_CHARS)}, default=0)
        return _on(canon, idx, v.str.slice(0, 17) + pl.lit(CHECK_CHARS).str.slice(((digit + shift) % 11).cast(pl.Int64), 1))

    if id_col:
        idx = np.flatnonzero(unrep & (ufam == 0))
        reason[idx] = reasons.cell_reason(label[id_col], reasons.ID_SCIENTIFIC)
        v = pl.col(id_col)
        digits = 14 if excel else 5
        text = _scatter(text, id_col, idx, _on(canon, idx, v.str.slice(0, 1) + "." + v.str.slice(1, digits) + "E+17"))
        idx = np.flatnonzero(unrep & (ufam == 1))
        reason[idx] = reasons.cell_reason(label[id_col], reasons.ID_CHECK_DIGIT)
        text = _scatter(text, id_col, idx, wrong_check(idx))
    for i, c in enumerate(req):
        idx = np.flatnonzero(unrep & (ufam == 2) & (blank_i == i))
        reason[idx] = reasons.cell_reason(label[c], reasons.REQUIRED_BLANK)
        text = _scatter(text, c, idx, pl.Series([None] * len(idx), dtype=pl.Utf8))
    for i, c in enumerate(req_codes):
        idx = np.flatnonzero(unrep & (ufam == 3) & (code_i == i))
        reason[idx] = reasons.cell_reason(label[c], reasons.CODE_NOT_IN_LIST)
        text = _scatter(text, c, idx, pl.Series(["未知"] * len(idx), dtype=pl.Utf8))
    if id_col and unrep.any():
        # a damaged row must not be identical to another row (two "6.20523E+17" with the same other
        # cells would read as a duplicate too): those get a wrong check character instead
        clash = np.flatnonzero(text.select(pl.struct(text.columns).is_duplicated()).to_series().to_numpy() & unrep)
        if len(clash):
            reason[clash] = reasons.cell_reason(label[id_col], reasons.ID_CHECK_DIGIT)
            for c in req:
                if c != id_col:
                    text = _scatter(text, c, clash, base[c].gather(clash))
            text = _scatter(text, id_col, clash, wrong_check(clash))
    text = text.with_columns(pl.Series("_src", np.arange(n)), pl.Series("_q", reason.tolist(), dtype=pl.Utf8))

    # ---------------- duplicates: an exact copy right after the original ----------------
    dup &= reason == None  # noqa: E711  (object array)
    copies = text.filter(pl.Series(dup)).with_columns(pl.lit(reasons.DUPLICATE_ROW).alias("_q"))
    text = pl.concat([text.with_columns(pl.lit(0).alias("_copy")), copies.with_columns(pl.lit(1).alias("_copy"))])
    text = text.sort("_src", "_copy").drop("_copy")
    loaded = canon.filter(pl.Series(reason == None))  # noqa: E711
    return text, loaded
