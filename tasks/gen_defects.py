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

from tasks import reasons
from tasks.contracts import Contract
from tasks.idnumber import CHECK_CHARS

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


def _pick_column(cols: list[str], r: np.ndarray) -> np.ndarray:
    return np.asarray(cols, dtype=object)[r % len(cols)] if cols else np.full(len(r), None, dtype=object)


def render(contract: Contract, canon: pl.DataFrame, rng: np.random.Generator, rate: float,
           date_format: str = "%Y-%m-%d", allow_unrepairable: set[str] | None = None,
           no_repair: set[str] = frozenset()) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(delivered text + ``_src``/``_q``, canonical rows as loaded). See the module docstring.

    ``allow_unrepairable``: the columns that may be blanked / set outside the list (default: every
    required column); ``no_repair``: columns never touched (e.g. a 残疾证号 built later).
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

    u = rng.random(n)
    kind = rng.integers(0, 1 << 30, n)
    protect = canon["_protect"].to_numpy() if "_protect" in canon.columns else np.zeros(n, dtype=bool)
    if "relation" in canon.columns:
        protect = protect | (canon["relation"] == "户主").to_numpy()
    repair = u < rate * 0.70
    unrep = (u >= rate * 0.70) & (u < rate * 0.90) & ~protect
    dup = (u >= rate * 0.90) & (u < rate)

    # ---------------- repairable ----------------
    families = (["id"] * 4 if id_col else []) + (["date"] * 2 if date_cols else []) + (["money"] * 2 if money_cols else [])
    fam = np.asarray(families or ["none"], dtype=object)[kind % max(1, len(families))]
    sub = (kind // 16) % 5
    upd: dict[str, pl.Expr] = {}
    if id_col:
        v = pl.col(id_col)
        m_id = pl.lit(pl.Series(repair & (fam == "id")))
        s = pl.lit(pl.Series(sub))
        born19 = v.str.slice(6, 2) == "19"
        full = v
        for d in "0123456789":
            full = full.str.replace_all(d, d.translate(_FULL), literal=True)
        upd[id_col] = (
            pl.when(m_id & (s == 0) & v.str.ends_with("X")).then(v.str.to_lowercase())
            .when(m_id & (s <= 1)).then(full)
            .when(m_id & (s == 2)).then(v.str.slice(0, 6) + " " + v.str.slice(6, 8) + " " + v.str.slice(14))
            .when(m_id & born19).then(v.str.slice(0, 6) + v.str.slice(8, 9))
            .when(m_id).then(pl.lit(" ") + v + pl.lit(" "))
            .otherwise(v))
    for dc in date_cols:
        canon_v = pl.col("__d_" + dc)
        m = pl.lit(pl.Series(repair & (fam == "date") & (_pick_column(date_cols, kind // 64) == dc)))
        s = pl.lit(pl.Series(sub))
        alt = pl.when(s == 0).then(canon_v.dt.strftime("%Y/%-m/%-d")).when(s == 1).then(canon_v.dt.strftime("%Y%m%d")) \
            .when(s == 2).then(canon_v.dt.strftime("%Y年%-m月%-d日")).when(s == 3).then(canon_v.dt.strftime("%Y-%m-%d")) \
            .otherwise((canon_v - EXCEL_EPOCH).dt.total_days().cast(pl.Utf8))
        upd[dc] = pl.when(m & canon_v.is_not_null()).then(alt).otherwise(pl.col(dc))
    for mc in money_cols:
        cv = pl.col("__m_" + mc)
        m = pl.lit(pl.Series(repair & (fam == "money") & (_pick_column(money_cols, kind // 64) == mc)))
        s = pl.lit(pl.Series(sub % 2))
        yuan = (cv // 100)
        thousands = (pl.when(yuan >= 1000).then((yuan // 1000).cast(pl.Utf8) + "," + (yuan % 1000).cast(pl.Utf8).str.zfill(3))
                     .otherwise(yuan.cast(pl.Utf8)) + "." + (cv % 100).cast(pl.Utf8).str.zfill(2))
        plain = (cv.cast(pl.Float64) / 100).round(2).cast(pl.Utf8) + "元"
        upd[mc] = pl.when(m & cv.is_not_null()).then(pl.when(s == 0).then(thousands).otherwise(plain)).otherwise(pl.col(mc))
    helpers = [canon[c].alias("__d_" + c) for c in date_cols] + [canon[c].alias("__m_" + c) for c in money_cols]
    text = text.with_columns(helpers).with_columns(**upd).drop([h.name for h in helpers]) if upd else text

    # ---------------- unrepairable ----------------
    base = text
    ufam_choices = (["float", "check"] if id_col else []) + (["blank"] if req else []) + (["code"] if req_codes else [])
    ufam = np.asarray(ufam_choices or ["none"], dtype=object)[(kind // 4096) % max(1, len(ufam_choices))]
    unrep &= ufam != "none"
    reason = np.full(n, None, dtype=object)
    blank_col = _pick_column(req, kind // 65536)
    code_col = _pick_column(req_codes, kind // 65536)
    label = {c: col.header for c, col in cols.items()}
    if id_col:
        reason[unrep & (ufam == "float")] = reasons.cell_reason(label[id_col], reasons.ID_SCIENTIFIC)
        reason[unrep & (ufam == "check")] = reasons.cell_reason(label[id_col], reasons.ID_CHECK_DIGIT)
    for c in req:
        reason[unrep & (ufam == "blank") & (blank_col == c)] = reasons.cell_reason(label[c], reasons.REQUIRED_BLANK)
    for c in req_codes:
        reason[unrep & (ufam == "code") & (code_col == c)] = reasons.cell_reason(label[c], reasons.CODE_NOT_IN_LIST)
    # a blank cell that is already blank (optional value) is no defect; required values never are
    upd = {}
    if id_col:
        v = pl.col(id_col)
        f = pl.lit(pl.Series(unrep & (ufam == "float")))
        ck = pl.lit(pl.Series(unrep & (ufam == "check")))
        shift = pl.lit(pl.Series((kind // 8) % 10 + 1))
        cv = pl.col(id_col)
        wrong_s = canon.select(pl.lit(CHECK_CHARS).str.slice(
            ((cv.str.slice(17, 1).replace_strict({ch: i for i, ch in enumerate(CHECK_CHARS)}, default=0)
              + shift) % 11).cast(pl.Int64), 1)).to_series()
        wrong = pl.lit(wrong_s)
        cid = pl.lit(canon[id_col])
        upd[id_col] = (pl.when(f).then(cid.str.slice(0, 1) + "." + cid.str.slice(1, 5) + "E+17")
                       .when(ck).then(cid.str.slice(0, 17) + wrong).otherwise(v))
    for c in req:
        b = pl.lit(pl.Series(unrep & (ufam == "blank") & (blank_col == c)))
        o = pl.lit(pl.Series(unrep & (ufam == "code") & (code_col == c)))
        upd[c] = pl.when(b).then(pl.lit(None, dtype=pl.Utf8)).when(o).then(pl.lit("未知")).otherwise(upd.get(c, pl.col(c)))
    if upd:
        text = text.with_columns(**upd)
    if id_col and unrep.any():
        # a damaged row must not be identical to another row (two "6.20523E+17" with the same other
        # cells would read as a duplicate too): those get a wrong check character instead
        clash = text.select(pl.struct(text.columns).is_duplicated()).to_series().to_numpy() & unrep
        if clash.any():
            reason[clash] = reasons.cell_reason(label[id_col], reasons.ID_CHECK_DIGIT)
            fix = pl.lit(pl.Series(clash))
            restore = [pl.when(fix).then(pl.lit(base[c])).otherwise(pl.col(c)).alias(c) for c in req if c != id_col]
            text = text.with_columns(
                pl.when(fix).then(cid.str.slice(0, 17) + wrong).otherwise(pl.col(id_col)).alias(id_col), *restore)
    text = text.with_columns(pl.Series("_src", np.arange(n)), pl.Series("_q", reason.tolist(), dtype=pl.Utf8))

    # ---------------- duplicates: an exact copy right after the original ----------------
    dup &= reason == None  # noqa: E711  (object array)
    copies = text.filter(pl.Series(dup)).with_columns(pl.lit(reasons.DUPLICATE_ROW).alias("_q"))
    text = pl.concat([text.with_columns(pl.lit(0).alias("_copy")), copies.with_columns(pl.lit(1).alias("_copy"))])
    text = text.sort("_src", "_copy").drop("_copy")
    loaded = canon.filter(pl.Series(reason == None))  # noqa: E711
    return text, loaded
