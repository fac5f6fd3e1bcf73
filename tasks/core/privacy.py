"""The masking rule, written once, in the three forms povwatch needs: Python, polars and SQL.

Nothing that leaves the warehouse (receipts, reports, exports, bulletins, Data Docs, alerts, logs,
Prefect, the CLI's output) shows a full identity number. Three rules, each in three forms:

``mask_id`` — a value known to be an identity number (an identity column, a household key that is
    the head's number): its characters are compacted (spaces, hyphens and underscores dropped,
    full-width digits made ASCII, ``x`` made ``X``) and shown as the first 6 and the last 4 with
    the rest starred: ``620523********123X`` (18), ``620523*****1234`` (15). A damaged value of
    5-9 characters holding 5 or more digits shows as ``******``; anything else is kept.

``scrub`` — free text (file names, headers, cells, messages, problem details): every run of 15 or
    more digits is masked the same way, wherever it stands and however it is written — ASCII or
    full-width digits, a final ``X``/``x``, and single spaces, hyphens or underscores between any
    two digits (``6205 2319 8001 0180 04``, ``620523-19800101-8004``). Runs longer than 18 (two
    numbers glued, a bank card) are masked too: the rule errs on the side of hiding. A 16-digit
    户编号 inside free text is masked as well; where the registry number is its own column it is
    not an identity number and stays readable.

``mask_key`` — a household key or a problem's subject, which is either a person's identity number
    (masked as ``mask_id``) or a registry number (户编号, shown as it is: the office and the townships
    find households by it).

``mask_plate`` — personal text that is not an identity number, such as a vehicle plate
    (``甘A12345`` → ``甘A***45``): the first two and the last two characters kept, the middle
    starred, like an identity number's middle; a value of 1-4 characters shows as ``***``.

The test ``tests/test_privacy.py`` holds the three forms to one corpus of examples.
"""
from __future__ import annotations

import re
from typing import Any

import polars as pl

# The characters of one digit and of the check character, ASCII and full-width.
_DIGIT = "0-9０-９"
_CHECK = "XxＸｘ"
# Between two digits of a number written by hand: one space (ASCII, no-break, ideographic) or tab;
# one hyphen or dash (ASCII, Unicode, full-width); or one underscore — one kind throughout a number
# (so that "2020-09 2020-10 2020-11" stays three periods), one character only (a wider gap, as in a
# padded table column, ends the number).
_SEPARATORS = (" \t\u00a0\u3000", "\\-\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe63\uff0d", "_")
_SEPARATOR = "".join(_SEPARATORS)
MIN_DIGITS = 15

# Runs written without separators are masked first (so that a plain number next to a short one,
# "第 12 行 620523…", keeps the short one readable), then runs with each kind of separator.
_PLAIN_RUN = f"[{_DIGIT}]+[{_CHECK}]?"
_RUNS = (_PLAIN_RUN, *(f"[{_DIGIT}](?:[{sep}]?[{_DIGIT}])*(?:[{sep}]?[{_CHECK}])?" for sep in _SEPARATORS))
# Every text splits into runs and the stretches between them (the second alternative never starts
# with a digit, so the tokens put back together are the text).
_TOKENS = {run: f"{run}|[^{_DIGIT}]+" for run in _RUNS}
# Texts that may hold a number at all: 15 digits, any of them separated (a cheap pre-filter).
# (Repetition written out, no braces: GX reads ``{...}`` in a query as a placeholder.)
_CANDIDATE = (f"[{_DIGIT}]" + f"[{_SEPARATOR}]?[{_DIGIT}]" * (MIN_DIGITS - 2)
              + f"[{_SEPARATOR}]?[{_DIGIT}{_CHECK}]")
_FIVE_DIGITS = f"[{_DIGIT}]" * 5
_NOT_KEPT = f"[{_SEPARATOR}]"
# A key shaped like an identity number: 17 digits and a check character, or 15 digits.
_ID_SHAPE = "^(?:" + "[0-9]" * 17 + "[0-9Xx]|" + "[0-9]" * 15 + ")$"
_FULL_WIDTH = "０１２３４５６７８９Ｘｘx"
_ASCII = "0123456789XXX"

# ----------------------------------------------------------------------------- Python


def _compact(text: str) -> str:
    return re.sub(_NOT_KEPT, "", text).translate(str.maketrans(_FULL_WIDTH, _ASCII))


def _starred(compact: str) -> str:
    return compact[:6] + "*" * (len(compact) - 10) + compact[-4:]


def mask_id(value: str | None) -> str | None:
    """An identity number as it may be shown: first 6 and last 4 characters, the rest starred."""
    if value is None:
        return None
    compact = _compact(str(value))
    if len(compact) >= 10:
        return _starred(compact)
    if re.search(_FIVE_DIGITS, compact):
        return "******"
    return str(value)


def mask_key(value: str | None) -> str | None:
    """A household key or subject: masked if it is an identity number, else as it is."""
    if value is None or not re.match(_ID_SHAPE, str(value)):
        return value
    return mask_id(value)


def _mask_run(match: re.Match) -> str:
    compact = _compact(match.group(0))
    return _starred(compact) if len(compact) >= MIN_DIGITS else match.group(0)


def scrub(text: Any) -> str:
    """Free text with every identity number in it masked (None gives "", other values their str:
    messages are built from whatever an exception or a row holds)."""
    if text is None:
        return ""
    text = str(text)
    if not re.search(_CANDIDATE, text):
        return text
    for run in _RUNS:
        text = re.sub(run, _mask_run, text)
    return text


def scrub_value(value: Any) -> Any:
    """A copy of a JSON-like value (GX results, run summaries) with every string scrubbed."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {k: scrub_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(scrub_value(v) for v in value)
    return value


def mask_plate(plate: str | None) -> str | None:
    """A vehicle plate with its middle starred: 甘A12345 -> 甘A***45 (1-4 characters: ***)."""
    if plate is None:
        return None
    plate = re.sub(r"[\s·.\-]", "", str(plate))
    if len(plate) <= 4:
        return "***" if plate else plate
    return plate[:2] + "*" * (len(plate) - 4) + plate[-2:]


# ----------------------------------------------------------------------------- polars


def _compact_expr(value: pl.Expr) -> pl.Expr:
    # One multi-pattern pass for the full-width characters (thirteen replace_all calls cost ~4x
    # more in every mask and scrub; the replacements are single characters that no later pattern
    # matches, so the result is the same).
    return value.str.replace_all(_NOT_KEPT, "").str.replace_many(list(_FULL_WIDTH), list(_ASCII))


def _starred_expr(compact: pl.Expr) -> pl.Expr:
    n = compact.str.len_chars()
    middle = compact.str.slice(6, (n - 10).clip(0)).str.replace_all(".", "*")
    return compact.str.slice(0, 6) + middle + compact.str.slice(-4, 4)


def mask_id_expr(value: pl.Expr) -> pl.Expr:
    """Polars form of :func:`mask_id`."""
    compact = _compact_expr(value.cast(pl.Utf8))
    return (pl.when(compact.str.len_chars() >= 10).then(_starred_expr(compact))
            .when(compact.str.contains(_FIVE_DIGITS)).then(pl.lit("******"))
            .otherwise(value.cast(pl.Utf8)))


def mask_key_expr(value: pl.Expr) -> pl.Expr:
    """Polars form of :func:`mask_key`."""
    value = value.cast(pl.Utf8)
    return pl.when(value.str.contains(_ID_SHAPE)).then(mask_id_expr(value)).otherwise(value)


def _mask_runs_expr(text: pl.Expr, run: str) -> pl.Expr:
    token = pl.element()
    compact = _compact_expr(token)
    masked = (pl.when(token.str.contains(f"^[{_DIGIT}]") & (compact.str.len_chars() >= MIN_DIGITS))
              .then(_starred_expr(compact)).otherwise(token))
    return text.str.extract_all(_TOKENS[run]).list.eval(masked).list.join("")


def scrub_expr(text: pl.Expr) -> pl.Expr:
    """Polars form of :func:`scrub` (rows without a candidate are left untouched)."""
    text = text.cast(pl.Utf8)
    candidate = text.str.contains(_CANDIDATE)
    masked = pl.when(candidate).then(text)   # null elsewhere: the passes below skip those rows
    for run in _RUNS:
        masked = _mask_runs_expr(masked, run)
    return pl.when(candidate).then(masked).otherwise(text)


def mask_plate_expr(plate: pl.Expr) -> pl.Expr:
    """Polars form of :func:`mask_plate`."""
    compact = plate.cast(pl.Utf8).str.replace_all(r"[\s·.\-]", "")
    n = compact.str.len_chars()
    return (pl.when(n == 0).then(compact).when(n <= 4).then(pl.lit("***"))
            .otherwise(_starred_plate(compact)))


def _starred_plate(compact: pl.Expr) -> pl.Expr:
    n = compact.str.len_chars()
    middle = compact.str.slice(2, (n - 4).clip(0)).str.replace_all(".", "*")
    return compact.str.slice(0, 2) + middle + compact.str.slice(-2, 2)


def scrub_series(series: pl.Series) -> pl.Series:
    """:func:`scrub_expr` over a series, skipped (same text) when no value may hold a number."""
    return scrub_frame(series.cast(pl.Utf8).to_frame()).to_series()


def scrub_frame(df: pl.DataFrame, keep: tuple[str, ...] = ()) -> pl.DataFrame:
    """Every text column of a frame about to be written scrubbed, except the columns in ``keep``."""
    text = [c for c, t in df.schema.items() if t == pl.Utf8 and c not in keep]
    if not text or df.height == 0:
        return df
    # Only the columns where some cell may hold a number: scrub_expr leaves a text without a
    # candidate as it is, but costs ~10 ms of fixed polars work per column whatever the rows.
    found = df.select(pl.col(c).str.contains(_CANDIDATE).any() for c in text).row(0)
    return df.with_columns(scrub_expr(pl.col(c)).alias(c) for c, hit in zip(text, found) if hit)


# ----------------------------------------------------------------------------- SQL (DuckDB)

def _sql_literal(pattern: str) -> str:
    return "'" + pattern.replace("'", "''") + "'"


def _compact_sql(value: str) -> str:
    return (f"translate(regexp_replace({value}, {_sql_literal(_NOT_KEPT)}, '', 'g'), "
            f"'{_FULL_WIDTH}', '{_ASCII}')")


def _starred_sql(compact: str) -> str:
    return f"(left({compact}, 6) || repeat('*', greatest(length({compact}) - 10, 0)) || right({compact}, 4))"


def mask_id_sql(value: str) -> str:
    """SQL form of :func:`mask_id` for a column or expression (plain SQL, no macro: it also runs
    inside GX's own DuckDB connection)."""
    text = f"CAST({value} AS VARCHAR)"
    compact = _compact_sql(text)
    return (f"CASE WHEN length({compact}) >= 10 THEN {_starred_sql(compact)} "
            f"WHEN regexp_matches({compact}, '{_FIVE_DIGITS}') THEN '******' ELSE {text} END")


def mask_key_sql(value: str) -> str:
    """SQL form of :func:`mask_key`."""
    text = f"CAST({value} AS VARCHAR)"
    return f"CASE WHEN regexp_matches({text}, '{_ID_SHAPE}') THEN {mask_id_sql(value)} ELSE {text} END"


def _mask_runs_sql(text: str, run: str) -> str:
    compact = _compact_sql("t")
    return (f"array_to_string(list_transform(regexp_extract_all({text}, {_sql_literal(_TOKENS[run])}), "
            f"lambda t: CASE WHEN regexp_matches(t, '^[{_DIGIT}]') AND length({compact}) >= {MIN_DIGITS} "
            f"THEN {_starred_sql(compact)} ELSE t END), '')")


def scrub_sql(value: str) -> str:
    """SQL form of :func:`scrub` for a column or expression."""
    text = f"CAST({value} AS VARCHAR)"
    masked = text
    for run in _RUNS:
        masked = _mask_runs_sql(masked, run)
    return f"CASE WHEN regexp_matches({text}, {_sql_literal(_CANDIDATE)}) THEN {masked} ELSE {text} END"


def mask_plate_sql(value: str) -> str:
    """SQL form of :func:`mask_plate`."""
    compact = f"regexp_replace(CAST({value} AS VARCHAR), '[\\s·.\\-]', '', 'g')"
    return (f"CASE WHEN length({compact}) = 0 THEN {compact} WHEN length({compact}) <= 4 THEN '***' "
            f"ELSE left({compact}, 2) || "
            f"repeat('*', length({compact}) - 4) || right({compact}, 2) END")


def scrub_rendered(value: Any) -> Any:
    """Jinja's ``finalize``: every text a template prints passes :func:`scrub` (markup povwatch
    builds itself, such as a chart's SVG, and numbers are printed as they are)."""
    return scrub(value) if type(value) is str else value
