"""Why a row was quarantined or repaired, in the words a department clerk reads.

One source of truth: the conformer, the generator's planted truth and the receipts all use these.
A quarantine reason reads "<column label>：<what is wrong>", e.g. "身份证号：校验位错误", with the
column's canonical Chinese label from the contract (not the synonym the file happened to use).
"""
from __future__ import annotations

# --- identity numbers (unrepairable) ---
ID_SCIENTIFIC = "被Excel存成科学计数法，末几位已丢失，无法修复"
ID_CHECK_DIGIT = "校验位错误"
ID_BIRTH_DATE = "出生日期无效"
ID_FORMAT = "位数或字符不合规"

# --- other cells ---
REQUIRED_BLANK = "必填项为空"
CODE_NOT_IN_LIST = "不在取值范围内"
DATE_UNPARSEABLE = "日期无法识别"
MONTH_UNPARSEABLE = "年月无法识别"
MONEY_UNPARSEABLE = "金额无法识别"
INT_UNPARSEABLE = "不是整数"
NUMBER_UNPARSEABLE = "不是数值"
BOOL_UNPARSEABLE = "应填“是”或“否”"
VILLAGE_FORMAT = "村代码应为12位数字"
OUT_OF_RANGE = "超出允许范围"
TEXT_TOO_LONG = "内容过长"          # a text cell longer than any real name or unit (pasted junk)
CERTIFICATE_FORMAT = "残疾证号应为20位（身份证号+类别+等级）"

# --- whole rows ---
DUPLICATE_ROW = "重复行"   # identical to an earlier row of the same extract: loaded once

# --- repairs (recorded, not quarantined) ---
REPAIR_LOWER_X = "小写x改大写"
REPAIR_FULL_WIDTH = "全角转半角"
REPAIR_SPACES = "去除空格"
REPAIR_15_TO_18 = "15位升18位"


def cell_reason(label: str, what: str) -> str:
    """A quarantine reason naming the column by its canonical Chinese label."""
    return f"{label}：{what}"


def row_reason(what: str) -> str:
    """A reason about the whole row (e.g. a duplicate), with no column."""
    return what


# --- rows sharing a key that must be unique (quarantined together, #20) ---
DUPLICATE_KEY = "重复键"


def duplicate_key_reason(key: list[tuple[str, str]], rows: int, check: str) -> str:
    """"重复键：身份证号 620523********0012、救助类型 低保、起始年月 2019-01，共2行，请核对保留哪一行
    （unique_id_number_assistance_start_month）": the key's labels and values (identity numbers
    masked by the caller), how many rows share it, and the suite's check. The validation writes
    the same text in SQL (tasks.validate.suites.duplicate_key_reasons_sql)."""
    shown = "、".join(f"{label} {value}" for label, value in key)
    return f"{DUPLICATE_KEY}：{shown}，共{rows}行，请核对保留哪一行（{check}）"
