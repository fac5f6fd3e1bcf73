"""Writing extracts the way offices send them: CSV in UTF-8 / UTF-8 with BOM / GBK / GB18030, and
.xlsx with optional title rows above the header (a merged title cell, as 扶贫办 sends it).

Both writers are vectorised: CSV through polars, re-encoded as bytes; .xlsx by building the sheet
XML with polars string expressions (inline strings, numbers as numbers) and zipping it — no
Python loop over rows, ~100k-row sheets in well under a second.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import polars as pl
from xlsxwriter.utility import xl_col_to_name   # the column letter Excel shows (A, Z, AA)

_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_NS_R = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_NUMBER = r"^-?(0|[1-9][0-9]{0,14})(\.[0-9]+)?$"
_SCIENTIFIC = r"^[1-9]\.[0-9]+E\+[0-9]+$"

_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
    '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
    '<Override PartName="/xl/styles.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>'
    '</Types>')
_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/>'
    '</Relationships>')
_WORKBOOK_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/>'
    '<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles" Target="styles.xml"/>'
    '</Relationships>')
_STYLES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    f'<styleSheet xmlns="{_NS}">'
    '<fonts count="2"><font><sz val="11"/><name val="宋体"/></font>'
    '<font><b/><sz val="14"/><name val="宋体"/></font></fonts>'
    '<fills count="2"><fill><patternFill patternType="none"/></fill><fill><patternFill patternType="gray125"/></fill></fills>'
    '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
    '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
    '<cellXfs count="2"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
    '<xf numFmtId="0" fontId="1" fillId="0" borderId="0" xfId="0" applyFont="1" applyAlignment="1">'
    '<alignment horizontal="center"/></xf></cellXfs>'
    '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles></styleSheet>')



def _escape(e: pl.Expr) -> pl.Expr:
    return (e.str.replace_all("&", "&amp;", literal=True).str.replace_all("<", "&lt;", literal=True)
            .str.replace_all(">", "&gt;", literal=True))


def _text_cell(ref: str, value: str, style: int = 0) -> str:
    v = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    s = f' s="{style}"' if style else ""
    return f'<c r="{ref}"{s} t="inlineStr"><is><t>{v}</t></is></c>'


def write_xlsx(path: Path, frame: pl.DataFrame, numeric: set[str] = frozenset(),
               titles: tuple[str, ...] = (), floats: set[str] = frozenset()) -> None:
    """One sheet: ``titles`` (merged across the table) on the first rows, then header, then data.

    ``frame`` is all text (null = empty cell). Columns in ``numeric`` become number cells where
    the text is a plain number (so "1,234.50" or "1234.5元" stay text, as a clerk typed them);
    in ``floats`` (identity-number columns) values in scientific notation become number cells, as
    Excel stores a long number typed into a General cell.
    """
    ncols = frame.width
    last = xl_col_to_name(ncols - 1)
    head_rows = []
    for r, title in enumerate(titles, start=1):
        head_rows.append(f'<row r="{r}">{_text_cell(f"A{r}", title, 1 if r == 1 else 0)}</row>')
    hr = len(titles) + 1
    head_rows.append(f'<row r="{hr}">' + "".join(
        _text_cell(f"{xl_col_to_name(i)}{hr}", c) for i, c in enumerate(frame.columns)) + "</row>")
    first = hr + 1
    escape = {c for c in frame.columns if frame[c].str.contains(r"[&<>]").any()}
    body = frame.with_columns((pl.int_range(pl.len()) + first).cast(pl.Utf8).alias("__rn"))
    rownum = pl.col("__rn")
    cells = []
    for i, c in enumerate(frame.columns):
        v = pl.col(c)
        ref = pl.lit(f'<c r="{xl_col_to_name(i)}') + rownum
        text = ref + pl.lit('" t="inlineStr"><is><t>') + (_escape(v) if c in escape else v) + pl.lit("</t></is></c>")
        if c in numeric or c in floats:
            pattern = _NUMBER if c in numeric else _SCIENTIFIC
            cell = pl.when(v.str.contains(pattern)).then(ref + pl.lit('"><v>') + v + pl.lit("</v></c>")).otherwise(text)
        else:
            cell = text
        cells.append(pl.when(v.is_null() | (v == "")).then(pl.lit("")).otherwise(cell))
    rows = body.select(
        (pl.lit('<row r="') + rownum + pl.lit('">') + pl.concat_str(cells) + pl.lit("</row>")).alias("x")
    ).to_series().str.join("").item() if frame.height else ""
    merge = (f'<mergeCells count="{len(titles)}">' + "".join(
        f'<mergeCell ref="A{r}:{last}{r}"/>' for r in range(1, len(titles) + 1)) + "</mergeCells>") if titles else ""
    sheet = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
             f'<worksheet xmlns="{_NS}" xmlns:r="{_NS_R}"><dimension ref="A1:{last}{hr + frame.height}"/>'
             f'<sheetData>{"".join(head_rows)}{rows}</sheetData>{merge}</worksheet>')
    workbook = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
                f'<workbook xmlns="{_NS}" xmlns:r="{_NS_R}"><sheets>'
                '<sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>')
    path.parent.mkdir(parents=True, exist_ok=True)
    parts = {"[Content_Types].xml": _CONTENT_TYPES, "_rels/.rels": _RELS, "xl/workbook.xml": workbook,
             "xl/_rels/workbook.xml.rels": _WORKBOOK_RELS, "xl/styles.xml": _STYLES,
             "xl/worksheets/sheet1.xml": sheet}
    with zipfile.ZipFile(path, "w") as z:
        for name, data in parts.items():   # fixed timestamps: the same seed gives the same bytes
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data, compresslevel=1)


def write_csv(path: Path, frame: pl.DataFrame, encoding: str = "utf-8") -> None:
    """A header line then one line per row; ``encoding`` utf-8, utf-8-sig, gbk or gb18030."""
    text = frame.write_csv(line_terminator="\r\n" if encoding in ("gbk", "gb18030") else "\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    if encoding == "utf-8":
        path.write_bytes(text.encode("utf-8"))
    elif encoding == "utf-8-sig":
        path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    else:
        path.write_bytes(text.encode(encoding))   # strict: a character GBK lacks is a bug here
