-- reads:  eff_canlian, eff_periods, mart.monitoring_exclusions, policy, work.counted_assets, work.households, work.members
-- writes: mart.monitoring, mart.monitoring_exclusions, work.categories, work.reason_evidence
-- 监测对象: categories per household, the reasons (风险类型) found for the household and the rows
-- behind every reason.

CREATE OR REPLACE TABLE work.categories AS
SELECT household_key, 'not_exited_below_line' AS category FROM work.households
WHERE registry AND registry_status = '未脱贫' AND coalesce(income_ok, false) = false
UNION ALL
SELECT household_key, 'unstable_exited' FROM work.households
WHERE registry AND registry_status = '已脱贫'
  AND (coalesce(below_monitoring, true) OR NOT education_ok OR NOT medical_ok
       OR NOT housing_ok OR NOT water_ok OR NOT coalesce(income_ok, false))
UNION ALL
SELECT household_key, 'marginal' FROM work.households
WHERE NOT registry
  AND (coalesce(below_monitoring, true) OR coalesce(NOT housing_ok, false)
       OR coalesce(NOT water_ok, false))
UNION ALL
SELECT household_key, 'sudden_hardship' FROM work.households
WHERE income_known AND (income_drop OR medical_shock);

-- 负面清单: a non-registry household whose head owns a counted asset (25_assets.sql) is not warned
-- as marginal; the exclusion is recorded with its evidence. sudden_hardship still applies. The
-- head is the member of a non-registry household the warehouse knows (shouru keys it so).
DELETE FROM mart.monitoring_exclusions WHERE period = (SELECT period FROM policy);
INSERT INTO mart.monitoring_exclusions
SELECT p.period, c.household_key, a.asset,
       to_json(list_sort(list({'dept': a.dept, 'source_file': a.source_file,
                               'source_row': a.source_row, 'detail': a.detail})))
FROM work.categories c
JOIN work.households h USING (household_key)
JOIN work.counted_assets a ON a.id_number = h.head_id
CROSS JOIN policy p
WHERE c.category = 'marginal' AND NOT h.registry
GROUP BY p.period, c.household_key, a.asset;
DELETE FROM work.categories
WHERE category = 'marginal'
  AND household_key IN (SELECT household_key FROM mart.monitoring_exclusions
                        WHERE period = (SELECT period FROM policy));

-- Evidence: (household_key, reason, dept, period, source_file, source_row, note). A reason that
-- rests on a missing record names the department with no file and the note 无记录.
CREATE OR REPLACE TABLE work.reason_evidence AS
-- 收入不达标: below the household's own line (poverty line if not exited, else monitoring line)
SELECT household_key, '收入不达标' AS reason, 'shouru' AS dept, income_period AS period,
       income_file AS source_file, income_row AS source_row, NULL AS note
FROM work.households
WHERE income_known AND CASE WHEN registry_status = '未脱贫' THEN NOT income_ok
                            ELSE below_monitoring AND NOT costs_push_under END
UNION ALL
SELECT household_key, '刚性支出较大', 'shouru', income_period, income_file, income_row,
       '扣除自付医疗、教育费用后低于监测线'
FROM work.households WHERE costs_push_under
UNION ALL
SELECT household_key, '未测算', 'shouru', NULL, NULL, NULL, '收入测算无记录'
FROM work.households WHERE registry AND NOT income_known
UNION ALL
SELECT household_key, '收入骤减', 'shouru', income_period, income_file, income_row, NULL
FROM work.households WHERE income_drop
UNION ALL
SELECT household_key, '因病', 'shouru', income_period, income_file, income_row, '自付医疗费用'
FROM work.households WHERE medical_shock
UNION ALL
SELECT m.household_id, '因病', 'fupin', m.src_period, m.source_file, m.source_row, m.health
FROM work.members m WHERE m.ill
UNION ALL
-- a medical-insurance gap is its own reason (参保缺失): 因病 needs illness or a medical expense
SELECT m.household_id, '参保缺失', 'yibao', NULL, NULL, NULL, '未参加基本医疗保险'
FROM work.members m WHERE NOT m.insured
UNION ALL
SELECT m.household_id, '因残', 'canlian', NULL, m.cert_file, m.cert_row, NULL
FROM work.members m WHERE m.disability_level IS NOT NULL
UNION ALL
SELECT h.household_key, '因残', 'canlian', NULL, c.source_file, c.source_row, NULL
FROM work.households h JOIN eff_canlian c ON c.id_number = h.head_id WHERE NOT h.registry
UNION ALL
SELECT m.household_id, '缺劳力', 'fupin', m.src_period, m.source_file, m.source_row, m.labor
FROM work.members m JOIN work.households h ON h.household_key = m.household_id AND h.registry
WHERE h.labour_able_members = 0
UNION ALL
SELECT m.household_id, '务工不稳', 'renshe', NULL, m.work_file, m.work_row,
       '务工' || m.work_months || '个月'
FROM work.members m WHERE m.unstable_work
UNION ALL
SELECT household_key, '住房安全', 'zhujian', NULL, housing_file, housing_row,
       CASE WHEN housing_file IS NULL THEN '无鉴定记录' ELSE grade || '级' || coalesce(renovation, '') END
FROM work.households WHERE housing_ok = false
UNION ALL
SELECT household_key, '饮水安全', 'shuili', NULL, water_file, water_row,
       CASE WHEN water_file IS NULL THEN '无记录' ELSE '不达标' END
FROM work.households WHERE water_ok = false
UNION ALL
SELECT m.household_id, '因学', 'jiaoyu', NULL, m.enrol_file, m.enrol_row,
       coalesce(m.enrol_status, '无学籍')
FROM work.members m WHERE m.out_of_school
UNION ALL
-- the registry rows of the members behind member-based reasons
SELECT household_id, '因学', 'fupin', src_period, source_file, source_row, NULL
FROM work.members WHERE out_of_school
UNION ALL
SELECT household_id, '务工不稳', 'fupin', src_period, source_file, source_row, NULL
FROM work.members WHERE unstable_work
UNION ALL
SELECT household_id, '参保缺失', 'fupin', src_period, source_file, source_row, '未参保'
FROM work.members WHERE NOT insured;

-- Snapshot periods of the evidence rows: the effective period of the department.
UPDATE work.reason_evidence e SET period = ep.eff_period
FROM eff_periods ep WHERE ep.dept = e.dept AND e.period IS NULL AND e.source_file IS NOT NULL;

DELETE FROM mart.monitoring WHERE period = (SELECT period FROM policy);
INSERT INTO mart.monitoring
WITH reasons AS (
    SELECT household_key,
           list_sort(list(DISTINCT reason)) AS reasons,
           to_json(list_sort(list({'reason': reason, 'dept': dept, 'period': period,
                                   'source_file': source_file, 'source_row': source_row,
                                   'note': note}))) AS evidence
    FROM work.reason_evidence
    -- only households under a category get a row below: their evidence alone is gathered into
    -- JSON (not every household's, most of them not monitored)
    WHERE household_key IN (SELECT household_key FROM work.categories)
    GROUP BY household_key
)
SELECT p.period, c.household_key, c.category,
       coalesce(r.reasons, []::VARCHAR[]), coalesce(r.evidence, '[]')::JSON,
       CASE c.category WHEN 'not_exited_below_line' THEN '未脱贫未达标'
                       WHEN 'unstable_exited' THEN '脱贫不稳定户'
                       WHEN 'marginal' THEN '边缘易致贫户'
                       WHEN 'sudden_hardship' THEN '突发严重困难户' END,
       h.registry_status, h.village_code
FROM work.categories c
CROSS JOIN policy p
JOIN work.households h USING (household_key)
LEFT JOIN reasons r USING (household_key);
