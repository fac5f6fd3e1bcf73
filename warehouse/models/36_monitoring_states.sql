-- reads:  eff_jiance, mart.monitoring, mart.monitoring_states, mart.policy_used, policy, work.households
-- writes: mart.monitoring_states, mart.roster_unmatched, work.monitoring_states_now
-- 监测对象 as the office counts them (docs/rules.md, "Monitoring and the official roster"): one row
-- per household and period for every household that ever entered monitoring — by a warning (预警)
-- or by its identification on the official roster (名单, the jiance extract that stands for the
-- period). It stays under monitoring until the roster clears its risk (已消除, cleared_on within the
-- period or before) and no later warning follows the clearance.
--
-- Incremental: the period's state is the previous built period's state carried one step. Every
-- build rebuilds the periods after the one loaded, in order, so the previous period's rows are
-- final here and the order in which periods are loaded does not change the result.

CREATE OR REPLACE TABLE work.monitoring_states_now AS
WITH prev AS (
    SELECT * FROM mart.monitoring_states
    WHERE period = (SELECT max(period) FROM mart.policy_used WHERE period < (SELECT period FROM policy))
), warned AS (
    SELECT DISTINCT household_key FROM mart.monitoring WHERE period = (SELECT period FROM policy)
), heads AS (   -- a roster row without a registry 户编号 match is matched by the head's number
    SELECT head_id, min(household_key) AS household_key
    FROM work.households WHERE head_id IS NOT NULL GROUP BY head_id
), roster AS (
    SELECT coalesce(r.household_key, h.household_key) AS household_key, j.*
    FROM eff_jiance j
    LEFT JOIN work.households r ON r.registry AND r.household_id = j.household_id
    LEFT JOIN heads h ON h.head_id = j.head_id_number
    WHERE coalesce(r.household_key, h.household_key) IS NOT NULL
    QUALIFY row_number() OVER (PARTITION BY coalesce(r.household_key, h.household_key)
                               ORDER BY j.source_file, j.source_row) = 1
), keys AS (
    SELECT household_key FROM prev UNION SELECT household_key FROM warned
    UNION SELECT household_key FROM roster
), joined AS (
    SELECT k.household_key, p.period, p.period_start, p.period_end, p.risk_clear_months,
           w.household_key IS NOT NULL AS warned,
           pr.first_warned_period, pr.last_warned_period, pr.entered_period, pr.entered_by,
           pr.clean_periods AS prev_clean, pr.status AS prev_status,
           pr.proposed_clear_period AS prev_proposed, pr.cleared_period AS prev_cleared,
           r.household_key IS NOT NULL AS on_roster, r.identified_on, r.risk_status, r.cleared_on,
           r.clear_way, r.category AS roster_category,
           h.household_key IS NOT NULL AS in_data, coalesce(h.registry, false) AS registry,
           h.household_id, coalesce(h.village_code, pr.village_code, r.village_code) AS village_code,
           h.labour_able_members,
           h.income_known AND NOT h.below_monitoring AS income_at_line,
           coalesce(h.education_ok AND h.medical_ok AND h.housing_ok AND h.water_ok
                    AND h.income_ok, false) AS three_plus_one
    FROM keys k
    CROSS JOIN policy p
    LEFT JOIN warned w USING (household_key)
    LEFT JOIN prev pr USING (household_key)
    LEFT JOIN roster r USING (household_key)
    LEFT JOIN work.households h USING (household_key)
), stepped AS (
    SELECT *,
           coalesce(first_warned_period, CASE WHEN warned THEN period END) AS first_warned,
           CASE WHEN warned THEN period ELSE last_warned_period END AS last_warned,
           -- a clearance stands unless a warning of a later month follows it
           coalesce(risk_status = '已消除' AND cleared_on <= period_end
                    AND NOT coalesce(strptime(CASE WHEN warned THEN period ELSE last_warned_period END
                                              || '-01', '%Y-%m-%d')::DATE > cleared_on, false),
                    false) AS cleared
    FROM joined
), streak AS (
    SELECT *,
           CASE WHEN NOT cleared AND NOT warned AND coalesce(income_at_line, false)
                THEN coalesce(prev_clean, 0) + 1 ELSE 0 END AS clean_periods
    FROM stepped
), judged AS (
    SELECT *,
           NOT cleared AND clean_periods >= risk_clear_months
               AND (three_plus_one OR NOT registry) AS eligible
    FROM streak
)
SELECT period, household_key, household_id, village_code, left(village_code, 9) AS township_code,
       CASE WHEN cleared THEN 'cleared'
            WHEN eligible AND registry AND labour_able_members > 0 THEN 'proposed_clear'
            WHEN eligible THEN 'manual_review'
            ELSE 'monitoring' END AS status,
       NOT cleared AS under_monitoring, warned,
       least(entered_period, first_warned, strftime(identified_on, '%Y-%m')) AS entered_period,
       coalesce(entered_by, CASE WHEN strftime(identified_on, '%Y-%m') < coalesce(first_warned, '9999')
                                 THEN '名单' ELSE '预警' END) AS entered_by,
       first_warned AS first_warned_period, last_warned AS last_warned_period,
       clean_periods::INTEGER AS clean_periods, on_roster, identified_on, risk_status,
       cleared_on, clear_way, roster_category, in_data, registry,
       labour_able_members > 0 AS has_labour, three_plus_one, income_at_line,
       -- the period a standing proposal was made in (a proposal is history: the events keep it)
       CASE WHEN eligible AND registry AND labour_able_members > 0
            THEN coalesce(CASE WHEN prev_status = 'proposed_clear' THEN prev_proposed END, period)
       END AS proposed_clear_period,
       CASE WHEN cleared THEN coalesce(CASE WHEN prev_status = 'cleared' THEN prev_cleared END, period)
       END AS cleared_period
FROM judged;

DELETE FROM mart.monitoring_states WHERE period = (SELECT period FROM policy);
INSERT INTO mart.monitoring_states BY NAME SELECT * FROM work.monitoring_states_now;

-- 名单无数据: roster rows of the standing snapshot that match no household of the period's data
DELETE FROM mart.roster_unmatched WHERE period = (SELECT period FROM policy);
INSERT INTO mart.roster_unmatched
SELECT p.period, j.period AS roster_period, j.household_id, j.head_id_number, j.village_code,
       left(j.village_code, 9), j.category, j.identified_on, j.risk_status, j.source_file, j.source_row
FROM eff_jiance j CROSS JOIN policy p
-- two anti-joins, not one with OR (which DuckDB can only run as a nested loop)
WHERE NOT EXISTS (SELECT 1 FROM work.households h WHERE h.registry AND h.household_id = j.household_id)
  AND NOT EXISTS (SELECT 1 FROM work.households h WHERE h.head_id = j.head_id_number);
