"""The inbox: ``<inbox>/<period>/<dept>/<files>`` — which periods, which departments, which files.

One definition of a department's *delivery* (:func:`delivery`), used by everything that looks at
the inbox: the change check that decides whether a period has anything new
(:func:`pending_periods`, the inbox watch), the completeness check before staging, and the reader
(``tasks.ingest.load``). What the change check hashes is exactly what the reader reads, so a
corrected file is never read on a first load and then ignored when it changes.

A delivery is every regular file under the department's folder, subfolders included, whatever
its name or type (a ``.txt`` CSV, an ``.xlsm``, a dot-file are read; a type the reader does not
know refuses the extract with its name). Only what an operating system or Office leaves beside
the files is not read — Office lock files ``~$…``, macOS ``._…`` and ``.DS_Store``, Windows
``Thumbs.db`` / ``desktop.ini`` — and those are listed as *skipped*, with the reason, so that the
receipt and the run output name them. A folder or file that cannot be listed or opened
(permissions) is listed as *unreadable*: the department is rejected with that reason, and every
other department loads.

Names are strict (:func:`check_period`, :func:`check_department`): a period is ``YYYY-MM`` with
a month 01–12; a department is one with a contract. Folders of the inbox that do not match are
reported by :func:`inbox_problems`, never silently skipped.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from povwatch.tasks.ingest.contracts import department_codes

PERIOD_RE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
PARTIAL_MARKERS = (".part", ".tmp", ".crdownload", ".partial", ".filepart")
SYSTEM_FILES = {".DS_Store": "macOS系统文件", "Thumbs.db": "Windows缩略图缓存",
                "desktop.ini": "Windows文件夹设置"}
SKIPPED_PREFIXES = {"~$": "Excel/Word临时锁文件", "._": "macOS附属文件"}
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


class BadName(ValueError):
    """A period or department name that does not match the inbox's naming."""


def check_period(text: str) -> str:
    """``YYYY-MM`` with a month 01–12, else BadName saying what is expected."""
    value = str(text).strip()
    if not PERIOD_RE.match(value):
        raise BadName(f"期次“{text}”格式不对：应为 YYYY-MM，月份 01–12（如 2020-06） / "
                      f"period {text!r} is not YYYY-MM with a month 01-12")
    return value


def check_department(code: str) -> str:
    if code not in department_codes():
        raise BadName(f"未知部门“{code}”（已知：{'、'.join(department_codes())}） / unknown department {code!r}")
    return code


# --------------------------------------------------------------------------------------------
# one department's delivery


@dataclass(frozen=True)
class Delivery:
    """What a department delivered for a period: the files read, and what is not read and why."""

    period: str
    dept: str
    folder: Path
    files: tuple[Path, ...] = ()
    skipped: tuple[tuple[str, str], ...] = ()      # (name relative to the inbox, reason)
    unreadable: tuple[tuple[str, str], ...] = ()   # (name relative to the inbox, reason)

    @property
    def delivered(self) -> bool:
        return bool(self.files or self.unreadable)


def _relative(inbox: Path, path: Path) -> str:
    try:
        return path.relative_to(inbox).as_posix()
    except ValueError:
        return path.as_posix()


def skip_reason(name: str) -> str | None:
    """Why a file of this name is not read (an OS or Office leftover), or None: it is read."""
    if name in SYSTEM_FILES:
        return SYSTEM_FILES[name]
    for prefix, reason in SKIPPED_PREFIXES.items():
        if name.startswith(prefix):
            return reason
    return None


def delivery(inbox: Path, period: str, dept: str) -> Delivery:
    """The department's delivery: every file under its folder (sorted), subfolders included."""
    inbox = Path(inbox)
    folder = inbox / period / dept
    if not folder.is_dir():
        return Delivery(period, dept, folder)
    files, skipped, unreadable = [], [], []

    def cannot_list(error: OSError) -> None:
        name = _relative(inbox, Path(error.filename)) if error.filename else f"{period}/{dept}"
        unreadable.append((name, f"文件夹“{name}”无法读取（{error.strerror or type(error).__name__}）"))

    for root, dirs, names in os.walk(folder, onerror=cannot_list, followlinks=False):
        root_path = Path(root)
        dirs.sort()
        for d in dirs:
            if (root_path / d).is_symlink():   # os.walk does not follow it: the reader refuses it
                files.append(root_path / d)
        for name in sorted(names):
            path = root_path / name
            reason = skip_reason(name)
            if reason:
                skipped.append((_relative(inbox, path), f"未读取：{reason}"))
            elif not os.access(path, os.R_OK):
                unreadable.append((_relative(inbox, path),
                                   f"文件“{_relative(inbox, path)}”无法读取（权限不足）"))
            else:
                files.append(path)
    return Delivery(period, dept, folder, tuple(sorted(files)), tuple(skipped), tuple(unreadable))


# Relative cost of reading a byte, by file type: an .xlsx is zipped XML, ~3.3x the work of a CSV
# byte for the same rows (size M, each department staged alone: fupin's 12 MB workbook 2.0 s of
# CPU, yibao's 20 MB of CSV 1.0 s). A file also has a fixed cost (opening, sniffing, a Parquet
# part), ~6 ms, worth ~120 kB of CSV.
_READ_COST_PER_BYTE = {".xlsx": 3.3, ".xlsm": 3.3, ".xls": 3.3}
_READ_COST_PER_FILE = 120_000


def staging_order(inbox: Path, period: str, depts: list[str]) -> list[str]:
    """The departments, the costliest delivery to read first (ties in the order given).

    Staging runs a few departments at once on two cores; started in department order, the
    period's largest workbook or CSV could begin late and be the only thing left running at the
    end, one core idle (size M: the last ~1 s of staging). Largest first, the small deliveries
    fill in around the large ones (longest-processing-time-first scheduling). The cost is
    estimated from the files' sizes and types only (a stat each), so the order is known before
    anything is read."""
    def cost(dept: str) -> float:
        total = 0.0
        for path in delivery(inbox, period, dept).files:
            try:
                size = path.stat().st_size
            except OSError:
                continue
            total += size * _READ_COST_PER_BYTE.get(path.suffix.lower(), 1.0) + _READ_COST_PER_FILE
        return total

    position = {d: i for i, d in enumerate(depts)}
    return sorted(depts, key=lambda d: (-cost(d), position[d]))


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes; of nothing when it cannot be read (as the reader records it)."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    except OSError:
        return EMPTY_SHA256
    return h.hexdigest()


def unreadable_sha256(name: str) -> str:
    """A stable stand-in hash for an entry that cannot be read, so that its rejection is recorded
    once and the period is not run again until the entry changes (becomes readable)."""
    return hashlib.sha256(f"unreadable:{name}".encode("utf-8")).hexdigest()


def fingerprint(d: Delivery, hashes: "HashCache | None" = None) -> list[str]:
    """sorted sha256 of what the change check compares: the files read, and the unreadable entries."""
    digest = hashes.sha256 if hashes is not None else file_sha256
    return sorted([digest(f) for f in d.files] + [unreadable_sha256(n) for n, _ in d.unreadable])


class HashCache:
    """sha256 of inbox files kept between change checks, by what ``stat`` says of each file.

    Without it every check (each ``povwatch run`` without ``--period``, each poll of the inbox
    watch) read and hashed every file of every period kept in the inbox: ~0.075 s CPU per period
    at size M, growing with the months kept. A file is hashed again when its size, mtime, ctime
    or inode differ from those it was hashed with. Any write to a file moves its ctime (which no
    copy tool can set back), so a corrected file is never taken for the one hashed before. The
    kernel stamps times with a coarse clock: a file written in the same tick as it was hashed
    could keep its times, so only files whose times are older than ``RACY_NS`` before the hashing
    are kept (younger ones, a delivery still arriving, are hashed at every check).
    """

    RACY_NS = 2_000_000_000

    def __init__(self, path: Path | None):
        self.path = Path(path) if path is not None else None
        self.known: dict[str, list] = {}
        self.changed = False
        if self.path is not None:
            try:
                loaded = json.loads(self.path.read_text(encoding="utf-8"))
                self.known = loaded if isinstance(loaded, dict) else {}
            except (OSError, ValueError):
                self.known = {}   # absent or unreadable: every file is hashed, as before

    def sha256(self, path: Path) -> str:
        try:
            st = path.stat()
        except OSError:
            return file_sha256(path)
        key = str(path)
        signature = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
        entry = self.known.get(key)
        if isinstance(entry, list) and entry[:4] == signature and len(entry) == 5:
            return entry[4]
        started = time.time_ns()
        digest = file_sha256(path)
        if max(st.st_mtime_ns, st.st_ctime_ns) < started - self.RACY_NS and digest != EMPTY_SHA256:
            self.known[key] = [*signature, digest]
            self.changed = True
        return digest

    def save(self) -> None:
        """Write the cache (owner-only, replaced in one step) when it learnt a file."""
        if self.path is None or not self.changed:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # a name of its own: two checks at once (a run and the watch) never share a half-written file
            tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(self.known), encoding="utf-8")
            tmp.chmod(0o600)
            os.replace(tmp, self.path)
        except OSError:
            pass   # a cache: the next check hashes again


# --------------------------------------------------------------------------------------------
# the inbox's periods and what does not match


def looks_like_inside(inbox: Path) -> str | None:
    """A message when ``inbox`` is a period or department folder rather than the inbox."""
    inbox = Path(inbox)
    name = inbox.name
    if PERIOD_RE.match(name) or name in department_codes():
        return (f"“{inbox}”是期次或部门文件夹，不是收件箱：请指定其上级的收件箱文件夹 / "
                f"{inbox} is a period or department folder; give the inbox that holds <period>/<dept>/")
    return None


def discover_periods(inbox: Path) -> list[str]:
    """The well-named ``YYYY-MM`` folders of the inbox, oldest first."""
    inbox = Path(inbox)
    if not inbox.is_dir():
        return []
    return sorted(p.name for p in inbox.iterdir() if p.is_dir() and PERIOD_RE.match(p.name))


# What `povwatch generate` plants beside a demo county's extracts (docs/generator.md)
DEMO_TRUTH_FILES = ("monitoring.csv", "problems.csv", "quarantine.csv")


def is_demo_truth(entry: Path) -> bool:
    """The generator's truth/ folder: the demo inbox's answer key, not a misplaced delivery, so
    a run does not list it as "not read" (every demo run did). Known by its files: a folder
    a clerk named truth/ without them is still listed."""
    return entry.name == "truth" and entry.is_dir() and all(
        (entry / name).is_file() for name in DEMO_TRUTH_FILES)


def inbox_problems(inbox: Path) -> list[str]:
    """Everything in the inbox that does not match ``<YYYY-MM>/<known dept>/``: each one a line."""
    inbox = Path(inbox)
    if not inbox.is_dir():
        return [f"收件箱不存在 / inbox not found: {inbox}"]
    known = set(department_codes())
    problems = []
    for entry in sorted(inbox.iterdir()):
        if skip_reason(entry.name) or is_demo_truth(entry):
            continue
        if not entry.is_dir():
            problems.append(f"“{entry.name}”：收件箱顶层应只有期次文件夹（YYYY-MM），未读取 / not a period folder")
        elif not PERIOD_RE.match(entry.name):
            problems.append(f"“{entry.name}”：期次文件夹名应为 YYYY-MM（月份 01–12），未读取 / "
                            f"not a period name, not read")
        else:
            try:
                children = sorted(entry.iterdir())
            except OSError as exc:
                problems.append(f"“{entry.name}”：期次文件夹无法读取（{exc.strerror}） / cannot be listed")
                continue
            for child in children:
                if skip_reason(child.name):
                    continue
                if not child.is_dir():
                    problems.append(f"“{entry.name}/{child.name}”：应放在部门文件夹内，未读取 / "
                                    f"not in a department folder, not read")
                elif child.name not in known:
                    problems.append(f"“{entry.name}/{child.name}”：未知部门（无数据约定），未读取 / "
                                    f"unknown department, not read")
    return problems


def hash_cache_path(warehouse: Path) -> Path:
    """Where the change check keeps the inbox files' sha256 for a warehouse: beside it, named after
    it (``<warehouse>.inbox-sha256.json``: the warehouse's own, like its WAL; paths and hashes)."""
    warehouse = Path(warehouse)
    return warehouse.with_name(warehouse.name + ".inbox-sha256.json")


def pending_periods(inbox: Path, seen: set[tuple[str, str, str]],
                    hash_cache: Path | None = None) -> list[str]:
    """Periods holding a delivered file (or unreadable entry) whose sha256 is not in ``seen``
    ((period, dept, sha256) of every file the warehouse has recorded), oldest first.
    ``hash_cache``: a file keeping the files' sha256 between checks (:class:`HashCache`)."""
    pending = []
    hashes = HashCache(hash_cache)
    for period in discover_periods(inbox):
        for dept in department_codes():
            d = delivery(inbox, period, dept)
            if d.delivered and any((period, dept, h) not in seen for h in fingerprint(d, hashes)):
                pending.append(period)
                break
    hashes.save()
    return pending


# --------------------------------------------------------------------------------------------
# is the delivery complete?


class FileStillCopying(RuntimeError):
    """A department's files are still being written: worth waiting and retrying."""


def check_delivery_complete(d: Delivery, settle: float) -> None:
    """Raise FileStillCopying while a file is partial or changed within the last ``settle`` seconds.

    Files are normally old by the time a run starts: then this costs one ``stat`` per file. A file
    that is younger is watched for ``settle`` seconds: its size and mtime must not move.
    """
    partial = [f.name for f in d.files if f.name.lower().endswith(PARTIAL_MARKERS)]
    if partial:
        raise FileStillCopying(f"{d.dept}: 文件仍在复制 still being copied: {', '.join(partial)}")
    now = time.time()
    young = [f for f in d.files if _mtime(f) is not None and now - _mtime(f) < settle]
    if not young:
        return
    before = {f: _signature(f) for f in young}
    time.sleep(settle)
    moved = [f.name for f, sig in before.items() if _signature(f) != sig]
    if moved:
        raise FileStillCopying(f"{d.dept}: 文件仍在变化 still changing: {', '.join(moved)}")


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def _signature(path: Path) -> tuple | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns)
