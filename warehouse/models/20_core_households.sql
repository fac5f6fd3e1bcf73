-- reads:  eff_shouru, eff_shuili, eff_zhujian, policy, work.members
-- writes: work.households
-- Households of the period: registry households (from the registry, matched to their income
-- assessment by household_id, else by the head's identity number) and non-registry households
-- (shouru rows that match no registry household — also those typed 建档立卡户 whose household
-- is not in the registry: assessed as non-registry, keyed by the head, never dropped).
-- Money comparisons are made exactly, on totals: per-capita x members never rounds.

CREATE OR REPLACE TEMP TABLE reg_households AS
SELECT household_id,
       arg_min(id_number, source_row) FILTER (WHERE relation = '户主') AS head_id,
       count(*) FILTER (WHERE relation = '户主') AS head_rows,
       count(DISTINCT id_number)::INTEGER AS members,
       coalesce(arg_min(village_code, source_row) FILTER (WHERE relation = '户主'),
                arg_min(village_code, source_row)) AS village_code,
       coalesce(arg_min(poverty_status, source_row) FILTER (WHERE relation = '户主'),
                arg_min(poverty_status, source_row)) AS poverty_status,
       arg_min(per_capita_income, source_row) FILTER (WHERE relation = '户主') AS registry_pci,
       coalesce(arg_min(source_file, source_row) FILTER (WHERE relation = '户主'),
                arg_min(source_file, source_row)) AS head_file,
       coalesce(min(source_row) FILTER (WHERE relation = '户主'), min(source_row)) AS head_row,
       (count(*) FILTER (WHERE labour_able))::INTEGER AS labour_able_members,
       bool_and(insured) AS medical_ok,
       NOT bool_or(out_of_school) AS education_ok
FROM work.members GROUP BY household_id;

CREATE OR REPLACE TEMP TABLE shouru_income AS
SELECT s.*,
       (wage_income + business_income - business_cost + property_income + transfer_income)
           AS total_income
FROM eff_shouru s;

-- One assessment per registry household: by household_id first, else by head id (rows without
-- a household_id that say 建档立卡户).
CREATE OR REPLACE TEMP TABLE reg_income AS
WITH candidates AS (   -- two equi-joins, not one OR-join (which would be a nested loop)
    SELECT h.household_id, 0 AS pref, s.*  EXCLUDE (household_id), s.household_id AS s_household_id
    FROM reg_households h JOIN shouru_income s ON s.household_id = h.household_id
    UNION ALL
    SELECT h.household_id, 1 AS pref, s.*  EXCLUDE (household_id), s.household_id AS s_household_id
    FROM reg_households h JOIN shouru_income s ON s.head_id_number = h.head_id
    WHERE s.household_id IS NULL AND s.object_type = '建档立卡户'
)
SELECT * EXCLUDE (pref) FROM candidates
QUALIFY row_number() OVER (PARTITION BY household_id ORDER BY pref, source_file, source_row) = 1;

CREATE OR REPLACE TABLE work.households AS
WITH reg AS (
    SELECT h.household_id AS household_key, h.household_id, h.head_id, true AS registry,
           h.poverty_status AS registry_status,
           coalesce(i.object_type, '建档立卡户') AS object_type,
           h.village_code, h.members, i.members AS declared_members,
           i.total_income, i.prev_per_capita_income AS prev_pci, i.medical_out_of_pocket AS oop,
           i.education_out_of_pocket AS edu_oop,
           i.period AS income_period, i.source_file AS income_file, i.source_row AS income_row,
           h.education_ok, h.medical_ok, h.labour_able_members, h.head_rows, h.registry_pci,
           h.head_file, h.head_row
    FROM reg_households h LEFT JOIN reg_income i USING (household_id)
), nonreg AS (
    SELECT s.head_id_number AS household_key, NULL::VARCHAR AS household_id,
           s.head_id_number AS head_id, false AS registry, '非建档立卡' AS registry_status,
           s.object_type, s.village_code, s.members, s.members AS declared_members,
           s.total_income, s.prev_per_capita_income AS prev_pci, s.medical_out_of_pocket AS oop,
           s.education_out_of_pocket AS edu_oop,
           s.period AS income_period, s.source_file AS income_file, s.source_row AS income_row,
           NULL::BOOLEAN AS education_ok, NULL::BOOLEAN AS medical_ok,
           -- labour ability is recorded only in the registry: unknown for other households
           NULL::INTEGER AS labour_able_members,
           NULL::BIGINT AS head_rows, NULL::DECIMAL(14,2) AS registry_pci,
           NULL::VARCHAR AS head_file, NULL::INTEGER AS head_row
    FROM shouru_income s
    WHERE NOT EXISTS (SELECT 1 FROM reg_income r
                      WHERE r.source_file = s.source_file AND r.source_row = s.source_row)
    QUALIFY row_number() OVER (PARTITION BY s.head_id_number ORDER BY s.source_file, s.source_row) = 1
), hh AS (
    SELECT * FROM reg UNION ALL BY NAME SELECT * FROM nonreg
), housing AS (   -- housing, water: only the heads of the households here (what the joins match)
    SELECT head_id_number,
           bool_and(grade IN ('A', 'B') OR (grade IN ('C', 'D')
                                            AND coalesce(renovation = '已竣工', false))) AS ok,
           arg_min(grade, source_row) AS grade, arg_min(renovation, source_row) AS renovation,
           arg_min(source_file, source_row) AS file, min(source_row) AS row
    FROM eff_zhujian WHERE head_id_number IN (SELECT head_id FROM hh) GROUP BY head_id_number
), water AS (
    SELECT head_id_number,
           bool_and(quantity_ok AND quality_ok AND convenience_ok
                    AND guarantee_rate >= (SELECT water_guarantee_min FROM policy)) AS ok,
           arg_min(source_file, source_row) AS file, min(source_row) AS row
    FROM eff_shuili WHERE head_id_number IN (SELECT head_id FROM hh) GROUP BY head_id_number
)
SELECT hh.*,
       left(hh.village_code, 6) AS county_code, left(hh.village_code, 9) AS township_code,
       hh.total_income IS NOT NULL AS income_known,
       CASE WHEN hh.total_income IS NOT NULL
            THEN round(hh.total_income / hh.declared_members, 2)::DECIMAL(14,2) END AS per_capita_income,
       CASE WHEN hh.total_income IS NOT NULL
            THEN hh.total_income >= p.poverty_line * hh.declared_members END AS income_ok,
       -- from policy years that deduct unavoidable costs (刚性支出) the watch line reads income
       -- after medical and schooling out of pocket; income_ok, P06 and the colour keep the plain figure
       CASE WHEN hh.total_income IS NOT NULL
            THEN hh.total_income - CASE WHEN p.deduct_unavoidable_costs
                                        THEN coalesce(hh.oop, 0) + coalesce(hh.edu_oop, 0) ELSE 0 END
                 < p.monitoring_line * hh.declared_members END AS below_monitoring,
       coalesce(hh.total_income IS NOT NULL AND p.deduct_unavoidable_costs
                AND hh.total_income >= p.monitoring_line * hh.declared_members
                AND hh.total_income - coalesce(hh.oop, 0) - coalesce(hh.edu_oop, 0)
                    < p.monitoring_line * hh.declared_members, false) AS costs_push_under,
       CASE WHEN hz.head_id_number IS NOT NULL THEN hz.ok
            WHEN hh.registry THEN false END AS housing_ok,
       hz.grade, hz.renovation, hz.file AS housing_file, hz.row AS housing_row,
       CASE WHEN w.head_id_number IS NOT NULL THEN w.ok
            WHEN hh.registry THEN false END AS water_ok,
       w.file AS water_file, w.row AS water_row,
       -- sudden hardship (收入骤减 / 因病支出)
       coalesce(hh.total_income IS NOT NULL AND hh.prev_pci > 0
                AND hh.prev_pci * hh.declared_members - hh.total_income
                    >= p.income_drop_ratio * hh.prev_pci * hh.declared_members, false) AS income_drop,
       coalesce(hh.total_income IS NOT NULL AND hh.oop > 0
                AND (hh.total_income <= 0 OR hh.oop >= p.medical_burden_ratio * hh.total_income
                     OR hh.oop >= CASE WHEN hh.registry THEN p.medical_alert_amount_registry
                                       ELSE p.medical_alert_amount_other END), false) AS medical_shock
FROM hh
CROSS JOIN policy p
LEFT JOIN housing hz ON hz.head_id_number = hh.head_id
LEFT JOIN water w ON w.head_id_number = hh.head_id;
