"""The ``povwatch`` command line (docs/outputs.md, docs/operations.md).

Each command is a thin shell over a function in ``flows`` or ``tasks``; imports are lazy so that
``povwatch sql`` does not pay for Prefect and Great Expectations.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from povwatch.tasks.core.runtime import no_cycle_collection_at_exit
from povwatch.tasks.core.settings import warehouse_path

WAREHOUSE_OPTION = click.option(
    "--warehouse", type=click.Path(dir_okay=False), default=None,
    help="DuckDB file (default: $POVWATCH_WAREHOUSE, else ./var/povwatch.duckdb).",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """povwatch — 防返贫动态监测：部门数据入仓、校验、监测与问题台账。"""
    # Everything povwatch writes holds or derives from personal data (warehouse, receipts, GX
    # Data Docs and validation results, reports): owner-only, whichever library writes it.
    os.umask(0o077)
    no_cycle_collection_at_exit()


@main.command()
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True)
@click.option("--period", required=True, help="First period, YYYY-MM.")
@click.option("--periods", default=1, show_default=True, type=int)
@click.option("--households", default=600, show_default=True, type=int,
              help="Registry households per county.")
@click.option("--seed", default=20201, show_default=True, type=int)
@click.option("--defects", default=0.02, show_default=True, type=float,
              help="Share of rows damaged the way Excel and hand entry damage them.")
@click.option("--counties", default=1, show_default=True, type=int)
def generate(out_dir, period, periods, households, seed, defects, counties) -> None:
    """Write a synthetic county's extracts, with realistic defects, and truth/."""
    from povwatch.tasks.synth.generate import generate as run_generate

    summary = run_generate(Path(out_dir), period=period, periods=periods, households=households,
                           seed=seed, defects=defects, counties=counties)
    click.echo(summary)


def _strict_period(ctx, param, value):
    """--period as YYYY-MM with a month 01-12, refused before anything runs (no `2020-6`, `latest`)."""
    from povwatch.tasks.ingest.inbox import BadName, check_period

    try:
        return None if value is None else check_period(value)
    except BadName as exc:
        raise click.BadParameter(str(exc)) from exc


@main.command()
@click.option("--inbox", type=click.Path(exists=True, file_okay=False), required=True)
@click.option("--period", default=None, callback=_strict_period,
              help="One period, YYYY-MM; default: every period with new files or left unfinished.")
@WAREHOUSE_OPTION
def run(inbox, period, warehouse) -> None:
    """Run the monthly pipeline over an inbox. Exit 0 all accepted, 3 rejections, 1 failure."""
    from povwatch.flows.run_command import run_inbox

    sys.exit(run_inbox(Path(inbox), period=period, warehouse=warehouse_path(warehouse)))


@main.command()
@WAREHOUSE_OPTION
@click.option("--households", default=600, show_default=True, type=int)
@click.option("--periods", default=3, show_default=True, type=int)
def demo(warehouse, households, periods) -> None:
    """Generate a demo county and run the whole pipeline over it, with no configuration."""
    from povwatch.flows.demo import run_demo

    sys.exit(run_demo(warehouse_path(warehouse), households=households, periods=periods))


@main.command()
@WAREHOUSE_OPTION
@click.option("--inbox", type=click.Path(file_okay=False), default=None)
def serve(warehouse, inbox) -> None:
    """Register the scheduled deployments with a Prefect server and run them."""
    from povwatch.flows.deployments import serve as serve_deployments

    serve_deployments(warehouse=warehouse_path(warehouse), inbox=inbox)


@main.command()
@click.argument("query")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table")
@WAREHOUSE_OPTION
def sql(query, fmt, warehouse) -> None:
    """A read-only query against the warehouse."""
    from povwatch.flows.office_commands import run_cli_query

    sys.exit(run_cli_query(query, fmt=fmt, warehouse=warehouse_path(warehouse)))


@main.command()
@click.option("--kind", type=click.Choice(["monitoring", "ledger", "spot-check", "township", "all"]),
              default="all", show_default=True)
@click.option("--period", default=None)
@click.option("--township", default=None, help="with --kind township: only this township (9-digit code)")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None)
@WAREHOUSE_OPTION
def export(kind, period, township, out_dir, warehouse) -> None:
    """Excel workbooks for the office (identity numbers masked); --kind township: one folder per
    township with its verification workbook (核实反馈表), monitored households and summary page."""
    from povwatch.flows.office_commands import export_cli

    if kind == "township":
        from povwatch.flows.office_commands import township_export_cli

        sys.exit(township_export_cli(period=period, township=township, out_dir=out_dir,
                                     warehouse=warehouse_path(warehouse)))
    sys.exit(export_cli(kind=kind, period=period, out_dir=out_dir,
                        warehouse=warehouse_path(warehouse)))


@main.command()
@click.option("--period", default=None)
@WAREHOUSE_OPTION
def report(period, warehouse) -> None:
    """A self-contained HTML report for a period."""
    from povwatch.flows.office_commands import report_cli

    sys.exit(report_cli(period=period, warehouse=warehouse_path(warehouse)))


@main.command()
@click.option("--kind", type=click.Choice(["weekly", "dekad"]), default="weekly")
@click.option("--since", default=None,
              help="YYYY-MM-DD, inclusive (default: start of the last complete week / dekad).")
@click.option("--until", default=None,
              help="YYYY-MM-DD, inclusive (default: end of the last complete week / dekad).")
@WAREHOUSE_OPTION
def bulletin(kind, since, until, warehouse) -> None:
    """周调度 (weekly) or 旬通报 (dekad): what opened, closed, became overdue."""
    from povwatch.flows.office_commands import bulletin_cli

    sys.exit(bulletin_cli(kind=kind, since=since, until=until,
                          warehouse=warehouse_path(warehouse)))


@main.command()
@WAREHOUSE_OPTION
def status(warehouse) -> None:
    """Recent runs, extracts accepted / rejected, open alerts."""
    from povwatch.flows.office_commands import status_cli

    sys.exit(status_cli(warehouse=warehouse_path(warehouse)))


@main.command()
@click.argument("key")
@click.argument("name", required=False)
@click.option("--period", default=None, help="YYYY-MM: the file up to this period (default: all).")
@click.option("--html", is_flag=True, help="also write one offline HTML page with an income chart.")
@click.option("--unmasked", is_flag=True,
              help="show identity numbers in full (the office's own account, as povwatch sql).")
@WAREHOUSE_OPTION
def household(key, name, period, html, unmasked, warehouse) -> None:
    """一户一档: one household across periods. KEY: household_key / 户编号, an identity number, or a
    masked identity number followed by NAME."""
    from povwatch.flows.office_commands import household_cli

    sys.exit(household_cli(key, name, period, html, unmasked, warehouse=warehouse_path(warehouse),
                           echo=click.echo))


@main.command()
@click.argument("folder", type=click.Path(file_okay=False))
def init(folder) -> None:
    """Create a county folder from the shipped defaults (contracts, suites, policy, divisions,
    alert settings); use it with POVWATCH_COUNTY=FOLDER. Files already there are kept."""
    from povwatch.tasks.core.county import init_county

    written, kept = init_county(folder)
    where = Path(folder).expanduser().resolve()
    click.echo(f"县级配置目录 county folder {where}: {len(written)} 个文件已写入 written, "
               f"{len(kept)} 个已存在保留 kept")
    click.echo(f"使用 use it:  export POVWATCH_COUNTY={where}")


@main.command()
@click.option("--from", "from_period", default=None, help="first period to rebuild, YYYY-MM (default: all)")
@WAREHOUSE_OPTION
def rebuild(from_period, warehouse) -> None:
    """Rebuild the marts and reports from what the warehouse holds, with the current policy files
    and models (after a policy or rule change, or a failed marts step)."""
    from povwatch.flows.rebuild import rebuild_cli

    sys.exit(rebuild_cli(warehouse_path(warehouse), from_period))


@main.command(name="compat-copy")
@click.argument("out", type=click.Path(dir_okay=False))
@click.option("--storage-version", default="v1.0.0", show_default=True,
              help="the oldest DuckDB that must open the copy")
@WAREHOUSE_OPTION
def compat_copy(out, storage_version, warehouse) -> None:
    """Copy the warehouse into a file DuckDB 1.x clients (BI tools) can open read-only."""
    from povwatch.flows.office_commands import compat_copy_cli

    sys.exit(compat_copy_cli(warehouse_path(warehouse), Path(out), storage_version))


if __name__ == "__main__":
    main()
