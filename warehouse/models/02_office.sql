-- reads:  mart.ledger_as_of, mart.problem_events, mart.problem_ledger
-- writes: mart.ledger_report, mart.problem_flags
-- What the office's outputs ask of the ledger, as macros of the warehouse (the report, the Excel
-- ledger and the bulletins call them; no output writes its own ledger SQL).

-- The ledger at the end of period p, with what a monthly report counts for p: open and overdue
-- at the period's end, opened (or reopened) in it, closed (销号) in it.
CREATE OR REPLACE MACRO mart.ledger_report(p) AS TABLE
SELECT problem_key, code, subject_id, household_key, township_code, village_code,
       responsible_dept, first_seen_period, last_seen_period, deadline, closed_period,
       reopen_count, detail,
       status = 'open' AS open_now,
       coalesce(status = 'open' AND overdue, false) AS overdue_now,
       coalesce(opened_period = p, first_seen_period = p, false) AS opened_in,
       coalesce(status = 'closed' AND closed_period = p, false) AS closed_in
FROM mart.ledger_as_of(p);

-- Per problem, what a bulletin over the days [since, until] counts: opened / reopened / closed
-- in the range, became overdue in it (the day after one of its deadlines — each spell of a
-- reopened problem has its own — falls in the range while it was still open on the deadline),
-- open and overdue at its end. The ledger is monthly: an event is dated at the last day of its
-- period, and a problem's state on a day is the status after its last event on or before it.
CREATE OR REPLACE MACRO mart.problem_flags(since, until) AS TABLE
WITH ev AS (
    SELECT e.problem_key, e.event AS kind,
           last_day(strptime(e.period || '-01', '%Y-%m-%d'))::DATE AS on_date,
           coalesce(CASE e.status WHEN 'open' THEN 'open' WHEN 'closed' THEN 'closed'
                         WHEN 'dismissed' THEN 'dismissed' END,   -- 核实不属实: neither
                   
                    CASE WHEN e.event IN ('opened', 'reopened') THEN 'open'
                         WHEN e.event = 'closed' THEN 'closed' END) AS status_after,
           e.deadline,
           CASE e.event WHEN 'closed' THEN 2 ELSE 1 END AS ord   -- within a day: open first
    FROM mart.problem_events e
),
st AS (SELECT * FROM ev WHERE status_after IS NOT NULL),
dl AS (SELECT DISTINCT problem_key, deadline FROM ev WHERE deadline IS NOT NULL),
l AS (SELECT problem_key, responsible_dept, township_code, code, deadline FROM mart.problem_ledger),
flags AS (
    SELECT l.*,
        (SELECT arg_max(st.status_after, (st.on_date, st.ord)) FROM st
          WHERE st.problem_key = l.problem_key AND st.on_date <= until) AS state_end,
        coalesce((SELECT arg_max(ev.deadline, (ev.on_date, ev.ord)) FROM ev
          WHERE ev.problem_key = l.problem_key AND ev.on_date <= until
            AND ev.deadline IS NOT NULL), l.deadline) AS deadline_end,
        (SELECT count(*) FROM ev WHERE ev.problem_key = l.problem_key
          AND ev.kind IN ('opened', 'reopened') AND ev.on_date BETWEEN since AND until) AS opened,
        (SELECT count(*) FROM ev WHERE ev.problem_key = l.problem_key
          AND ev.kind = 'reopened' AND ev.on_date BETWEEN since AND until) AS reopened,
        (SELECT count(*) FROM ev WHERE ev.problem_key = l.problem_key
          AND ev.kind = 'closed' AND ev.on_date BETWEEN since AND until) AS closed,
        EXISTS (
            SELECT 1 FROM dl WHERE dl.problem_key = l.problem_key
              AND dl.deadline + 1 BETWEEN since AND until
              AND (SELECT arg_max(st.status_after, (st.on_date, st.ord)) FROM st
                   WHERE st.problem_key = l.problem_key AND st.on_date <= dl.deadline) = 'open'
        ) AS became_overdue
    FROM l
)
SELECT problem_key, responsible_dept, township_code, code,
       opened > 0 AS opened, reopened > 0 AS reopened, closed > 0 AS closed,
       became_overdue,
       coalesce(state_end = 'open', false) AS open_end,
       coalesce(state_end = 'open' AND deadline_end < until, false) AS overdue_end
FROM flags;
