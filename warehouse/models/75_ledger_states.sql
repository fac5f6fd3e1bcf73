-- reads:  mart.period_deliveries, mart.policy_used, mart.problem_findings, mart.problem_states, mart.rules, mart.verifications, policy, staging.feedback
-- writes: mart.problem_states, mart.verifications
-- The ledger (docs/rules.md, lifecycle) for the period built: each problem's state at the end of
-- the period, carried one step from the previous built period's state (mart.problem_states).
--
-- Incremental, like 36_monitoring_states.sql: every build rebuilds the periods from the one loaded
-- on, in order, so the previous period's rows are final here, and the states of the periods before
-- the earliest rebuilt one never change (they depend only on periods up to their own). The rules
-- are those of the whole replay it replaces (a window over every period per problem): a sighting
-- ('S') opens or keeps a problem open; a period in which it is not seen although every department
-- the rule reads delivered ('C') closes it; a refutation (不属实) in force dismisses it ('D'); any
-- other period leaves it as it was. Each window of the replay becomes a carried column: the
-- verification in force (period, file, row), the detail it refuted, whether new evidence broke the
-- refutation, the spell it reported 已整改 in.

-- The townships' verifications (核实反馈): the accepted rows with a result, every period (a
-- period's resubmission replaces that period's rows in staging).
DELETE FROM mart.verifications;
INSERT INTO mart.verifications
SELECT period, problem_key, code, township_code, result, note, evidence, verifier, verified_on,
       source_file, source_row
FROM staging.feedback WHERE result IS NOT NULL;

CREATE OR REPLACE TEMP TABLE step AS
WITH this AS (
    SELECT period, period_end FROM policy
), built AS (   -- the built periods up to this one (this one is recorded after its models ran)
    SELECT period FROM mart.policy_used WHERE period < (SELECT period FROM this)
    UNION SELECT period FROM this
), prev AS (
    SELECT * FROM mart.problem_states
    WHERE period = (SELECT max(period) FROM mart.policy_used WHERE period < (SELECT period FROM this))
), delivered AS (
    SELECT coalesce(list(dept), []) AS depts
    FROM mart.period_deliveries WHERE period = (SELECT period FROM this)
), seen AS (
    SELECT * FROM mart.problem_findings WHERE period = (SELECT period FROM this)
), keys AS (
    SELECT code, subject_id FROM prev UNION SELECT code, subject_id FROM seen
), verifications AS (
    -- the order that decides which one is in force is the data's own (核实日期, then the
    -- delivery's period, file and row), never the order of loading
    SELECT f.problem_key, f.period AS v_period, f.result AS v_result,
           coalesce(f.verified_on, last_day(strptime(f.period || '-01', '%Y-%m-%d'))::DATE) AS v_on,
           f.verifier AS v_verifier, coalesce(f.note, f.evidence) AS v_note,
           f.source_file AS v_file, f.source_row AS v_row,
           (coalesce(f.verified_on, last_day(strptime(f.period || '-01', '%Y-%m-%d'))::DATE),
            f.period, f.source_file, f.source_row) AS v_order
    FROM mart.verifications f
    WHERE f.period IN (SELECT period FROM built)
), in_force AS (   -- the latest delivered so far: the set only grows, so it changes only to one
                   -- delivered in this period
    SELECT problem_key, max(v_order) AS v_order FROM verifications GROUP BY problem_key
), grid AS (
    SELECT k.code, k.subject_id, substr(md5(k.code || ':' || k.subject_id), 1, 16) AS problem_key,
           coalesce(pr.first_seen_period, t.period) AS first_seen_period, t.period, t.period_end,
           s.period IS NOT NULL AS seen,
           s.period IS NULL AND list_has_all(d.depts, r.reads) AS closable,
           list_contains(d.depts, r.responsible_dept) AS responsible_delivered,
           s.household_key AS s_household_key, s.township_code AS s_township_code,
           s.village_code AS s_village_code, s.detail AS s_detail, s.deadline_days,
           r.responsible_dept,
           pr.period IS NOT NULL AS has_prev,
           CASE pr.status WHEN 'open' THEN 'S' WHEN 'dismissed' THEN 'D'
                          WHEN 'closed' THEN 'C' END AS prev_state,
           pr.opened_period AS prev_opened_period, pr.deadline AS prev_deadline,
           pr.overdue AS prev_overdue, pr.reopen_count AS prev_reopen_count,
           pr.last_seen_period AS prev_last_seen_period,
           pr.last_closed_period AS prev_last_closed_period,
           pr.household_key AS prev_household_key, pr.township_code AS prev_township_code,
           pr.village_code AS prev_village_code, pr.detail AS prev_detail,
           pr.verified_period AS prev_v_period, pr.verified_source_file AS prev_v_file,
           pr.verified_source_row AS prev_v_row, pr.detail_refuted AS prev_detail_refuted,
           pr.new_evidence AS prev_new_evidence, pr.spell_reported AS prev_spell_reported,
           pr.rectification_unconfirmed AS prev_unconfirmed
    FROM keys k
    CROSS JOIN this t
    CROSS JOIN delivered d
    JOIN mart.rules r ON r.code = k.code
    LEFT JOIN seen s ON s.code = k.code AND s.subject_id = k.subject_id
    LEFT JOIN prev pr ON pr.code = k.code AND pr.subject_id = k.subject_id
), verified AS (
    SELECT g.*, v.v_period, v.v_result, v.v_on, v.v_verifier, v.v_note, v.v_file, v.v_row,
           v.v_order IS NOT NULL AS has_v,
           coalesce(g.s_detail, g.prev_detail) AS detail_so_far,
           -- still the verification in force in the previous period (the replay's partition by it)
           g.has_prev AND (v.v_period, v.v_file, v.v_row)
               IS NOT DISTINCT FROM (g.prev_v_period, g.prev_v_file, g.prev_v_row) AS same_v
    FROM grid g
    LEFT JOIN in_force i USING (problem_key)
    LEFT JOIN verifications v ON v.problem_key = g.problem_key AND v.v_order = i.v_order
), refuted AS (
    -- a refutation holds while the rule finds the subject with the detail it had when refuted
    SELECT *,
           CASE WHEN same_v THEN prev_detail_refuted
                WHEN v_period = period THEN detail_so_far END AS detail_refuted
    FROM verified
), broken AS (
    SELECT *,
           CASE WHEN same_v THEN prev_new_evidence OR (v_result = '不属实' AND seen
                                                       AND s_detail IS DISTINCT FROM detail_refuted)
                ELSE v_result = '不属实' AND seen AND s_detail IS DISTINCT FROM detail_refuted
           END AS new_evidence
    FROM refuted
), marked AS (
    SELECT *,
           CASE WHEN coalesce(v_result = '不属实' AND NOT new_evidence, false) THEN 'D'
                WHEN seen THEN 'S' WHEN closable THEN 'C' END AS mark
    FROM broken
), stated AS (
    SELECT *, coalesce(mark, prev_state) AS state FROM marked
), spells AS (
    SELECT *,
           state = 'S' AND coalesce(prev_state, 'C') IN ('C', 'D') AS spell_start,
           mark = 'C' AND prev_state = 'S' AS closing,
           has_v AND NOT same_v AS verified_now
    FROM stated
), carried AS (
    SELECT *,
           CASE WHEN spell_start THEN period ELSE prev_opened_period END AS opened_period,
           coalesce(CASE WHEN spell_start THEN period_end + deadline_days::INTEGER END,
                    prev_deadline) AS deadline,
           coalesce(prev_reopen_count + 1, 0) + spell_start::INTEGER AS spell_no,
           CASE WHEN seen THEN period ELSE prev_last_seen_period END AS last_seen_period,
           CASE WHEN closing THEN period ELSE prev_last_closed_period END AS last_closed_period,
           coalesce(s_household_key, prev_household_key) AS household_key,
           coalesce(s_township_code, prev_township_code) AS township_code,
           coalesce(s_village_code, prev_village_code) AS village_code
    FROM spells
), rectified AS (
    -- 已整改 is closed only by the data: the responsible department's data still showing it in
    -- the spell it was reported in marks it 整改未见数据 until it closes
    SELECT *,
           CASE WHEN same_v THEN prev_spell_reported
                WHEN v_period = period THEN spell_no END AS spell_reported
    FROM carried
)
SELECT *,
       state = 'S' AND period_end > deadline AS overdue,
       (coalesce(CASE WHEN same_v AND spell_no = coalesce(prev_reopen_count + 1, 0)
                      THEN prev_unconfirmed END, false)
        OR coalesce(v_result = '已整改' AND state = 'S' AND seen AND responsible_delivered
                    AND spell_no = spell_reported, false))
           AND state = 'S' AS rectification_unconfirmed
FROM rectified;

DELETE FROM mart.problem_states WHERE period = (SELECT period FROM policy);
INSERT INTO mart.problem_states BY NAME
SELECT period, code, subject_id, first_seen_period, problem_key,
       CASE state WHEN 'S' THEN 'open' WHEN 'D' THEN 'dismissed' ELSE 'closed' END AS status,
       seen, closable, spell_start, closing, opened_period, deadline, overdue,
       coalesce(prev_overdue, false) AND NOT spell_start AS was_overdue,
       (spell_no - 1)::INTEGER AS reopen_count, last_seen_period,
       CASE WHEN state = 'C' THEN last_closed_period END AS closed_period,
       household_key, township_code, village_code, responsible_dept,
       detail_so_far AS detail,
       v_result AS verified_result, v_on AS verified_on, v_verifier AS verifier,
       v_note AS verified_note, v_period AS verified_period, verified_now,
       rectification_unconfirmed, coalesce(prev_unconfirmed, false) AS was_unconfirmed,
       coalesce(prev_state, '') = 'D' AS was_dismissed,
       last_closed_period, v_file AS verified_source_file, v_row AS verified_source_row,
       detail_refuted, new_evidence, spell_reported::INTEGER AS spell_reported
FROM step;
