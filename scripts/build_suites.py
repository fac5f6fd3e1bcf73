"""Generate expectations/<dept>.json, one Great Expectations suite per department, from the contracts.

Run once (or with --dept to regenerate one suite) and commit the JSON: the JSON is the source of
truth that engineers then read, diff and edit; this script is only the starting point. It will not
overwrite an existing suite unless --force is given.

    .venv/bin/python scripts/build_suites.py [--dept minzheng] [--force]

Every expectation carries ``meta`` (see docs/validation.md):

* ``name``      stable key, unique in the suite; the quarantine reason and audit.validations use it
* ``severity``  ``blocking`` (failure rejects the extract) or ``warning`` (recorded, never rejects)
* ``row_level`` the expectation names failing rows (a column map, a column pair or custom SQL)
* ``quarantine`` failing rows move from pending to quarantine.rows (row-level warnings)
* ``reject_above_share`` a quarantining expectation that fails on more than this share of the
  extract's rows is escalated to blocking: a systematically broken file is rejected, not
  quietly emptied
* ``columns``   the columns a failing row is shown by in samples (identity numbers masked)

The GX ``severity`` field mirrors it (blocking -> critical, warning -> warning) so that GX's own
renderers and Data Docs agree.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from povwatch.tasks.ingest.contracts import LINEAGE_COLUMNS, Contract, all_contracts  # noqa: E402
from povwatch.tasks.core.privacy import mask_id_sql  # noqa: E402
from povwatch.tasks.ingest.idnumber import CHECK_CHARS, WEIGHTS  # noqa: E402
from povwatch.tasks.core.settings import EXPECTATIONS_DIR  # noqa: E402

ID_REGEX = "^[0-9]{17}[0-9X]$"
REJECT_ABOVE_SHARE = 0.2    # more than a fifth of the rows failing one check: the file is broken
VOLUME_MAX_CHANGE = 0.5     # row count moving more than this share vs the previous period: warning

# Cross-field rules the contracts do not state as column properties (SQL on the batch, DuckDB).
CROSS_FIELD: dict[str, list[dict]] = {
    "minzheng": [
        {
            "kind": "pair_a_ge_b", "name": "end_month_not_before_start",
            "column_A": "end_month", "column_B": "start_month",
            "description": "终止年月：早于起始年月",
            "severity": "warning", "quarantine": True,
        },
    ],
    "yibao": [
        {
            "kind": "pair_a_ge_b", "name": "reimbursed_within_total",
            "column_A": "inpatient_total", "column_B": "reimbursed",
            "description": "报销金额：超过住院费用总额",
            # Reported, not quarantined: the person's enrolment row is still right.
            "severity": "warning", "quarantine": False,
        },
    ],
}


def _meta(name: str, severity: str, row_level: bool, columns: list[str], quarantine: bool | None = None,
          **extra) -> dict:
    if quarantine is None:
        quarantine = row_level and severity == "warning"
    meta = {"name": name, "severity": severity, "row_level": row_level, "quarantine": quarantine}
    if quarantine:
        meta["reject_above_share"] = REJECT_ABOVE_SHARE
    if columns:
        meta["columns"] = columns
    meta.update(extra)
    return meta


def _expectation(type_: str, kwargs: dict, description: str, meta: dict) -> dict:
    return {
        "type": type_,
        "kwargs": kwargs,
        "description": description,
        "severity": "critical" if meta["severity"] == "blocking" else "warning",
        "meta": meta,
    }


def id_check_sql(column: str) -> str:
    """Custom SQL (DuckDB) returning rows whose well-formed identity number fails MOD 11-2 or has
    an impossible birth date. Selects only lineage and the masked number: GX keeps what it returns.
    No braces besides {batch}: GX treats ``{...}`` in the query as placeholders.

    The 17 digits are read from one BIGINT of the first 17 characters, cast once per row in a
    subquery (only well-formed numbers reach it: ASCII digits): 17 one-character casts cost twice
    the CPU, over every row, and GX runs this query twice per extract (count and rows)."""
    digits = " + ".join(
        f"{w}*((_first17 // {10 ** (16 - i)}) % 10)" for i, w in enumerate(WEIGHTS)
    )
    masked = mask_id_sql(column)
    return (
        f"SELECT period, source_file, source_row, {masked} AS {column}_masked FROM ("
        f"SELECT *, TRY_CAST(substr({column}, 1, 17) AS BIGINT) AS _first17 FROM {{batch}} "
        f"WHERE length({column}) = 18 AND regexp_full_match({column}, '[0-9]+X?')) "
        f"WHERE substr('{CHECK_CHARS}', CAST(({digits}) % 11 AS INTEGER) + 1, 1) <> substr({column}, 18, 1) "
        f"OR try_strptime(substr({column}, 7, 8), '%Y%m%d') IS NULL"
    )


def build_suite(contract: Contract) -> dict:
    exps: list[dict] = []
    columns = [c.name for c in contract.columns] + list(LINEAGE_COLUMNS)
    exps.append(_expectation(
        "expect_table_columns_to_match_set",
        {"column_set": columns, "exact_match": True},
        "表结构：列与数据约定一致",
        _meta("columns_match_contract", "blocking", False, []),
    ))
    exps.append(_expectation(
        "expect_table_row_count_to_be_between",
        {"min_value": 1},
        "数据量：本期数据不能为空",
        _meta("not_empty", "blocking", False, []),
    ))
    exps.append(_expectation(
        "expect_table_row_count_to_be_between",
        {"min_value": {"$PARAMETER": "volume_min"}, "max_value": {"$PARAMETER": "volume_max"}},
        "数据量：与上期相比变化不超过设定比例",
        _meta("volume_vs_previous_period", "warning", False, []),
    ))
    for col in contract.columns:
        label = col.header
        shown = [col.name]  # samples mask identity-number columns
        if col.required:
            exps.append(_expectation(
                "expect_column_values_to_not_be_null", {"column": col.name},
                f"{label}：必填项为空", _meta(f"{col.name}_not_null", "warning", True, shown),
            ))
        if col.codes:
            exps.append(_expectation(
                "expect_column_values_to_be_in_set", {"column": col.name, "value_set": list(col.codes)},
                f"{label}：不在取值范围内", _meta(f"{col.name}_in_list", "warning", True, shown),
            ))
        if col.type == "id":
            exps.append(_expectation(
                "expect_column_values_to_match_regex", {"column": col.name, "regex": ID_REGEX},
                f"{label}：应为17位数字加校验位", _meta(f"{col.name}_format", "warning", True, shown),
            ))
            exps.append(_expectation(
                "unexpected_rows_expectation", {"unexpected_rows_query": id_check_sql(col.name)},
                f"{label}：校验位或出生日期错误",
                _meta(f"{col.name}_check_char", "warning", True, shown),
            ))
        if col.type == "village":
            exps.append(_expectation(
                "expect_column_values_to_match_regex",
                {"column": col.name, "regex": {"$PARAMETER": "county_village_regex"}},
                f"{label}：应为本县的12位村代码", _meta(f"{col.name}_in_county", "warning", True, shown),
            ))
        if col.min is not None or col.max is not None:
            kwargs = {"column": col.name}
            if col.min is not None:
                kwargs["min_value"] = col.min
            if col.max is not None:
                kwargs["max_value"] = col.max
            exps.append(_expectation(
                "expect_column_values_to_be_between", kwargs,
                f"{label}：超出允许范围", _meta(f"{col.name}_in_range", "warning", True, shown),
            ))
        if col.required_when:
            exps.append(_expectation(
                "unexpected_rows_expectation",
                {"unexpected_rows_query": (
                    f"SELECT period, source_file, source_row FROM {{batch}} "
                    f"WHERE ({col.required_when}) AND {col.name} IS NULL")},
                f"{label}：条件必填项为空（{col.required_when}）",
                _meta(f"{col.name}_required_when", "warning", True, [col.name]),
            ))
    for rule in CROSS_FIELD.get(contract.code, []):
        if rule["kind"] == "pair_a_ge_b":
            exps.append(_expectation(
                "expect_column_pair_values_a_to_be_greater_than_b",
                {"column_A": rule["column_A"], "column_B": rule["column_B"], "or_equal": True,
                 "ignore_row_if": "either_value_is_missing"},
                rule["description"],
                _meta(rule["name"], rule["severity"], True, [rule["column_A"], rule["column_B"]],
                      quarantine=rule["quarantine"]),
            ))
    for key in contract.unique:
        name = "unique_" + "_".join(key)
        labels = "、".join(contract.column(c).header for c in key)
        if len(key) == 1:
            type_, kwargs = "expect_column_values_to_be_unique", {"column": key[0]}
        else:
            type_, kwargs = "expect_compound_columns_to_be_unique", {"column_list": list(key)}
        # Rows sharing a key are quarantined together (重复键), the key named in each reason;
        # above reject_above_share the extract is rejected as systematically broken.
        exps.append(_expectation(
            type_, kwargs, f"重复键：{labels}相同的行不止一条",
            _meta(name, "warning", True, list(key), duplicate_key=True),
        ))
    return {
        "name": contract.code,
        "meta": {
            "dept": contract.code,
            "dept_name": contract.name,
            "contract": f"warehouse/contracts/{contract.code}.toml",
            "generated_by": "scripts/build_suites.py (then edited by hand; this JSON is the source of truth)",
            "batch": f"pending.{contract.code} WHERE period = <period>",
            "volume_max_change": VOLUME_MAX_CHANGE,
            "parameters": {
                "volume_min": "row count of the latest earlier period in staging × (1 − volume_max_change); 0 when none",
                "volume_max": "row count of the latest earlier period in staging × (1 + volume_max_change); none when none",
                "county_village_regex": "^(<county codes>)[0-9]{6}$ from warehouse/reference/divisions.csv, else the 6-digit prefixes in fupin",
            },
        },
        "expectations": exps,
        "notes": None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dept", action="append", help="only this department (repeatable)")
    parser.add_argument("--force", action="store_true", help="overwrite existing suites")
    parser.add_argument("--out", type=Path, default=EXPECTATIONS_DIR)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for code, contract in all_contracts().items():
        if args.dept and code not in args.dept:
            continue
        path = args.out / f"{code}.json"
        if path.exists() and not args.force:
            print(f"skip {path} (exists; --force to overwrite)")
            continue
        path.write_text(json.dumps(build_suite(contract), ensure_ascii=False, indent=2) + "\n",
                        encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
