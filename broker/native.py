"""Which modules run compiled, and the guard that keeps a stale compiled module from running.

The modules in NATIVE are on every write's path (expansion of each attribute of each entity) and
are compiled with mypyc at install time when a C compiler is at hand (``setup.py``); the compiled
module is an extension file next to its source, which Python imports in preference to the ``.py``.
The build records the SHA-256 of the source it compiled. ``prefer_fresh`` (run when the package is
imported) loads the source instead of a compiled module whose source has changed since, so an edit
without a rebuild never runs old code. Standard library only: ``setup.py`` loads this file by path.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.machinery
import importlib.util
import os
import sys
from pathlib import Path

NATIVE = ("broker.entities.expand",)
HASH_SUFFIX = ".native-sha256"
PURE_ENV = "BROKER_PURE_PYTHON"  # set (to anything) to run the source of every module

# module -> "compiled", "interpreted" or "interpreted (…)": logged at start-up, shown by the benchmark
STATUS: dict[str, str] = {}


def source_path(name: str, package_dir: Path) -> Path:
    """``broker.entities.expand`` -> ``<package_dir>/entities/expand.py``."""
    return package_dir.joinpath(*name.split(".")[1:]).with_suffix(".py")


def compiled_path(src: Path) -> Path | None:
    """The extension file this interpreter would import instead of ``src``, if there is one."""
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = src.with_name(src.stem + suffix)
        if path.exists():
            return path
    return None


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _load_source(name: str, src: Path) -> None:
    """Import ``name`` from its ``.py`` even though a compiled module shadows it."""
    parent, _, child = name.rpartition(".")
    importlib.import_module(parent)
    loader = importlib.machinery.SourceFileLoader(name, str(src))
    spec = importlib.util.spec_from_loader(name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    setattr(sys.modules[parent], child, module)


def prefer_fresh(names: tuple[str, ...] = NATIVE, package_dir: Path | None = None) -> None:
    """Decide, for each module in ``names`` (of the package in ``package_dir``, this one by default),
    whether its compiled form may run (see the module doc); the outcome is in STATUS."""
    package_dir = package_dir or Path(__file__).resolve().parent
    for name in names:
        if name in sys.modules:
            continue
        src = source_path(name, package_dir)
        compiled = compiled_path(src)
        if compiled is None:
            STATUS[name] = "interpreted"
            continue
        if not src.exists():  # an install that ships only the compiled module
            STATUS[name] = "compiled"
            continue
        recorded = src.with_name(src.stem + HASH_SUFFIX)
        if os.environ.get(PURE_ENV):
            reason = f"{PURE_ENV} is set"
        elif not recorded.exists() or recorded.read_text().strip() != _digest(src):
            reason = "the compiled module was built from another version of its source: make install rebuilds it"
        else:
            STATUS[name] = "compiled"
            continue
        _load_source(name, src)
        STATUS[name] = f"interpreted ({reason})"
