"""Installing povwatch adds one import name, `povwatch`, and everything it reads at run time.

The folders stay at the repository root (flows/, tasks/, warehouse/, expectations/); setuptools maps
them under `povwatch.` (pyproject.toml). A wheel built from the repository is what a non-editable
install puts into site-packages, so its file list is the proof.
"""
from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel_names(tmp_path_factory) -> list[str]:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "-w", str(out), str(ROOT)], check=True, capture_output=True, cwd=out)
    (wheel,) = out.glob("povwatch-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        return zf.namelist()


def test_wheel_adds_only_the_povwatch_import_name(wheel_names):
    top_level = {name.split("/")[0] for name in wheel_names}
    dist_info = {t for t in top_level if t.endswith(".dist-info")}
    assert top_level - dist_info == {"povwatch"}
    assert not any(name.startswith("povwatch/__init__") for name in wheel_names), \
        "povwatch is a namespace package: no __init__ that could shadow another install"


def test_wheel_holds_every_file_the_package_reads(wheel_names):
    """Each file the code opens by path (not by import) is in the wheel: a missing one is a
    FileNotFoundError or TemplateNotFound only on a non-editable install."""
    names = set(wheel_names)
    repo_data = [p for folder in ("warehouse", "expectations", "tasks")
                 for p in (ROOT / folder).rglob("*")
                 if p.is_file() and p.suffix not in {".py", ".pyc"} and "__pycache__" not in p.parts]
    assert repo_data, "the repository ships data files"
    missing = [str(p.relative_to(ROOT)) for p in repo_data
               if f"povwatch/{p.relative_to(ROOT).as_posix()}" not in names]
    assert not missing, f"not in the wheel: {missing}"
    modules = [p for folder in ("flows", "tasks", "warehouse", "expectations")
               for p in (ROOT / folder).rglob("*.py") if "__pycache__" not in p.parts]
    missing_modules = [str(p.relative_to(ROOT)) for p in modules
                       if f"povwatch/{p.relative_to(ROOT).as_posix()}" not in names]
    assert not missing_modules, f"modules not in the wheel (add the package to pyproject.toml): {missing_modules}"
