"""Modules GX imports for expectations povwatch never runs, imported only if something uses them.

Great Expectations registers every core expectation when it is imported, and one of them,
``expect_column_kl_divergence_to_be_less_than`` (with two Kolmogorov-Smirnov metrics), does
``from scipy import stats`` and ``import altair`` at module level. No suite of ours uses them
(expectations/*.json), yet importing scipy.stats and altair was ~1.2 s of the ~3 s of CPU GX's
import costs in every run.

:func:`defer` puts a :class:`DeferredModule` in ``sys.modules`` under such a name before GX is
imported. GX's ``from scipy import stats`` then binds the placeholder without importing anything;
the first time anything reads an attribute of it (``stats.entropy``), the real module is imported,
takes the placeholder's place in ``sys.modules`` and answers; the placeholder keeps forwarding
to it. A suite that does use one of those expectations therefore still works, it just pays the
import when it runs. This changes when a module is imported, not what GX does: no GX code is
replaced. (``importlib.util.LazyLoader`` does not work here: the import system reads
``module.__spec__`` of a module it finds in ``sys.modules``, which makes a LazyLoader module load
at once.)
"""
from __future__ import annotations

import importlib
import sys
import threading
import types

# What GX imports only for the KL-divergence expectation and the KS-test metrics.
GX_UNUSED = ("scipy.stats", "altair")

_LOCK = threading.RLock()


class DeferredModule(types.ModuleType):
    """Stands in ``sys.modules`` for a module not imported yet; imports it on first attribute use."""

    def __getattr__(self, attr: str):
        # Dunder lookups (``__path__``, ``__file__``, ...) are the import system's and tools'
        # questions: answering them must not import the module.
        if attr.startswith("__") and attr.endswith("__"):
            raise AttributeError(attr)
        return getattr(self._load(), attr)

    def _load(self) -> types.ModuleType:
        with _LOCK:
            real = self.__dict__.get("_deferred_real")
            if real is None:
                name = self.__name__
                if sys.modules.get(name) is self:
                    del sys.modules[name]
                try:
                    real = importlib.import_module(name)
                except BaseException:
                    sys.modules.setdefault(name, self)   # still deferred; the error is the caller's
                    raise
                self.__dict__["_deferred_real"] = real
            return real

    @property
    def loaded(self) -> bool:
        """Whether the real module has been imported through this placeholder."""
        return self.__dict__.get("_deferred_real") is not None


def defer(names: tuple[str, ...] = GX_UNUSED) -> list[str]:
    """Put a placeholder in ``sys.modules`` for each name not imported yet; returns those deferred.
    Call it before importing GX (a module already imported stays as it is)."""
    deferred = []
    with _LOCK:
        for name in names:
            if name not in sys.modules:
                sys.modules[name] = DeferredModule(name)
                deferred.append(name)
    return deferred


def is_deferred(name: str) -> bool:
    """True while ``name`` is a placeholder whose real module has not been imported."""
    module = sys.modules.get(name)
    return isinstance(module, DeferredModule) and not module.loaded
