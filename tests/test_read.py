"""Reading delivered files: every encoding and format the contract names, as text, with the
clerk's row numbers. Files are built here (polars, pyarrow, xlsxwriter); nothing binary is
committed."""
from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import xlsxwriter
from hypothesis import given, settings
from hypothesis import strategies as st

from povwatch.tasks.ingest.contracts import load_contract
from povwatch.tasks.ingest.read import CERTIFICATE, ReadError, detect_encoding, normalize_header, read_file

FUPIN = load_contract("fupin")
CAIZHENG = load_contract("caizheng")
CANLIAN = load_contract("canlian")

HEADER = ["身份证号", "姓名", "工作单位", "入职日期"]
ROWS = [
    ["11010519491231002X", "𠮷祥", "城关镇人民政府", "2010-01-15"],   # 𠮷: GB18030 only, not GBK
    ["110105194912310029", "王芳", "县财政局", "2011/2/3"],
    ["110105194912310037", "李娜", "县医院", ""],
]


def csv_bytes(header, rows, encoding: str) -> bytes:
    text = "\n".join(",".join(r) for r in [header, *rows]) + "\n"
    return text.encode(encoding)


# --- CSV encodings --------------------------------------------------------------------------

@pytest.mark.parametrize("encoding,expected", [
    ("utf-8", "utf-8"), ("utf-8-sig", "utf-8-sig"), ("gb18030", "gb18030")])
def test_csv_encodings_detected_and_read_as_text(tmp_path: Path, encoding: str, expected: str) -> None:
    path = tmp_path / "a.csv"
    path.write_bytes(csv_bytes(HEADER, ROWS, encoding))
    got = read_file(path, CAIZHENG)
    assert got.encoding == expected
    assert got.frame["name"].to_list() == ["𠮷祥", "王芳", "李娜"]
    assert got.frame["id_number"].to_list() == [r[0] for r in ROWS]
    assert got.frame["hired_on"].to_list() == ["2010-01-15", "2011/2/3", None]
    assert got.frame["source_row"].to_list() == [2, 3, 4]          # header on line 1
    assert all(dtype == pl.Utf8 for name, dtype in got.frame.schema.items() if name != "source_row")


def test_gbk_file_is_read_as_gb18030(tmp_path: Path) -> None:
    rows = [[r[0], "张三" if i == 0 else r[1], *r[2:]] for i, r in enumerate(ROWS)]
    path = tmp_path / "gbk.csv"
    path.write_bytes(csv_bytes(HEADER, rows, "gbk"))
    with pytest.raises(UnicodeDecodeError):
        path.read_bytes().decode("utf-8")
    got = read_file(path, CAIZHENG)
    assert got.encoding == "gb18030"
    assert got.frame["name"].to_list() == ["张三", "王芳", "李娜"]
    assert "𠮷".encode("gb18030").decode("gb18030") == "𠮷"
    with pytest.raises(UnicodeEncodeError):
        "𠮷".encode("gbk")   # why GBK files are decoded as GB18030


def test_numbers_stay_text(tmp_path: Path) -> None:
    path = tmp_path / "fupin.csv"
    path.write_bytes(csv_bytes(
        ["户编号", "姓名", "证件号码", "与户主关系", "村代码", "贫困户属性", "脱贫状态", "人均纯收入"],
        [["0012", "张三", "110105194912310029", "户主", "620523100201", "一般贫困户", "未脱贫", "3000.50"]],
        "utf-8"))
    frame = read_file(path, FUPIN).frame
    assert frame["household_id"][0] == "0012"
    assert frame["id_number"][0] == "110105194912310029"
    assert frame["per_capita_income"][0] == "3000.50"


def test_undecodable_bytes_are_refused_in_chinese() -> None:
    with pytest.raises(ReadError, match="编码"):
        detect_encoding("身份证号\n".encode("utf-8") + b"\x80\xff\x80\xff\n")
    assert detect_encoding(b"\xef\xbb\xbfabc") == "utf-8-sig"
    assert detect_encoding("abc".encode()) == "utf-8"


@pytest.mark.parametrize("data,fragment", [
    (b"", "0字节"),
    ("身份证号,工作单位,入职日期\n1,2,3\n".encode(), "姓名"),
    ("身份证号,姓名,工作单位,身份证号\n1,2,3,4\n".encode(), "同一列"),
])
def test_broken_csv_raises_read_error(tmp_path: Path, data: bytes, fragment: str) -> None:
    path = tmp_path / "x.csv"
    path.write_bytes(data)
    with pytest.raises(ReadError, match=fragment):
        read_file(path, CAIZHENG)


def test_header_only_is_an_empty_snapshot_only_where_one_can_be_genuine(tmp_path: Path) -> None:
    """caizheng may have no payroll staff in the registry's county (may_be_empty): a header-only
    file reads as no rows, with the note; the registry never is empty: refused, saying why."""
    from povwatch.tasks.ingest.read import EMPTY_SNAPSHOT

    path = tmp_path / "x.csv"
    path.write_bytes("身份证号,姓名,工作单位,入职日期\n\n".encode())
    read = read_file(path, CAIZHENG)
    assert read.rows_read == 0 and read.notes == [EMPTY_SNAPSHOT]
    path.write_bytes("户编号,姓名,身份证号,与户主关系,村代码,贫困户属性,脱贫状态\n".encode())
    with pytest.raises(ReadError, match="没有数据行.*不可能为空"):
        read_file(path, load_contract("fupin"))


def test_ragged_csv_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "ragged.csv"
    path.write_bytes(csv_bytes(HEADER, [ROWS[0], ROWS[1][:2], ROWS[2]], "utf-8"))
    with pytest.raises(ReadError, match="第3行"):
        read_file(path, CAIZHENG)


# --- headers --------------------------------------------------------------------------------

def _caizheng_csv(tmp_path: Path, text: str) -> pl.DataFrame:
    """The rows read from a caizheng CSV of this text (UTF-8)."""
    path = tmp_path / "caizheng.csv"
    path.write_bytes(text.encode("utf-8"))
    return read_file(path, CAIZHENG).frame


def test_a_quoted_cell_with_line_breaks_keeps_later_row_numbers(tmp_path: Path) -> None:
    """The clerk's line numbers: a 工作单位 typed over two lines in Excel makes that row two
    lines long, and the rows after it are numbered where they really are."""
    text = ("身份证号,姓名,工作单位,入职日期\n"
            "11010519491231002X,张三,\"城关镇\n人民政府\",2010-01-15\n"
            "110105194912310029,王芳,县财政局,2011-02-03\n"
            "110105194912310037,李娜,\"县医院\r\n住院部\r\n三楼\",2012-03-04\n"
            "110105194912310045,赵六,县教育局,2013-04-05\n")
    frame = _caizheng_csv(tmp_path, text)
    assert frame["source_row"].to_list() == [2, 4, 5, 8]
    assert frame["name"].to_list() == ["张三", "王芳", "李娜", "赵六"]


def test_a_blank_line_inside_a_quoted_cell_is_no_skipped_line(tmp_path: Path) -> None:
    """A 工作单位 typed with an empty line in it (Alt+Enter twice) is one row over three lines;
    the parser skips only the empty lines between rows, so the rows after both kinds are
    numbered where they really are (the receipts name these lines to the department)."""
    text = ("身份证号,姓名,工作单位,入职日期\r\n"
            "11010519491231002X,张三,\"城关镇\r\n\r\n人民政府\",2010-01-15\r\n"
            "\r\n"
            "110105194912310029,王芳,\"县财政局\n\n\n二楼\n\",2011-02-03\r\n"
            "110105194912310037,李娜,\"\n县医院\",2012-03-04\r\n"
            "\r\n\r\n"
            "110105194912310045,赵六,县教育局,2013-04-05\r\n")
    frame = _caizheng_csv(tmp_path, text)
    assert frame["name"].to_list() == ["张三", "王芳", "李娜", "赵六"]
    assert frame["source_row"].to_list() == [2, 6, 11, 15]


def test_cr_line_ends_with_a_line_feed_inside_a_cell_are_read(tmp_path: Path) -> None:
    """A file whose lines end in CR (an old Mac export) with a line feed typed inside a cell: the
    header ends at the first CR, as the parser ends it. It was rejected as 无法读取（Error）:
    the header was taken up to the line feed and Python's csv refused it."""
    frame = _caizheng_csv(tmp_path, "身份证号,姓名,工作单位,入职日期\r11010519491231002X,张三,\"城关镇\n人民政府\","
                                    "2010-01-15\r110105194912310029,王芳,县财政局,2011-02-03\r")
    assert frame["name"].to_list() == ["张三", "王芳"]
    assert frame["employer"].to_list() == ["城关镇\n人民政府", "县财政局"]
    assert frame["source_row"].to_list() == [2, 4]
    # an empty line inside that cell and one between the rows: CR is the file's line end
    frame = _caizheng_csv(tmp_path, "身份证号,姓名,工作单位,入职日期\r11010519491231002X,张三,\"城关镇\n\n人民政府\","
                                    "2010-01-15\r\r110105194912310029,王芳,县财政局,2011-02-03\r")
    assert frame["employer"].to_list() == ["城关镇\n\n人民政府", "县财政局"]
    assert frame["source_row"].to_list() == [2, 6]


def test_headers_by_name_synonym_width_and_marks(tmp_path: Path) -> None:
    header = ["＊姓名 ", "「身份证号」", "与户主关系", "*户编号", "村代码", "贫困户属性", "脱贫状态", "备注"]
    row = ["张三", "110105194912310029", "户主", "H1", "620523100201", "一般贫困户", "未脱贫", "x"]
    path = tmp_path / "f.csv"
    path.write_bytes(csv_bytes(header, [row], "utf-8"))
    got = read_file(path, FUPIN)
    assert {"name", "id_number", "household_id"} <= set(got.frame.columns)
    assert got.extra_columns == ["备注"]
    assert got.headers["id_number"] == "「身份证号」"
    assert normalize_header(" 「 证件号码」* ") == "证件号码"
    assert normalize_header("ＡＢＣ") == "ABC"


def test_canlian_certificate_header_replaces_three_columns(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_bytes(csv_bytes(["残疾证号", "困难残疾人生活补贴", "重度残疾人护理补贴"],
                               [["11010519491231002X14", "是", "否"]], "utf-8"))
    got = read_file(path, CANLIAN)
    assert got.frame[CERTIFICATE][0] == "11010519491231002X14"


# --- Excel ----------------------------------------------------------------------------------

# The data cells of the test sheet, under the header: (row after the header, column, value).
# Strings are text cells, numbers number cells, datetimes date cells.
SHEET_CELLS = [
    (1, 0, "11010519491231002X"), (1, 1, "张三"), (1, 2, "县财政局"),
    (1, 3, dt.datetime(2020, 3, 5)),                                      # a date cell
    (2, 0, 110105194912310029),                                          # id as a number
    (2, 1, "王芳"), (2, 2, 3.0),                                          # integer-valued float
    (2, 3, 43831),                                                       # serial, no date format
    (3, 0, 110105491231002),                                             # 15 digits survive
    (3, 1, "李娜"), (3, 2, "县医院"),
    # a blank row in between is no row; the row after it keeps its sheet number
    (5, 0, "110105194912310037"), (5, 1, "赵敏"), (5, 2, "乡卫生院"),
]
SHEET_TITLE = "2020年财政供养人员名单（表{}）"


def _xlsx(path: Path, title_rows: int) -> None:
    wb = xlsxwriter.Workbook(str(path))
    ws = wb.add_worksheet()
    date_fmt = wb.add_format({"num_format": "yyyy-mm-dd"})
    for t in range(title_rows):
        ws.merge_range(t, 0, t, 3, SHEET_TITLE.format(t + 1))
    ws.write_row(title_rows, 0, HEADER)
    for r, c, value in SHEET_CELLS:
        if isinstance(value, str):
            ws.write_string(title_rows + r, c, value)
        elif isinstance(value, dt.datetime):
            ws.write_datetime(title_rows + r, c, value, date_fmt)
        else:
            ws.write_number(title_rows + r, c, value)
    wb.close()


def _xls(path: Path, title_rows: int) -> None:
    """The same sheet as Excel 97–2003 (.xls, BIFF8) — what older county systems export."""
    xlwt = pytest.importorskip("xlwt")
    wb = xlwt.Workbook(encoding="utf-8")
    ws = wb.add_sheet("名单")
    date_fmt = xlwt.easyxf(num_format_str="yyyy-mm-dd")
    for t in range(title_rows):
        ws.write_merge(t, t, 0, 3, SHEET_TITLE.format(t + 1))
    for c, text in enumerate(HEADER):
        ws.write(title_rows, c, text)
    for r, c, value in SHEET_CELLS:
        if isinstance(value, dt.datetime):
            ws.write(title_rows + r, c, value, date_fmt)
        else:
            ws.write(title_rows + r, c, value)
    wb.save(str(path))


@pytest.mark.parametrize("suffix, title_rows", [
    (".xlsx", 0), (".xlsx", 1), (".xlsx", 2), (".xls", 0), (".xls", 2)])
def test_excel_with_title_rows(tmp_path: Path, suffix: str, title_rows: int) -> None:
    path = tmp_path / f"c{suffix}"
    {".xlsx": _xlsx, ".xls": _xls}[suffix](path, title_rows)
    if suffix == ".xls":
        assert path.read_bytes()[:8] == bytes.fromhex("d0cf11e0a1b11ae1")   # an OLE2 .xls, not xlsx
    got = read_file(path, CAIZHENG)
    f = got.frame
    assert got.title_rows == title_rows
    first = title_rows + 2                      # Excel rows: title rows, header, then data
    assert f["source_row"].to_list() == [first, first + 1, first + 2, first + 4]
    assert f["id_number"].to_list() == ["11010519491231002X", "1.10105E+17", "110105491231002",
                                        "110105194912310037"]
    assert f["hired_on"].to_list()[:2] == ["2020-03-05", "43831"]
    assert f["employer"][1] == "3"
    assert f["name"].to_list() == ["张三", "王芳", "李娜", "赵敏"]


def test_xlsx_without_header_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.xlsx"
    wb = xlsxwriter.Workbook(str(path))
    wb.add_worksheet().write_row(0, 0, ["甲", "乙"])
    wb.close()
    with pytest.raises(ReadError, match="表头"):
        read_file(path, CAIZHENG)


def test_corrupt_xlsx_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.xlsx"
    _xlsx(path, 0)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(ReadError, match="Excel"):
        read_file(path, CAIZHENG)


# --- Parquet --------------------------------------------------------------------------------

def test_parquet_typed_columns_become_text(tmp_path: Path) -> None:
    table = pa.table({
        "身份证号": ["11010519491231002X", "110105194912310029"],
        "姓名": ["张三", "王芳"],
        "工作单位": ["县财政局", "县医院"],
        "入职日期": pa.array([dt.date(2020, 3, 5), None], type=pa.date32()),
        "人数": pa.array([3.0, 2.5]),
    })
    buf = io.BytesIO()
    pq.write_table(table, buf)
    path = tmp_path / "c.parquet"
    path.write_bytes(buf.getvalue())
    got = read_file(path, CAIZHENG)
    assert got.frame["hired_on"].to_list() == ["2020-03-05", None]
    assert got.frame["人数"].to_list() == ["3", "2.5"]
    assert got.frame["source_row"].to_list() == [1, 2]
    assert got.extra_columns == ["人数"]


def test_data_on_a_later_sheet_after_a_cover_sheet(tmp_path: Path) -> None:
    path = tmp_path / "two_sheets.xlsx"
    wb = xlsxwriter.Workbook(str(path))
    cover = wb.add_worksheet("说明")
    cover.write(0, 0, "本表由县财政局填报")
    data = wb.add_worksheet("名单")
    data.write_row(0, 0, ["标题"])
    data.write_row(1, 0, HEADER)
    data.write_number(2, 0, 110105194912310029)
    data.write_row(2, 1, ["王芳", "县医院", "2011-02-03"])
    wb.close()
    got = read_file(path, CAIZHENG)
    assert got.frame["id_number"].to_list() == ["1.10105E+17"]      # numeric cell found on sheet 2
    assert got.frame["source_row"].to_list() == [3]


def test_unsupported_file_type_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "名单.docx"
    path.write_bytes(b"PK\x03\x04 not a spreadsheet")
    with pytest.raises(ReadError, match="不支持的文件类型"):
        read_file(path, CAIZHENG)


# --- row numbers, against Python's csv module ----------------------------------------------

_CELL_TEXT = st.lists(st.sampled_from(["县", "财", "a", " ", "\n", "\r\n", "\r", '"', ","]),
                      max_size=8).map("".join)


def _csv_line(cells: list[str], line_end: str) -> str:
    """A record as Excel writes it: a cell quoted when it holds a comma, a quote or a line end."""
    quoted = ['"' + c.replace('"', '""') + '"' if any(ch in c for ch in ',"\r\n') else c for c in cells]
    return ",".join(quoted) + line_end


@settings(max_examples=150, deadline=None)
@given(rows=st.lists(st.tuples(_CELL_TEXT, st.integers(0, 2)), min_size=1, max_size=12),
       line_end=st.sampled_from(["\n", "\r\n"]))
def test_row_numbers_are_the_lines_the_rows_start_on(tmp_path_factory, rows, line_end) -> None:
    """Whatever a 工作单位 cell holds (line breaks, empty lines, quotes, commas) and however many
    empty lines stand between rows, each row's number is the line it starts on (the receipts name
    these lines to the department). Lines end at LF (CRLF included); a lone CR inside a cell is no
    line end, as in Excel. The reference: Python's csv module fed those lines."""
    path = tmp_path_factory.mktemp("rows") / "caizheng.csv"
    text = _csv_line(["身份证号", "姓名", "工作单位", "入职日期"], line_end)
    for i, (work_place, blank_lines_after) in enumerate(rows):
        text += _csv_line([f"11010519491231{i:04d}", f"人{i}", f"单位{work_place}", "2010-01-15"], line_end)
        text += line_end * blank_lines_after
    path.write_bytes(text.encode("utf-8"))

    lines = [piece + "\n" for piece in text.split("\n")[:-1]]
    expected, reader, last_line = [], csv.reader(lines), 0
    for record in reader:
        if record and reader.line_num > 1:   # an empty line is an empty record: skipped
            expected.append((last_line + 1, record[1]))
        last_line = reader.line_num
    frame = read_file(path, CAIZHENG).frame
    assert list(zip(frame["source_row"].to_list(), frame["name"].to_list())) == expected


_PIECES = ["县", "a", "1", " ", "\n", "\r\n", "\r", '"', ",", "\t", "\ufeff", "；", "\u3000", "\x00"]
_CELL = st.lists(st.sampled_from(_PIECES), max_size=4).map("".join)


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(st.lists(st.tuples(_CELL, st.booleans()), min_size=2, max_size=6), max_size=6),
       line_end=st.sampled_from(["\n", "\r\n", "\r"]), encoding=st.sampled_from(["utf-8", "utf-8-sig", "gb18030"]),
       cut=st.one_of(st.none(), st.integers(0, 400)))
def test_any_csv_is_read_or_refused_with_a_reason(tmp_path_factory, rows, line_end, encoding, cut) -> None:
    """Ragged rows, stray quotes, any line ends, a byte order mark in a cell, a file cut short:
    a CSV is read or refused with a ReadError (the receipt's reason), never another exception
    (which rejects the file only as 无法读取 with an exception's name)."""
    lines = ["身份证号,姓名,工作单位,入职日期"]
    for cells in rows:
        lines.append(",".join('"' + c.replace('"', '""') + '"' if quoted else c for c, quoted in cells))
    data = (line_end.join(lines) + line_end).encode(encoding)
    path = tmp_path_factory.mktemp("any") / "caizheng.csv"
    path.write_bytes(data if cut is None else data[:cut])
    try:
        read = read_file(path, CAIZHENG)
    except ReadError:
        return
    numbers = read.frame["source_row"].to_list()
    assert numbers == sorted(set(numbers)) and all(n >= 2 for n in numbers)   # lines, in order
