-- reads:  deadlines, eff_caizheng, eff_fupin, eff_minzheng, eff_periods, mart.departments, mart.period_deliveries, mart.rules, policy, staging.gongan, work.counted_assets, work.households, work.members, work.monitoring_states_now
-- writes: mart.problem_findings
-- The cross-department checks P01–P13 and P07b for the period: one row per (code, subject).
-- The ledger (00_schema.sql: mart.ledger_states) is replayed from these rows.

-- Deaths are facts once reported: a gongan snapshot lists the calendar year's cancellations, so
-- January's no longer lists December's deaths. Every accepted snapshot up to the period is read
-- (staging holds accepted snapshots only), not just the effective one.
CREATE OR REPLACE TEMP TABLE deaths AS
SELECT id_number, min(cancelled_on) AS died_on,
       arg_min(source_file, cancelled_on) AS file, arg_min(source_row, cancelled_on) AS row,
       arg_min(g.period, cancelled_on) AS snapshot_period
FROM staging.gongan g, policy p
WHERE g.period <= p.period AND reason = '死亡' AND cancelled_on <= p.period_end
GROUP BY id_number;

CREATE OR REPLACE TEMP TABLE raw_findings AS
-- P01 school-age registry member without an enrolment 在读 / 送教上门
SELECT 'P01' AS code, m.id_number AS subject_id, m.household_id AS household_key,
       m.village_code,
       CASE WHEN m.disability_level <= p.severe_disability_level_max AND m.enrol_status IS NULL
            THEN '送教上门待核实'
            WHEN m.enrol_status IS NULL THEN '辍学（无学籍记录）'
            ELSE m.enrol_status END AS detail,
       'fupin' AS dept, m.source_file AS file, m.source_row AS row
FROM work.members m, policy p WHERE m.out_of_school
UNION ALL
-- P02 registry member not insured for the policy year
SELECT 'P02', m.id_number, m.household_id, m.village_code, p.policy_year || '年度未参保',
       'fupin', m.source_file, m.source_row
FROM work.members m, policy p WHERE NOT m.insured
UNION ALL
-- P03 ill registry member without a family-doctor contract
SELECT 'P03', id_number, household_id, village_code, health || '，未签约家庭医生',
       'fupin', source_file, source_row
FROM work.members WHERE ill AND NOT contracted
UNION ALL
-- P04 dwelling unassessed, or C/D not 已竣工
SELECT 'P04', household_key, household_key, village_code,
       CASE WHEN housing_file IS NULL THEN '住房未鉴定'
            ELSE grade || '级危房，改造' || coalesce(renovation, '状态未填') END,
       'zhujian', housing_file, housing_row
FROM work.households WHERE registry AND NOT housing_ok
UNION ALL
-- P05 water not up to standard, or no record
SELECT 'P05', household_key, household_key, village_code,
       CASE WHEN water_file IS NULL THEN '无饮水安全记录' ELSE '饮水安全不达标' END,
       'shuili', water_file, water_row
FROM work.households WHERE registry AND NOT water_ok
UNION ALL
-- P06 income below the poverty line, or not assessed (未测算)
SELECT 'P06', household_key, household_key, village_code,
       CASE WHEN NOT income_known THEN '未测算'
            ELSE '人均纯收入' || per_capita_income || '元，低于贫困线' END,
       CASE WHEN income_known THEN 'shouru' ELSE 'fupin' END,
       CASE WHEN income_known THEN income_file ELSE head_file END,
       CASE WHEN income_known THEN income_row ELSE head_row END
FROM work.households WHERE registry AND coalesce(income_ok, false) = false
UNION ALL
-- P07 registry member cancelled for death on or before the period's last day
SELECT 'P07', m.id_number, m.household_id, m.village_code, '已于' || d.died_on || '死亡注销',
       'gongan', d.file, d.row
FROM work.members m JOIN deaths d USING (id_number)
UNION ALL
-- P07b deceased person with assistance active in a period after the month of death
SELECT 'P07b', z.id_number,
       (SELECT min(household_id) FROM work.members m WHERE m.id_number = z.id_number),
       z.village_code, z.assistance || '：' || d.died_on || '死亡后仍在保',
       'minzheng', z.source_file, z.source_row
FROM eff_minzheng z JOIN deaths d USING (id_number), policy p
WHERE z.start_month <= p.period_start
  AND (z.end_month IS NULL OR z.end_month >= p.period_start)
  AND p.period_start > date_trunc('month', d.died_on)
UNION ALL
-- P08 registry member on the state payroll
SELECT 'P08', m.id_number, m.household_id, m.village_code, '财政供养：' || c.employer,
       'caizheng', c.source_file, c.source_row
FROM work.members m JOIN eff_caizheng c USING (id_number)
UNION ALL
-- P09 registry member with a certificate: level 1–2 without care subsidy, or no living subsidy
SELECT 'P09', id_number, household_id, village_code,
       concat_ws('；',
           CASE WHEN disability_level <= p.severe_disability_level_max AND NOT care_subsidy
                THEN '重度残疾未享护理补贴' END,
           CASE WHEN NOT living_subsidy THEN '未享生活补贴' END),
       'canlian', cert_file, cert_row
FROM work.members, policy p
WHERE disability_level IS NOT NULL
  AND ((disability_level <= p.severe_disability_level_max AND NOT care_subsidy) OR NOT living_subsidy)
UNION ALL
-- P10 registry per-capita income (head's row) disagrees with the assessment
SELECT 'P10', household_key, household_key, village_code,
       '建档立卡' || registry_pci || '元，测算' || per_capita_income || '元',
       'shouru', income_file, income_row
FROM work.households, policy p
WHERE registry AND income_known AND registry_pci IS NOT NULL
  AND abs(registry_pci * declared_members - total_income) > p.income_mismatch_ratio * abs(total_income)
  AND abs(registry_pci * declared_members - total_income) > p.income_mismatch_yuan * declared_members
UNION ALL
-- P11 one identity number on rows that differ: two households, or twice in one
SELECT 'P11', id_number, min(household_id), min(village_code),
       CASE WHEN count(DISTINCT household_id) > 1
            THEN '同时在' || count(DISTINCT household_id) || '户'
            ELSE '同户重复' || count(*) || '次' END,
       'fupin', min(source_file), min(source_row)
FROM eff_fupin   -- the few repeated numbers found first, then only their rows aggregated
WHERE id_number IN (SELECT id_number FROM eff_fupin GROUP BY id_number HAVING count(*) > 1)
   OR id_number IS NULL
GROUP BY id_number HAVING count(*) > 1
UNION ALL
-- P12 below the line, no labour-able member, no active 低保 / 特困供养 (应保尽保)
SELECT 'P12', h.household_key, h.household_key, h.village_code,
       '无劳动力，人均纯收入' || h.per_capita_income || '元，未纳入低保或特困供养',
       'shouru', h.income_file, h.income_row
FROM work.households h, policy p
WHERE h.registry AND h.income_known AND NOT h.income_ok AND h.labour_able_members = 0
  AND NOT EXISTS (
      SELECT 1 FROM work.members m JOIN eff_minzheng z USING (id_number)
      WHERE m.household_id = h.household_key AND z.assistance IN ('低保', '特困供养')
        AND z.start_month <= p.period_start
        AND (z.end_month IS NULL OR z.end_month >= p.period_start))
UNION ALL
-- P13 distinct members disagree with the declared size, or no 户主 row
SELECT 'P13', household_key, household_key, village_code,
       concat_ws('；',
           CASE WHEN head_rows = 0 THEN '无户主' END,
           CASE WHEN income_known AND members <> declared_members
                THEN '建档立卡' || members || '人，测算' || declared_members || '人' END),
       'fupin', head_file, head_row
FROM work.households
WHERE registry AND (head_rows = 0 OR (income_known AND members <> declared_members))
UNION ALL
-- P14–P16 registry member who owns a counted asset (25_assets.sql: car, town flat, company)
SELECT a.code, a.id_number, m.household_id, m.village_code, a.detail, a.dept,
       a.source_file, a.source_row
FROM work.counted_assets a
JOIN (SELECT id_number, min(household_id) AS household_id, min(village_code) AS village_code
      FROM work.members WHERE id_number IN (SELECT id_number FROM work.counted_assets)  -- owners only
      GROUP BY id_number) m USING (id_number)
UNION ALL
-- P17 识别不及时: warned this period, no row at all on the official roster that stands for the
-- period; P18 风险再标注: cleared on that roster and warned in a later month. Both only once a
-- roster (jiance) has been accepted (36_monitoring_states.sql matches the roster to households).
SELECT 'P17', s.household_key, s.household_key, s.village_code,
       '预警未识别纳入监测（首次预警' || s.first_warned_period || '）', 'jiance', NULL, NULL
FROM work.monitoring_states_now s
WHERE s.warned AND NOT s.on_roster
  AND EXISTS (SELECT 1 FROM mart.period_deliveries d, policy p WHERE d.dept = 'jiance' AND d.period <= p.period)
UNION ALL
SELECT 'P18', s.household_key, s.household_key, s.village_code,
       '名单' || strftime(s.cleared_on, '%Y-%m-%d') || coalesce(s.clear_way, '') || '，本期再次预警',
       'jiance', NULL, NULL
FROM work.monitoring_states_now s, policy p
WHERE s.warned AND s.risk_status = '已消除' AND s.cleared_on < p.period_start;


DELETE FROM mart.problem_findings WHERE period = (SELECT period FROM policy);
INSERT INTO mart.problem_findings
SELECT p.period, f.code, f.subject_id, r.subject_type,
       min(f.household_key), left(min(f.village_code), 9), min(f.village_code),
       r.responsible_dept, d.name, dl.days,
       array_to_string(list_sort(list(DISTINCT f.detail)), '；'),
       to_json(list_sort(list(DISTINCT {'dept': f.dept, 'period': ep.eff_period,
                                        'source_file': f.file, 'source_row': f.row})))
FROM raw_findings f
CROSS JOIN policy p
JOIN mart.rules r USING (code)
LEFT JOIN mart.departments d ON d.code = r.responsible_dept
LEFT JOIN deadlines dl ON dl.code = f.code
LEFT JOIN eff_periods ep ON ep.dept = f.dept
GROUP BY ALL;
