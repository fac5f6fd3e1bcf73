"""What a run is given, checked at the door (issue 13, items 2, 8, 9, 10): a bad-input corpus of
deliveries, names and warehouses, separate from tests/support/badcorpus.py (extracts' contents).

- One definition of a delivery: a corrected file delivered as .txt, .xlsm, in a subfolder or as a
  dot-file is read on a first load AND seen when it changes; what is not read (Office lock files,
  system files) is named, and its changes do not make a period pending.
- An unreadable file or folder rejects its department only (run as an unprivileged user).
- A damaged warehouse is refused and left byte for byte as it was.
- Periods, inbox folders and ``--inbox`` are matched strictly and what does not match is reported.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from povwatch.flows.cli import main
from povwatch.flows.run_command import run_inbox
from povwatch.tasks.core.runs import loaded_hashes
from povwatch.tasks.ingest import inbox as inbox_files
from povwatch.tasks.ingest import load as ingest
from povwatch.tasks.ingest.inbox import delivery, fingerprint, pending_periods
from tests.support import badcorpus as bc
from tests.support import robust as rs
from tests.support.fakes import Fakes, make_inbox

PERIOD = bc.PERIOD
DEPT = bc.BAD_DEPT          # caizheng: loads without a GX run here (stage + promote only)


@pytest.fixture
def quiet_env(tmp_path, monkeypatch):
    monkeypatch.setenv("POVWATCH_SETTLE_SECONDS", "0")
    monkeypatch.setenv("POVWATCH_OUTPUT", str(tmp_path / "output"))
    monkeypatch.setenv("POVWATCH_ALERT_URLS", "")
    return tmp_path


# --------------------------------------------------------------------------------------------
# one definition of a delivery (item 2)


def _csv(path: Path, rows: int) -> None:
    bc.write_csv(path, bc.CAIZHENG_HEADER, bc.caizheng_rows(rows))


def _xlsm(path: Path, rows: int) -> None:
    bc.write_xlsx(path, bc.CAIZHENG_HEADER, bc.caizheng_rows(rows))


DELIVERED_AS = {   # name -> (file under the department folder, writer)
    "txt": ("caizheng.txt", _csv),
    "xlsm": ("财政供养人员.xlsm", _xlsm),
    "subfolder": ("补报/caizheng.csv", _csv),
    "nested subfolder": ("2020年6月/更正/caizheng.csv", _csv),
    "dot-file": (".caizheng.csv", _csv),
}


def _stage(warehouse: Path, inbox: Path, run_id: str):
    result = ingest.stage_extract(warehouse, inbox, PERIOD, DEPT, run_id)
    if result.status == "staged":
        ingest.promote_extract(warehouse, PERIOD, DEPT, run_id)
    return result


@pytest.mark.parametrize("form", sorted(DELIVERED_AS))
def test_a_corrected_file_is_seen_in_whatever_form_it_was_read(form, quiet_env):
    name, write = DELIVERED_AS[form]
    inbox, warehouse = quiet_env / "inbox", quiet_env / "wh.duckdb"
    path = bc.dept_dir(inbox) / name
    write(path, 6)
    first = _stage(warehouse, inbox, "r1")
    assert first.status == "staged" and first.rows_read == 6, "read on the first load"
    assert pending_periods(inbox, loaded_hashes(warehouse)) == []

    write(path, 4)   # the department corrects its file: two rows fewer
    assert pending_periods(inbox, loaded_hashes(warehouse)) == [PERIOD], "the change check sees it"
    second = _stage(warehouse, inbox, "r2")
    assert second.status == "staged" and second.rows_read == 4, "and the reader reads it again"


def test_the_change_check_reads_a_hashed_file_once_and_still_sees_it_corrected(quiet_env, monkeypatch):
    """Between checks the change check keeps each file's sha256 with its size and times beside the
    warehouse: a file it hashed is not read again, and a file rewritten with the same size and
    its old mtime set back (a copy that keeps times) is still seen as changed (its ctime moved)."""
    inbox, warehouse = quiet_env / "inbox", quiet_env / "wh.duckdb"
    path = bc.dept_dir(inbox) / "caizheng.csv"
    _csv(path, 6)
    assert _stage(warehouse, inbox, "r1").status == "staged"
    monkeypatch.setattr(inbox_files.HashCache, "RACY_NS", 0)   # the file was just written
    cache = inbox_files.hash_cache_path(warehouse)
    assert pending_periods(inbox, loaded_hashes(warehouse), cache) == []
    assert cache.exists()

    reads = []
    hash_file = inbox_files.file_sha256
    monkeypatch.setattr(inbox_files, "file_sha256", lambda p: reads.append(p) or hash_file(p))
    assert pending_periods(inbox, loaded_hashes(warehouse), cache) == []
    assert reads == [], "a file hashed before and unchanged since is not read again"

    before = path.stat()
    data = path.read_bytes()
    digit = next(i for i, b in enumerate(data) if b in b"0123456789" and i > data.index(b"\n"))
    path.write_bytes(data[:digit] + bytes([b"0123456789"[(data[digit] - 47) % 10]]) + data[digit + 1:])
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_size == before.st_size and path.stat().st_mtime_ns == before.st_mtime_ns
    assert pending_periods(inbox, loaded_hashes(warehouse), cache) == [PERIOD], "the correction is seen"
    assert reads == [path]


LITTER = {"~$caizheng.xlsx": "临时锁文件", ".DS_Store": "macOS", "Thumbs.db": "Windows",
          "._caizheng.csv": "macOS", "desktop.ini": "Windows"}


def test_what_is_not_read_is_named_and_its_changes_are_not_a_delivery(quiet_env):
    inbox, warehouse = quiet_env / "inbox", quiet_env / "wh.duckdb"
    folder = bc.dept_dir(inbox)
    _csv(folder / "caizheng.csv", 5)
    for name in LITTER:
        (folder / name).write_bytes(b"leftover")
    found = delivery(inbox, PERIOD, DEPT)
    assert [f.name for f in found.files] == ["caizheng.csv"]
    assert {Path(n).name: why for n, why in found.skipped}.keys() == LITTER.keys()
    assert all(LITTER[Path(n).name] in why and why.startswith("未读取") for n, why in found.skipped)

    result = _stage(warehouse, inbox, "r1")
    named = {f.file: f.message for f in result.files if f.sha256 is None}
    assert set(named) == {f"{PERIOD}/{DEPT}/{n}" for n in LITTER}, "each one recorded, with why"
    assert result.rows_read == 5
    for name in LITTER:
        (folder / name).write_bytes(b"changed leftover")
    assert pending_periods(inbox, loaded_hashes(warehouse)) == [], "litter is not a delivery"
    assert _stage(warehouse, inbox, "r2").status == "unchanged"

    from povwatch.tasks.ingest.receipts import write_receipt

    receipt = write_receipt(warehouse, PERIOD, DEPT, quiet_env / "receipts")
    import openpyxl

    cells = {str(c.value) for ws in openpyxl.load_workbook(receipt).worksheets
             for row in ws.iter_rows() for c in row if c.value is not None}
    assert {"~$caizheng.xlsx", ".DS_Store"} <= {c.rsplit("/", 1)[-1] for c in cells}, \
        "the receipt names what was not read"


def test_the_run_output_names_what_was_not_read(quiet_env, capsys):
    inbox = make_inbox(quiet_env, depts=("fupin",))
    (inbox / "2026-01" / "fupin" / "~$fupin.xlsx").write_bytes(b"lock")
    fakes = Fakes()
    fakes.stage_extract = lambda w, i, p, d, r: ingest.stage_extract(w, i, p, d, r)  # the real reader
    # fupin.csv of make_inbox is not a fupin extract: it is rejected (named) — the point here is
    # that the lock file beside it is named in the output too
    run_inbox(inbox, None, quiet_env / "wh.duckdb", mode="local", pipeline=fakes.pipeline)
    out = capsys.readouterr().out
    assert "fupin 未读取 not read" in out and "~$fupin.xlsx" in out


# --------------------------------------------------------------------------------------------
# an unreadable file or folder rejects its department only (item 8)


def _without_root_reading() -> list[str]:
    """A command prefix under which permissions apply: root reads any file, so when the tests
    run as root the child loses the two capabilities that let it (setpriv, util-linux)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: permissions cannot be tested")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search"]


UNREADABLE = {   # department -> what is made unreadable in its folder
    "caizheng": "a file",
    "minzheng": "a subfolder",
    "jiaoyu": "the department folder",
}


def test_an_unreadable_file_or_folder_rejects_that_department_and_the_others_load(tmp_path):
    inbox = tmp_path / "inbox"
    # the registry, readable: it loads and the marts are built beside the three rejections
    shutil.copytree(rs.inbox_root(rs.generated_inbox()) / PERIOD / "fupin", inbox / PERIOD / "fupin")
    _csv(inbox / PERIOD / "caizheng" / "caizheng.csv", 3)
    _csv(inbox / PERIOD / "caizheng" / "caizheng_2.csv", 2)
    bc.write_csv(inbox / PERIOD / "minzheng" / "补报" / "minzheng.csv", bc.MINZHENG_HEADER, bc.minzheng_rows(3))
    bc.write_csv(inbox / PERIOD / "jiaoyu" / "jiaoyu.csv", ["a"], [["1"]])
    locked = [inbox / PERIOD / "caizheng" / "caizheng_2.csv", inbox / PERIOD / "minzheng" / "补报",
              inbox / PERIOD / "jiaoyu"]
    for path in locked:
        path.chmod(0o000)
    warehouse = tmp_path / "wh" / "povwatch.duckdb"
    try:
        proc = subprocess.run([*_without_root_reading(), rs.PYTHON, "-m", "povwatch.flows.cli", "run",
                               "--inbox", str(inbox), "--warehouse", str(warehouse)],
                              env=rs.cli_env(tmp_path), cwd=str(rs.PROJECT), capture_output=True,
                              text=True, timeout=600)
    finally:
        for path in locked:
            path.chmod(0o700)
    assert proc.returncode == 3, proc.stdout[-2000:] + proc.stderr[-2000:]
    for dept in UNREADABLE:
        said = proc.stdout.split(f"    {dept}: ")[1].splitlines()[0]
        assert "无法读取" in said, (dept, said)
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        status = dict(con.execute("SELECT dept, any_value(status) FROM audit.extracts GROUP BY dept").fetchall())
        staged = con.execute("SELECT count(*) FROM staging.fupin").fetchone()[0]
        alerts = {d for (d,) in con.execute("SELECT DISTINCT dept FROM audit.alerts").fetchall()}
    finally:
        con.close()
    assert status == {"fupin": "accepted", **{d: "rejected" for d in UNREADABLE}}
    assert staged > 0, "the readable department loaded"
    assert set(UNREADABLE) <= alerts, "each rejection raised its alert"


# --------------------------------------------------------------------------------------------
# a damaged warehouse is refused and not written (item 9)


@pytest.fixture(scope="module")
def small_warehouse(tmp_path_factory):
    base = tmp_path_factory.mktemp("small-warehouse")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("POVWATCH_SETTLE_SECONDS", "0")
        mp.setenv("POVWATCH_OUTPUT", str(base / "output"))
        inbox = make_inbox(base)
        assert run_inbox(inbox, None, base / "wh.duckdb", mode="local", pipeline=Fakes().pipeline,
                         echo=lambda _m: None) == 0
    return base / "wh.duckdb"


def _needed_bytes(warehouse: Path) -> int:
    from povwatch.tasks.core.integrity import HEADER_BYTES, _highest_block

    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return HEADER_BYTES + (_highest_block(con) + 1) * con.execute("PRAGMA database_size").fetchone()[2]
    finally:
        con.close()


DAMAGE = {
    "one byte short": lambda data, needed: data[:needed - 1],
    "last block missing": lambda data, needed: data[:needed - 262144],
    "half": lambda data, needed: data[:len(data) // 2],
    "header zeroed": lambda data, needed: b"\0" * 4096 + data[4096:],
    "empty": lambda data, needed: b"",
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_warehouse_is_refused_and_not_written(damage, small_warehouse, quiet_env, capsys):
    warehouse = quiet_env / "damaged.duckdb"
    data = small_warehouse.read_bytes()
    warehouse.write_bytes(DAMAGE[damage](data, _needed_bytes(small_warehouse)))
    before = hashlib.sha256(warehouse.read_bytes()).hexdigest()
    inbox = make_inbox(quiet_env, periods=("2026-02",))
    fakes = Fakes()
    assert run_inbox(inbox, None, warehouse, mode="local", pipeline=fakes.pipeline) == 1
    assert "数据仓库文件已损坏" in capsys.readouterr().out
    assert hashlib.sha256(warehouse.read_bytes()).hexdigest() == before, "not written"
    assert not fakes.called("stage_extract")


def test_a_whole_warehouse_passes_the_check(small_warehouse):
    from povwatch.tasks.core.integrity import check_warehouse

    check_warehouse(small_warehouse)


# --------------------------------------------------------------------------------------------
# strict names (item 10)


@pytest.mark.parametrize("period", ["2020-13", "2020-6", "latest", "../2020-06", "2020-00", "2020-06x",
                                    "202006", "2020/06"])
def test_a_period_that_is_not_yyyy_mm_is_refused_before_anything_is_written(period, tmp_path):
    inbox = make_inbox(tmp_path)
    warehouse = tmp_path / "wh.duckdb"
    umask = os.umask(0o022)   # the command sets the process's umask: put it back after
    try:
        result = CliRunner().invoke(main, ["run", "--inbox", str(inbox), "--period", period,
                                           "--warehouse", str(warehouse)])
    finally:
        os.umask(umask)
    assert result.exit_code == 2 and "YYYY-MM" in result.output
    assert not warehouse.exists() and not (tmp_path / "inbox" / period).exists()


@pytest.mark.parametrize("inside", ["2026-01", "2026-01/fupin"])
def test_an_inbox_that_is_a_period_or_department_folder_is_refused(inside, quiet_env, capsys):
    inbox = make_inbox(quiet_env)
    warehouse = quiet_env / "wh.duckdb"
    fakes = Fakes()
    assert run_inbox(inbox / inside, None, warehouse, mode="local", pipeline=fakes.pipeline) == 1
    assert "不是收件箱" in capsys.readouterr().out
    assert not warehouse.exists() and not fakes.called("stage_extract")


BAD_FOLDERS = {"2026-2": "期次文件夹名", "2026-13": "期次文件夹名", "latest": "期次文件夹名",
               "2026-01/unknowndept": "未知部门", "2026-01/notes.txt": "部门文件夹内",
               "readme.txt": "期次文件夹"}


def test_inbox_folders_that_do_not_match_are_reported_and_not_pending(quiet_env, capsys):
    inbox = make_inbox(quiet_env)
    for name in BAD_FOLDERS:
        target = inbox / name
        if target.suffix == ".txt":
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("x", encoding="utf-8")
        else:
            (target / "fupin").mkdir(parents=True, exist_ok=True)
            (target / "fupin" / "fupin.csv").write_text("a\n1\n", encoding="utf-8")
    fakes = Fakes()
    warehouse = quiet_env / "wh.duckdb"
    assert run_inbox(inbox, None, warehouse, mode="local", pipeline=fakes.pipeline) == 0
    out = capsys.readouterr().out
    for name, why in BAD_FOLDERS.items():
        line = next((l for l in out.splitlines() if f"“{name}”" in l), None)
        assert line is not None and why in line and "未读取" in line, (name, out)
    assert {p for p, _ in fakes.called("stage_extract")} == {"2026-01"}
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        periods = {p for (p,) in con.execute("SELECT DISTINCT period FROM audit.extracts").fetchall()}
        runs_periods = con.execute("SELECT periods FROM audit.runs").fetchall()
    finally:
        con.close()
    assert periods == {"2026-01"} and runs_periods == [("2026-01",)], "nothing else became pending"
    # the next run: still reported, still nothing pending from them
    assert run_inbox(inbox, None, warehouse, mode="local", pipeline=fakes.pipeline) == 0
    out = capsys.readouterr().out
    assert "nothing new" in out and "“latest”" in out


def test_the_generators_truth_folder_is_not_reported_a_clerks_truth_folder_is(quiet_env, capsys):
    """The demo inbox holds the generator's truth/ (its answer key) beside the period folders:
    every demo run said it was "not read". A folder named truth/ without the generator's files
    (a delivery put in the wrong place) is still reported."""
    inbox = make_inbox(quiet_env)
    truth = inbox / "truth"
    truth.mkdir()
    for name in inbox_files.DEMO_TRUTH_FILES:
        (truth / name).write_text("period\n", encoding="utf-8")
    assert run_inbox(inbox, None, quiet_env / "wh.duckdb", mode="local", pipeline=Fakes().pipeline) == 0
    assert "“truth”" not in capsys.readouterr().out
    (truth / "problems.csv").unlink()
    assert inbox_files.inbox_problems(inbox) == [
        "“truth”：期次文件夹名应为 YYYY-MM（月份 01–12），未读取 / not a period name, not read"]
