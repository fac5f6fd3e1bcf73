-- reads:  mart.departments, policy, work.categories, work.households, work.members, work.reason_evidence
-- writes: mart.household_plan
-- 一户一策: suggested measures for every household under monitoring, from its reasons.
DELETE FROM mart.household_plan WHERE period = (SELECT period FROM policy);
INSERT INTO mart.household_plan
WITH monitored AS (
    SELECT DISTINCT household_key FROM work.categories
), hr AS (
    SELECT DISTINCT household_key, reason FROM work.reason_evidence
    WHERE household_key IN (SELECT household_key FROM monitored)
), below AS (   -- below the line: 收入不达标 found
    SELECT h.household_key, h.registry, h.labour_able_members,
           EXISTS (SELECT 1 FROM work.members m WHERE m.household_id = h.household_key
                   AND m.labour_able AND m.work_months < p.stable_work_months) AS idle_labour
    FROM work.households h, policy p
    WHERE h.household_key IN (SELECT household_key FROM hr WHERE reason = '收入不达标')
), measures AS (
    SELECT household_key, '纳入低保或特困供养（应保尽保）' AS measure, 'minzheng' AS dept_code,
           '收入不达标' AS reason
    FROM below WHERE registry AND labour_able_members = 0
    UNION ALL
    SELECT household_key, '稳定就业帮扶或安排公益性岗位', 'renshe', '收入不达标'
    FROM below WHERE idle_labour
    UNION ALL
    SELECT household_key, m.measure, m.dept_code, hr.reason
    FROM hr JOIN (VALUES
        ('因学', '劝返复学或送教上门', 'jiaoyu'),
        ('住房安全', '危房改造', 'zhujian'),
        ('饮水安全', '饮水安全工程', 'shuili'),
        ('因病', '家庭医生签约服务', 'weijian'),
        ('因病', '大病保险与医疗救助', 'yibao'),
        ('因残', '残疾人两项补贴', 'canlian'),
        ('参保缺失', '参保动员', 'yibao')
    ) AS m(reason, measure, dept_code) USING (reason)
)
SELECT p.period, ms.household_key, ms.measure, d.name, ms.dept_code, ms.reason
FROM measures ms CROSS JOIN policy p LEFT JOIN mart.departments d ON d.code = ms.dept_code;
