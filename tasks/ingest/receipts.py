"""Receipts: what the office sends back to a department about its extract of a period.

One .xlsx per (period, dept), in Chinese: every quarantined or refused row with its file, row as
the clerk sees it, column and reason, and the row's content with identity numbers masked
(first 6 and last 4 kept) and health / disability details left out (docs/contract.md, Privacy). A
second sheet sums up each file: rows read, loaded, quarantined, and why a file was refused.
"""
from __future__ import annotations

from pathlib import Path

import polars as pl

from povwatch.tasks.ingest.contracts import Contract, load_contract
from povwatch.tasks.core.db import connect
from povwatch.tasks.core.privacy import mask_id_expr, mask_plate_expr, scrub_frame, scrub_series
from povwatch.tasks.core.workbooks import private_workbook
from povwatch.tasks.ingest.load import REJECTED_PREFIX
from povwatch.tasks.ingest.read import CERTIFICATE, header_map, normalize_header

DETAIL_HEADERS = ["文件", "行号", "列", "原因", "原始内容"]
SUMMARY_HEADERS = ["文件", "状态", "读取行数", "入库行数", "隔离行数", "说明"]
STATUS_LABELS = {"staged": "待校验", "accepted": "已入库", "rejected": "整批退回", "unchanged": "未变化"}
HIDDEN = "（已隐去）"

# Columns whose values never leave the warehouse next to a name (health, disability, and the
# causes of poverty that reveal them): the contract marks them ``sensitive``; the 残疾证号 too.
SENSITIVE_COLUMNS = {CERTIFICATE}


def receipt_path(out_dir: Path, period: str, dept: str) -> Path:
    return Path(out_dir) / f"回执_{period}_{dept}.xlsx"


def write_receipt(warehouse: Path, period: str, dept: str, out_dir: Path) -> Path | None:
    """Write the department's receipt for a period; None when there is nothing to report."""
    contract = load_contract(dept)
    # Reads only, no write lock: a receipt is written beside the marts, which hold the lock for
    # their whole build; DuckDB gives these reads the committed state (the department's decision).
    con = connect(warehouse)
    try:
        if not _has_tables(con):
            return None
        rows = con.sql(
            # Rows sharing a duplicate key (重复键) are listed together, key by key, after
            # the others: the department sees the rows it must choose between side by side.
            # Rows held only because the whole extract was refused are not listed one by one.
            "SELECT file, row_number, reasons, row_data FROM quarantine.rows "
            f"WHERE period = ? AND dept = ? AND NOT {_ONLY_REFUSED} ORDER BY "
            "list_filter(reasons, lambda r: starts_with(r, '重复键'))[1] NULLS FIRST, file, row_number",
            params=[period, dept],
        ).to_arrow_table()
        refused_rows = con.sql(
            # a refused extract's other rows: once per file and reason, with their row range
            "SELECT file, reasons[1] AS reason, count(*) AS n, min(row_number) AS first_row, "
            "max(row_number) AS last_row FROM quarantine.rows "
            f"WHERE period = ? AND dept = ? AND {_ONLY_REFUSED} GROUP BY ALL ORDER BY file",
            params=[period, dept],
        ).to_arrow_table()
        summary = con.sql(
            """
            WITH latest AS (
                SELECT run_id FROM audit.extracts
                WHERE period = ? AND dept = ? AND status <> 'unchanged'
                ORDER BY recorded_at DESC LIMIT 1)
            SELECT file, status, rows_read, rows_loaded, rows_quarantined, message
            FROM audit.extracts
            WHERE period = ? AND dept = ? AND run_id = (SELECT run_id FROM latest)
            ORDER BY file
            """,
            params=[period, dept, period, dept],
        ).to_arrow_table()
    finally:
        con.close()
    rows, summary, refused_rows = pl.from_arrow(rows), pl.from_arrow(summary), pl.from_arrow(refused_rows)
    # Files with no rows read: refused (unreadable, of an unknown type), or not read at all (an
    # Office lock file, a system file: tasks.ingest.inbox names them 未读取) — each named with why.
    refused_files = summary.filter((pl.col("rows_read") == 0) & (
        (pl.col("status") == "rejected") | pl.col("message").fill_null("").str.starts_with("未读取")))
    # a file with a note (an empty snapshot accepted, a sheet not read) is worth a receipt too
    noted = summary.filter(pl.col("message").is_not_null())
    if rows.height == 0 and refused_files.height == 0 and noted.height == 0 and refused_rows.height == 0:
        return None
    detail = pl.concat([
        _detail_rows(rows, contract, period),
        refused_rows.select(
            _short_file(pl.col("file"), period, dept).alias("文件"),
            pl.lit(None, dtype=pl.Int64).alias("行号"),
            pl.lit("").alias("列"),
            pl.format("{}（第{}–{}行，共{}行，均未入库）", pl.col("reason"), pl.col("first_row"),
                      pl.col("last_row"), pl.col("n")).alias("原因"),
            pl.lit("").alias("原始内容"),
        ),
        refused_files.select(
            _short_file(pl.col("file"), period, dept).alias("文件"),
            pl.lit(None, dtype=pl.Int64).alias("行号"),
            pl.lit("").alias("列"),
            pl.col("message").fill_null("文件无法读取").alias("原因"),
            pl.lit("").alias("原始内容"),
        ),
    ], how="vertical_relaxed")
    summary_out = summary.select(
        _short_file(pl.col("file"), period, dept).alias("文件"),
        pl.col("status").replace_strict(STATUS_LABELS, default=pl.col("status")).alias("状态"),
        pl.col("rows_read").alias("读取行数"),
        pl.col("rows_loaded").alias("入库行数"),
        pl.col("rows_quarantined").alias("隔离行数"),
        pl.col("message").fill_null("").alias("说明"),
    )
    path = receipt_path(out_dir, period, dept)
    # Everything written passes the masking rule: file names, headers and messages can hold a
    # number too, not only the rows' content.
    _write_xlsx(path, contract, period, scrub_frame(detail), scrub_frame(summary_out))
    return path


# A row whose every reason is the refusal of its whole extract (tasks.ingest.load.REJECTED_PREFIX):
# the department learns why once per file, not once per row of a file it must send again anyway.
_ONLY_REFUSED = ("coalesce(list_bool_and(list_transform(reasons, "
                 f"lambda r: starts_with(r, '{REJECTED_PREFIX}'))), false)")


def _has_tables(con) -> bool:
    found = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE (table_schema, table_name) IN "
        "(('quarantine', 'rows'), ('audit', 'extracts'))").fetchall()[0][0]
    return found == 2


def _short_file(file: pl.Expr, period: str, dept: str) -> pl.Expr:
    """The file as the department knows it: its path inside <period>/<dept>/."""
    return file.str.strip_prefix(f"{period}/{dept}/")


def _detail_rows(rows: pl.DataFrame, contract: Contract, period: str) -> pl.DataFrame:
    """One line per reason: 文件, 行号, 列, 原因, 原始内容 (masked)."""
    schema = {"文件": pl.Utf8, "行号": pl.Int64, "列": pl.Utf8, "原因": pl.Utf8, "原始内容": pl.Utf8}
    if rows.height == 0:
        return pl.DataFrame(schema=schema)
    labels = {c.header for c in contract.columns}
    if contract.certificate:
        labels.add(contract.certificate["header"])
    content = row_content(rows["row_data"], contract)
    frame = rows.with_columns(content.alias("原始内容")).explode("reasons")
    prefix = pl.col("reasons").str.extract(r"^([^：]+)：", 1)
    is_column = prefix.is_in(sorted(labels)).fill_null(False)
    return frame.select(
        _short_file(pl.col("file"), period, contract.code).alias("文件"),
        pl.col("row_number").cast(pl.Int64).alias("行号"),
        pl.when(is_column).then(prefix).otherwise(pl.lit("")).alias("列"),
        pl.when(is_column).then(pl.col("reasons").str.replace(r"^[^：]+：", ""))
        .otherwise(pl.col("reasons")).fill_null("").alias("原因"),
        pl.col("原始内容"),
    )


def row_content(row_data: pl.Series, contract: Contract) -> pl.Series:
    """Each row_data JSON as "表头：值，表头：值", identity numbers masked, sensitive values hidden."""
    text = row_data.fill_null("{}")
    if len(text) == 0:
        return pl.Series("原始内容", [], dtype=pl.Utf8)
    # Full inference: files of one extract have different headers, the struct is their union.
    decoded = text.str.json_decode(infer_schema_length=None)
    if not isinstance(decoded.dtype, pl.Struct) or not decoded.dtype.fields:
        return pl.Series("原始内容", [""] * len(text), dtype=pl.Utf8)
    decoded = decoded.struct.unnest()
    keys = decoded.columns
    mapping = header_map(contract)
    id_cols = {c.name for c in contract.columns if c.type == "id"} | {CERTIFICATE}
    hidden = SENSITIVE_COLUMNS | {c.name for c in contract.columns if c.sensitive}
    masked_text = {c.name for c in contract.columns if c.mask}
    parts = []
    for k in keys:
        canonical = mapping.get(normalize_header(k))
        value = pl.col(k).cast(pl.Utf8)
        if canonical in hidden:
            shown = pl.when(value.is_not_null()).then(pl.lit(HIDDEN))
        elif canonical in id_cols:
            shown = mask_id_expr(value)
        elif canonical in masked_text:
            shown = mask_plate_expr(value)
        else:
            shown = value   # free text: scrubbed below, with the whole line
        parts.append(pl.when(shown.is_not_null()).then(pl.lit(f"{k}：") + shown))
    # One scrub of the joined line instead of one per column (each scrub_expr costs ~10 ms of
    # fixed polars work whatever the rows: 20-40 columns made most of a receipt's CPU). The same
    # text comes out: "：" and "，" are neither digits nor separators, so no number runs across
    # two cells, and headers holding a number were scrubbed with the whole cell anyway.
    joined = decoded.select(pl.concat_str(parts, separator="，", ignore_nulls=True).alias("原始内容"))
    return scrub_series(joined["原始内容"])


def _write_xlsx(path: Path, contract: Contract, period: str, detail: pl.DataFrame,
                summary: pl.DataFrame) -> None:
    with private_workbook(path) as wb:   # text as text; owner-only, like the exports
        bold = wb.add_format({"bold": True, "bg_color": "#DDEBF7", "border": 1})
        wrap = wb.add_format({"text_wrap": True, "valign": "top"})
        ws = wb.add_worksheet("问题明细")
        ws.write_row(0, 0, DETAIL_HEADERS, bold)
        for r, row in enumerate(detail.iter_rows(), start=1):
            for c, value in enumerate(row):
                if value is None:
                    continue
                ws.write(r, c, value, wrap if c == 4 else None)
        ws.set_column(0, 0, 28)
        ws.set_column(1, 1, 8)
        ws.set_column(2, 2, 16)
        ws.set_column(3, 3, 44)
        ws.set_column(4, 4, 80)
        ws.freeze_panes(1, 0)
        ws.autofilter(0, 0, max(detail.height, 1), len(DETAIL_HEADERS) - 1)
        ss = wb.add_worksheet("汇总")
        ss.write_row(0, 0, SUMMARY_HEADERS, bold)
        for r, row in enumerate(summary.iter_rows(), start=1):
            ss.write_row(r, 0, ["" if v is None else v for v in row])
        ss.set_column(0, 0, 28)
        ss.set_column(1, 4, 10)
        ss.set_column(5, 5, 80)
        wb.set_properties({"title": f"{contract.name} {period} 数据回执",
                           "comments": "请按“问题明细”逐行核改后重新报送（身份证号已脱敏）"})
