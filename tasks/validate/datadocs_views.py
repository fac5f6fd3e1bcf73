"""The Data Docs site's page views: GX's own, sharing one cache of compiled templates.

GX builds a Jinja environment per view and compiles each template it renders in it; a docs build
has three views (expectation suites, validation results, the index) rendering mostly the same
templates, and a run of several periods builds the site once per period. One in-memory bytecode
cache shared by every view compiles each template once per process (Jinja's documented
``BytecodeCache``). The views are named in the site's configuration (GX's documented ``view``
option of a site section builder and of the index builder, tasks/validate/suites.py
``gx_context``); they render exactly as GX's defaults do.
"""
from __future__ import annotations

import jinja2
from great_expectations.render.view import DefaultJinjaIndexPageView, DefaultJinjaPageView


class _MemoryBytecodeCache(jinja2.BytecodeCache):
    def __init__(self) -> None:
        self._store: dict[str, bytes] = {}

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        if bucket.key in self._store:
            bucket.bytecode_from_string(self._store[bucket.key])

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        self._store[bucket.key] = bucket.bytecode_to_string()


COMPILED_TEMPLATES = _MemoryBytecodeCache()


class SharedTemplatesPageView(DefaultJinjaPageView):
    """GX's page view (expectation suites, validation results), templates compiled once."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.env.bytecode_cache = COMPILED_TEMPLATES


class SharedTemplatesIndexPageView(DefaultJinjaIndexPageView):
    """GX's index page view, templates compiled once."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.env.bytecode_cache = COMPILED_TEMPLATES


def view_config(view_class: type) -> dict[str, str]:
    """A site configuration's ``view`` entry naming ``view_class``."""
    return {"module_name": view_class.__module__, "class_name": view_class.__name__}
