"""No full identity number, and no channel secret, leaves the warehouse.

The whole pipeline runs (``povwatch run`` as a Prefect flow, in a subprocess) over a small
generated inbox with a planted rejection, alerts going to a local receiver on 127.0.0.1; then the
report, the exports, the weekly bulletin and the status are produced. Everything written outside
the warehouse file — every file under the working folder, the output folder, TMPDIR and Prefect's
home (its database holds the flow logs and artifacts), every member of every .xlsx — plus the
captured stdout/stderr and every alert body the receiver got, is scanned for any *valid* 18-digit
identity number (digits, birth date and MOD 11-2 check character). The test fails listing where.
(``povwatch sql`` is not run here: the office querying its own warehouse sees real numbers by
design, docs/privacy.md.)

The inbox also carries numbers the way clerks and file names write them — in a file name (with
full-width digits), in a header, in cells of an extra column spaced, hyphenated, full-width and
with a lower-case x — and a file name and a header that look like spreadsheet formulas. The scan
joins digits across one kind of separator and reads full-width digits, in file contents and in
the names of the files written; every workbook written must hold text as text (no formula, no
link), with the formula-looking file name listed in the receipt as plain text.
"""
from __future__ import annotations

import http.server
import json
import re
import stat
import threading
import zipfile
from pathlib import Path

import duckdb
import polars as pl
import pytest

from tests.support import robust as rs

TOKEN = "FAKEtok3n-9f8e7d6c5b4a-SECRET"
PASSWORD = "hunter2-Pa55word-SECRET"


class _Receiver(http.server.ThreadingHTTPServer):
    def __init__(self):
        self.bodies: list[str] = []
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8", errors="replace")
        self.server.bodies.append(f"{self.path}\n{self.headers}\n{body}")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):  # quiet
        pass


@pytest.fixture
def receiver():
    server = _Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _plant_rejection(inbox: Path) -> None:
    """A caizheng delivery that is not a table: the extract is rejected and an alert raised."""
    d = inbox / rs.FIRST_PERIOD / "caizheng"
    d.mkdir(parents=True, exist_ok=True)
    (d / "财政供养_损坏.csv").write_bytes(b"\x00\x01\x02 not a table \xff\xfe" * 50)


def _valid_number(first17: str) -> str:
    check = "10X98765432"[sum(int(d) * w for d, w in zip(first17, rs._WEIGHTS)) % 11]
    return first17 + check


def _number_ending_in_x() -> str:
    return next(n for n in (_valid_number(f"62052319850315{k:03d}") for k in range(1000))
                if n.endswith("X"))


IN_NAME = _valid_number("62052319761120003")      # in the file name, full-width
IN_HEADER = _valid_number("62052319900704012")    # in a header, plain
IN_CELLS = _valid_number("62052320011231045")     # in an extra column, written four ways
WITH_X = _number_ending_in_x()                    # written with a lower-case x
FORMULA_NAME = '=HYPERLINK("evil.example","点此")'  # no slash: a file name
FORMULA_HEADER = "=SUM(A1:A9)"


def _full_width(text: str) -> str:
    return text.translate(str.maketrans("0123456789X", "０１２３４５６７８９Ｘ"))


def _plant_written_numbers(inbox: Path) -> str:
    """weijian's file renamed to a formula holding a number, with extra columns whose header or
    cells hold numbers in every spacing and width; one row damaged so that it is quarantined and
    its extra columns are shown in the receipt. Returns the new file name."""
    folder = inbox / rs.FIRST_PERIOD / "weijian"
    (original,) = folder.glob("*.csv")
    df = pl.read_csv(original, infer_schema=False)
    spellings = [f"{IN_CELLS[:4]} {IN_CELLS[4:8]} {IN_CELLS[8:12]} {IN_CELLS[12:16]} {IN_CELLS[16:]}",
                 f"{IN_CELLS[:6]}-{IN_CELLS[6:14]}-{IN_CELLS[14:]}", _full_width(IN_CELLS),
                 WITH_X[:-1] + "x", f"{WITH_X[:6]}\u3000{WITH_X[6:14]}\u3000{WITH_X[14:]}"]
    df = df.with_columns(
        pl.Series("联系人证件", [f"联系人 {spellings[i % len(spellings)]}" for i in range(df.height)]),
        pl.lit("见附件").alias(f"户主身份证{IN_HEADER}"),
        pl.lit("=1+1").alias(FORMULA_HEADER),
        pl.when(pl.int_range(pl.len()) < 5).then(pl.lit("12345")).otherwise(pl.col("身份证号"))
        .alias("身份证号"),
    )
    name = f"{FORMULA_NAME}卫健_{_full_width(IN_NAME)}.csv"
    original.unlink()
    df.write_csv(folder / name)
    return name


_SEPARATOR_KINDS = (" \t\u00a0\u3000", "\\-\u2010-\u2015\u2212\ufe63\uff0d", "_")


def _identity_numbers(data: bytes, where: str) -> list[str]:
    """Valid identity numbers however written: zips and gzip opened, full-width digits read
    (NFKC), digits joined across one kind of separator as the masking rule reads them."""
    if data[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(__import__("io").BytesIO(data)) as zf:
                return [f for m in zf.namelist() for f in _identity_numbers(zf.read(m), f"{where}!{m}")]
        except zipfile.BadZipFile:
            pass
    if data[:2] == b"\x1f\x8b":
        try:
            return _identity_numbers(__import__("gzip").decompress(data), f"{where}(gunzip)")
        except OSError:
            pass
    found: set[str] = set()
    for text in rs._texts(data):
        for kind in ("", *_SEPARATOR_KINDS):
            joined = re.sub(f"(?<=[0-9])[{kind}](?=[0-9Xx])", "", text) if kind else text
            for m in rs.ID_CANDIDATE.finditer(joined):
                if rs.is_valid_identity_number(m.group(1)):
                    found.add(f"{where}: {m.group(1)[:6]}********{m.group(1)[-4:]}")
    return sorted(found)


def _scan(root: Path, skip: tuple[Path, ...]) -> tuple[list[str], int]:
    """Every file under root outside ``skip``: its name (relative path) and its content."""
    findings, scanned = [], 0
    skip = tuple(p.resolve() for p in skip)
    for path in sorted(root.rglob("*")):
        resolved = path.resolve()
        if any(resolved == s or s in resolved.parents for s in skip):
            continue
        name = str(path.relative_to(root))
        findings += _identity_numbers(name.encode("utf-8"), f"<file name> {name}")
        if path.is_file() and not path.is_symlink():
            scanned += 1
            findings += _identity_numbers(path.read_bytes(), name)
    return findings, scanned


def _formulas_and_links(workbook: Path) -> list[str]:
    """Cells of a written workbook that a spreadsheet would run or follow."""
    found = []
    with zipfile.ZipFile(workbook) as zf:
        for member in zf.namelist():
            if member.startswith("xl/worksheets/") and member.endswith(".xml"):
                xml = zf.read(member).decode("utf-8")
                found += [f"{workbook.name}!{member}: {m}" for m in
                          re.findall(r"<f[ >][^<]*|<hyperlink [^>]*", xml)]
    return found


@pytest.mark.slow
def test_no_identity_number_or_secret_leaves_the_warehouse(tmp_path: Path, receiver) -> None:
    inbox = rs.subset_inbox(tmp_path / "inbox", (rs.FIRST_PERIOD,),
                            depts=(*rs.SMALL_DEPTS, "minzheng", "canlian"))
    _plant_rejection(inbox)
    _plant_written_numbers(inbox)
    warehouse = tmp_path / "wh" / "povwatch.duckdb"
    work = tmp_path / "work"
    work.mkdir()
    port = receiver.server_address[1]
    alert_url = f"json://povwatch:{PASSWORD}@127.0.0.1:{port}/hooks/{TOKEN}"
    env = rs.cli_env(tmp_path, POVWATCH_ALERT_URLS=alert_url, POVWATCH_PREFECT="ephemeral",
                      PREFECT_LOGGING_LEVEL="DEBUG")

    captured: dict[str, str] = {}

    def cli(name: str, args: list[str], ok=(0,)) -> None:
        proc = rs.run_cli(args, env, work, timeout=900)
        captured[f"{name}.stdout"] = proc.stdout
        captured[f"{name}.stderr"] = proc.stderr
        assert proc.returncode in ok, f"{name} exited {proc.returncode}:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"

    wh = ["--warehouse", str(warehouse)]
    cli("run", ["run", "--inbox", str(inbox), *wh], ok=(3,))
    local_env = dict(env, POVWATCH_PREFECT="local")
    env = local_env
    cli("report", ["report", *wh])
    cli("export", ["export", "--kind", "all", "--out", str(tmp_path / "output" / "exports"), *wh])
    cli("bulletin", ["bulletin", "--kind", "weekly", "--since", "2000-01-01", *wh])
    cli("status", ["status", *wh])

    # the planted rejection reached the receiver
    assert receiver.bodies, "no alert reached the local receiver"
    assert any("caizheng" in b or "财政" in b for b in receiver.bodies), receiver.bodies[:1]

    # the scanner has teeth: the inbox is full of valid numbers, and it finds every planted way
    teeth, _ = _scan(inbox, skip=())
    assert len(teeth) > 50
    for number in (IN_NAME, IN_HEADER, IN_CELLS, WITH_X):
        assert any(t.endswith(f"{number[:6]}********{number[-4:]}") for t in teeth), number
    assert any(t.startswith("<file name>") for t in teeth)

    # everything outside the warehouse (its DuckDB file(s) and the Parquet lake beside it) and the inbox
    from povwatch.tasks.ingest.load import lake_root

    skip = (inbox, *warehouse.parent.glob(warehouse.name + "*"), lake_root(warehouse))
    findings, scanned = _scan(tmp_path, skip=skip)
    assert scanned >= 5, "the run wrote almost nothing outside the warehouse: nothing was scanned"
    for name, text in captured.items():
        findings += _identity_numbers(text.encode("utf-8"), f"<{name}>")
    for i, body in enumerate(receiver.bodies):
        findings += _identity_numbers(body.encode("utf-8"), f"<alert body {i}>")
    assert not findings, "full identity numbers outside the warehouse:\n" + "\n".join(findings[:50])

    # the planted file's quarantined rows reached weijian's receipt, every value there as text
    (receipt,) = (tmp_path / "output").rglob("回执_*_weijian.xlsx")
    with zipfile.ZipFile(receipt) as zf:
        strings = zf.read("xl/sharedStrings.xml").decode("utf-8")
    assert '=HYPERLINK("evil.example","点此")卫健_620523' in strings   # the file, named as text
    assert f"户主身份证{IN_HEADER[:6]}********{IN_HEADER[-4:]}" in strings  # the header, masked
    assert f"{IN_CELLS[:6]}********{IN_CELLS[-4:]}" in strings            # a cell, masked
    workbooks = list((tmp_path / "output").rglob("*.xlsx"))
    assert len(workbooks) >= 3
    assert not [f for w in workbooks for f in _formulas_and_links(w)]

    # the channel's secrets stay in the environment
    leaks = []
    for name, text in captured.items():
        for secret in (TOKEN, PASSWORD):
            if secret in text:
                leaks.append(f"<{name}>")
    for path in tmp_path.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            if TOKEN.encode() in data or PASSWORD.encode() in data:
                leaks.append(str(path.relative_to(tmp_path)))
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        alerts = con.execute("SELECT * FROM audit.alerts").fetchall()
        runs = con.execute("SELECT * FROM audit.runs").fetchall()
    finally:
        con.close()
    assert alerts, "no alert recorded in audit.alerts"
    for row in alerts + runs:
        text = json.dumps([str(v) for v in row], ensure_ascii=False)
        if TOKEN in text or PASSWORD in text:
            leaks.append(f"audit row {text[:120]}")
    assert not leaks, f"the alert channel's secret was written to: {leaks}"

    # owner-only: the warehouse and everything written to the output folder
    loose = []
    for path in [warehouse, *(tmp_path / "output").rglob("*")]:
        if path.is_file() and stat.S_IMODE(path.stat().st_mode) & 0o077:
            loose.append(f"{path.relative_to(tmp_path)} {oct(stat.S_IMODE(path.stat().st_mode))}")
    assert not loose, f"readable by others: {loose}"
    exports = list((tmp_path / "output").rglob("*.xlsx"))
    assert exports, "no export was written"
