"""The marts against the generator's planted truth: every planted case found, nothing else.

Generates a small county for three periods, ingests every department's extract (stage +
validate + promote), builds the marts period by period and compares mart.monitoring and
mart.problem_findings with truth/monitoring.csv and truth/problems.csv (recall = precision = 1).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytest.importorskip("povwatch.tasks.synth.generate")
pytest.importorskip("povwatch.tasks.ingest.load")

import polars as pl  # noqa: E402

from povwatch.tasks.ingest.contracts import department_codes, load_contract  # noqa: E402
from povwatch.tasks.synth.generate import generate  # noqa: E402
from povwatch.tasks.ingest.load import promote_extract, stage_extract  # noqa: E402
from povwatch.tasks.marts.build import build_marts  # noqa: E402
from povwatch.tasks.validate.suites import validate_extract  # noqa: E402
from tests.support.marts import Fixture  # noqa: E402

pytestmark = pytest.mark.slow

PERIODS = ("2020-06", "2020-07", "2020-08")


def ingest(warehouse: Path, inbox: Path, period: str) -> None:
    run_id = f"truth-{period}"
    with ThreadPoolExecutor(max_workers=4) as pool:   # stage_extract: read + conform in threads
        staged = list(pool.map(lambda d: stage_extract(warehouse, inbox, period, d, run_id),
                               department_codes()))
    for result in staged:
        if result.status == "missing" and not load_contract(result.dept).monthly:
            continue   # an asset register comes quarterly; its last snapshot stands
        assert result.status == "staged", (result.dept, result.message)
        # Validation quarantines the rows the run would (the planted 重复键 pairs among them):
        # the truth is what the pipeline keeps.
        outcome = validate_extract(warehouse, period, result.dept, run_id)
        assert not outcome.blocking_failed, (result.dept, outcome.message)
        promote_extract(warehouse, period, result.dept, run_id)


@pytest.fixture(scope="module")
def county(tmp_path_factory):
    root = tmp_path_factory.mktemp("truth")
    inbox = root / "inbox"
    generate(inbox, period=PERIODS[0], periods=len(PERIODS), households=120, seed=20201)
    fx = Fixture(root / "w.duckdb")
    fx.con.close()
    for p in PERIODS:
        ingest(fx.path, inbox, p)
        build_marts(fx.path, p, f"truth-{p}")
    import duckdb
    fx.con = duckdb.connect(str(fx.path))
    fx.inbox = inbox
    return fx


def _compare(got: pl.DataFrame, truth: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    missed = truth.join(got, on=truth.columns, how="anti")
    extra = got.join(truth, on=truth.columns, how="anti")
    return missed, extra


def test_monitoring_matches_the_planted_truth(county):
    truth = pl.read_csv(county.inbox / "truth" / "monitoring.csv", infer_schema=False)
    got = county.con.sql("SELECT period, household_key, category FROM mart.monitoring").pl()
    missed, extra = _compare(got, truth)
    assert len(truth) > 0 and set(truth["category"]) == {
        "not_exited_below_line", "unstable_exited", "marginal", "sudden_hardship"}
    assert missed.is_empty(), f"recall < 1: {missed.head(10)}"
    assert extra.is_empty(), f"precision < 1: {extra.head(10)}"


def test_problems_match_the_planted_truth(county):
    truth = pl.read_csv(county.inbox / "truth" / "problems.csv", infer_schema=False)
    got = county.con.sql("SELECT period, code, subject_id FROM mart.problem_findings").pl()
    missed, extra = _compare(got, truth)
    assert len(set(truth["code"])) >= 17   # P01–P16 and P07b (P14–P16: the asset registers)
    assert missed.is_empty(), f"recall < 1: {missed.head(10)}"
    assert extra.is_empty(), f"precision < 1: {extra.head(10)}"


def test_ledger_open_set_agrees_with_findings_where_everyone_delivered(county):
    # every department delivered every period: what is open at the end of a period is exactly what
    # that period found, less what a township's verification dismissed (不属实) — and those are
    # exactly the planted dismissals of truth/ledger.csv
    ledger_truth = pl.read_csv(county.inbox / "truth" / "ledger.csv", infer_schema=False)
    for p in PERIODS:
        status = dict(((code, subject), st) for code, subject, st in county.con.execute(
            "SELECT code, subject_id, status FROM mart.ledger_as_of(?)", [p]).fetchall())
        open_ = {k for k, st in status.items() if st == "open"}
        dismissed = {k for k, st in status.items() if st == "dismissed"}
        found = set(county.con.execute("SELECT code, subject_id FROM mart.problem_findings "
                                       "WHERE period = ?", [p]).fetchall())
        assert open_ | (dismissed & found) == found and not open_ & dismissed, p
        planted = set(ledger_truth.filter((pl.col("period") == p) & (pl.col("status") == "dismissed"))
                      .select("code", "subject_id").iter_rows())
        assert dismissed == planted, p
