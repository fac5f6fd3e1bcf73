"""bench/run.py's arithmetic: what a reader of its table relies on (no benchmark is run here)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "bench" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _size(rows: int, whole: float, floor: float, peak_gb: float) -> dict:
    stages = {st: 0.0 for st in ("startup", "ingest", "validate", "promote", "marts", "ledger",
                                 "report", "other")}
    stages["ingest"] = whole
    return {"floor": {"rows": rows, "whole": floor, "cpu": floor, "files": 40, "bytes": rows * 50},
            "run": {"whole": whole, "process_cpu": whole, "peak_rss": peak_gb * 2**30,
                    "stages": stages, "cpu_stages": dict(stages)}}


def test_concurrent_departments_count_once_in_a_stage(bench):
    # four departments staged at once for 0-2 s, one more 3-4 s: 3 s of wall, not 9
    spans = [(0.0, 2.0), (0.0, 2.0), (0.5, 1.5), (1.0, 2.0), (3.0, 4.0)]
    assert bench._union_seconds(spans) == pytest.approx(3.0)
    events = [{"stage": "ingest", "start": s, "end": e} for s, e in spans]
    events.append({"stage": "validate", "start": 4.0, "end": 6.0})
    out = bench.stage_seconds(events, whole=7.0)
    assert out["ingest"] == pytest.approx(3.0) and out["validate"] == pytest.approx(2.0)
    assert out["other"] == pytest.approx(2.0)  # 7 s of run, 5 s covered by stages


def test_missed_targets_say_by_how_much(bench):
    lines: list[str] = []
    results = {"M": _size(1_000_000, whole=50.0, floor=5.0, peak_gb=2.5),
               "L": _size(10_000_000, whole=600.0, floor=50.0, peak_gb=7.0)}
    missed = bench.print_report(results, {}, None, "M", echo=lines.append)
    text = "\n".join(lines)
    assert "[MISS] M whole run ≤ 5× floor (wall): 10.00×" in text and "~25.0 s over" in text
    assert "[MISS] M whole run ≤ 7× floor (CPU s): 10.00×" in text and "~15.0 s over" in text
    assert "[MISS] M peak memory ≤ 1.5 GB: 2.50 GB — missed by 1.00 GB" in text
    assert "[MISS] L ÷ M ≤ 10: 12.00 — missed by 2.00" in text
    assert "[met ] L peak memory ≤ 8 GB" in text
    assert len(missed) == 4


def test_the_verdict_is_the_median_of_alternating_pairs(bench):
    """A floor measured in a fast spell beside a run in a slow one does not decide the verdict:
    wall and CPU ratios are each the median of the pairs', the peak is the highest."""
    pairs = [_size(1_000_000, whole=12.0, floor=2.0, peak_gb=1.1),    # 6.0x: a fast floor
             _size(1_000_000, whole=11.0, floor=2.4, peak_gb=1.3),    # 4.58x
             _size(1_000_000, whole=12.5, floor=2.6, peak_gb=1.2)]    # 4.81x
    for pair, cpu in zip(pairs, (16.0, 16.0, 18.0)):   # CPU ratios 8.0, 6.67, 6.92
        pair["run"]["process_cpu"] = cpu
    m = bench.median_pair(pairs)
    assert m["median"]["wall"] == pytest.approx(12.5 / 2.6)
    assert m["median"]["cpu"] == pytest.approx(18.0 / 2.6)
    assert m["run"]["whole"] == 12.5 and m["run"]["peak_rss"] == pytest.approx(1.3 * 2**30)
    lines: list[str] = []
    bench.print_report({"M": m}, {}, None, "M", echo=lines.append)
    text = "\n".join(lines)
    assert "[met ] M whole run ≤ 5× floor (wall): 4.81×" in text
    assert "[met ] M whole run ≤ 7× floor (CPU s): 6.92×" in text
    assert "6.0/8.0 4.6/6.7 4.8/6.9" in text


def test_gx_warm_up_thread_counts_as_gx_import_not_ingest(bench):
    # ingest spans 0-10 s with 12 s of process CPU, 3 s of it GX's import on the warm-up thread
    # (running 2-5 s, inside ingest's span); validation follows with 6 s
    events = [{"stage": "ingest", "start": 0.0, "end": 10.0, "cpu0": 0.0, "cpu1": 12.0},
              {"stage": "gx_import", "start": 2.0, "end": 5.0, "thread_cpu": 3.0},
              {"stage": "validate", "start": 10.0, "end": 16.0, "cpu0": 12.0, "cpu1": 18.0}]
    out = bench.stage_cpu(events, whole_cpu=19.0)
    assert out["ingest"] == pytest.approx(9.0) and out["gx_import"] == pytest.approx(3.0)
    assert out["validate"] == pytest.approx(6.0) and out["other"] == pytest.approx(1.0)


def test_overlapping_stages_share_the_cpu_of_the_time_they_run_together(bench):
    # a department validates 0-4 s while another is promoted 2-6 s; the process burns 1 CPU s/s
    events = [{"stage": "validate", "start": 0.0, "end": 4.0, "cpu0": 0.0, "cpu1": 4.0},
              {"stage": "promote", "start": 2.0, "end": 6.0, "cpu0": 2.0, "cpu1": 6.0}]
    out = bench.stage_cpu(events, whole_cpu=7.0)
    assert out["validate"] == pytest.approx(3.0) and out["promote"] == pytest.approx(3.0)
    assert out["other"] == pytest.approx(1.0)   # counted once: the stages sum to the run


def test_L_extrapolated_linearly_in_rows_and_labelled(bench):
    results = {"S": _size(100_000, whole=20.0, floor=0.5, peak_gb=0.5),
               "M": _size(1_000_000, whole=50.0, floor=5.0, peak_gb=1.0)}
    est = bench.extrapolate_L(results)
    # 30 s per 900,000 rows beyond M: ten times M's rows adds 9,000,000 rows -> +300 s
    assert est["estimated"] and est["floor"]["rows"] == pytest.approx(10_000_000, rel=1e-3)
    assert est["run"]["whole"] == pytest.approx(350.0, rel=1e-3)
    lines: list[str] = []
    bench.print_report({**results, "L": est}, {}, None, "M", echo=lines.append)
    assert any("L (est.)" in line for line in lines)
    assert any("(estimated)" in line for line in lines if "L ÷ M" in line)
