"""Loading a department's extract of a period: stage → (validate) → promote or reject.

::

    inbox/<period>/<dept>/*.{csv,xlsx,xls,parquet}
        │ stage_extract   read + conform (pure, in parallel threads), then one short write:
        │                 raw.<dept>, pending.<dept>, quarantine.rows, audit.extracts 'staged'
        ▼
    pending.<dept> ──► promote_extract: staging.<dept> snapshot of the period replaced in one
                   │                    transaction; audit 'accepted'
                   └─► reject_extract:  pending rows → quarantine.rows (整批退回), staging kept;
                                        audit 'rejected'

Every file's rows are accounted for: rows_read = rows_loaded + rows_quarantined. The same files
again (every sha256 equal to the accepted extract of that period and department) are
'unchanged' and nothing is written but an audit row. A file that cannot be read rejects the
whole extract at staging; the department's last accepted data stays in staging.

Replacement: staging a (period, dept) replaces that period's raw, pending and quarantine rows of
the department (quarantine.rows shows the latest delivery's problems; audit.extracts keeps the
history of every delivery).
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from tasks import reasons
from tasks.conform import FILE, REASONS, Conformed, conform
from tasks.contracts import Contract, department_codes, load_contract
from tasks.db import connect, ensure_schema, write_lock
from tasks.read import ROW, FileRead, ReadError, read_file

log = logging.getLogger(__name__)
SYSTEM_FILES = {".DS_Store", "Thumbs.db", "desktop.ini"}
PERIOD_RE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
REJECTED_PREFIX = "整批退回："
STAGE_CONFORM = "conform"
STAGE_REJECT = "validate"   # whole-extract rejections happen at validation (ddl: conform / validate)


@dataclass
class FileResult:
    file: str
    sha256: str
    rows_read: int
    rows_loaded: int
    rows_quarantined: int
    message: str | None
    extra_columns: list[str] = field(default_factory=list)


@dataclass
class ExtractResult:
    period: str
    dept: str
    status: str   # 'staged' | 'unchanged' | 'rejected' | 'missing' | 'accepted' (after promote)
    files: list[FileResult]
    message: str | None

    @property
    def rows_read(self) -> int:
        return sum(f.rows_read for f in self.files)

    @property
    def rows_loaded(self) -> int:
        return sum(f.rows_loaded for f in self.files)

    @property
    def rows_quarantined(self) -> int:
        return sum(f.rows_quarantined for f in self.files)


# --------------------------------------------------------------------------------------------
# the inbox

def discover_periods(inbox: Path) -> list[str]:
    """YYYY-MM folders of the inbox, sorted."""
    inbox = Path(inbox)
    if not inbox.is_dir():
        return []
    return sorted(p.name for p in inbox.iterdir() if p.is_dir() and PERIOD_RE.match(p.name))


def extract_files(inbox: Path, period: str, dept: str) -> list[Path]:
    """The files a department delivered for a period (sorted; Office lock files and hidden files skipped)."""
    folder = Path(inbox) / period / dept
    if not folder.is_dir():
        return []
    # Every delivered file counts (an unsupported type is refused, not silently dropped), except
    # what an operating system or Excel leaves beside them.
    return sorted(
        p for p in folder.rglob("*")
        if p.is_file() and not p.name.startswith(("~$", "._")) and p.name not in SYSTEM_FILES
    )


def _relative(inbox: Path, path: Path) -> str:
    return path.relative_to(inbox).as_posix()


# --------------------------------------------------------------------------------------------
# reading and conforming (pure)

@dataclass
class _Delivered:
    file: str
    path: Path
    sha256: str
    read: FileRead | None = None
    error: str | None = None


def _read_all(inbox: Path, blobs: list[tuple[Path, bytes]], shas: list[str],
              contract: Contract) -> list[_Delivered]:
    out = []
    root = inbox.resolve()
    for (path, data), sha in zip(blobs, shas):
        item = _Delivered(_relative(inbox, path), path, sha)
        try:
            if not path.resolve().is_relative_to(root):
                raise ReadError("是指向收件箱以外位置的链接，出于安全考虑不予读取，请直接报送文件本身")
            if data is None:
                raise ReadError("无法打开（权限不足或已被移走）")
            if path.stat().st_size != len(data):
                raise ReadError("在读取时仍在变化（可能正在写入或复制），请待其完成后重新报送")
            item.read = read_file(path, contract, data)
        except ReadError as exc:
            item.error = f"文件“{path.name}”{'' if str(exc).startswith('：') else '：'}{exc}"
        except Exception as exc:  # an unreadable file must reject, not crash the run
            item.error = f"文件“{path.name}”：无法读取（{type(exc).__name__}）"
        out.append(item)
    return out


def _combined(delivered: list[_Delivered]) -> pl.DataFrame:
    frames = [d.read.frame.with_columns(pl.lit(d.file).alias(FILE)) for d in delivered if d.read]
    if len(frames) == 1:
        return frames[0]
    return pl.concat(frames, how="diagonal_relaxed")


def _row_data(quarantined: pl.DataFrame, delivered: list[_Delivered]) -> pl.Series:
    """Each quarantined row as delivered: JSON of its file's headers → text, in file order."""
    if quarantined.height == 0:
        return pl.Series("row_data", [], dtype=pl.Utf8)
    parts = []
    for d in delivered:
        if not d.read:
            continue
        cols = [c for c in d.read.frame.columns if c != ROW]
        part = quarantined.filter(pl.col(FILE) == d.file).select(
            FILE, ROW,
            pl.struct([pl.col(c).alias(d.read.headers.get(c, c)) for c in cols])
            .struct.json_encode().alias("row_data"),
        )
        parts.append(part)
    keyed = pl.concat(parts) if parts else pl.DataFrame(
        schema={FILE: pl.Utf8, ROW: pl.Int32, "row_data": pl.Utf8})
    return quarantined.select(FILE, ROW).join(keyed, on=[FILE, ROW], how="left")["row_data"]


def _raw_frame(delivered: list[_Delivered], contract: Contract, period: str, run_id: str) -> pl.DataFrame:
    """raw.<dept>: contract columns as delivered, everything else in ``extra`` (JSON)."""
    names = [c.name for c in contract.columns]
    parts = []
    for d in delivered:
        if not d.read:
            continue
        frame = d.read.frame
        extras = [c for c in frame.columns if c not in names and c != ROW]
        extra = (
            pl.struct([pl.col(c).alias(d.read.headers.get(c, c)) for c in extras]).struct.json_encode()
            if extras else pl.lit(None, dtype=pl.Utf8)
        )
        parts.append(frame.select(
            pl.lit(period).alias("period"), pl.lit(run_id).alias("run_id"),
            pl.lit(d.file).alias("source_file"), pl.col(ROW).alias("source_row"),
            *[(pl.col(n) if n in frame.columns else pl.lit(None, dtype=pl.Utf8)).cast(pl.Utf8).alias(n)
              for n in names],
            extra.alias("extra"),
        ))
    return pl.concat(parts) if parts else pl.DataFrame()


def _extra_columns(d: _Delivered, contract: Contract) -> list[str]:
    if not d.read:
        return []
    return [d.read.headers.get(c, c) for c in d.read.extra_columns]


# --------------------------------------------------------------------------------------------
# stage

def stage_extract(warehouse: Path, inbox: Path, period: str, dept: str, run_id: str) -> ExtractResult:
    """Read, conform and load one department's extract of a period into pending (not staging)."""
    inbox = Path(inbox)
    contract = load_contract(dept)
    folder = inbox / period / dept
    if folder.exists() and not folder.resolve().is_relative_to(inbox.resolve()):
        message = f"文件夹“{period}/{dept}”指向收件箱以外的位置，出于安全考虑不予读取"
        results = [FileResult(f"{period}/{dept}", "", 0, 0, 0, message)]
        with write_lock:
            con = _open(warehouse)
            try:
                _write_audit(con, run_id, period, dept, results, "rejected")
            finally:
                con.close()
        return ExtractResult(period, dept, "rejected", results, message)
    files = extract_files(inbox, period, dept)
    if not files:
        return ExtractResult(period, dept, "missing", [], f"{contract.name}本期（{period}）未报送数据")

    blobs = [(path, _read_bytes(path)) for path in files]
    hashed = [(path, hashlib.sha256(data or b"").hexdigest()) for path, data in blobs]
    with write_lock:
        con = _open(warehouse)
        try:
            accepted = _accepted_shas(con, period, dept)
            if accepted is not None and sorted(accepted) == sorted(s for _, s in hashed):
                results = [FileResult(_relative(inbox, p), s, 0, 0, 0, "与已入库数据相同，未重复导入")
                           for p, s in hashed]
                _write_audit(con, run_id, period, dept, results, "unchanged")
                return ExtractResult(period, dept, "unchanged", results,
                                     "与已入库的数据相同（sha256一致），未重复导入")
        finally:
            con.close()

    t_read = time.perf_counter()
    delivered = _read_all(inbox, blobs, [sha for _, sha in hashed], contract)
    del blobs
    broken = [d for d in delivered if d.error]
    readable = [d for d in delivered if d.read]
    conformed: Conformed | None = None
    t_conform = time.perf_counter()
    if readable:
        conformed = conform(_combined(readable), contract)
    t_prepare = time.perf_counter()
    message = "；".join(d.error for d in broken) if broken else None

    quarantined = conformed.quarantined if conformed else None
    staged = conformed.staged if conformed else None
    if broken and quarantined is not None:
        # The extract is refused as a whole: every readable row goes to quarantine, with its
        # own defects (so the department fixes everything at once) and the refusal.
        refusal = REJECTED_PREFIX + message
        everything = pl.concat([
            staged.select(FILE, ROW).with_columns(pl.lit([], dtype=pl.List(pl.Utf8)).alias(REASONS)),
            quarantined.select(FILE, ROW, REASONS),
        ])
        everything = everything.with_columns(pl.col(REASONS).list.concat(pl.lit([refusal])))
        quarantined = everything.join(_combined(readable), on=[FILE, ROW], how="left")
        staged = staged.clear()

    results = []
    q_counts = _counts(quarantined)
    s_counts = _counts(staged)
    for d in delivered:
        if d.error:
            results.append(FileResult(d.file, d.sha256, 0, 0, 0, d.error))
        else:
            read = d.read.rows_read
            loaded, quar = s_counts.get(d.file, 0), q_counts.get(d.file, 0)
            assert loaded + quar == read, (d.file, read, loaded, quar)
            results.append(FileResult(d.file, d.sha256, read, loaded, quar,
                                      (REJECTED_PREFIX + message) if broken else None,
                                      _extra_columns(d, contract)))
    status = "rejected" if broken else "staged"

    raw = _raw_frame(readable, contract, period, run_id)
    q_table = None
    if quarantined is not None and quarantined.height:
        q_table = quarantined.select(
            pl.lit(run_id).alias("run_id"), pl.lit(period).alias("period"), pl.lit(dept).alias("dept"),
            pl.col(FILE).alias("file"), pl.col(ROW).alias("row_number"), pl.col(REASONS).alias("reasons"),
            pl.lit(STAGE_CONFORM).alias("stage"),
        ).with_columns(_row_data(quarantined, readable).alias("row_data"))
    pending = None
    if staged is not None and staged.height:
        pending = staged.with_columns(pl.lit(period).alias("period"), pl.lit(run_id).alias("run_id"))

    t_write = time.perf_counter()
    with write_lock:
        con = _open(warehouse)
        try:
            con.execute("BEGIN TRANSACTION")
            con.execute(f"DELETE FROM raw.{dept} WHERE period = ?", [period])
            con.execute(f"DELETE FROM pending.{dept} WHERE period = ?", [period])
            con.execute("DELETE FROM quarantine.rows WHERE period = ? AND dept = ?", [period, dept])
            if raw.height:
                con.register("__raw", raw.to_arrow())
                con.execute(f"INSERT INTO raw.{dept} BY NAME SELECT * FROM __raw")
                con.unregister("__raw")
            if pending is not None:
                con.register("__pending", pending.to_arrow())
                con.execute(f"INSERT INTO pending.{dept} BY NAME SELECT * FROM __pending")
                con.unregister("__pending")
            if q_table is not None:
                con.register("__quarantine", q_table.to_arrow())
                con.execute("INSERT INTO quarantine.rows BY NAME SELECT * FROM __quarantine")
                con.unregister("__quarantine")
            _write_audit(con, run_id, period, dept, results, status)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        finally:
            con.close()
    t_end = time.perf_counter()
    log.debug("stage %s %s: read %.2f s, conform %.2f s, prepare %.2f s, write %.2f s", period, dept,
              t_conform - t_read, t_prepare - t_conform, t_write - t_prepare, t_end - t_write)
    return ExtractResult(period, dept, status, results, message)


def _open(warehouse: Path):
    """Connect; create the tables only when they are missing (the DDL of 36 tables is not free)."""
    con = connect(warehouse)
    found = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema IN "
        "('raw', 'pending', 'staging', 'quarantine', 'audit')").fetchall()[0][0]
    if found < 3 * len(department_codes()) + 3:
        ensure_schema(con)
    return con


def _read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _counts(frame: pl.DataFrame | None) -> dict[str, int]:
    if frame is None or frame.height == 0:
        return {}
    return dict(frame.group_by(FILE).len().iter_rows())


def _accepted_shas(con, period: str, dept: str) -> list[str] | None:
    """sha256 of every file of the currently accepted extract of (period, dept), or None."""
    rows = con.execute(
        """
        WITH latest AS (
            SELECT run_id FROM audit.extracts
            WHERE period = ? AND dept = ? AND status = 'accepted'
            ORDER BY recorded_at DESC LIMIT 1)
        SELECT sha256 FROM audit.extracts
        WHERE period = ? AND dept = ? AND status = 'accepted' AND run_id = (SELECT run_id FROM latest)
        """,
        [period, dept, period, dept],
    ).fetchall()
    return [r[0] for r in rows] if rows else None


def _write_audit(con, run_id: str, period: str, dept: str, results: list[FileResult], status: str) -> None:
    con.execute("DELETE FROM audit.extracts WHERE run_id = ? AND period = ? AND dept = ?",
                [run_id, period, dept])
    if not results:
        return
    con.executemany(
        "INSERT INTO audit.extracts (run_id, period, dept, file, sha256, rows_read, rows_loaded, "
        "rows_quarantined, status, message, extra_columns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            [run_id, period, dept, r.file, r.sha256, r.rows_read, r.rows_loaded, r.rows_quarantined,
             status, r.message, json.dumps(r.extra_columns, ensure_ascii=False) if r.extra_columns else None]
            for r in results
        ],
    )


def _audit_result(con, run_id: str, period: str, dept: str) -> ExtractResult | None:
    rows = con.execute(
        "SELECT file, sha256, rows_read, rows_loaded, rows_quarantined, message, extra_columns, status "
        "FROM audit.extracts WHERE run_id = ? AND period = ? AND dept = ? ORDER BY file",
        [run_id, period, dept],
    ).fetchall()
    if not rows:
        return None
    files = [FileResult(f, s, rr, rl, rq, m, json.loads(x) if x else []) for f, s, rr, rl, rq, m, x, _ in rows]
    status = rows[0][7]
    messages = list(dict.fromkeys(r[5] for r in rows if r[5]))
    return ExtractResult(period, dept, status, files, "；".join(messages) if messages else None)


# --------------------------------------------------------------------------------------------
# promote / reject

def promote_extract(warehouse: Path, period: str, dept: str, run_id: str) -> ExtractResult:
    """pending → staging for (period, dept) in one transaction; audit rows 'accepted'.

    rows_loaded and rows_quarantined are recounted from pending and quarantine.rows, since a
    validator may have moved rows from pending to quarantine in between.
    """
    load_contract(dept)  # an unknown department fails here, not in SQL
    with write_lock:
        con = _open(warehouse)
        try:
            current = _audit_result(con, run_id, period, dept)
            if current is None:
                return ExtractResult(period, dept, "missing", [], "本次运行未暂存该数据")
            if current.status != "staged":
                return current
            con.execute("BEGIN TRANSACTION")
            try:
                _recount(con, run_id, period, dept)
                con.execute(f"DELETE FROM staging.{dept} WHERE period = ?", [period])
                con.execute(f"INSERT INTO staging.{dept} SELECT * FROM pending.{dept} "
                            f"WHERE period = ? AND run_id = ?", [period, run_id])
                con.execute(f"DELETE FROM pending.{dept} WHERE period = ?", [period])
                con.execute("UPDATE audit.extracts SET status = 'accepted' "
                            "WHERE run_id = ? AND period = ? AND dept = ?", [run_id, period, dept])
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            return _audit_result(con, run_id, period, dept)
        finally:
            con.close()


def _recount(con, run_id: str, period: str, dept: str) -> None:
    con.execute(
        f"""
        UPDATE audit.extracts AS a SET
            rows_loaded = (SELECT count(*) FROM pending.{dept} p
                           WHERE p.period = a.period AND p.run_id = a.run_id AND p.source_file = a.file),
            rows_quarantined = (SELECT count(*) FROM quarantine.rows q
                                WHERE q.period = a.period AND q.dept = a.dept AND q.file = a.file)
        WHERE a.run_id = ? AND a.period = ? AND a.dept = ?
        """,
        [run_id, period, dept],
    )


def reject_extract(warehouse: Path, period: str, dept: str, run_id: str, message: str) -> ExtractResult:
    """Refuse a staged extract: staging untouched, pending rows to quarantine (整批退回), audit 'rejected'."""
    contract = load_contract(dept)
    reason = REJECTED_PREFIX + message
    with write_lock:
        con = _open(warehouse)
        try:
            current = _audit_result(con, run_id, period, dept)
            if current is None:
                return ExtractResult(period, dept, "missing", [], "本次运行未暂存该数据")
            if current.status != "staged":   # already decided (or unchanged): nothing to do
                return current
            con.execute("BEGIN TRANSACTION")
            try:
                row_json = _raw_json_sql(contract, "r")
                con.execute(
                    f"""
                    INSERT INTO quarantine.rows (run_id, period, dept, file, row_number, reasons, stage, row_data)
                    SELECT ?, p.period, ?, p.source_file, p.source_row, [?], ?, {row_json}
                    FROM pending.{dept} p
                    LEFT JOIN raw.{dept} r
                      ON r.period = p.period AND r.source_file = p.source_file AND r.source_row = p.source_row
                    WHERE p.period = ? AND p.run_id = ?
                    """,
                    [run_id, dept, reason, STAGE_REJECT, period, run_id],
                )
                con.execute(f"DELETE FROM pending.{dept} WHERE period = ?", [period])
                _recount(con, run_id, period, dept)
                con.execute(
                    "UPDATE audit.extracts SET status = 'rejected', rows_loaded = 0, "
                    "message = coalesce(message || '；', '') || ? "
                    "WHERE run_id = ? AND period = ? AND dept = ?",
                    [reason, run_id, period, dept],
                )
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            result = _audit_result(con, run_id, period, dept)
            result.message = reason
            return result
        finally:
            con.close()


def _raw_json_sql(contract: Contract, alias: str) -> str:
    """The raw row as JSON of canonical header → text, merged with its extra columns."""
    pairs = ", ".join(f"'{c.header}', {alias}.\"{c.name}\"" for c in contract.columns)
    return f"CAST(json_merge_patch(json_object({pairs}), coalesce({alias}.extra, '{{}}')) AS VARCHAR)"
