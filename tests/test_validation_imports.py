"""GX's import leaves out what no suite of ours uses (scipy.stats and altair, ~1.2 s of CPU a run),
and a suite that did use them would still get the real modules (tasks/validate/deferred_imports.py).

Each check runs in a fresh interpreter: whether a module is imported is a property of the process.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.support import robust as rs


def _python(code: str, tmp_path) -> str:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=str(rs.PROJECT),
                          env=rs.cli_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc.stdout


def test_gx_context_is_set_up_without_importing_scipy_stats_or_altair_which_still_work(tmp_path):
    out = _python(f"""
        import sys
        from povwatch.tasks.validate import deferred_imports, suites
        context = suites.gx_context({str(tmp_path / "w.duckdb")!r})   # GX imported, file context made
        assert "great_expectations" in sys.modules and context is not None
        print("deferred", deferred_imports.is_deferred("scipy.stats"), deferred_imports.is_deferred("altair"))

        # GX's KL-divergence expectation holds the placeholder it imported: first use imports the real one
        from great_expectations.expectations.core import expect_column_kl_divergence_to_be_less_than as kl
        print("entropy", round(float(kl.stats.entropy([0.5, 0.5], [0.25, 0.75])), 6))
        print("real", type(sys.modules["scipy.stats"]).__name__, sys.modules["scipy.stats"].__file__.endswith("__init__.py"))
        from scipy.stats import entropy   # a later import gets the real module
        print("same", entropy is kl.stats.entropy, deferred_imports.is_deferred("scipy.stats"))
        print("altair", kl.alt.Chart.__name__, deferred_imports.is_deferred("altair"))
        """, tmp_path)
    lines = dict(line.split(" ", 1) for line in out.splitlines())
    assert lines["deferred"] == "True True"     # neither was imported by GX's import or context
    assert lines["entropy"] == "0.143841"       # sum p log(p/q) = 0.5 ln(2) + 0.5 ln(2/3)
    assert lines["real"] == "module True"
    assert lines["same"] == "True False"
    assert lines["altair"] == "Chart False"


def test_a_module_already_imported_is_left_as_it_is(tmp_path):
    out = _python("""
        import sys, json
        from povwatch.tasks.validate import deferred_imports
        print(deferred_imports.defer(("json", "povwatch_no_such_module")), sys.modules["json"] is json)
        try:
            sys.modules["povwatch_no_such_module"].anything
        except ModuleNotFoundError:
            print("missing still deferred", deferred_imports.is_deferred("povwatch_no_such_module"))
        """, tmp_path)
    assert out.splitlines() == ["['povwatch_no_such_module'] True", "missing still deferred True"]
