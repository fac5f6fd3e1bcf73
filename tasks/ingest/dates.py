"""Text to date, as conforming and the identity-number check parse it."""
from __future__ import annotations

import polars as pl


def to_date(text: pl.Expr, fmt: str) -> pl.Expr:
    """The text as a date in ``fmt``, null where it does not parse.

    Uncached: polars' cache memoises each distinct text through a hash table, which costs more
    than parsing these short texts again (birth dates of 420,000 identity numbers: 28 -> 17 ms).
    Same values either way.
    """
    return text.str.to_date(fmt, strict=False, cache=False)
