"""Data Docs that work on an intranet: GX's pages pointed at assets shipped with povwatch.

Great Expectations writes its Data Docs pages with Bootstrap, jQuery, Popper, Font Awesome,
bootstrap-table, bootstrap-datepicker and Vega loaded from public CDNs, and GX's logo, a link to
its site and a newsletter form on every page. Offline, a page renders as unstyled text. The county
office has no internet, so after every build the pages are rewritten here:

* the CDN files are replaced by the copies in ``datadocs_assets/`` (taken once from the npm
  registry at the versions GX asks for, each with its licence; see ``datadocs_assets/README.md``),
  copied to ``<site>/static/offline/`` and referenced by relative paths, so that a copied site
  folder keeps working;
* every other network reference (logo images, links to GX's site, the newsletter form) is
  neutralised: images become empty ``data:`` images, a CSS background ``none``, links and form
  targets ``#``.

No page povwatch writes references the network (tests/test_household.py scans them all).
"""
from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

ASSETS = Path(__file__).parent / "datadocs_assets"
OFFLINE_DIR = ("static", "offline")

# What GX's templates load from the network -> the shipped copy (path inside datadocs_assets/).
LOCAL_COPIES = {
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css":
        "bootstrap/css/bootstrap.min.css",
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js":
        "bootstrap/js/bootstrap.min.js",
    "https://code.jquery.com/jquery-3.7.1.min.js": "jquery/jquery.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js":
        "popper.js/umd/popper.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css":
        "fontawesome-free/css/all.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/bootstrap-datepicker.min.js":
        "bootstrap-datepicker/js/bootstrap-datepicker.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/bootstrap-datepicker.min.css":
        "bootstrap-datepicker/css/bootstrap-datepicker.min.css",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js":
        "bootstrap-table/bootstrap-table.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css":
        "bootstrap-table/bootstrap-table.min.css",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.js":
        "bootstrap-table/extensions/filter-control/bootstrap-table-filter-control.min.js",
    # GX asks for 1.19.0 of this one stylesheet; 1.19.1's is the same extension's
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.min.css":
        "bootstrap-table/extensions/filter-control/bootstrap-table-filter-control.min.css",
    "https://cdn.jsdelivr.net/npm/vega@5": "vega/vega.min.js",
    "https://cdn.jsdelivr.net/npm/vega-lite@5": "vega-lite/vega-lite.min.js",
    "https://cdn.jsdelivr.net/npm/vega-embed@6": "vega-embed/vega-embed.min.js",
    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css":
        "bootstrap-dark/css/bootstrap-prefers-dark.css",
}
# Any other reference to the network in an attribute a browser follows or loads.
_IMAGE = re.compile(r"""(<img\b[^>]*?\bsrc=)(["'])(?:https?:)?//[^"']*\2""", re.IGNORECASE)
_OTHER = re.compile(r"""\b(src|href|action)=(["'])(?:https?:)?//[^"']*\2""", re.IGNORECASE)
_CSS_URL = re.compile(r"""url\((["']?)(?:https?:)?//[^)"']*\1\)""", re.IGNORECASE)


# When the last pass over the site started (seconds, in a file beside the assets): a later pass reads
# only the pages written since. Every page of the site was read at every pass before, a cost that
# grew with the months of results kept (172 pages, 0.04 -> 0.08 s CPU a period over a year at S).
CHECKED_MARKER = ".pages_checked"
# File times come from the kernel's coarse clock, which may lag time.time_ns() by a tick: a page
# written just after a pass started could carry an earlier time. Pages this much older than the
# last pass's start are read again (a few, each pass); any older page was read by an earlier pass.
CLOCK_SLACK_NS = 2_000_000_000


def make_offline(site: Path) -> int:
    """Copy the assets into ``site`` (once) and rewrite every page written since the last pass
    (all of them on the first) that still points at the network; returns how many pages were
    rewritten. A page a stopped build wrote and no pass read is written after the last pass's
    start, so the next pass reads it."""
    site = Path(site)
    if not site.is_dir():
        return 0
    started = time.time_ns()
    target = site.joinpath(*OFFLINE_DIR)
    if not (target / "README.md").exists():
        shutil.copytree(ASSETS, target, dirs_exist_ok=True, copy_function=shutil.copyfile)
        _owner_only(target)   # like every file povwatch writes in the output folder
    since = _last_pass(target) - CLOCK_SLACK_NS
    rewritten = 0
    for page in site.rglob("*.html"):
        try:
            if page.stat().st_mtime_ns < since:
                continue
        except OSError:   # removed meanwhile (GX cleans pages whose result is gone)
            continue
        text = page.read_text(encoding="utf-8")
        offline = offline_page(text, os.path.relpath(target, page.parent))
        if offline != text:
            page.write_text(offline, encoding="utf-8")
            rewritten += 1
    marker = target / CHECKED_MARKER
    # seconds with a decimal point: never a run of 18 digits an identity-number scan could flag
    marker.write_text(f"{started / 1e9:.6f}", encoding="utf-8")
    marker.chmod(0o600)
    return rewritten


def _last_pass(target: Path) -> int:
    """When the last complete pass started (ns), 0 when none did (every page is read)."""
    try:
        return int(float((target / CHECKED_MARKER).read_text(encoding="utf-8")) * 1e9)
    except (OSError, ValueError):
        return 0


def _owner_only(folder: Path) -> None:
    folder.chmod(0o700)
    for path in folder.rglob("*"):
        path.chmod(0o700 if path.is_dir() else 0o600)


def offline_page(html: str, assets: str) -> str:
    """One page with its CDN references pointed at ``assets`` (a relative folder) and every other
    network reference neutralised."""
    if "//" not in html:
        return html
    for url, local in LOCAL_COPIES.items():
        html = html.replace(url, f"{assets}/{local}")
    html = _IMAGE.sub(r"\1\2data:,\2", html)
    html = _CSS_URL.sub("none", html)     # a background image (GX's logo)
    return _OTHER.sub(r"\1=\2#\2", html)
