"""Helpers shared by the robustness tests (crash safety, idempotency, concurrency, privacy).

- ``generated_inbox()``: one small generated county per test process (cached), copied per test.
- ``run_cli()``: ``python -m povwatch.flows.cli ...`` in a subprocess with a test environment.
- ``mart_digest()`` / ``staging_digest()``: content hashes of the warehouse that ignore run ids
  and timestamps, to compare an interrupted-then-rerun warehouse with an uninterrupted one.
- ``find_identity_numbers()``: every *valid* 18-character identity number in bytes, files, zips.
"""
from __future__ import annotations

import atexit
import gzip
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unicodedata
import zipfile
from datetime import date
from functools import lru_cache
from pathlib import Path

import duckdb

PROJECT = Path(__file__).resolve().parents[2]   # the repository root
PYTHON = sys.executable

FIRST_PERIOD = "2020-06"
PERIODS = ("2020-06", "2020-07")
HOUSEHOLDS = 60


@lru_cache(maxsize=None)
def generated_inbox(periods: int = 2, households: int = HOUSEHOLDS, seed: int = 7) -> Path:
    """A generated demo inbox, made once per test process (read-only: copy before changing)."""
    from povwatch.tasks.synth.generate import generate

    out = Path(tempfile.mkdtemp(prefix="povwatch-robust-gen-"))
    atexit.register(shutil.rmtree, out, True)
    generate(out, period=FIRST_PERIOD, periods=periods, households=households, seed=seed,
             defects=0.02, counties=1)
    return out


def inbox_root(generated: Path) -> Path:
    """The folder holding <period>/<dept>/ (the generator may put it under inbox/)."""
    for candidate in (generated / "inbox", generated):
        if any((candidate / p).is_dir() for p in PERIODS):
            return candidate
    raise AssertionError(f"no period folders in {generated}")


def copy_inbox(dest: Path, periods: tuple[str, ...] | None = None, **kw) -> Path:
    """A private copy of the generated inbox (only the given periods), without truth/."""
    src = inbox_root(generated_inbox(**kw))
    dest.mkdir(parents=True, exist_ok=True)
    for p in sorted(x for x in src.iterdir() if x.is_dir() and re.match(r"^\d{4}-\d{2}$", x.name)):
        if periods is None or p.name in periods:
            shutil.copytree(p, dest / p.name)
    return dest


SMALL_DEPTS = ("fupin", "shouru", "weijian")


def subset_inbox(dest: Path, periods: tuple[str, ...], depts: tuple[str, ...] = SMALL_DEPTS) -> Path:
    """A copy of a few departments of the generated inbox: enough for marts, quick to run."""
    src = inbox_root(generated_inbox())
    for p in periods:
        for d in depts:
            shutil.copytree(src / p / d, dest / p / d)
    return dest


def run_in_process(inbox: Path, warehouse: Path, tmp: Path, period: str | None = None) -> int:
    """``povwatch run`` in this process (local mode, no Prefect server): saves the imports."""
    import pytest

    from povwatch.flows.run_command import run_inbox

    env = cli_env(tmp)
    with pytest.MonkeyPatch.context() as mp:
        for key in ("POVWATCH_PREFECT", "POVWATCH_SETTLE_SECONDS", "POVWATCH_OUTPUT",
                    "POVWATCH_ALERT_URLS", "POVWATCH_LOCK_TIMEOUT"):
            mp.setenv(key, env[key])
        return run_inbox(inbox, period=period, warehouse=warehouse, mode="local",
                         echo=lambda _msg: None)


def cli_env(tmp: Path, **extra: str) -> dict[str, str]:
    """Environment for a CLI subprocess: local orchestration, no settle wait, private dirs."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("POVWATCH_", "PREFECT_API"))}
    env.update({
        "PYTHONPATH": str(PROJECT),
        "POVWATCH_PREFECT": "local",
        "POVWATCH_SETTLE_SECONDS": "0",
        "POVWATCH_LOCK_TIMEOUT": "0",
        "PREFECT_HOME": str(tmp / "prefect-home"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "TMPDIR": str(tmp / "tmp"),
        "POVWATCH_OUTPUT": str(tmp / "output"),
        "POVWATCH_ALERT_URLS": "",
    })
    (tmp / "tmp").mkdir(parents=True, exist_ok=True)
    env.update(extra)
    return env


def run_cli(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 300,
            check: bool = False) -> subprocess.CompletedProcess:
    proc = subprocess.run([PYTHON, "-m", "povwatch.flows.cli", *args], env=env, cwd=str(cwd),
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode not in (0, 3):
        raise AssertionError(f"povwatch {' '.join(args)} exited {proc.returncode}\n"
                             f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}")
    return proc


# --------------------------------------------------------------------------------------------
# content hashes

_VOLATILE = re.compile(r"(^|_)(run_id|flow_run_id|run)$|_at$|^recorded|^created|^built|timestamp")


# Build logs: one row per build, so a rerun after a crash adds rows; compared as a set.
LOG_TABLES = {"mart.policy_used"}


def _table_digest(con, schema: str, table: str, where: str = "", params=()) -> tuple[int, str]:
    cols = con.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
        [schema, table]).fetchall()
    keep = [c for c, t in cols if not _VOLATILE.search(c) and "TIMESTAMP" not in t.upper()]
    if not keep:
        return 0, ""
    select = ", ".join(f'"{c}"' for c in keep)
    if f"{schema}.{table}" in LOG_TABLES:
        select = "DISTINCT " + select
    row = con.execute(
        f"SELECT count(*), coalesce(md5(string_agg(CAST(t AS VARCHAR), chr(10) "
        f"ORDER BY CAST(t AS VARCHAR))), '') FROM (SELECT {select} FROM {schema}.\"{table}\" "
        f"{where}) t", list(params)).fetchone()
    return int(row[0]), row[1]


def mart_digest(warehouse: Path, schemas: tuple[str, ...] = ("mart",)) -> dict[str, tuple[int, str]]:
    """table -> (rows, md5 of the rows in a canonical order), run ids and timestamps left out."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        tables = con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_schema IN (SELECT unnest(?)) AND table_type = 'BASE TABLE' "
            "ORDER BY 1, 2", [list(schemas)]).fetchall()
        return {f"{s}.{t}": _table_digest(con, s, t) for s, t in tables}
    finally:
        con.close()


def staging_digest(warehouse: Path) -> dict[tuple[str, str], tuple[int, str]]:
    """(period, dept) -> digest of staging.<dept> for that period (lineage run ids left out)."""
    from povwatch.tasks.ingest.contracts import department_codes

    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        out = {}
        for dept in department_codes():
            periods = [r[0] for r in con.execute(
                f"SELECT DISTINCT period FROM staging.{dept}").fetchall()]
            for p in periods:
                out[(p, dept)] = _table_digest(con, "staging", dept, "WHERE period = ?", [p])
        return out
    finally:
        con.close()


# --------------------------------------------------------------------------------------------
# identity numbers in what leaves the warehouse

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"
ID_CANDIDATE = re.compile(r"(?<![0-9])([0-9]{17}[0-9Xx])(?![0-9])")


def is_valid_identity_number(text: str) -> bool:
    """GB 11643-1999: 17 digits, a real birth date from 1900 to today, the MOD 11-2 check."""
    text = text.upper()
    if not re.fullmatch(r"[0-9]{17}[0-9X]", text):
        return False
    try:
        born = date(int(text[6:10]), int(text[10:12]), int(text[12:14]))
    except ValueError:
        return False
    if not date(1900, 1, 1) <= born <= date.today():
        return False
    return _CHECK[sum(int(d) * w for d, w in zip(text[:17], _WEIGHTS)) % 11] == text[17]


def _texts(data: bytes) -> list[str]:
    texts = [unicodedata.normalize("NFKC", data.decode("utf-8", errors="ignore"))]
    if data[:2] in (b"\xff\xfe", b"\xfe\xff") or data.count(b"\x00") > len(data) // 4:
        texts.append(data.decode("utf-16", errors="ignore"))
    return texts


def find_identity_numbers(data: bytes, where: str) -> list[str]:
    """'where: 620523********123X' for every valid identity number in the bytes (zips opened)."""
    found: list[str] = []
    if data[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                for member in zf.namelist():
                    found += find_identity_numbers(zf.read(member), f"{where}!{member}")
            return found
        except zipfile.BadZipFile:
            pass
    if data[:2] == b"\x1f\x8b":
        try:
            return find_identity_numbers(gzip.decompress(data), f"{where}(gunzip)")
        except OSError:
            pass
    for text in _texts(data):
        for m in ID_CANDIDATE.finditer(text):
            if is_valid_identity_number(m.group(1)):
                v = m.group(1)
                found.append(f"{where}: {v[:6]}********{v[-4:]}")
    return found


def scan_tree(root: Path, skip: tuple[Path, ...] = ()) -> tuple[list[str], int]:
    """(findings, files scanned) for every file under root, except the paths in ``skip``."""
    findings: list[str] = []
    scanned = 0
    skip = tuple(p.resolve() for p in skip)
    for path in sorted(root.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        resolved = path.resolve()
        if any(resolved == s or s in resolved.parents for s in skip):
            continue
        scanned += 1
        findings += find_identity_numbers(path.read_bytes(), str(path.relative_to(root)))
    return findings, scanned
