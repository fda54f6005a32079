"""Build hook: the modules in ``broker/native.py``'s NATIVE are compiled with mypyc when a C compiler
is at hand (everything else about the package is in pyproject.toml).

Compiling is optional: without a compiler, or when mypyc refuses a module, the package installs as
pure Python and runs the same source, only slower. Next to each compiled module the build leaves
the SHA-256 of the source it was compiled from; ``broker.native`` loads the source instead of a
compiled module whose source has changed since (an edit without a rebuild never runs old code).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent


def _native_module():
    """``broker/native.py`` by path: importing the package would need its dependencies installed."""
    spec = importlib.util.spec_from_file_location("_broker_native", ROOT / "broker" / "native.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_native = _native_module()
HASH_SUFFIX = _native.HASH_SUFFIX
SOURCES = [str(_native.source_path(name, ROOT / "broker").relative_to(ROOT)) for name in _native.NATIVE]


def _warn(what: str, exc: BaseException) -> None:
    print(f"warning: {what} ({type(exc).__name__}: {exc}); the broker runs as pure Python", file=sys.stderr)


def _extensions() -> list:
    if os.environ.get(_native.PURE_ENV):
        return []
    try:
        from mypyc.build import mypycify
        return mypycify(["--ignore-missing-imports", *SOURCES], opt_level="3", debug_level="0")
    except BaseException as exc:  # noqa: BLE001 - mypy not installed, a type error, a missing compiler
        _warn("not compiling with mypyc", exc)
        return []


class OptionalBuildExt(build_ext):
    """Builds the compiled modules when it can; a failure leaves the pure-Python package intact."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - a compiler error is not a reason to fail the install
            _warn("compiling failed", exc)
            self._remove_outputs()
            return
        for src in SOURCES:
            out_dir = (ROOT if self.inplace else Path(self.build_lib)) / Path(src).parent
            out_dir.mkdir(parents=True, exist_ok=True)
            digest = hashlib.sha256((ROOT / src).read_bytes()).hexdigest()
            (out_dir / (Path(src).stem + HASH_SUFFIX)).write_text(digest + "\n")

    def _remove_outputs(self) -> None:
        """A half-built set (the shim without its library) would fail to import: remove all of it."""
        for ext in self.extensions:
            path = Path(self.get_ext_fullpath(ext.name))
            path.unlink(missing_ok=True)

    def get_outputs(self) -> list[str]:
        outputs = list(super().get_outputs())
        if not self.inplace:
            outputs += [str(Path(self.build_lib) / Path(src).parent / (Path(src).stem + HASH_SUFFIX))
                        for src in SOURCES]
        return outputs


setup(ext_modules=_extensions(), cmdclass={"build_ext": OptionalBuildExt})
