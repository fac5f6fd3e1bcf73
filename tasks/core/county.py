"""The county folder: a county's own contracts, suites, policy files, division table and alert
settings, outside the installed package (``POVWATCH_COUNTY``).

``init_county(DIR)`` fills a folder from the package's copies, which stay the defaults for any
part the folder does not hold. It never overwrites a file the county has already edited.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from povwatch.tasks.core.settings import (COUNTY_CONFIG_NAME, COUNTY_PARTS, SECRETS_FILE_NAME,
                                          env_name, spec)

# what each part of the package holds for a county (the schema of policy keys stays with the
# models that read the keys, in the package)
PART_FILES = {"contracts": "*.toml", "expectations": "*.json", "policy": "[0-9]*.toml",
              "reference": "divisions.csv"}


def init_county(folder: Path | str) -> tuple[list[Path], list[Path]]:
    """Copy the shipped defaults into ``folder``; returns (files written, files kept as found)."""
    folder = Path(folder).expanduser().resolve()
    written, kept = [], []
    for name, source in COUNTY_PARTS:
        for path in sorted(source.glob(PART_FILES[name])):
            target = folder / name / path.name
            if target.exists():
                kept.append(target)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
            written.append(target)
    config = folder / COUNTY_CONFIG_NAME
    if config.exists():
        kept.append(config)
    else:
        config.write_text(county_config_text(), encoding="utf-8")
        written.append(config)
    return written, kept


def county_config_text() -> str:
    """povwatch.toml for a new county folder: every setting, commented out, with its meaning."""
    lines = [
        "# povwatch settings of this county (see docs/operations.md). A setting given in the",
        "# environment or in the secrets file wins over this file; relative paths are relative to",
        "# this folder. Alert URLs carry tokens: keep them in the git-ignored",
        f"# {SECRETS_FILE_NAME} rather than here if this folder is shared.",
        "",
        "[settings]",
    ]
    for f in spec():
        if f.name in ("county", "secrets_file", "prefect_api_url") or f.name == "alert_urls":
            continue
        default = f.default if f.default not in (None, (), "") else ""
        lines.append(f"# {f.name} = {_toml(default)}    # {env_name(f)}: {f.metadata['meaning']}")
    lines += ["", "[alerts]", "# 告警渠道 (Apprise URLs), e.g. \"dingtalk://TOKEN/\", \"mailto://user:pass@host\"",
              "urls = []", ""]
    return "\n".join(lines)


def _toml(value) -> str:
    if isinstance(value, (int, float)):
        return str(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
