"""The constructs table of docs/rewriter.md is the rewriter's own behaviour."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from rewriter.catalog import BACKENDS, CONSTRUCTS, GROUPS, support

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "rewriter_catalog.py"


def test_docs_table_is_generated_from_the_catalog() -> None:
    spec = importlib.util.spec_from_file_location("rewriter_catalog", SCRIPT)
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    text = script.DOC.read_text(encoding="utf-8")
    assert script.render(text) == text, "run scripts/rewriter_catalog.py"


def test_constructs_are_named_once_and_grouped() -> None:
    names = [(c.group, c.name, c.dialect) for c in CONSTRUCTS]
    assert len(set(names)) == len(names)
    assert {c.group for c in CONSTRUCTS} <= set(GROUPS)


def test_refusals_name_the_construct_not_sqlglot_classes() -> None:
    # "not allowed: Interval" names a sqlglot class; a user wrote "INTERVAL".
    for construct, results in support():
        for backend in BACKENDS:
            result = results[backend]
            if not result.accepted:
                assert not result.message.startswith("not allowed: "), (construct.name, result)
