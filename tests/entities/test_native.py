"""The compiled expansion module (mypyc, ``broker/native.py``) must behave exactly as its source.

mypyc checks type annotations at run time, so an annotation that does not hold for some input would
turn a 400 into a crash in the compiled build only: generated entity bodies, valid and hostile, go
through both the compiled module and its source loaded beside it, and must give the same stored
entity (member order included) or the same NGSI-LD error. The stale-module guard is tested on a
throw-away package.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import os
import shutil
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import broker.entities.expand as expand
from broker import native
from broker.errors import NgsiLdError
from broker.jsonld.termmap import TermMap
from tests.entities.test_plain_instance import members, scalars, values

V = "https://uri.etsi.org/ngsi-ld/default-context/"
NOW = "2024-01-01T00:00:00.000Z"
TM = TermMap(b"t", None, {"name": {"@id": "https://schema.org/name"}}, V)
COMPILED = native.STATUS.get("broker.entities.expand") == "compiled"


def _source_module() -> ModuleType:
    """broker/entities/expand.py itself, under another name (the compiled module keeps its own)."""
    name = "broker.entities._expand_source"
    if name not in sys.modules:
        native._load_source(name, Path(expand.__file__).with_name("expand.py"))
    return sys.modules[name]


def test_a_c_compiler_means_a_compiled_expansion_module() -> None:
    """``make install`` compiles where it can: with a C compiler (as in CI) the fast path must be there,
    so the benchmark measures what users run (and an install whose compile broke is noticed)."""
    if not (shutil.which("cc") or shutil.which("gcc")):
        pytest.skip("no C compiler: the package runs as pure Python here")
    if not (Path(sysconfig.get_paths()["include"]) / "Python.h").exists():
        pytest.skip("no Python headers: the package runs as pure Python here")
    if os.environ.get(native.PURE_ENV):
        pytest.skip(f"{native.PURE_ENV} is set")
    assert native.STATUS["broker.entities.expand"] == "compiled", native.STATUS
    assert Path(expand.__file__).suffix == ".so"


names = st.one_of(st.sampled_from(["name", "temperature", "location"]),  # half of them valid and usual
                 st.sampled_from(["ns:thing", "https://example.org/p", "bad name", "@id", "a=b", "", "type"]))
attributes = st.one_of(members, st.lists(members, max_size=3), scalars, values)
bodies = st.fixed_dictionaries(
    {
        "id": st.one_of(st.just("urn:ngsi-ld:Thing:1"), st.sampled_from(["not a uri", 7, None, ["urn:a:b"]])),
        "type": st.one_of(st.just("Thing"), st.sampled_from(["type", "bad type", "", "https://ex.org/T", 3]),
                          st.lists(st.sampled_from(["Thing", "Other", "@id"]), max_size=3)),
    },
    optional={
        "scope": st.sampled_from(["/a/b", "no-slash", ["/x", "/x"], 4, expand.NGSILD_NULL]),
        "@context": st.just("https://example.org/ctx.jsonld"),
    },
).flatmap(lambda base: st.dictionaries(names, attributes, max_size=4).map(lambda attrs: {**base, **attrs}))


def _outcome(module: ModuleType, call: Any, allow_null: bool, partial: bool) -> Any:
    x = module.Expander(TM, NOW, allow_null=allow_null, partial=partial)
    try:
        out = call(x)
    except NgsiLdError as err:  # anything else is a crash, and fails the test
        return type(err), str(err)
    return out, repr(out)  # repr: member order too


def _both(call: Any, allow_null: bool, partial: bool) -> None:
    compiled = _outcome(expand, call, allow_null, partial)
    assert compiled == _outcome(_source_module(), call, allow_null, partial)


compiled_only = pytest.mark.skipif(not COMPILED, reason="the expansion module is not compiled in this install")


@compiled_only
@settings(max_examples=1500, deadline=None)
@given(name=names, raw=attributes, allow_null=st.booleans(), partial=st.booleans())
def test_compiled_attribute_expansion_agrees_with_its_source(name: str, raw: Any, allow_null: bool,
                                                             partial: bool) -> None:
    _both(lambda x: x.attribute(name, raw), allow_null, partial)


@compiled_only
@settings(max_examples=800, deadline=None)
@given(body=st.one_of(bodies, st.lists(bodies, max_size=1), scalars), fragment=st.booleans(),
       allow_null=st.booleans(), partial=st.booleans())
def test_compiled_entity_expansion_agrees_with_its_source(body: Any, fragment: bool, allow_null: bool,
                                                          partial: bool) -> None:
    _both(lambda x: x.fragment(body) if fragment else x.entity(body), allow_null, partial)


# ---------------------------------------------------------------- the stale-module guard
def _package(tmp_path: Path, name: str) -> Path:
    pkg = tmp_path / name
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "mod.py").write_text("WHERE = 'source'\n")
    # stands for the extension file: the guard only looks at it (a real one would be imported instead)
    (pkg / ("mod" + importlib.machinery.EXTENSION_SUFFIXES[0])).write_bytes(b"")
    return pkg


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Path]]:
    name = f"native_guard_{tmp_path.name.replace('-', '_')}"
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv(native.PURE_ENV, raising=False)
    yield name, _package(tmp_path, name)
    for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
        del sys.modules[key]
    native.STATUS.pop(f"{name}.mod", None)


def _record(pkg: Path, text: str | None = None) -> None:
    digest = text or hashlib.sha256((pkg / "mod.py").read_bytes()).hexdigest()
    (pkg / ("mod" + native.HASH_SUFFIX)).write_text(digest + "\n")


def test_a_compiled_module_built_from_this_source_is_left_to_import(package: tuple[str, Path]) -> None:
    name, pkg = package
    _record(pkg)
    native.prefer_fresh((f"{name}.mod",), pkg)
    assert native.STATUS[f"{name}.mod"] == "compiled"
    assert f"{name}.mod" not in sys.modules  # nothing loaded: the normal import takes the compiled one


@pytest.mark.parametrize("recorded", ["other", None])
def test_a_stale_or_unrecorded_compiled_module_gives_way_to_the_source(package: tuple[str, Path],
                                                                      recorded: str | None) -> None:
    name, pkg = package
    if recorded:
        _record(pkg, "0" * 64)  # compiled from some earlier source
    native.prefer_fresh((f"{name}.mod",), pkg)
    module = sys.modules[f"{name}.mod"]
    assert module.WHERE == "source" and module.__file__ == str(pkg / "mod.py")
    assert sys.modules[name].mod is module
    assert native.STATUS[f"{name}.mod"].startswith("interpreted (the compiled module was built from another version")


def test_the_environment_can_ask_for_the_source(package: tuple[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    name, pkg = package
    _record(pkg)
    monkeypatch.setenv(native.PURE_ENV, "1")
    native.prefer_fresh((f"{name}.mod",), pkg)
    assert sys.modules[f"{name}.mod"].WHERE == "source"
    assert native.STATUS[f"{name}.mod"] == f"interpreted ({native.PURE_ENV} is set)"


def test_without_a_compiled_module_nothing_is_loaded(package: tuple[str, Path]) -> None:
    name, pkg = package
    (pkg / ("mod" + importlib.machinery.EXTENSION_SUFFIXES[0])).unlink()
    native.prefer_fresh((f"{name}.mod",), pkg)
    assert native.STATUS[f"{name}.mod"] == "interpreted"
    assert f"{name}.mod" not in sys.modules
