"""One writing run per warehouse: an OS file lock beside the DuckDB file.

DuckDB itself allows one writing *process* per file and refuses a second one with an error that
names a PID. That is not enough: two runs may be started minutes apart (a scheduled run and a
clerk's ``povwatch run``), and the second should wait its turn, then either run or stop with a
message a person understands. So every writing run holds ``<warehouse>.lock`` (``fcntl.flock``,
exclusive) for its whole duration; the lock file records who holds it.

``flock`` locks belong to an open file description, so the lock also excludes a second run in the
same process (a thread), and the kernel drops it when the holder dies: no stale locks.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

DEFAULT_TIMEOUT_SECONDS = 300.0


def default_timeout() -> float:
    """$POVWATCH_LOCK_TIMEOUT (seconds a second run waits for the first), else 300."""
    from povwatch.tasks.core.settings import load_settings

    return load_settings().lock_timeout


class WarehouseBusy(RuntimeError):
    """Another run holds the warehouse (Chinese first, then English)."""


def lock_path(warehouse: Path | str) -> Path:
    warehouse = Path(warehouse)
    return warehouse.with_name(warehouse.name + ".lock")


def holder(warehouse: Path | str) -> dict | None:
    """Who holds (or last held) the lock, as written by the holder; None if never locked."""
    try:
        text = lock_path(warehouse).read_text(encoding="utf-8").strip()
        return json.loads(text) if text else None
    except (OSError, ValueError):
        return None


def is_locked(warehouse: Path | str) -> bool:
    """True when a run holds the warehouse right now."""
    path = lock_path(warehouse)
    if not path.exists():
        return False
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh, fcntl.LOCK_UN)
        return False


def _describe(info: dict | None) -> tuple[str, str]:
    if not info:
        return "另一个运行", "another run"
    who = f"{info.get('what', 'povwatch')}（PID {info.get('pid')}，{info.get('host', '')}，始于 {info.get('since', '?')}）"
    who_en = f"{info.get('what', 'povwatch')} (PID {info.get('pid')} on {info.get('host', '')}, since {info.get('since', '?')})"
    return who, who_en


def busy_message(warehouse: Path | str, waited: float | None = None) -> str:
    who, who_en = _describe(holder(warehouse))
    waited_zh = f"已等待 {waited:.0f} 秒，" if waited else ""
    waited_en = f" after waiting {waited:.0f} s" if waited else ""
    return (
        f"数据仓库 {warehouse} 正在被{who}写入，{waited_zh}本次运行已停止，请待其结束后重试。"
        f" / The warehouse {warehouse} is being written by {who_en}; this run stopped{waited_en}."
        f" Try again when it has finished (lock file {lock_path(warehouse)})."
    )


@contextlib.contextmanager
def warehouse_lock(
    warehouse: Path | str,
    timeout: float | None = None,
    what: str = "povwatch run",
    poll: float = 0.2,
) -> Iterator[Path]:
    """Hold the warehouse's write lock; wait up to ``timeout`` seconds, then raise WarehouseBusy.

    ``timeout=0`` means do not wait. Default: $POVWATCH_LOCK_TIMEOUT, else 300 s.
    """
    timeout = default_timeout() if timeout is None else timeout
    path = lock_path(warehouse)
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = open(path, "a+", encoding="utf-8")
    started = time.monotonic()
    try:
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                waited = time.monotonic() - started
                if waited >= timeout:
                    raise WarehouseBusy(busy_message(warehouse, waited)) from None
                time.sleep(poll)
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps({
            "what": what, "pid": os.getpid(), "host": socket.gethostname(),
            "since": dt.datetime.now().isoformat(timespec="seconds"),
        }, ensure_ascii=False))
        fh.flush()
        try:
            yield path
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
    finally:
        fh.close()


def open_for_reading(warehouse: Path | str):
    """A read-only DuckDB connection, or WarehouseBusy with a clear message while a run writes.

    DuckDB refuses a reader in another process while a writer has the file open; its own error
    ("Could not set lock on file ... Conflicting lock is held") names only a PID.
    """
    import duckdb

    warehouse = Path(warehouse)
    if not warehouse.exists():
        raise FileNotFoundError(
            f"数据仓库 {warehouse} 不存在，请先运行 povwatch run 或 povwatch demo。"
            f" / No warehouse at {warehouse}: run `povwatch run` or `povwatch demo` first."
        )
    try:
        return duckdb.connect(str(warehouse), read_only=True)
    except duckdb.IOException as exc:
        if "lock" not in str(exc).lower():
            raise
        who, who_en = _describe(holder(warehouse))
        raise WarehouseBusy(
            f"数据仓库 {warehouse} 正在被{who}写入，暂时无法读取，请待其结束后重试。"
            f" / The warehouse is being written by {who_en}; it cannot be read until that run"
            f" finishes. Try again shortly."
        ) from exc
