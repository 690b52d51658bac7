"""The package's build, with the hot path compiled by mypyc when ``TENANTGATE_COMPILE=1``.

Everything else about the package is in ``pyproject.toml``. Off by default so that
``pip install -e .`` stays quick and needs no compiler; ``make compile`` builds the
extensions in place, and the Dockerfile builds a wheel with them (``proxy.compiled``).
mypyc is mypy's, so ``mypy`` must be importable: with ``--no-build-isolation``, from the
environment that runs the build.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from setuptools import setup

ext_modules = []
if os.environ.get("TENANTGATE_COMPILE") == "1":
    from mypyc.build import mypycify

    root = Path(__file__).resolve().parent
    sys.path.insert(0, str(root))
    from proxy.compiled import GROUP, sources

    ext_modules = mypycify(
        [str(path.relative_to(root)) for path in sources(root)],
        group_name=GROUP,
        opt_level="3",
    )

setup(ext_modules=ext_modules)
