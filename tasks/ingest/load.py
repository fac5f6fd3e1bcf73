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
history of every delivery). raw.<dept> and pending.<dept> are views over Parquet files in
``<warehouse>.lake/`` listed in audit.lake_files (docs/ingestion.md).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from povwatch.tasks.ingest import reasons
from povwatch.tasks.ingest.conform import FILE, REASONS, Conformed, conform
from povwatch.tasks.ingest.contracts import Contract, department_codes, load_contract
from povwatch.tasks.ingest.inbox import Delivery, delivery, discover_periods, unreadable_sha256  # noqa: F401
from povwatch.tasks.core import lake as core_lake
from povwatch.tasks.core.lake import listed_path
from povwatch.tasks.core.db import empty_layer_select, open_warehouse, raw_column_names, write_lock
from povwatch.tasks.ingest.read import ROW, FileRead, ReadError, read_file, read_parts  # noqa: F401

log = logging.getLogger(__name__)
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

def extract_files(inbox: Path, period: str, dept: str) -> list[Path]:
    """The files a department delivered for a period, as tasks.ingest.inbox.delivery defines them
    (the one definition the change check uses too)."""
    return list(delivery(inbox, period, dept).files)


def skipped_results(d: Delivery) -> list[FileResult]:
    """Audit rows naming what was in the folder and not read (no sha256: not part of the extract)."""
    return [FileResult(name, None, 0, 0, 0, reason) for name, reason in d.skipped]


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
            parts = read_parts(path, contract, data)
        except ReadError as exc:
            item.error = f"文件“{path.name}”{'' if str(exc).startswith('：') else '：'}{exc}"
        except Exception as exc:  # an unreadable file must reject, not crash the run
            item.error = f"文件“{path.name}”：无法读取（{type(exc).__name__}）"
        if item.error:
            out.append(item)
            continue
        # A workbook with a data sheet per township: each sheet is delivered as "<file>#<sheet>"
        # (its own rows, row numbers and audit line; the workbook's sha256).
        for sheet, read in parts:
            out.append(_Delivered(item.file + (f"#{sheet}" if sheet else ""), path, sha, read))
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
    # source_file as an Enum of the extract's files, period and run_id as constants: see _constant
    files = pl.Enum(list(dict.fromkeys(d.file for d in delivered if d.read)))
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
            _constant(period).alias("period"), _constant(run_id).alias("run_id"),
            pl.lit(d.file, dtype=files).alias("source_file"), pl.col(ROW).alias("source_row"),
            *[(pl.col(n) if n in frame.columns else pl.lit(None, dtype=pl.Utf8)).cast(pl.Utf8).alias(n)
              for n in names],
            extra.alias("extra"),
        ))
    return pl.concat(parts) if parts else pl.DataFrame()


def _constant(value: str) -> pl.Expr:
    """A lineage column the same on every row of a Parquet file (period, run id), as an Enum of
    its one value: the writer stores it as the dictionary it already is, where a String column
    is hashed row by row to build that dictionary (raw and pending of yibao, 420,000 rows:
    ~15 % of the two writes). DuckDB reads it as VARCHAR, with the same statistics."""
    return pl.lit(value, dtype=pl.Enum([value]))


def _extra_columns(d: _Delivered, contract: Contract) -> list[str]:
    if not d.read:
        return []
    return [d.read.headers.get(c, c) for c in d.read.extra_columns]


# --------------------------------------------------------------------------------------------
# the lake: Parquet beside the DuckDB file

def lake_root(warehouse: Path) -> Path:
    """The folder beside the warehouse file where extracts land as Parquet.

    ``<name>.duckdb`` → ``<name>.lake/``: ``raw/`` (the rows as delivered, kept: ``raw.<dept>`` is
    a view over these files) and ``prepared/`` (conformed rows and quarantine rows between
    :func:`prepare_part` and :func:`load_parts`, deleted once loaded). Partitioned
    ``<layer>/dept=<dept>/period=<period>/part=<county or all>/<run_id>.parquet``.
    """
    return core_lake.lake_root(warehouse)


def _part_dir(lake: Path, layer: str, period: str, dept: str, part: str) -> Path:
    return Path(lake) / layer / f"dept={dept}" / f"period={period}" / f"part={part}"


@dataclass
class PreparedPart:
    """One (period, department, county) partition read and conformed, landed as Parquet.

    Small and picklable: it is what a Dask worker sends back; the rows stay in the files.
    """
    period: str
    dept: str
    part: str
    files: list[FileResult]
    errors: list[str]
    raw: str | None
    pending: str | None
    quarantine: str | None
    worker: str = ""
    seconds: dict[str, float] = field(default_factory=dict)
    # In-process only (stage_extract): the quarantine rows handed to load_parts as a frame,
    # instead of a Parquet round trip that only a Dask worker's result needs.
    frames: dict[str, pl.DataFrame] | None = field(default=None, repr=False, compare=False)

    @property
    def rows_read(self) -> int:
        return sum(f.rows_read for f in self.files)


# --------------------------------------------------------------------------------------------
# stage = (unchanged?) → prepare → load

def stage_extract(warehouse: Path, inbox: Path, period: str, dept: str, run_id: str) -> ExtractResult:
    """Read, conform and load one department's extract of a period into pending (not staging)."""
    inbox = Path(inbox)
    files = extract_files(inbox, period, dept)
    blobs = {path: _read_bytes(path) for path in files}
    shas = {path: hashlib.sha256(data or b"").hexdigest() for path, data in blobs.items()}
    decided = unchanged_extract(warehouse, inbox, period, dept, run_id, shas)
    if decided is not None:
        return decided
    part = prepare_part(inbox, period, dept, files, lake_root(warehouse), "all", run_id, blobs=blobs,
                        shas=shas, in_memory=True)
    del blobs
    return load_parts(warehouse, inbox, period, dept, [part], run_id)


def unchanged_extract(warehouse: Path, inbox: Path, period: str, dept: str, run_id: str,
                      shas: dict[Path, str] | None = None) -> ExtractResult | None:
    """The result of an extract that needs no reading, else None.

    'missing' (nothing delivered), 'rejected' (the folder links outside the inbox), 'unchanged'
    (every file's sha256 equals the accepted extract of the period: nothing is loaded again).
    The last two write their audit rows. ``shas``: sha256 per file when the caller has them.
    """
    inbox = Path(inbox)
    contract = load_contract(dept)
    folder = inbox / period / dept
    if folder.exists() and not folder.resolve().is_relative_to(inbox.resolve()):
        message = f"文件夹“{period}/{dept}”指向收件箱以外的位置，出于安全考虑不予读取"
        results = [FileResult(f"{period}/{dept}", "", 0, 0, 0, message)]
        with write_lock:
            con = open_warehouse(warehouse)
            try:
                _write_audit(con, run_id, period, dept, results, "rejected")
            finally:
                con.close()
        return ExtractResult(period, dept, "rejected", results, message)
    found = delivery(inbox, period, dept)
    if found.unreadable:
        return _refuse_unreadable(warehouse, inbox, found, run_id)
    files = list(found.files)
    if not files:
        return ExtractResult(period, dept, "missing", [], f"{contract.name}本期（{period}）未报送数据")
    if shas is None:
        shas = {path: hashlib.sha256(_read_bytes(path) or b"").hexdigest() for path in files}
    with write_lock:
        con = open_warehouse(warehouse)
        try:
            accepted = _accepted_shas(con, period, dept)
            # sets: a workbook read as several sheets is audited once per sheet, one sha256
            if accepted is None or set(accepted) != {shas[p] for p in files}:
                return None
            results = [FileResult(_relative(inbox, p), shas[p], 0, 0, 0, "与已入库数据相同，未重复导入")
                       for p in files]
            _write_audit(con, run_id, period, dept, results, "unchanged")
            return ExtractResult(period, dept, "unchanged", results,
                                 "与已入库的数据相同（sha256一致），未重复导入")
        finally:
            con.close()


def _refuse_unreadable(warehouse: Path, inbox: Path, found: Delivery, run_id: str) -> ExtractResult:
    """A file or folder of the delivery cannot be read (permissions): the department is rejected
    before anything is read, its last accepted data stays, and the reason names the entry."""
    message = "；".join(reason for _, reason in found.unreadable) + "。请修正权限后重新报送"
    results = ([FileResult(name, unreadable_sha256(name), 0, 0, 0, reason) for name, reason in found.unreadable]
               + [FileResult(_relative(inbox, p), hashlib.sha256(_read_bytes(p) or b"").hexdigest(), 0, 0, 0,
                             "未读取：同批有无法读取的文件，整批退回") for p in found.files]
               + skipped_results(found))
    with write_lock:
        con = open_warehouse(warehouse)
        try:
            _write_audit(con, run_id, found.period, found.dept, results, "rejected")
        finally:
            con.close()
    return ExtractResult(found.period, found.dept, "rejected", results, message)


def prepare_part(inbox: Path, period: str, dept: str, files: list[Path], lake: Path, part: str,
                 token: str, blobs: dict[Path, bytes | None] | None = None,
                 shas: dict[Path, str] | None = None, in_memory: bool = False) -> PreparedPart:
    """Read and conform some files of one extract (all of them, or one county's) into Parquet.

    Pure: no warehouse connection, so it runs in a thread or on a Dask worker alike. Writes the
    rows as delivered (raw), the conformed rows (pending) and the quarantined rows with their
    reasons and their text as delivered, each under ``lake`` named by ``token`` (the run id).
    A file that cannot be read refuses the whole extract: this part's readable rows all go to
    quarantine with their own defects and the refusal (:func:`load_parts` does the same for the
    extract's other parts).
    """
    inbox = Path(inbox)
    contract = load_contract(dept)
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    if blobs is None:
        blobs = {path: _read_bytes(path) for path in files}
    pairs = [(path, blobs.get(path)) for path in files]
    hashes = [shas[path] if shas and path in shas else hashlib.sha256(data or b"").hexdigest()
              for path, data in pairs]
    delivered = _read_all(inbox, pairs, hashes, contract)
    del pairs
    broken = [d for d in delivered if d.error]
    readable = [d for d in delivered if d.read]
    t1 = time.perf_counter()
    conformed = conform(_combined(readable), contract) if readable else None
    t2 = time.perf_counter()
    errors = [d.error for d in broken]
    message = "；".join(errors) if errors else None

    quarantined = conformed.quarantined if conformed else None
    staged = conformed.staged if conformed else None
    if broken and quarantined is not None:
        quarantined, staged = _refuse_all(quarantined, staged, readable, REJECTED_PREFIX + message)

    results = []
    q_counts, s_counts = _counts(quarantined), _counts(staged)
    for d in delivered:
        if d.error:
            results.append(FileResult(d.file, d.sha256, 0, 0, 0, d.error))
            continue
        read = d.read.rows_read
        loaded, quar = s_counts.get(d.file, 0), q_counts.get(d.file, 0)
        assert loaded + quar == read, (d.file, read, loaded, quar)
        results.append(FileResult(d.file, d.sha256, read, loaded, quar,
                                  (REJECTED_PREFIX + message) if broken
                                  else "；".join(d.read.notes) or None,
                                  _extra_columns(d, contract)))

    raw = _raw_frame(readable, contract, period, token)
    q_table = None
    if quarantined is not None and quarantined.height:
        q_table = quarantined.select(
            pl.col(FILE).alias("file"), pl.col(ROW).alias("row_number"), pl.col(REASONS).alias("reasons"),
        ).with_columns(_row_data(quarantined, readable).alias("row_data"))
    pending = None
    if staged is not None and staged.height:
        pending = staged.with_columns(_constant(period).alias("period"), _constant(token).alias("run_id"))
    t3 = time.perf_counter()
    # raw and pending are read by their views; quarantine rows only travel to load_parts
    layers = {"raw": raw, "pending": pending}
    if not in_memory:
        layers["quarantine"] = q_table
    written = {layer: _write_part(frame, _part_dir(lake, layer, period, dept, part), token)
               for layer, frame in layers.items()}
    seconds.update(read=t1 - t0, conform=t2 - t1, prepare=t3 - t2, write=time.perf_counter() - t3)
    frames = None
    if in_memory:
        frames = {"quarantine": q_table} if q_table is not None and q_table.height else {}
    return PreparedPart(period, dept, part, results, errors, written["raw"], written.get("pending"),
                        written.get("quarantine"), _where(), seconds, frames)


def _refuse_all(quarantined: pl.DataFrame, staged: pl.DataFrame, readable: list[_Delivered],
                refusal: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Every readable row to quarantine, with its own defects (so the department fixes everything
    at once) and the refusal."""
    everything = pl.concat([
        staged.select(FILE, ROW).with_columns(pl.lit([], dtype=pl.List(pl.Utf8)).alias(REASONS)),
        quarantined.select(FILE, ROW, REASONS),
    ])
    everything = everything.with_columns(pl.col(REASONS).list.concat(pl.lit([refusal])))
    return everything.join(_combined(readable), on=[FILE, ROW], how="left"), staged.clear()


@contextlib.contextmanager
def _owner_only():
    """Folders and files made inside are readable by their owner only: the lake holds the same
    personal data as the DuckDB file (tasks.core.db.connect does the same for it)."""
    old_umask = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old_umask)


def _write_part(frame: pl.DataFrame | None, folder: Path, token: str) -> str | None:
    """Write a partition file readable by its owner only; None when empty."""
    if frame is None or frame.height == 0:
        return None
    path = folder / f"{token}.parquet"
    with _owner_only():
        folder.mkdir(parents=True, exist_ok=True)
        frame.write_parquet(path, compression="lz4")   # statistics: DuckDB skips other periods by them
    return str(path)


def _where() -> str:
    """Where a part was prepared: the Dask worker's address, else this process. Dask is asked only
    when already imported (a Dask worker has it): importing it to hear "no" cost every local run
    0.5 s of CPU."""
    distributed = sys.modules.get("distributed")
    if distributed is None:
        return f"pid-{os.getpid()}"
    try:
        return distributed.get_worker().address
    except Exception:  # noqa: BLE001 - not on a Dask worker (or distributed not installed)
        return f"pid-{os.getpid()}"


def load_parts(warehouse: Path, inbox: Path, period: str, dept: str, parts: list[PreparedPart],
               run_id: str) -> ExtractResult:
    """The one writer: an extract's prepared parts into pending, quarantine.rows, raw and audit.

    One transaction replaces the period's pending, quarantine and raw rows of the department.
    raw.<dept> and pending.<dept> are views over the Parquet files audit.lake_files lists, so
    replacing the catalog rows and the view in the same transaction makes the new files visible
    atomically; files no longer listed are deleted after the commit. If any part had a file that
    could not be read, the whole extract is refused: the other parts' rows go to quarantine too.
    """
    contract = load_contract(dept)
    errors = [e for p in parts for e in p.errors]
    status = "rejected" if errors else "staged"
    message = "；".join(errors) if errors else None
    results = [f for p in parts for f in p.files]
    skipped = skipped_results(delivery(inbox, period, dept))
    refused = [p for p in parts if errors and not p.errors]   # readable parts of a refused extract
    if refused:
        refusal = REJECTED_PREFIX + message
        results = [f for p in parts if p.errors for f in p.files] + [
            FileResult(f.file, f.sha256, f.rows_read, 0, f.rows_read, refusal, f.extra_columns)
            for p in refused for f in p.files]
    # pending.<dept> lists the conformed Parquet files (nothing is inserted: the rows are
    # written into DuckDB once, when promoted to staging); a refused extract lists none.
    results += skipped
    pending = [p.pending for p in parts if p.pending and not errors]
    quarantine = _sources(parts, "quarantine")
    raw = [p.raw for p in parts if p.raw]
    with write_lock:
        con = open_warehouse(warehouse)
        try:
            con.execute("BEGIN TRANSACTION")
            try:
                con.execute("DELETE FROM quarantine.rows WHERE period = ? AND dept = ?", [period, dept])
                _replace_listed(con, warehouse, "pending", contract, period, pending, run_id)
                # A refused extract's rows carry the refusal (parts with an unreadable file
                # added their own already).
                reasons_sql = ("CASE WHEN list_bool_or(list_transform(reasons, lambda r: starts_with(r, ?))) "
                               "THEN reasons ELSE list_append(reasons, ?) END" if errors else "reasons")
                for source in _relations(con, quarantine):
                    con.execute(
                        "INSERT INTO quarantine.rows (run_id, period, dept, file, row_number, reasons, "
                        f"stage, row_data) SELECT ?, ?, ?, file, row_number, {reasons_sql}, ?, row_data "
                        f"FROM {source}",
                        [run_id, period, dept] + ([REJECTED_PREFIX, REJECTED_PREFIX + message] if errors else [])
                        + [STAGE_CONFORM])
                if refused:
                    _quarantine_refused_parts(con, contract, run_id, period, dept, refused,
                                              REJECTED_PREFIX + message)
                _replace_listed(con, warehouse, "raw", contract, period, raw, run_id)
                _write_audit(con, run_id, period, dept, results, status)
                if len(parts) > 1 and not errors and _quarantine_cross_part_duplicates(
                        con, contract, run_id, period, raw):
                    _recount(con, run_id, period, dept)
                    results = _audit_result(con, run_id, period, dept).files
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        finally:
            con.close()
    _remove_files(p for part in parts for p in (part.quarantine,) if p)
    _remove_unlisted(warehouse, "pending", dept, period, pending)
    _remove_unlisted(warehouse, "raw", dept, period, raw)
    # what was noted on readable files (sheets not read, an empty snapshot) reaches the run output
    notes = "；".join(dict.fromkeys(f.message for f in results if f.message))
    return ExtractResult(period, dept, status, results, message or notes or None)


def _quarantine_cross_part_duplicates(con, contract: Contract, run_id: str, period: str,
                                      raw: list[str]) -> int:
    """重复行 across parts: a row identical as delivered to an earlier row (file, then row order)
    of another part — what conforming finds within a part, and cannot across parts conformed
    apart. Moves those rows from pending to quarantine; returns how many."""
    if not raw:
        return 0
    dept = contract.code
    # Conforming compares every delivered column, a column a file lacks counting as empty: so
    # an extra column's empty cells are left out of the comparison ("备注":null = no 备注).
    extra = r"""regexp_replace(extra, '"(?:[^"\\]|\\.)*":null', '', 'g')"""
    extra = f"regexp_replace({extra}, ',{{2,}}', ',', 'g')"
    extra = f"nullif(replace(replace({extra}, '{{,', '{{'), ',}}', '}}'), '{{}}')"
    same = ", ".join(f'"{c.name}"' for c in contract.columns) + f", {extra}"
    rows = f"read_parquet({_sql_list(raw)}, union_by_name = true, hive_partitioning = false)"
    # Hashes first (one aggregation); only rows whose hash occurs twice are compared exactly and
    # ordered, so a hash collision can never make two different rows duplicates.
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE __cross_duplicates AS
        WITH repeated AS (SELECT hash({same}) AS h FROM {rows} GROUP BY h HAVING count(*) > 1)
        SELECT source_file, source_row FROM (
            SELECT source_file, source_row,
                   row_number() OVER (PARTITION BY {same} ORDER BY source_file, source_row) AS copy
            FROM {rows} WHERE hash({same}) IN (SELECT h FROM repeated))
        WHERE copy > 1
        """)
    con.execute(
        f"""
        INSERT INTO quarantine.rows (run_id, period, dept, file, row_number, reasons, stage, row_data)
        SELECT ?, p.period, ?, p.source_file, p.source_row, [?], ?, {_raw_json_sql(contract, "r")}
        FROM pending.{dept} p
        JOIN __cross_duplicates d ON d.source_file = p.source_file AND d.source_row = p.source_row
        LEFT JOIN raw.{dept} r
          ON r.period = p.period AND r.source_file = p.source_file AND r.source_row = p.source_row
        WHERE p.period = ?
        """, [run_id, dept, reasons.DUPLICATE_ROW, STAGE_CONFORM, period])
    moved = drop_pending_rows(con, dept, period, "__cross_duplicates")
    con.execute("DROP TABLE __cross_duplicates")
    return int(moved)


def _sources(chosen: list[PreparedPart], layer: str) -> list:
    """What to load of a layer: the Parquet files of the chosen parts, or their frames in memory."""
    files = [getattr(p, layer) for p in chosen if getattr(p, layer)]
    frames = [p.frames[layer] for p in chosen if p.frames and layer in p.frames]
    return ([files] if files else []) + frames


def _relations(con, sources: list):
    """SQL to select from, one per source (a list of Parquet files, or a polars frame)."""
    for i, source in enumerate(sources):
        if isinstance(source, list):
            yield "read_parquet(" + _sql_list(source) + ", hive_partitioning = false)"
        else:
            name = f"__load_{i}"
            con.register(name, source.to_arrow())
            try:
                yield name
            finally:
                con.unregister(name)


def _sql_list(paths: list[str]) -> str:
    return "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths) + "]"


def _quarantine_refused_parts(con, contract: Contract, run_id: str, period: str, dept: str,
                              refused: list[PreparedPart], refusal: str) -> None:
    """A refused extract's rows that conformed, from the parts that were readable: to quarantine,
    with their text as delivered (from the raw files)."""
    raw = [p.raw for p in refused if p.raw]
    row_json = _raw_json_sql(contract, "r")
    raw_sql = (f"read_parquet({_sql_list(raw)}, hive_partitioning = false)" if raw
               else f"({empty_layer_select(contract)})")
    for source in _relations(con, _sources(refused, "pending")):
        con.execute(
            f"""
            INSERT INTO quarantine.rows (run_id, period, dept, file, row_number, reasons, stage, row_data)
            SELECT ?, ?, ?, p.source_file, p.source_row, [?], ?, {row_json}
            FROM {source} p LEFT JOIN {raw_sql} r
              ON r.source_file = p.source_file AND r.source_row = p.source_row
            """,
            [run_id, period, dept, refusal, STAGE_CONFORM],
        )


# --------------------------------------------------------------------------------------------
# raw.<dept> and pending.<dept>: views over Parquet files in the lake

def _list_files(con, layer: str, dept: str, period: str, files: list[str], run_id: str | None) -> None:
    """Add files to audit.lake_files (relative to the lake: tasks/core/lake.py)."""
    if files:
        con.executemany("INSERT INTO audit.lake_files (layer, dept, period, path, run_id) "
                        "VALUES (?, ?, ?, ?, ?)",
                        [[layer, dept, period, listed_path(con, f), run_id] for f in files])


def _replace_listed(con, warehouse: Path, layer: str, contract: Contract, period: str,
                    files: list[str], run_id: str) -> None:
    """List ``files`` as the period's files of the layer for the department; redefine the view.
    For pending, rows dropped from the period's earlier files are forgotten with them."""
    con.execute("DELETE FROM audit.lake_files WHERE layer = ? AND dept = ? AND period = ?",
                [layer, contract.code, period])
    if layer == "pending":
        con.execute("DELETE FROM audit.pending_dropped WHERE dept = ? AND period = ?", [contract.code, period])
    _list_files(con, layer, contract.code, period, files, run_id)
    define_layer_view(con, layer, contract, lake_root(warehouse).resolve())


def define_layer_view(con, layer: str, contract: Contract, lake: Path) -> None:
    """raw.<dept> / pending.<dept> over every file the layer's catalog lists, or empty.

    Paths are relative to the lake, resolved through the connection's file_search_path
    (tasks/core/lake.py): a warehouse moved with its .lake folder reads the files where they now
    are; a copy of the DuckDB file alone (a backup, a test's "before" state) goes on reading the
    files of the warehouse it was copied from, and writes its own new ones into its own lake.
    pending leaves out the rows a validation or the writer dropped (audit.pending_dropped).
    """
    # duckdb_tables() lists base tables only (information_schema.tables, a view over every
    # kind of catalog entry, cost 1.2 ms a call against 0.5, twice per staged department)
    kind = con.execute("SELECT 1 FROM duckdb_tables() WHERE database_name = current_database() "
                       "AND schema_name = ? AND table_name = ?", [layer, contract.code]).fetchall()
    if kind:   # a warehouse from before the lake (the layer a table): move its rows
        _migrate_table(con, layer, contract.code, Path(lake))
    listed = [r[0] for r in con.execute(
        "SELECT path FROM audit.lake_files WHERE layer = ? AND dept = ? ORDER BY period, path",
        [layer, contract.code]).fetchall()]
    if not listed:
        body = empty_layer_select(contract, layer)
    else:
        files = f"read_parquet({_sql_list(listed)}, union_by_name = true, hive_partitioning = false)"
        if layer == "raw":
            body = f"SELECT {', '.join(chr(34) + n + chr(34) for n in raw_column_names(contract))} FROM {files}"
        else:
            typed = ", ".join(f'CAST(p."{n}" AS {t}) AS "{n}"' for n, t in contract.staged_ddl_columns())
            body = (f"SELECT {typed} FROM {files} p WHERE NOT EXISTS (SELECT 1 FROM audit.pending_dropped d "
                    f"WHERE d.dept = '{contract.code}' AND d.period = p.period "
                    f"AND d.source_file = p.source_file AND d.source_row = p.source_row)")
    con.execute(f"CREATE OR REPLACE VIEW {layer}.{contract.code} AS {body}")


def _migrate_table(con, layer: str, dept: str, lake: Path) -> None:
    """<layer>.<dept> as a table (before the lake): each period's rows to a Parquet file it lists."""
    periods = [r[0] for r in con.execute(
        f"SELECT DISTINCT period FROM {layer}.{dept} WHERE period NOT IN "
        f"(SELECT period FROM audit.lake_files WHERE layer = ? AND dept = ?)", [layer, dept]).fetchall()]
    for period in periods:   # a loop over periods, a COPY each
        folder = _part_dir(lake, layer, period, dept, "migrated")
        target = folder / "table.parquet"
        with _owner_only():
            folder.mkdir(parents=True, exist_ok=True)
            con.execute(f"COPY (SELECT * FROM {layer}.{dept} WHERE period = ?) TO '{target.as_posix()}' "
                        f"(FORMAT parquet)", [period])
        _list_files(con, layer, dept, period, [str(target)], None)
    con.execute(f"DROP TABLE {layer}.{dept}")


def land_pending(con, warehouse: Path, dept: str, period: str, relation: str, run_id: str) -> Path:
    """Add the rows of a SQL relation (staged columns and lineage) to pending.<dept> as one more
    Parquet file of the period: for tools and tests that make pending rows without a delivery.
    In the caller's transaction, if any."""
    contract = load_contract(dept)
    folder = _part_dir(lake_root(warehouse), "pending", period, dept, "landed")
    target = folder / f"{run_id}-{time.time_ns()}.parquet"
    columns = ", ".join(f'"{n}"' for n, _ in contract.staged_ddl_columns())
    with _owner_only():
        folder.mkdir(parents=True, exist_ok=True)
        con.execute(f"COPY (SELECT {columns} FROM {relation}) TO '{target.as_posix()}' (FORMAT parquet)")
    _list_files(con, "pending", dept, period, [str(target)], run_id)
    define_layer_view(con, "pending", contract, lake_root(warehouse).resolve())
    return target


def drop_pending_rows(con, dept: str, period: str, keys_table: str) -> int:
    """Leave rows out of pending.<dept> (its files are never rewritten): those of ``keys_table``
    (columns source_file, source_row) for the period. In the caller's transaction."""
    return con.execute(
        f"INSERT INTO audit.pending_dropped (dept, period, source_file, source_row) "
        f"SELECT DISTINCT ?, ?, k.source_file, k.source_row FROM {keys_table} k "
        f"SEMI JOIN pending.{dept} p ON p.period = ? AND p.source_file = k.source_file "
        f"AND p.source_row = k.source_row", [dept, period, period]).fetchone()[0]


def _remove_files(paths) -> None:
    for path in paths:
        Path(path).unlink(missing_ok=True)


def _remove_unlisted(warehouse: Path, layer: str, dept: str, period: str, keep: list[str]) -> None:
    """Files of (dept, period) left by earlier deliveries or a run that died before its commit."""
    folder = lake_root(warehouse) / layer / f"dept={dept}" / f"period={period}"
    kept = {Path(k).resolve() for k in keep}
    for path in folder.rglob("*.parquet") if folder.is_dir() else ():
        if path.resolve() not in kept:
            path.unlink(missing_ok=True)


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
          AND sha256 IS NOT NULL
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
    contract = load_contract(dept)  # an unknown department fails here, not in SQL
    with write_lock:
        con = open_warehouse(warehouse)
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
                # the one time these rows are written into DuckDB (staging was the second copy)
                con.execute(f"INSERT INTO staging.{dept} SELECT * FROM pending.{dept} "
                            f"WHERE period = ? AND run_id = ?", [period, run_id])
                _replace_listed(con, warehouse, "pending", contract, period, [], run_id)
                con.execute("UPDATE audit.extracts SET status = 'accepted' "
                            "WHERE run_id = ? AND period = ? AND dept = ?", [run_id, period, dept])
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            result = _audit_result(con, run_id, period, dept)
        finally:
            con.close()
    _remove_unlisted(warehouse, "pending", dept, period, [])
    return result


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
        con = open_warehouse(warehouse)
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
                _replace_listed(con, warehouse, "pending", contract, period, [], run_id)
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
        finally:
            con.close()
    _remove_unlisted(warehouse, "pending", dept, period, [])
    return result


def _raw_json_sql(contract: Contract, alias: str) -> str:
    """The raw row as JSON of canonical header → text, merged with its extra columns."""
    pairs = ", ".join(f"'{c.header}', {alias}.\"{c.name}\"" for c in contract.columns)
    return f"CAST(json_merge_patch(json_object({pairs}), coalesce({alias}.extra, '{{}}')) AS VARCHAR)"
