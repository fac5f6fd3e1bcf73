"""Benchmark: one period's whole inbox read, conformed and loaded (to pending) vs merely read.

    .venv/bin/python bench/ingest.py --households 30000            # generates size M first
    .venv/bin/python bench/ingest.py --inbox /tmp/genM --period 2020-06

The floor is the fastest way to only read the same files: pyarrow's CSV reader told the right
encoding, fastexcel for Excel, pyarrow for Parquet — no header search, no typing, no checks, no
warehouse. The pipeline is tasks.ingest.load.stage_extract for every department, ``--workers`` at a
time as the period flow's thread pool runs them (``--workers 1``: one after another), into a
fresh DuckDB file: detection of encodings and header rows, conforming, raw rows landed as Parquet,
pending, quarantine and audit written in DuckDB. Both run side by side in one process, alternating, best of --repeat.
Target: pipeline ≤ 2 × floor, peak RSS ≤ 1.5 GB.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil  # noqa: E402


class PeakRSS:
    """Samples this process's RSS every 20 ms while a phase runs."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._proc = psutil.Process(os.getpid())

    def __enter__(self) -> "PeakRSS":
        self.peak = self._proc.memory_info().rss
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self._proc.memory_info().rss)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)


def inbox_files(inbox: Path, period: str) -> dict[str, list[Path]]:
    from povwatch.tasks.ingest.contracts import department_codes
    from povwatch.tasks.ingest.load import extract_files

    return {d: extract_files(inbox, period, d) for d in department_codes()}


def floor_read(files: dict[str, list[Path]], encodings: dict[Path, str]) -> int:
    """Only read every file with the fastest reader, everything as the reader likes it."""
    import fastexcel
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    rows = 0
    for paths in files.values():
        for path in paths:
            suffix = path.suffix.lower()
            if suffix in (".csv", ".txt"):
                enc = encodings[path]
                table = pacsv.read_csv(path, read_options=pacsv.ReadOptions(
                    encoding="utf8" if enc.startswith("utf-8") else enc))
            elif suffix in (".xlsx", ".xls", ".xlsm"):
                table = fastexcel.read_excel(path).load_sheet(0).to_arrow()
            else:
                table = pq.read_table(path)
            rows += table.num_rows
    return rows


def pipeline(inbox: Path, period: str, depts: list[str], warehouse: Path, workers: int) -> int:
    """tasks.ingest.load.stage_extract for every department, ``workers`` at a time, as the period flow
    submits them to its thread pool (POVWATCH_MAX_WORKERS, default 4); 1 = one after another."""
    from concurrent.futures import ThreadPoolExecutor

    from povwatch.tasks.core.db import held_open
    from povwatch.tasks.ingest.load import stage_extract

    run_id = f"bench-{time.time_ns()}"
    # As flows.pipeline.execute_run: the warehouse held open for the run (its final close, which
    # checkpoints everything written, is timed too).
    with held_open(warehouse), ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(lambda d: stage_extract(warehouse, inbox, period, d, run_id), depts))
    for result in results:
        if result.status not in ("staged", "missing"):
            raise SystemExit(f"{result.dept}: {result.status}: {result.message}")
    return sum(r.rows_read for r in results)


def phase_cpu(inbox: Path, period: str, depts: list[str], warehouse: Path) -> dict[str, float]:
    """The pipeline once more, one department after another (so the process's CPU during a call
    is that call's), with the CPU of each phase: reading the files, conforming, writing the
    Parquet files, loading (the one writer), and the rest (hashing, the unchanged check, ...)."""
    import povwatch.tasks.ingest.load as load
    from povwatch.tasks.core.db import held_open

    spent = dict.fromkeys(("read", "conform", "parquet", "load"), 0.0)
    originals = {}

    def timed(name: str, phase: str) -> None:
        original = originals[name] = getattr(load, name)

        def wrapper(*a, **k):
            c0 = cpu_seconds()
            try:
                return original(*a, **k)
            finally:
                spent[phase] += cpu_seconds() - c0
        setattr(load, name, wrapper)

    for name, phase in (("read_parts", "read"), ("conform", "conform"), ("_write_part", "parquet"),
                        ("load_parts", "load")):
        timed(name, phase)
    try:
        c0 = cpu_seconds()
        with held_open(warehouse):
            for dept in depts:
                load.stage_extract(warehouse, inbox, period, dept, f"phases-{time.time_ns()}")
        whole = cpu_seconds() - c0
    finally:
        for name, original in originals.items():
            setattr(load, name, original)
    return {**spent, "rest": whole - sum(spent.values()), "whole": whole}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inbox", type=Path, help="an inbox (default: generate one)")
    parser.add_argument("--period", default="2020-06")
    parser.add_argument("--households", type=int, default=30000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--workers", type=int, default=int(os.environ.get("POVWATCH_MAX_WORKERS", "4")),
                        help="departments staged at once, as the flow's thread pool (default 4)")
    parser.add_argument("--profile", action="store_true", help="pyinstrument the pipeline once")
    parser.add_argument("--phases", action="store_true",
                        help="one more pass, departments one after another, with each phase's CPU")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="povwatch-bench-"))
    inbox = args.inbox
    if inbox is None:
        from povwatch.tasks.synth.generate import generate

        inbox = work / "inbox"
        t0 = time.perf_counter()
        generate(inbox, period=args.period, periods=1, households=args.households, seed=20201,
                 defects=0.02, counties=1)
        print(f"generated {args.households} households in {time.perf_counter() - t0:.1f} s -> {inbox}")

    from povwatch.tasks.ingest.read import detect_encoding

    files = inbox_files(inbox, args.period)
    depts = [d for d, paths in files.items() if paths]
    encodings = {p: detect_encoding(p.read_bytes()) for ps in files.values() for p in ps
                 if p.suffix.lower() in (".csv", ".txt")}
    size = sum(p.stat().st_size for ps in files.values() for p in ps)
    kinds = sorted({p.suffix.lower() for ps in files.values() for p in ps})
    print(f"inbox {inbox} period {args.period}: {sum(map(len, files.values()))} files "
          f"({', '.join(kinds)}), {size / 1e6:.1f} MB, departments {len(depts)}")

    floor_read(files, encodings)                         # warm the page cache and imports
    from povwatch.tasks.core.db import open_warehouse

    open_warehouse(work / "warm.duckdb").close()

    floor_times, pipe_times, floor_peak, pipe_peak = [], [], 0, 0
    floor_cpu, pipe_cpu = [], []
    rows_floor = rows_pipe = 0
    for i in range(args.repeat):
        with PeakRSS() as mem:
            t0, c0 = time.perf_counter(), cpu_seconds()
            rows_floor = floor_read(files, encodings)
            floor_times.append(time.perf_counter() - t0)
            floor_cpu.append(cpu_seconds() - c0)
        floor_peak = max(floor_peak, mem.peak)
        warehouse = work / f"bench-{i}.duckdb"
        with PeakRSS() as mem:
            t0, c0 = time.perf_counter(), cpu_seconds()
            rows_pipe = pipeline(inbox, args.period, depts, warehouse, args.workers)
            pipe_times.append(time.perf_counter() - t0)
            pipe_cpu.append(cpu_seconds() - c0)
        pipe_peak = max(pipe_peak, mem.peak)
        print(f"  round {i + 1}: floor {floor_times[-1]:.2f} s ({floor_cpu[-1]:.1f} s CPU), "
              f"pipeline {pipe_times[-1]:.2f} s ({pipe_cpu[-1]:.1f} s CPU)")

    floor_best, pipe_best = min(floor_times), min(pipe_times)
    max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print()
    print(f"rows read         floor {rows_floor:,}   pipeline {rows_pipe:,}")
    print(f"wall time (best)  floor {floor_best:.2f} s   pipeline {pipe_best:.2f} s   "
          f"ratio {pipe_best / floor_best:.2f}x  (target <= 2.0x)")
    print(f"peak RSS          floor {floor_peak / 2**20:.0f} MB   pipeline {pipe_peak / 2**20:.0f} MB   "
          f"process max {max_rss / 2**20:.0f} MB  (target <= 1536 MB)")
    print(f"CPU (best)        floor {min(floor_cpu):.1f} s   pipeline {min(pipe_cpu):.1f} s   "
          f"departments {args.workers} at a time")
    print(f"load average      {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")

    if args.phases:
        phases = phase_cpu(inbox, args.period, depts, work / "phases.duckdb")
        total = phases.pop("whole")
        print(f"CPU by phase (one department at a time, {total:.1f} s): "
              + ", ".join(f"{k} {v:.2f}" for k, v in phases.items()))

    if args.profile:
        from pyinstrument import Profiler

        profiler = Profiler()
        profiler.start()
        pipeline(inbox, args.period, depts, work / "profile.duckdb", args.workers)
        profiler.stop()
        print(profiler.output_text(unicode=True, color=False, show_all=False))


if __name__ == "__main__":
    main()
