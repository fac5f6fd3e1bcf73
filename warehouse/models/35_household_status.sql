-- reads:  policy, work.households, work.monitoring_states_now
-- writes: mart.household_status
-- One row per household and period, with the 3+1 indicators and the 三色码.
DELETE FROM mart.household_status WHERE period = (SELECT period FROM policy);
INSERT INTO mart.household_status
SELECT p.period, h.household_key, h.household_id, h.county_code, h.township_code, h.village_code,
       h.registry_status, h.object_type, h.members, h.per_capita_income,
       h.education_ok, h.medical_ok, h.housing_ok, h.water_ok, h.income_ok,
       CASE WHEN NOT h.income_known
                 OR h.total_income < p.color_red_below * h.declared_members
                 OR coalesce(NOT h.education_ok, false) OR coalesce(NOT h.medical_ok, false)
                 OR coalesce(NOT h.housing_ok, false) OR coalesce(NOT h.water_ok, false)
                 OR coalesce(NOT h.income_ok, false)
                 THEN 'red'
            -- the colour lines include their upper bound: exactly color_yellow_below is yellow
            WHEN h.total_income <= p.color_yellow_below * h.declared_members THEN 'yellow'
            ELSE 'green' END AS color,
       h.head_id, h.declared_members, h.income_known, h.labour_able_members,
       -- under monitoring as the office counts it (36_monitoring_states.sql, run just before)
       h.household_key IN (SELECT household_key FROM work.monitoring_states_now
                           WHERE under_monitoring) AS monitored
FROM work.households h CROSS JOIN policy p;
