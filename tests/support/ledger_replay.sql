-- The whole replay of the ledger over every built period, as the build computed it before the
-- ledger was carried period by period (75_ledger_states.sql): one window pass per problem over all
-- its periods. tests/test_ledger_incremental.py holds the stored states against it.
-- The ledger, replayed from the per-period findings and the townships' verifications: one row
-- per problem and built period from its first sighting on. A sighting ('S') opens or keeps it
-- open; a period in which it is not seen although every department the rule reads delivered
-- ('C') closes it; a refutation (不属实) in force dismisses it ('D') — docs/rules.md, 核实反馈;
-- any other period leaves it as it was. Everything here depends only on periods <= upto, so the
-- ledger as of an earlier period is this macro with that period.
CREATE OR REPLACE TEMP MACRO ledger_replay(upto) AS TABLE
WITH periods AS (
    SELECT DISTINCT period FROM mart.policy_used WHERE period <= upto
), delivered AS (
    SELECT p.period, coalesce(list(d.dept) FILTER (WHERE d.dept IS NOT NULL), []) AS depts
    FROM periods p LEFT JOIN mart.period_deliveries d USING (period) GROUP BY p.period
), seen AS (
    SELECT * FROM mart.problem_findings WHERE period IN (SELECT period FROM periods)
), keys AS (
    SELECT code, subject_id, min(period) AS first_seen_period,
           substr(md5(code || ':' || subject_id), 1, 16) AS problem_key
    FROM seen GROUP BY ALL
), verifications AS (
    -- accepted rows with a result; the order that decides which one is in force is the data's
    -- own (核实日期, then the delivery's period, file and row), never the order of loading
    SELECT f.problem_key, f.period AS v_period, f.result AS v_result,
           coalesce(f.verified_on, last_day(strptime(f.period || '-01', '%Y-%m-%d'))::DATE) AS v_on,
           f.verifier AS v_verifier, coalesce(f.note, f.evidence) AS v_note,
           (coalesce(f.verified_on, last_day(strptime(f.period || '-01', '%Y-%m-%d'))::DATE),
            f.period, f.source_file, f.source_row) AS v_order
    FROM mart.verifications f
    WHERE f.period IN (SELECT period FROM periods)
), grid AS (
    SELECT k.code, k.subject_id, k.problem_key, k.first_seen_period, p.period,
           s.period IS NOT NULL AS seen,
           s.period IS NULL AND list_has_all(d.depts, r.reads) AS closable,
           list_contains(d.depts, r.responsible_dept) AS responsible_delivered,
           s.household_key, s.township_code, s.village_code, s.detail, s.deadline_days,
           r.responsible_dept
    FROM keys k
    JOIN periods p ON p.period >= k.first_seen_period
    JOIN delivered d ON d.period = p.period
    JOIN mart.rules r ON r.code = k.code
    LEFT JOIN seen s ON s.code = k.code AND s.subject_id = k.subject_id AND s.period = p.period
), in_force AS (   -- the verification in force at the end of each period: the latest delivered so far
    SELECT g.code, g.subject_id, g.period, max(v.v_order) AS v_order
    FROM grid g JOIN verifications v ON v.problem_key = g.problem_key AND v.v_period <= g.period
    GROUP BY ALL
), verified AS (
    SELECT g.*, v.v_period, v.v_result, v.v_on, v.v_verifier, v.v_note, v.v_order,
           last_value(g.detail IGNORE NULLS) OVER w AS detail_so_far
    FROM grid g
    LEFT JOIN in_force i USING (code, subject_id, period)
    LEFT JOIN verifications v ON v.problem_key = g.problem_key AND v.v_order = i.v_order
    WINDOW w AS (PARTITION BY g.code, g.subject_id ORDER BY g.period ROWS UNBOUNDED PRECEDING)
), refuted AS (
    -- a refutation holds while the rule finds the subject with the detail it had when refuted
    SELECT *,
           max(CASE WHEN period = v_period THEN detail_so_far END)
               OVER (PARTITION BY code, subject_id, v_order) AS detail_refuted
    FROM verified
), broken AS (
    SELECT *,
           bool_or(v_result = '不属实' AND seen AND detail IS DISTINCT FROM detail_refuted)
               OVER (PARTITION BY code, subject_id, v_order ORDER BY period
                     ROWS UNBOUNDED PRECEDING) AS new_evidence
    FROM refuted
), marked AS (
    SELECT *,
           coalesce(v_result = '不属实' AND NOT new_evidence, false) AS dismissed,
           CASE WHEN coalesce(v_result = '不属实' AND NOT new_evidence, false) THEN 'D'
                WHEN seen THEN 'S' WHEN closable THEN 'C' END AS mark,
           last_day(strptime(period || '-01', '%Y-%m-%d')::DATE) AS period_end
    FROM broken
), stated AS (
    SELECT *,
           last_value(mark IGNORE NULLS) OVER w AS state
    FROM marked
    WINDOW w AS (PARTITION BY code, subject_id ORDER BY period ROWS UNBOUNDED PRECEDING)
), transitions AS (
    SELECT *,
           lag(state) OVER (PARTITION BY code, subject_id ORDER BY period) AS prev_state,
           lag(v_order) OVER (PARTITION BY code, subject_id ORDER BY period) AS prev_v_order
    FROM stated
), spells AS (
    SELECT *,
           state = 'S' AND coalesce(prev_state, 'C') IN ('C', 'D') AS spell_start,
           mark = 'C' AND prev_state = 'S' AS closing,
           v_order IS NOT NULL AND v_order IS DISTINCT FROM prev_v_order AS verified_now
    FROM transitions
), carried AS (
    SELECT *,
           last_value(CASE WHEN spell_start THEN period END IGNORE NULLS) OVER w AS opened_period,
           last_value(CASE WHEN spell_start THEN period_end + deadline_days::INTEGER END IGNORE NULLS) OVER w AS deadline,
           (count(*) FILTER (WHERE spell_start) OVER w) - 1 AS reopen_count,
           count(*) FILTER (WHERE spell_start) OVER w AS spell_no,
           last_value(CASE WHEN seen THEN period END IGNORE NULLS) OVER w AS last_seen_period,
           last_value(CASE WHEN closing THEN period END IGNORE NULLS) OVER w AS last_closed_period,
           last_value(household_key IGNORE NULLS) OVER w AS hh_key,
           last_value(township_code IGNORE NULLS) OVER w AS twp,
           last_value(village_code IGNORE NULLS) OVER w AS vil,
           last_value(detail IGNORE NULLS) OVER w AS last_detail
    FROM spells
    WINDOW w AS (PARTITION BY code, subject_id ORDER BY period ROWS UNBOUNDED PRECEDING)
), rectified AS (
    -- 已整改 is closed only by the data: the responsible department's data still showing it in
    -- the spell it was reported in marks it 整改未见数据 until it closes
    SELECT *,
           max(CASE WHEN period = v_period THEN spell_no END)
               OVER (PARTITION BY code, subject_id, v_order) AS spell_reported
    FROM carried
), final AS (
    SELECT *,
           state = 'S' AND period_end > deadline AS overdue,
           coalesce(bool_or(v_result = '已整改' AND state = 'S' AND seen AND responsible_delivered
                            AND spell_no = spell_reported)
                        OVER (PARTITION BY code, subject_id, v_order, spell_no ORDER BY period
                              ROWS UNBOUNDED PRECEDING), false)
               AND state = 'S' AS rectification_unconfirmed
    FROM rectified
)
SELECT period, code, subject_id, first_seen_period, problem_key,
       CASE state WHEN 'S' THEN 'open' WHEN 'D' THEN 'dismissed' ELSE 'closed' END AS status,
       seen, closable, spell_start, closing, opened_period, deadline, overdue,
       coalesce(lag(overdue) OVER (PARTITION BY code, subject_id ORDER BY period), false)
           AND NOT spell_start AS was_overdue,
       reopen_count::INTEGER AS reopen_count, last_seen_period,
       CASE WHEN state = 'C' THEN last_closed_period END AS closed_period,
       hh_key AS household_key, twp AS township_code, vil AS village_code,
       responsible_dept, last_detail AS detail,
       v_result AS verified_result, v_on AS verified_on, v_verifier AS verifier,
       v_note AS verified_note, v_period AS verified_period, verified_now,
       rectification_unconfirmed,
       coalesce(lag(rectification_unconfirmed) OVER (PARTITION BY code, subject_id ORDER BY period),
                false) AS was_unconfirmed,
       coalesce(lag(state) OVER (PARTITION BY code, subject_id ORDER BY period), '') = 'D' AS was_dismissed
FROM final;
