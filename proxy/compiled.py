"""The hot path that mypyc compiles, and whether what runs is what the sources say.

A wire statement's CPU is spread over some 300 Python calls in the front end, the
pipeline and the PostgreSQL driver, a few microseconds each: no one function to make
faster. mypyc compiles these modules, unchanged, to C extensions (``docs/decisions.md``,
"Compiling the hot path with mypyc"). The modules stay plain Python: uncompiled, they run
as before, only slower.

Built in place by ``make compile`` (``setup.py build_ext --inplace`` with
``TENANTGATE_COMPILE=1``): one extension per module beside its source, and the code they
share in ``proxy/hot__mypyc.*.so``. Python imports an extension before a source of the
same name, so a source edited after the build would not run; ``stale()`` names those
modules. The tests stop on it, and the service logs it.
"""

from __future__ import annotations

import importlib.machinery
from pathlib import Path

__all__ = ["GROUP", "HOT", "compiled", "sources", "stale"]

GROUP = "proxy.hot"
"""mypyc's name for the shared library, inside ``proxy`` so that an editable install
finds it as it finds the package."""

HOT: tuple[str, ...] = (
    "proxy.context",
    "proxy.metrics",
    "proxy.drivers.base",
    "proxy.drivers.postgres.driver",
    "proxy.drivers.postgres.placeholders",
    "proxy.drivers.postgres.pool",
    "proxy.drivers.postgres.session",
    "proxy.drivers.postgres.statements",
    "proxy.drivers.postgres.watch",
    "proxy.pipeline.activity",
    "proxy.pipeline.request",
    "proxy.pipeline.reuse",
    "proxy.pipeline.servers",
    "proxy.pipeline.service",
    "proxy.frontends.pgwire.connection",
    "proxy.frontends.pgwire.protocol",
    "proxy.frontends.pgwire.session",
    "proxy.frontends.pgwire.types",
)
"""Why these: the modules a wire statement runs through. Not ``proxy.drivers.postgres.types``
(its classes subclass psycopg's, which mypyc's classes cannot) nor ``stream`` (``async``
generators, which this mypyc does not compile; the driver's stream is there for that)."""

_ROOT = Path(__file__).resolve().parent.parent


def sources(root: Path = _ROOT) -> list[Path]:
    """The source file of each module in ``HOT``, for the build."""
    return [root / (name.replace(".", "/") + ".py") for name in HOT]


def _extensions(path: Path) -> list[Path]:
    """The extension files built for the module whose source is ``path``."""
    return [
        path.with_name(path.stem + suffix)
        for suffix in importlib.machinery.EXTENSION_SUFFIXES
        if path.with_name(path.stem + suffix).exists()
    ]


def compiled(root: Path = _ROOT) -> list[str]:
    """The modules of ``HOT`` that import as compiled: an extension beside the source."""
    return [name for name, path in zip(HOT, sources(root), strict=True) if _extensions(path)]


def stale(root: Path = _ROOT) -> list[str]:
    """The modules of ``HOT`` whose source is newer than the compiled code (``make
    compile`` rebuilds it). Empty when nothing is compiled, and outside a checkout
    (no ``setup.py`` beside the package): an installed wheel's files are written in
    any order, so their times say nothing.

    The code is in the shared library; each module's own extension only forwards to
    it, and a build leaves an unchanged one as it was.
    """
    if not (root / "setup.py").is_file():
        return []
    paths = sources(root)
    built = [path for source in paths for path in _extensions(source)]
    shared = _extensions(root / (GROUP.replace(".", "/") + "__mypyc.py"))
    if not built and not shared:
        return []
    when = min((path.stat().st_mtime for path in shared), default=0.0)
    return [name for name, path in zip(HOT, paths, strict=True) if path.stat().st_mtime > when]
