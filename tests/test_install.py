"""The install without a working C compiler: mypyc's compile step fails (at once, or half-way), and
the wheel is the pure-Python package, which imports and runs its source (with a compiler, the CI install itself is the test:
``tests/entities/test_native.py`` demands the compiled module there)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from broker import native

ROOT = Path(__file__).resolve().parents[1]


def _half_compiler(tmp_path: Path) -> str:
    """A compiler that builds mypyc's shared library but fails on the module's own shim (built after
    it): a half-built set, whose leftover library must not reach the wheel."""
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        pytest.skip("no C compiler to fail half-way")
    script = tmp_path / "half-cc"
    script.write_text(f'#!/bin/sh\ncase "$*" in *entities/expand.c*) exit 1;; esac\nexec {gcc} "$@"\n')
    script.chmod(0o755)
    return str(script)


@pytest.mark.parametrize("compiler", ["failing", "half-failing"])
def test_without_a_working_c_compiler_the_wheel_is_pure_python(tmp_path: Path, compiler: str) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    skip = shutil.ignore_patterns("*.so", f"*{native.HASH_SUFFIX}", "__pycache__")
    for package in ("broker", "agents", "models"):
        shutil.copytree(ROOT / package, src / package, ignore=skip)
    env = {k: v for k, v in os.environ.items() if k != native.PURE_ENV}
    env["CC"] = "/bin/false" if compiler == "failing" else _half_compiler(tmp_path)
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-build-isolation",
                            "-w", str(tmp_path / "dist"), str(src)],
                           env=env, capture_output=True, text=True, timeout=900)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    assert "warning: compiling failed" in build.stdout + build.stderr  # mypyc ran; the C compile failed
    wheel = next((tmp_path / "dist").glob("ngsild_broker-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "broker/entities/expand.py" in names
    assert not [n for n in names if n.endswith((".so", native.HASH_SUFFIX))], names
    # the data files: core contexts, the data-model contexts and their index (offline @context)
    models = json.loads((ROOT / "broker/jsonld/contexts/models/index.json").read_text())
    shipped = {f"broker/jsonld/contexts/models/{f}" for f in (*models.values(), "index.json", "SOURCES.md")}
    assert shipped <= set(names), shipped - set(names)
    assert "broker/jsonld/contexts/ngsi-ld-core-context-v1.8.jsonld" in names

    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, timeout=300)
    probe = ("import sys; sys.path.insert(0, sys.argv[1]); import broker.native as n, broker.entities.expand as e;"
             " from broker.jsonld.resolver import ContextResolver as R; r = R(); m = r.mirror_builtin_models();"
             " assert m == len(r.mirror) and all(p.is_file() for p in r.mirror.values()), r.mirror;"
             " print(n.STATUS['broker.entities.expand'], e.__file__)")
    out = subprocess.run([sys.executable, "-c", probe, str(target)], env=env, cwd=tmp_path, capture_output=True,
                         text=True, timeout=60, check=True).stdout.split()
    assert out == ["interpreted", str(target / "broker" / "entities" / "expand.py")]
