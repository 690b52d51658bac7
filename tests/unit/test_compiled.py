"""The compiled hot path (``proxy.compiled``): what mypyc would get wrong is not written,
and a build older than its sources is seen."""

from __future__ import annotations

import ast
import importlib.machinery
import os
import tomllib
from pathlib import Path

import pytest

from proxy import compiled
from proxy.errors import chained

ROOT = Path(__file__).resolve().parents[2]


def _trees() -> list[tuple[str, ast.Module]]:
    return [(str(path), ast.parse(path.read_text(encoding="utf-8"))) for path in compiled.sources()]


def test_the_hot_modules_exist_and_are_distinct() -> None:
    assert len(set(compiled.HOT)) == len(compiled.HOT)
    assert all(path.is_file() for path in compiled.sources())


def test_no_raise_from_in_compiled_modules() -> None:
    # mypyc ignores ``from``: the cause is lost, and ``from None`` no longer hides the
    # exception being handled. ``proxy.errors.chained`` says it explicitly.
    found = [
        f"{name}:{node.lineno}"
        for name, tree in _trees()
        for node in ast.walk(tree)
        if isinstance(node, ast.Raise) and node.cause is not None
    ]
    assert found == []


def test_no_name_caught_as_two_types_in_one_function() -> None:
    # Compiled, ``except A as exc`` then ``except B as exc`` types ``exc`` as A, and the
    # second clause fails with a TypeError.
    found = []
    for name, tree in _trees():
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            caught: dict[str, set[str]] = {}
            for node in ast.walk(function):
                if isinstance(node, ast.ExceptHandler) and node.name and node.type is not None:
                    caught.setdefault(node.name, set()).add(ast.unparse(node.type))
            found += [
                f"{name}:{function.lineno} {n}" for n, types in caught.items() if len(types) > 1
            ]
    assert found == []


def test_ruff_allows_chained_exactly_in_the_compiled_modules() -> None:
    settings = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    ignores = settings["tool"]["ruff"]["lint"]["per-file-ignores"]
    b904 = {path for path, rules in ignores.items() if "B904" in rules}
    assert b904 == {str(path.relative_to(ROOT)) for path in compiled.sources()}


def test_chained_sets_the_cause_and_hides_the_context() -> None:
    cause = ValueError("the driver's error")
    error = chained(KeyError("ours"), cause)
    assert error.__cause__ is cause and error.__suppress_context__
    hidden = chained(KeyError("ours"), None)
    assert hidden.__cause__ is None and hidden.__suppress_context__


def _fake_tree(tmp_path: Path) -> Path:
    """A checkout's layout: the sources, and setup.py beside the package."""
    (tmp_path / "setup.py").write_text("")
    for path in compiled.sources(tmp_path):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")
    return tmp_path


def _extension(source: Path) -> Path:
    built = source.with_name(source.stem + importlib.machinery.EXTENSION_SUFFIXES[0])
    built.write_bytes(b"")
    return built


def test_nothing_compiled_is_nothing_stale(tmp_path: Path) -> None:
    root = _fake_tree(tmp_path)
    assert compiled.compiled(root) == []
    assert compiled.stale(root) == []


def test_a_source_newer_than_the_shared_library_is_stale(tmp_path: Path) -> None:
    root = _fake_tree(tmp_path)
    sources = compiled.sources(root)
    for source in sources:
        _extension(source)
    shared = _extension(root / (compiled.GROUP.replace(".", "/") + "__mypyc.py"))
    built_at = 1_000_000.0
    for source in sources:
        os.utime(source, (built_at - 10, built_at - 10))
    os.utime(shared, (built_at, built_at))
    assert compiled.compiled(root) == list(compiled.HOT)
    assert compiled.stale(root) == []
    # Edited after the build: its extension would run in its place.
    os.utime(sources[3], (built_at + 10, built_at + 10))
    assert compiled.stale(root) == [compiled.HOT[3]]


def test_module_extensions_without_the_shared_library_are_stale(tmp_path: Path) -> None:
    root = _fake_tree(tmp_path)
    _extension(compiled.sources(root)[0])
    assert compiled.stale(root) == list(compiled.HOT)


def test_an_installed_package_is_never_stale(tmp_path: Path) -> None:
    # A wheel's files are unpacked in any order: a source a few ms newer than the
    # shared library means nothing there.
    root = _fake_tree(tmp_path)
    (root / "setup.py").unlink()
    for source in compiled.sources(root):
        _extension(source)
    shared = _extension(root / (compiled.GROUP.replace(".", "/") + "__mypyc.py"))
    os.utime(shared, (1_000_000.0, 1_000_000.0))
    assert compiled.compiled(root) == list(compiled.HOT)
    assert compiled.stale(root) == []


@pytest.mark.parametrize("name", compiled.HOT)
def test_each_hot_module_imports(name: str) -> None:
    # Compiled or not, the module loads (a dataclass's field types must exist then).
    module = __import__(name, fromlist=["_"])
    assert module.__name__ == name
