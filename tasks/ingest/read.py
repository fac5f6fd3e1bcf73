"""Reading one delivered file into text, with the clerk's row numbers.

Pure: no warehouse connection. Everything is read as text (an identity number must never become
a number); typing is conform's business. What comes out is a polars frame whose contract columns
carry their canonical names (``id_number``, ``name`` ...), extra columns their delivered header,
and ``source_row`` the row as the clerk sees it:

- CSV: the line in a text editor (header on line 1, first data row on line 2);
- Excel: the sheet row (1-based, counting title rows and the header);
- Parquet: the record's position, 1-based.

Encodings are told apart without being told: a UTF-8 BOM → UTF-8; bytes that decode
strictly as UTF-8 → UTF-8; else GB18030 (a superset of GBK: plain ``gbk`` fails on 𠮷); else the
file is refused with a message in Chinese.

A file that cannot be an extract (zero bytes, undecodable, unopenable, required columns missing,
no data rows) raises :class:`ReadError`, whose message names the file and, where it can, the
column or row. Fully blank rows (Excel's trailing empty rows, ",,,," lines) are not data and are
dropped before anything is counted.
"""
from __future__ import annotations

import csv
import io
import re
import unicodedata
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from xlsxwriter.utility import xl_col_to_name   # the column letter Excel shows (A, Z, AA)

from povwatch.tasks.ingest.contracts import Contract

SUPPORTED_SUFFIXES = (".csv", ".txt", ".xlsx", ".xlsm", ".xls", ".parquet")
HEADER_SCAN_ROWS = 20          # title rows above the header: look this far down for it
CERTIFICATE = "certificate"    # canonical name of canlian's 20-character 残疾证号 column
ROW = "source_row"
# An accepted header-only file of a department whose snapshot can be empty (contract may_be_empty)
EMPTY_SNAPSHOT = "空快照：只有表头、没有数据行，已按本期无记录采用"

_STRIP_CHARS = " \t\r\n\u3000*＊「」『』【】[]\"'“”‘’"


class ReadError(Exception):
    """A file that cannot be read as an extract; the message is Chinese, for the department."""


@dataclass
class FileRead:
    """One file as text: canonical contract columns, extra columns, source_row."""

    frame: pl.DataFrame
    headers: dict[str, str]            # frame column -> header as delivered (for receipts)
    extra_columns: list[str]           # delivered headers not in the contract, as frame columns
    encoding: str | None = None        # CSV only
    title_rows: int = 0                # Excel only: rows above the header
    notes: list[str] = field(default_factory=list)

    @property
    def rows_read(self) -> int:
        return self.frame.height


# --------------------------------------------------------------------------------------------
# headers

def normalize_header(text: object) -> str:
    """Header as compared: NFKC (full-width → half-width), no whitespace, no 「」 or * around it."""
    if text is None:
        return ""
    norm = unicodedata.normalize("NFKC", str(text))
    norm = re.sub(r"\s+", "", norm)
    return norm.strip(_STRIP_CHARS)


_NOTE = re.compile(r"\([^()]*\)$")   # a note after the name: 入职日期（年-月-日）, 金额(元)


def lookup_header(mapping: dict[str, str], raw: object) -> str | None:
    """The canonical column a delivered header names: as written, else without a bracketed note
    at its end (NFKC has made （） into ()). None for a header of no contract column."""
    norm = normalize_header(raw)
    found = mapping.get(norm)
    if found is None and norm.endswith(")"):
        found = mapping.get(_NOTE.sub("", norm).strip(_STRIP_CHARS))
    return found


def header_map(contract: Contract) -> dict[str, str]:
    """normalized header -> canonical column name (every header, synonym and the English name)."""
    mapping: dict[str, str] = {}
    for col in contract.columns:
        for h in (*col.headers, col.name):
            mapping.setdefault(normalize_header(h), col.name)
    cert = contract.certificate
    if cert:
        for h in (cert["header"], *cert.get("synonyms", ())):
            mapping.setdefault(normalize_header(h), CERTIFICATE)
    return mapping


def missing_required(contract: Contract, present: set[str]) -> list[str]:
    """Canonical headers of required columns the file lacks (the certificate stands in for its three)."""
    replaced: set[str] = set()
    if contract.certificate and CERTIFICATE in present:
        replaced = set(contract.certificate.get("replaces", ()))
    return [c.header for c in contract.required if c.name not in present and c.name not in replaced]


def _match_headers(contract: Contract, raw_headers: list[object]) -> tuple[list[str], dict[str, str], list[str]]:
    """Frame column names for the delivered headers; first match of a column wins."""
    mapping = header_map(contract)
    names: list[str] = []
    headers: dict[str, str] = {}
    extras: list[str] = []
    used: set[str] = set()
    first_at: dict[str, tuple[int, str]] = {}
    for i, raw in enumerate(raw_headers):
        delivered = "" if raw is None else str(raw).strip()
        canonical = lookup_header(mapping, raw)
        if canonical and canonical in first_at:
            j, other = first_at[canonical]
            raise ReadError(
                f"表头“{other}”（第{xl_col_to_name(j)}列）和“{delivered}”（第{xl_col_to_name(i)}列）"
                "是同一列，无法确定以哪一列为准，请删除其中一列")
        if canonical:
            first_at[canonical] = (i, delivered)
            used.add(canonical)
            name = canonical
        else:
            name = delivered or f"第{xl_col_to_name(i)}列"
            while name in used or name in mapping.values():
                name = f"{name}_{i + 1}"
            used.add(name)
            extras.append(name)
        names.append(name)
        headers[name] = delivered or name
    return names, headers, extras



# --------------------------------------------------------------------------------------------
# encodings

def detect_encoding(data: bytes) -> str:
    """'utf-8-sig', 'utf-8' or 'gb18030'; ReadError when none decodes the bytes."""
    if data.startswith(b"\xef\xbb\xbf"):
        return "utf-8-sig"
    try:
        data.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        data.decode("gb18030")
        return "gb18030"
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ReadError(
            f"无法识别文件编码（第{line}行起有无法解码的字节），"
            "请另存为UTF-8或GBK编码的CSV"
        ) from None


# --------------------------------------------------------------------------------------------
# formats

def read_file(path: Path, contract: Contract, data: bytes | None = None) -> FileRead:
    """Read one delivered file as text. ``data`` (the file's bytes) saves a second read.

    A workbook with several data sheets gives their rows together (each numbered within its
    sheet); the loader reads such a workbook by :func:`read_parts`, a part per sheet.
    """
    parts = read_parts(path, contract, data)
    if len(parts) == 1:
        return parts[0][1]
    first = parts[0][1]
    frame = pl.concat([p.frame for _, p in parts], how="diagonal_relaxed")
    headers = {k: v for _, p in parts for k, v in p.headers.items()}
    extras = list(dict.fromkeys(e for _, p in parts for e in p.extra_columns))
    return FileRead(frame, headers, extras, title_rows=first.title_rows, notes=first.notes)


def read_parts(path: Path, contract: Contract, data: bytes | None = None) -> list[tuple[str | None, FileRead]]:
    """One delivered file as text, in parts: one per data sheet of a workbook with several (the
    sheet's name beside it), else the one part, unnamed."""
    path = Path(path)
    suffix = path.suffix.lower()
    if data is None:
        data = path.read_bytes()
    if len(data) == 0:
        raise ReadError("文件为空（0字节）")
    if suffix in (".csv", ".txt"):
        parts = [(None, _read_csv(data, contract))]
    elif suffix in (".xlsx", ".xlsm", ".xls"):
        parts = _read_excel(path, data, contract)
    elif suffix == ".parquet":
        parts = [(None, _read_parquet(data, contract))]
    else:
        raise ReadError(f"不支持的文件类型“{suffix}”，请提供CSV、Excel（xlsx/xls）或Parquet文件")
    for sheet, result in parts:
        where = f"（工作表“{sheet}”）" if sheet else ""
        missing = missing_required(contract, set(result.frame.columns))
        if missing:
            raise ReadError(f"缺少必需列：{'、'.join(missing)}{where}")
        result.frame = _drop_blank_rows(result.frame)
    if sum(r.frame.height for _, r in parts) == 0:
        if not contract.may_be_empty:
            raise ReadError(f"文件只有表头，没有数据行（{contract.name}每期的数据不可能为空，"
                            "空文件不予采用，请核对后重新报送）")
        parts[0][1].notes.append(EMPTY_SNAPSHOT)
    return parts


def _drop_blank_rows(frame: pl.DataFrame) -> pl.DataFrame:
    cells = [c for c in frame.columns if c != ROW]
    if not cells:
        return frame
    # Cheap first: a row can be blank only if every cell is null or short (",  , ,"); only
    # those rows are trimmed to see, and the frame is filtered (a copy of every column) only
    # when some row is blank. One pass over the cells in the usual case, where a first pass
    # for rows of null cells and a second for short ones walked every cell twice.
    maybe = frame.select(pl.all_horizontal(
        [pl.col(c).is_null() | (pl.col(c).str.len_bytes() <= 8) for c in cells])).to_series()
    rows = maybe.arg_true()
    if not len(rows):
        return frame
    blank = frame.select(cells).gather(rows).select(pl.all_horizontal(
        [pl.col(c).is_null() | (pl.col(c).str.strip_chars() == "") for c in cells])).to_series()
    drop = rows.filter(blank)
    if not len(drop):
        return frame
    return frame.filter(pl.repeat(True, frame.height, eager=True).scatter(drop, False))


class _NotUtf8(Exception):
    pass


def _read_csv(data: bytes, contract: Contract) -> FileRead:
    """UTF-8 is read without a Python decode (Arrow validates it); bytes that are not UTF-8 are
    transcoded from GB18030 (once, in C)."""
    if _old_mac_line_ends(data):
        # old Mac line ends (CR only): one line break as any other, a line feed typed inside a
        # cell included. (0x0D is no byte of a GBK/GB18030 character, so this cannot split one.)
        data = re.sub(rb"\r(?!\n)", b"\n", data)
    if data.startswith(b"\xef\xbb\xbf"):
        body = data[3:]
        try:
            if not _is_utf8(body):
                raise _NotUtf8()
            return _read_csv_utf8(body, "utf-8-sig", contract)
        except _NotUtf8:
            raise ReadError("文件带UTF-8标记(BOM)，但内容不是有效的UTF-8编码") from None
    if _is_utf8(data):
        try:
            return _read_csv_utf8(data, "utf-8", contract)
        except _NotUtf8:
            pass
    try:
        text = data.decode("gb18030")   # GBK files are GB18030 too: one decode, in C
    except UnicodeDecodeError:
        detect_encoding(data)  # raises with the line of the first bad byte
        raise
    return _read_csv_utf8(text.encode("utf-8"), "gb18030", contract)


def _old_mac_line_ends(data: bytes) -> bool:
    """The file ends its lines with a lone CR: its first line end is one (a file of CRLF or LF
    lines may still hold a lone CR inside a cell, which is no line end there)."""
    first_cr, first_lf = data.find(b"\r"), data.find(b"\n")
    if first_cr < 0:
        return False
    return first_lf < 0 or (first_cr < first_lf and first_lf != first_cr + 1)


def _is_utf8(data: bytes) -> bool:
    """Whether the bytes are UTF-8, checked by Arrow's validation in C (57 MB of CSV in 14 ms of
    CPU), not by a Python decode. Checked before parsing: a GB18030 file parsed as UTF-8 first
    cost a parse up to its first Chinese character, and a ragged row in it made pyarrow print
    "Exception ignored … UnicodeDecodeError" to the run's output (it decodes the row's text for
    the invalid-row handler)."""
    offsets = pa.array([0, len(data)], pa.int64()).buffers()[1]
    as_binary = pa.Array.from_buffers(pa.large_binary(), 1, [None, offsets, pa.py_buffer(data)])
    try:
        as_binary.cast(pa.large_string())
    except pa.ArrowInvalid:
        return False
    return True


def _read_csv_utf8(body: bytes, encoding: str, contract: Contract) -> FileRead:
    first_line_end = body.find(b"\n")   # CR line ends are LF by now (_old_mac_line_ends)
    header_line = body if first_line_end < 0 else body[:first_line_end]
    try:
        header_text = header_line.decode("utf-8").rstrip("\r")
    except UnicodeDecodeError:
        raise _NotUtf8() from None
    if not header_text.strip():
        raise ReadError("第1行（表头）为空")
    try:
        raw_headers = next(csv.reader(io.StringIO(header_text)))
    except csv.Error:
        raise ReadError("第1行（表头）无法解析（引号不成对）") from None
    names, headers, extras = _match_headers(contract, raw_headers)
    missing = missing_required(contract, set(names))
    if missing:
        raise ReadError(f"缺少必需列：{'、'.join(missing)}（表头在第1行）")
    positional = [f"c{i}" for i in range(len(names))]
    bad_rows: list[int | None] = []

    def on_invalid(row) -> str:
        bad_rows.append(row.number)
        return "skip"

    def parse(newlines_in_values: bool, use_threads: bool, block_size: int = 1 << 24) -> pa.Table:
        return pacsv.read_csv(
            pa.BufferReader(body),
            read_options=pacsv.ReadOptions(column_names=positional, skip_rows=1,
                                           use_threads=use_threads, block_size=block_size),
            parse_options=pacsv.ParseOptions(newlines_in_values=newlines_in_values,
                                             invalid_row_handler=on_invalid),
            convert_options=pacsv.ConvertOptions(
                column_types={c: pa.string() for c in positional},
                strings_can_be_null=True, quoted_strings_can_be_null=True,
                null_values=[""],
            ),
        )

    try:
        try:
            table = parse(False, True)
        except pa.ArrowInvalid as exc:
            if "utf8" in str(exc).lower() or "utf-8" in str(exc).lower():
                raise _NotUtf8() from None
            bad_rows.clear()
            if "straddl" in str(exc):   # a row longer than a block (a pasted 50 MB cell)
                table = parse(False, True, block_size=len(body) + 1)
            else:
                try:   # a quoted cell with a line break in it
                    table = parse(True, True)
                except pa.ArrowInvalid:
                    bad_rows.clear()
                    table = parse(True, False, block_size=len(body) + 1)
        if bad_rows:
            bad_rows.clear()
            parse(b'"' in body and b"\n" in body, False)  # single-threaded: row numbers known
    except pa.ArrowInvalid:
        raise ReadError("CSV格式错误，无法解析（引号或分隔符不成对）") from None
    if bad_rows:
        where = "、".join(f"第{n}行" for n in bad_rows[:5] if n is not None) or f"{len(bad_rows)}行"
        raise ReadError(f"{where}的列数与表头（{len(names)}列）不一致")
    frame = pl.from_arrow(table)
    frame.columns = names
    frame = _with_line_numbers(frame, body, names)
    return FileRead(frame, headers, extras, encoding=encoding)


def _with_line_numbers(frame: pl.DataFrame, body: bytes, names: list[str]) -> pl.DataFrame:
    """The frame with each row's line in the file as the clerk's editor counts it (ROW)."""
    # Rows are lines: header on line 1. A quoted cell with line breaks in it makes its row take
    # more lines, so the rows after it start that much later.
    line = pl.int_range(2, frame.height + 2, dtype=pl.Int32)
    # As many lines as the header and the rows: every row is one line and no line is empty, so
    # the row numbers are 2, 3, … without looking into the cells (counting line breaks in every
    # cell cost more than the rest of this function on the CSVs with a quoted cell).
    one_line_rows = body.count(b"\n") + (not body.endswith(b"\n")) == frame.height + 1
    # Empty lines between rows, which the parser skips, are lines in the clerk's editor all the
    # same: a row starts on the n-th non-empty line, n counting the header's line and the
    # non-empty lines of the rows before it (an empty line inside a quoted cell is the row's own,
    # not one the parser skipped).
    nonblank = None if one_line_rows else _nonblank_lines(body)
    if not one_line_rows and b'"' in body and b"\n" in body and frame.height:
        breaks = pl.sum_horizontal([pl.col(n).str.count_matches("\n").fill_null(0) for n in names])
        if nonblank is not None:
            breaks = breaks - pl.sum_horizontal([_empty_inner_lines(n) for n in names])
        line = line + (breaks.cum_sum() - breaks).cast(pl.Int32)
    frame = frame.with_columns(line.alias(ROW))
    # A file whose lines this cannot match (line ends mixed past what _read_csv evens out) keeps
    # the numbers counted above rather than fail the read.
    if nonblank is not None and frame.height and frame[ROW].max() <= nonblank.len():
        frame = frame.with_columns(nonblank.gather(frame[ROW] - 1).alias(ROW))
    return frame


def _empty_inner_lines(column: str) -> pl.Expr:
    """Empty lines inside a cell: the pieces between two of its line breaks that are "" or a
    lone CR. The piece before its first break is on the line the cell starts on, the piece
    after its last on the line it ends on: neither is a line of its own."""
    pieces = pl.col(column).str.split("\n")
    inner = pieces.list.slice(1, pieces.list.len() - 2)
    return inner.list.eval(pl.element().is_in(["", "\r"]).cast(pl.Int32).sum()).list.first().fill_null(0)


def _nonblank_lines(body: bytes) -> pl.Series | None:
    """1-based numbers of the lines that are not empty ("" or a lone CR); None when none is."""
    if b"\n\n" not in body and b"\n\r\n" not in body:
        return None
    import numpy as np

    data = np.frombuffer(body, dtype=np.uint8)
    ends = np.flatnonzero(data == 10)
    starts = np.concatenate(([0], ends + 1))
    stops = np.concatenate((ends, [len(data)]))
    length = stops - starts
    lone_cr = (length == 1) & (data[np.minimum(starts, len(data) - 1)] == 13)
    return pl.Series(ROW, np.flatnonzero(~((length == 0) | lone_cr)) + 1, dtype=pl.Int32)


def _find_header_row(contract: Contract, rows: list[list[object]]) -> int:
    """Index of the first row holding every required header (else the best partial match)."""
    mapping = header_map(contract)
    best, best_hits = -1, 0
    for i, row in enumerate(rows):
        present = {lookup_header(mapping, v) for v in row if v is not None}
        present.discard(None)
        if not missing_required(contract, present):  # type: ignore[arg-type]
            return i
        if len(present) > best_hits:
            best, best_hits = i, len(present)
    return best


def _present(contract: Contract, row: list[object]) -> set[str]:
    mapping = header_map(contract)
    return {c for c in (lookup_header(mapping, v) for v in row if v is not None) if c}


SHEET_HIDDEN = "隐藏的工作表，不读取"
SHEET_NO_HEADER = "没有表头（说明或封面页），不是数据"
SHEET_EMPTY = "空工作表"


def _read_excel(path: Path, data: bytes, contract: Contract) -> list[tuple[str | None, FileRead]]:
    """Every sheet of a workbook read or named as skipped, with the reason.

    Data sheets are the visible sheets whose first rows hold the required headers; one per
    township is common, and together they are the file's rows (one part per sheet, named by the
    sheet, so each keeps its own row numbers). A hidden sheet is never read (often last year's
    list kept out of sight); a sheet without the header (说明, 封面) or without content is not
    data. The skipped sheets are named in the first part's notes: they reach the receipt and
    the run's output.
    """
    import fastexcel

    try:
        reader = fastexcel.read_excel(data)
        sheet_names = list(reader.sheet_names)
    except Exception as exc:  # calamine raises its own errors for corrupt / encrypted files
        raise ReadError(f"Excel文件无法打开（{type(exc).__name__}），请检查文件是否损坏或加密") from None
    found, skipped = [], []
    best = None       # the sheet that explains what is missing when no sheet is data
    hidden_data = []  # hidden sheets that hold the header
    for sheet_index in range(max(len(sheet_names), 1)):
        name = sheet_names[sheet_index] if sheet_index < len(sheet_names) else f"{sheet_index + 1}"
        try:
            # One parse of the sheet: loading it (even with n_rows=0) parses the whole sheet XML,
            # so the lazy sheet gives its visibility and then its rows (fupin at size M: 1.3 s of
            # CPU instead of 2.1 s for a load to see .visible and a second, eager one).
            sheet = reader.load_sheet(sheet_index, header_row=None, skip_rows=0, dtypes="string")
            visible = sheet.visible == "visible"
            table = sheet.to_arrow()
        except Exception as exc:
            if sheet_index == 0:
                raise ReadError(f"Excel文件无法打开（{type(exc).__name__}），请检查文件是否损坏或加密") from None
            skipped.append((name, f"无法读取（{type(exc).__name__}）"))
            continue
        candidate = pl.from_arrow(table)
        if not isinstance(candidate, pl.DataFrame) or candidate.height == 0 or candidate.width == 0:
            skipped.append((name, SHEET_HIDDEN if not visible else SHEET_EMPTY))
            continue
        scan = [list(r) for r in candidate.head(HEADER_SCAN_ROWS).rows()]
        index = _find_header_row(contract, scan)
        full = index >= 0 and not missing_required(contract, _present(contract, scan[index]))
        if not visible:
            skipped.append((name, SHEET_HIDDEN))
            if full:
                hidden_data.append(name)
        elif full:
            found.append((sheet_index, name, candidate, index))
        else:
            skipped.append((name, SHEET_NO_HEADER))
            if best is None:
                best = (sheet_index, name, candidate, index)
    if not found:
        if hidden_data:
            raise ReadError(f"数据在隐藏的工作表“{'、'.join(hidden_data)}”中；隐藏的工作表不读取，"
                            "请将本期数据放在可见的工作表中重新报送")
        if best is None:
            raise ReadError("工作表为空")
        found = [best]   # explains what is missing (raises)
    parts = [(name if len(found) > 1 else None, _read_sheet(data, contract, sheet_index, frame, index))
             for sheet_index, name, frame, index in found]
    parts[0][1].notes.extend(f"工作表“{name}”未读取：{why}" for name, why in skipped)
    return parts


def _read_sheet(data: bytes, contract: Contract, sheet_index: int, frame: pl.DataFrame,
                header_index: int) -> FileRead:
    """One data sheet: the header row found, the rows below it as text, numbered as in Excel."""
    if header_index < 0:
        needed = "、".join(c.header for c in contract.required)
        raise ReadError(f"前{HEADER_SCAN_ROWS}行中找不到表头（应含：{needed}）")
    scan = [list(r) for r in frame.slice(header_index, 1).rows()]
    names, headers, extras = _match_headers(contract, scan[0])
    missing = missing_required(contract, set(names))
    if missing:
        raise ReadError(f"缺少必需列：{'、'.join(missing)}（表头在第{header_index + 1}行）")
    columns = frame.columns
    body = frame.slice(header_index + 1)
    body.columns = names
    # Columns with neither header nor content are layout, not data.
    empty_unnamed = [n for n, c in zip(names, columns) if n in extras and not headers[n].strip()
                     and body[n].null_count() == body.height]
    if empty_unnamed:
        body = body.drop(empty_unnamed)
        extras = [e for e in extras if e not in empty_unnamed]
    # Excel rows: 1-based, counting title rows and the header.
    body = body.with_columns(
        pl.int_range(header_index + 2, header_index + 2 + body.height, dtype=pl.Int32).alias(ROW)
    )
    # Date cells come back as "2020-03-05 00:00:00": a date is its ISO text.
    # Only the columns that hold such a cell are rewritten (a cheap test first: stripping copies
    # every string of the column, fupin's sixteen 37 ms, the test 11 ms).
    text_cols = [c for c in body.columns if c != ROW]
    if text_cols:
        timed = body.select(pl.col(text_cols).str.ends_with(" 00:00:00").any()).row(0)
        text_cols = [c for c, has_time in zip(text_cols, timed) if has_time]
    if text_cols:
        body = body.with_columns(pl.col(text_cols).str.strip_suffix(" 00:00:00"))
    # Numbers in identity-number columns: Excel kept 15 significant digits and lost the rest.
    id_cols = [n for n in names if n in {c.name for c in contract.columns if c.type == "id"}
               or n == CERTIFICATE]
    if id_cols:
        body = _mark_numeric_ids(data, body, names, headers, id_cols, header_index, sheet_index)
    return FileRead(body, headers, extras, title_rows=header_index)


def _mark_numeric_ids(data: bytes, body: pl.DataFrame, names: list[str], headers: dict[str, str],
                      id_cols: list[str], header_index: int, sheet_index: int = 0) -> pl.DataFrame:
    """Identity numbers stored as number cells become scientific text (6.20523E+17).

    calamine's text for a number cell ("620523198001011200") looks like a typed identity number,
    so which cells were numbers is read from the sheet itself: for .xlsx the sheet XML's cell
    types, for .xls a second, numeric load of just those columns.
    """
    suspicious = pl.any_horizontal(
        [pl.col(c).str.contains(r"^[0-9]{16,}$") for c in id_cols]
    )
    if not body.select(suspicious.any()).item():
        return body
    numeric = None
    if data[:2] == b"PK":
        numeric = _xlsx_numeric_cells(data, {c: headers[c] for c in id_cols}, header_index + 1,
                                      sheet_index)
        if numeric is None:
            # no cell references to place the number cells by (valid OOXML some writers
            # produce): a cell is damaged when its text is what a long number cell of the
            # sheet reads as — a real 18-digit text that equals one is not to be met in practice
            floats = _xlsx_long_number_texts(data, sheet_index)
            return body.with_columns(
                pl.when(pl.col(c).str.contains(r"^[0-9]{16,}$") & pl.col(c).is_in(floats.implode()))
                .then(_scientific(pl.col(c))).otherwise(pl.col(c)).alias(c) for c in id_cols)
    if numeric is None:
        numeric = _xls_numeric_cells(data, {c: headers[c] for c in id_cols}, header_index,
                                     sheet_index)
    updates = []
    for col in id_cols:
        rows = numeric.get(col)
        if not rows:
            continue
        is_number = pl.col(ROW).is_in(pl.Series(sorted(rows), dtype=pl.Int32).implode())
        updates.append(
            # 15 digits survive a number cell (the legacy form, repaired later); more do not.
            pl.when(is_number & pl.col(col).str.contains(r"^[0-9]{16,}$"))
            .then(_scientific(pl.col(col)))
            .otherwise(pl.col(col))
            .alias(col)
        )
    return body.with_columns(updates) if updates else body


def _scientific(text: pl.Expr) -> pl.Expr:
    """"620523198001011200" → "6.20523E+17", as Excel shows a long number."""
    digits = text.str.len_chars()
    mantissa = text.str.slice(0, 1) + pl.lit(".") + text.str.slice(1, 5)
    return mantissa + pl.lit("E+") + (digits - 1).cast(pl.Utf8)


_XML_CHUNK = 1 << 22   # sheet XML decompressed 4 MB at a time (fupin's sheet at size M: 104 MB)


def _xlsx_numeric_cells(data: bytes, columns: dict[str, str], header_row: int,
                        sheet_index: int = 0) -> dict[str, set[int]] | None:
    """Sheet rows whose cell under each given header is a number cell (no t="s"/"str"/...).

    The column letter is found from the header cell itself in the sheet XML, so columns that
    calamine skips (entirely empty ones on the left) cannot shift it. None when unsure.

    The sheet XML is decompressed and scanned a piece at a time, never held whole: holding it
    (and the join of its decompressed blocks) cost two fresh copies of it, 208 MB of page faults
    on fupin at size M, for a scan that looks at one cell tag at a time.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            shared = zf.read("xl/sharedStrings.xml") if "xl/sharedStrings.xml" in zf.namelist() else b""
            with zf.open(_sheet_path(zf, sheet_index)) as sheet:
                head, row_xml = _xlsx_row(sheet, header_row)
                if not row_xml:
                    return None
                strings = _SharedStrings(shared)
                letters: dict[str, bytes] = {}
                for cell in re.finditer(rb'<c r="([A-Z]{1,3})\d+"([^>]*?)(?:/>|>(.*?)</c>)', row_xml.group(1),
                                        re.S):
                    letter, attrs, inner = cell.group(1), cell.group(2), cell.group(3) or b""
                    if b't="s"' in attrs:
                        v = re.search(rb"<v>(\d+)</v>", inner)
                        text = strings.get(int(v.group(1))) if v else ""
                    else:
                        text = _xml_text(inner)
                    norm = normalize_header(text)
                    for name, delivered in columns.items():
                        if name not in letters and norm == normalize_header(delivered):
                            letters[name] = letter
                if len(letters) != len(columns):
                    return None
                found: dict[str, set[int]] = {name: set() for name in letters}
                names_of: dict[bytes, list[str]] = {}
                for name, letter in letters.items():
                    names_of.setdefault(letter, []).append(name)
                # A number cell of one of those columns: no t= other than t="n", not self-closing
                # (empty). One C-speed scan of each piece for all of them; only the (rare)
                # matches reach Python.
                alternatives = b"|".join(sorted(names_of, key=len, reverse=True))
                pattern = re.compile(
                    rb'<c r="(' + alternatives + rb')(\d+)"(?![^>]*\bt="(?!n")[^"]*")[^>]*(?<!/)>')
                for piece, end in _xlsx_cell_pieces(head, sheet):
                    for letter, number in pattern.findall(piece, 0, end):
                        for name in names_of[letter]:
                            found[name].add(int(number))
    except Exception:   # a damaged part of the workbook: unsure, as when the header is not found
        return None
    return found


def _xlsx_row(sheet, number: int) -> tuple[bytes, re.Match | None]:
    """The sheet XML read so far and the match of row ``number`` in it (its cells in group 1),
    reading only as far as the row: the header is among the first rows."""
    row = re.compile(rb'<row [^>]*?r="%d"[^>]*>(.*?)</row>' % number, re.S)
    head = b""
    while len(head) < 4 * _XML_CHUNK:
        chunk = sheet.read(_XML_CHUNK)
        head += chunk
        found = row.search(head)
        if found or not chunk:
            return head, found
    head += sheet.read()   # not in the first 16 MB: searched once in the whole sheet, as it was
    return head, row.search(head)


def _xlsx_cell_pieces(head: bytes, sheet):
    """The sheet XML in pieces (bytes, end), each ending before a cell tag (``<c r="``) so that
    no tag is cut in two: ``head`` first, then the rest of ``sheet`` a chunk at a time. The
    piece is ``bytes[:end]``, given as an end to scan up to rather than copied out."""
    rest = head
    while True:
        chunk = sheet.read(_XML_CHUNK)
        if not chunk:
            yield rest, len(rest)
            return
        rest += chunk
        cut = rest.rfind(b'<c r="')
        if cut > 0:
            yield rest, cut
            rest = rest[cut:]


def _xlsx_long_number_texts(data: bytes, sheet_index: int = 0) -> pl.Series:
    """The texts calamine gives the sheet's number cells of 16 or more digits: the float's exact
    integer ("620523198001018004" stored as a number reads "620523198001017984")."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            xml = zf.read(_sheet_path(zf, sheet_index))
    except Exception:
        return pl.Series([], dtype=pl.Utf8)
    # a number cell: no t= other than t="n"; its value, after a formula if it has one
    number_cell = (rb'<c\b(?![^>]*\bt="(?!n")[^"]*")[^>]*(?<!/)>\s*'
                   rb'(?:<f[^>]*/>|<f[^>]*>[^<]*</f>)?\s*<v>([^<]+)</v>')
    values = pl.Series([v.decode() for v in re.findall(number_cell, xml)], dtype=pl.Utf8)
    floats = values.cast(pl.Float64, strict=False)
    floats = floats.filter(floats.abs() >= 1e15)
    return floats.cast(pl.Int64, strict=False).cast(pl.Utf8).drop_nulls().unique()


def _xml_text(fragment: bytes) -> str:
    import html

    return html.unescape("".join(t.decode("utf-8") for t in re.findall(rb"<t[^>]*>(.*?)</t>", fragment, re.S)))


class _SharedStrings:
    """Lazy lookup in sharedStrings.xml: only as far as the header's strings need."""

    def __init__(self, xml: bytes):
        self._iter = re.finditer(rb"<si>(.*?)</si>", xml, re.S)
        self._seen: list[str] = []

    def get(self, index: int) -> str:
        while len(self._seen) <= index:
            match = next(self._iter, None)
            if match is None:
                return ""
            self._seen.append(_xml_text(match.group(1)))
        return self._seen[index]


def _sheet_path(zf: zipfile.ZipFile, index: int) -> str:
    """The worksheet XML of the index-th sheet in workbook order."""
    workbook = zf.read("xl/workbook.xml")
    rels = zf.read("xl/_rels/workbook.xml.rels")
    sheets = re.findall(rb'<(?:\w+:)?sheet\b[^>]*?\br:id="([^"]+)"', workbook)
    if index < len(sheets):
        rid = re.escape(sheets[index])
        for rel in re.finditer(rb"<Relationship\b[^>]*>", rels):
            if re.search(rb'\bId="' + rid + rb'"', rel.group(0)):
                target = re.search(rb'\bTarget="([^"]+)"', rel.group(0))
                if target:
                    path = target.group(1).decode().lstrip("/")
                    return path if path.startswith("xl/") else "xl/" + path
    return f"xl/worksheets/sheet{index + 1}.xml"


def _xls_numeric_cells(data: bytes, columns: dict[str, str], header_index: int,
                       sheet_index: int = 0) -> dict[str, set[int]]:
    """Sheet rows (1-based) whose cell under each given header is a number cell, in an .xls.

    calamine coerces digit text to numbers when asked for floats, so it cannot tell a text cell
    "110105194912310037" from a number cell that lost its last digits; xlrd reads the cell types
    of the BIFF records. The header's column is found by its text in the header row.
    """
    import xlrd

    try:
        book = xlrd.open_workbook(file_contents=data, on_demand=True)
        sheet = book.sheet_by_index(sheet_index)
        header = [normalize_header(v) for v in sheet.row_values(header_index)]
    except Exception:  # not BIFF after all, or damaged: leave the text as calamine read it
        return {}
    found: dict[str, set[int]] = {}
    for name, delivered in columns.items():
        wanted = normalize_header(delivered)
        if wanted not in header:
            continue
        types = pl.Series(sheet.col_types(header.index(wanted), start_rowx=header_index + 1),
                          dtype=pl.Int8)
        numbers = (types == xlrd.XL_CELL_NUMBER).arg_true() + (header_index + 2)
        found[name] = set(numbers.to_list())
    return found


def _read_parquet(data: bytes, contract: Contract) -> FileRead:
    try:
        table = pq.read_table(pa.BufferReader(data))
    except Exception:
        raise ReadError("Parquet文件无法读取，请检查文件是否损坏") from None
    frame = pl.from_arrow(table)
    names, headers, extras = _match_headers(contract, list(frame.columns))
    id_names = {c.name for c in contract.columns if c.type == "id"} | {CERTIFICATE}
    casts = []
    for (name, dtype), canonical in zip(frame.schema.items(), names):
        col = pl.col(name)
        if dtype.is_float():
            whole = col.cast(pl.Int64, strict=False).cast(pl.Utf8)
            if canonical in id_names:
                # A float keeps 15-16 significant digits: an 18-digit number that passed through
                # one has lost its last digits (620523198001018004 → …7984, a valid number of
                # someone else). It is damaged, as Excel's 6.20523E+17 is, and quarantined.
                whole = pl.when(col.abs() >= 1e15).then(_scientific(whole)).otherwise(whole)
            casts.append(
                pl.when(col == col.round(0)).then(whole).otherwise(col.cast(pl.Utf8)).alias(name)
            )
        elif dtype == pl.Boolean:
            casts.append(pl.when(col).then(pl.lit("是")).when(~col).then(pl.lit("否")).alias(name))
        elif dtype == pl.Datetime or isinstance(dtype, pl.Datetime):
            casts.append(col.dt.strftime("%Y-%m-%d").alias(name))
        elif dtype != pl.Utf8:
            casts.append(col.cast(pl.Utf8).alias(name))
    if casts:
        frame = frame.with_columns(casts)
    frame.columns = names
    frame = frame.with_columns(pl.int_range(1, frame.height + 1, dtype=pl.Int32).alias(ROW))
    return FileRead(frame, headers, extras)
