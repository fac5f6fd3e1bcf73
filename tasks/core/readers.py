"""Who holds the warehouse file when a run cannot open it for writing.

DuckDB lets one process write a file, and refuses a writer while another process has it open,
even read-only: a BI tool, the `duckdb` shell, a notebook. A run waits for such a reader
(``POVWATCH_DB_LOCK_WAIT`` seconds, tasks/core/db.py) and then stops with a message that names the
process holding the file and the setting that controls the wait, instead of DuckDB's lock text.
"""
from __future__ import annotations

import re
from pathlib import Path

import duckdb

_HOLDER = re.compile(r"Conflicting lock is held in (?P<program>.*?) \(PID (?P<pid>\d+)\)")


class WarehouseHeld(duckdb.IOException):
    """Another process holds the warehouse file open (Chinese first, then English)."""


def holder(message: str) -> tuple[int | None, str]:
    """(PID, what it runs) of the process DuckDB names in a lock error, as far as it is known."""
    found = _HOLDER.search(message)
    if not found:
        return None, "未知程序 an unknown program"
    pid = int(found["pid"])
    return pid, _command_line(pid) or found["program"]


def warehouse_held(error: Exception, warehouse: Path, waited: float) -> WarehouseHeld:
    pid, program = holder(str(error))
    who = f"PID {pid}：{program}" if pid else program
    return WarehouseHeld(
        f"仓库文件被另一个程序占用（{who}），已等待 {waited:g} 秒（设置 POVWATCH_DB_LOCK_WAIT）。"
        f"请关闭该程序（如 BI 工具、duckdb 命令行）后重试，或调大 POVWATCH_DB_LOCK_WAIT。 / "
        f"The warehouse {warehouse} is held open by another process ({who}); waited {waited:g} s "
        f"for it to let go of the lock (setting POVWATCH_DB_LOCK_WAIT). Close it (a BI tool, a "
        f"duckdb shell) and run again, or set POVWATCH_DB_LOCK_WAIT longer.")


def _command_line(pid: int) -> str | None:
    """The program and its first argument, file names only (Linux /proc): enough to recognise a
    BI tool or a shell, never its options (which may carry passwords). None where unreadable."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    words = [Path(w.decode("utf-8", "replace")).name for w in raw.split(b"\0")[:2] if w]
    return " ".join(words) or None
