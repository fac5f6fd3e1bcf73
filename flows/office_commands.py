"""The command handlers of the office's commands: call the task, print what the user reads, return
the exit code. The work itself is in tasks/office; flows/cli.py maps the options onto these."""
from __future__ import annotations

import re
import sys
from datetime import date
from pathlib import Path

import click
import duckdb

from povwatch.tasks.core.lake import lake_root
from povwatch.tasks.core.locking import WarehouseBusy
from povwatch.tasks.core.privacy import mask_key
from povwatch.tasks.core.settings import output_dir
from povwatch.tasks.office.bulletin import KIND_TITLES, range_title, resolve_range, write_bulletin
from povwatch.tasks.office.compat_copy import storage_version_number, write_compat_copy
from povwatch.tasks.office.export import KINDS, write_exports
from povwatch.tasks.office.household import (KeyProblem, household_file, render_html, render_text,
                                             resolve_key)
from povwatch.tasks.office.outputs import WarehouseUnavailable, reading, write_private
from povwatch.tasks.office.report import write_report
from povwatch.tasks.office.sql_query import REFUSALS, QueryRefused, format_result, run_query
from povwatch.tasks.office.status import status_text
from povwatch.tasks.office.township import write_township_exports


def fail(err: WarehouseUnavailable) -> int:
    """Print a WarehouseUnavailable for the command line and return its exit code."""
    click.echo(f"错误：{err.zh}\nError: {err.en}", err=True)
    return 2


def household_cli(key: str, name: str | None, period: str | None, html: bool, unmasked: bool,
                  warehouse: Path, echo=print) -> int:
    try:
        with reading(Path(warehouse)) as con:
            household_key = resolve_key(con, key, name)
            hf = household_file(con, household_key, period, unmasked=unmasked)
    except WarehouseUnavailable as err:
        return fail(err)
    except KeyProblem as err:
        echo(f"错误：{err.zh}\nError: {err.en}")
        return 1
    echo(render_text(hf))
    if html:
        folder = output_dir(Path(warehouse)) / "households"
        stem = re.sub(r"[^0-9A-Za-z_-]+", "_", mask_key(hf.household_key).replace("*", "x"))
        path = write_private(folder / f"household-{stem}.html", render_html(hf))
        echo(f"一户一档页面 / page written: {path}")
    return 0


def report_cli(period: str | None, warehouse: Path) -> int:
    try:
        path = write_report(Path(warehouse), period)
    except WarehouseUnavailable as err:
        return fail(err)
    print(f"报告已生成 / report written: {path}")
    print(f"最新版本 / latest: {path.parent / 'latest.html'}")
    return 0


def _parse_day(text: str | None, what: str) -> date | None:
    """--since / --until: a date as YYYY-MM-DD, or None when the option was not given."""
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise WarehouseUnavailable(f"{what}应为 YYYY-MM-DD：{text}",
                                   f"--{what} must be YYYY-MM-DD: {text}") from None

def bulletin_cli(kind: str, since: str | None, until: str | None, warehouse: Path) -> int:
    try:
        start, end = resolve_range(kind, _parse_day(since, "since"), _parse_day(until, "until"))
        path = write_bulletin(Path(warehouse), kind, start, end)
    except WarehouseUnavailable as err:
        return fail(err)
    print(f"{KIND_TITLES[kind]}（{range_title(kind, start, end)}）已生成 / written: {path}")
    print(f"文本版 / markdown: {path.with_suffix('.md')}")
    return 0


def township_export_cli(period: str | None, township: str | None, out_dir: str | None,
                        warehouse: Path) -> int:
    try:
        folders = write_township_exports(Path(warehouse), period, township,
                                         Path(out_dir) if out_dir else None)
    except WarehouseUnavailable as err:
        return fail(err)
    for folder in folders:
        print(f"已导出 / written: {folder}")
    return 0


def export_cli(kind: str, period: str | None, out_dir: str | None, warehouse: Path) -> int:
    kinds = KINDS if kind == "all" else (kind,)
    try:
        paths = write_exports(Path(warehouse), period, Path(out_dir) if out_dir else None, kinds)
    except WarehouseUnavailable as err:
        return fail(err)
    for path in paths:
        print(f"已导出 / written: {path}")
    return 0


def compat_copy_cli(warehouse: Path, out: Path, storage_version: str) -> int:
    try:
        path = write_compat_copy(warehouse, out, storage_version)
    except WarehouseUnavailable as err:
        return fail(err)
    except (duckdb.Error, ValueError) as exc:
        print(f"无法写出兼容副本 / could not write the copy: {exc}", file=sys.stderr)
        return 1
    print(f"兼容副本 copy for DuckDB {storage_version}+ (storage {storage_version_number(path)}): {path}\n"
          f"只读打开 open it read-only; raw.<dept> needs: SET file_search_path = "
          f"'{lake_root(Path(warehouse).resolve())}'")
    return 0


def status_cli(warehouse: Path) -> int:
    try:
        print(status_text(Path(warehouse)))
    except (WarehouseBusy, FileNotFoundError) as exc:
        print(exc)
        return 1
    except (duckdb.BinderException, duckdb.CatalogException) as exc:
        # status only reads; a warehouse written by an earlier povwatch gains this version's audit
        # columns at its next read-write open (ddl.sql), not here
        print(f"数据仓库由较早版本写入，尚未升级：请先运行一次 povwatch run 或 povwatch rebuild。\n"
              f"The warehouse was written by an earlier povwatch and is not upgraded yet: run "
              f"`povwatch run` or `povwatch rebuild` once. ({str(exc).splitlines()[0]})", file=sys.stderr)
        return 1
    return 0


def run_cli_query(query: str, fmt: str, warehouse: Path) -> int:
    try:
        result = run_query(Path(warehouse), query)
    except WarehouseUnavailable as err:
        return fail(err)
    except QueryRefused as err:
        zh, en = REFUSALS[err.kind]
        print(f"错误：{zh}\nError: {en}\n({err})", file=sys.stderr)
        return 2
    except duckdb.Error as exc:
        print(f"查询出错 / query failed: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(format_result(result, fmt))
    return 0
