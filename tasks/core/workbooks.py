"""Every Excel workbook povwatch writes is opened here: text stays text, the file stays private.

xlsxwriter turns a string that starts with ``=`` into a formula, and strings that look like URLs
or numbers into links and numbers, unless told not to. Data — a file name ``=HYPERLINK(...)``, a
header ``=SUM(...)``, a note — must never become something a spreadsheet runs, so every writer
(receipts, exports, township workbooks) takes its workbook from :func:`private_workbook`.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import xlsxwriter

# Strings are written as strings: no formulas, links or numbers guessed from data.
TEXT_ONLY = {"strings_to_formulas": False, "strings_to_numbers": False, "strings_to_urls": False}


@contextmanager
def private_workbook(path: Path) -> Iterator[xlsxwriter.Workbook]:
    """A workbook at ``path`` (folders made) that stores text as text, closed on exit and left
    readable by its owner only (it names people of a department or a township)."""
    path = Path(path)
    old = os.umask(0o077)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # in_memory: the parts are zipped from memory, not from a temporary file each (~10 per
        # workbook, written and removed again: a tenth to a fifth of the CPU of M's receipts).
        workbook = xlsxwriter.Workbook(str(path), {**TEXT_ONLY, "in_memory": True})
        try:
            yield workbook
        finally:
            workbook.close()
    finally:
        os.umask(old)
    if path.exists():
        path.chmod(0o600)
