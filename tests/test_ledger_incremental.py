"""The ledger carried period by period (warehouse/models/75_ledger_states.sql) equals the whole
replay of its rules over every built period (tests/support/ledger_replay.sql: the window pass the
build ran before), on the shared eight-period county with the townships' feedback (refutations,
unconfirmed fixes, closures): every problem in every period, every column the ledger,
its events, the reports and ``mart.ledger_as_of`` read."""
from __future__ import annotations

from pathlib import Path

REPLAY = Path(__file__).parent / "support" / "ledger_replay.sql"


def test_stored_ledger_states_equal_the_whole_replay(loop_county):
    con = loop_county.con.cursor()   # a temp macro of its own, on the read-only warehouse
    con.execute(REPLAY.read_text(encoding="utf-8"))
    upto, = con.execute("SELECT max(period) FROM mart.policy_used").fetchone()
    cols = ", ".join(c for c, in con.execute(
        "SELECT column_name FROM (DESCRIBE SELECT * FROM ledger_replay(?))", [upto]).fetchall())
    replay = f"SELECT {cols} FROM ledger_replay('{upto}')"
    stored = f"SELECT {cols} FROM mart.ledger_states('{upto}')"
    n, = con.execute(f"SELECT count(*) FROM ({replay})").fetchone()
    only_replay, = con.execute(f"SELECT count(*) FROM ({replay} EXCEPT ALL {stored})").fetchone()
    only_stored, = con.execute(f"SELECT count(*) FROM ({stored} EXCEPT ALL {replay})").fetchone()
    assert n > 300
    assert (only_replay, only_stored) == (0, 0)
    # the county exercises every branch the carried columns stand for
    kinds = dict(con.execute(f"SELECT status, count(*) FROM ({stored}) GROUP BY ALL").fetchall())
    assert {"open", "closed", "dismissed"} <= set(kinds)
    unconfirmed, verified = con.execute(
        f"SELECT count(*) FILTER (WHERE rectification_unconfirmed), "
        f"count(*) FILTER (WHERE verified_now) FROM ({stored})").fetchone()
    assert unconfirmed > 0 and verified > 0
