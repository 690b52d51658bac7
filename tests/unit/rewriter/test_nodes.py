"""``rewriter.nodes``: the node list every parse-time check and the transform dispatch
read must be exactly ``Expr.walk()``, or a check would skip a node."""

from __future__ import annotations

import pytest
import sqlglot
from sqlglot import exp

from rewriter import transforms
from rewriter.nodes import bfs, levels
from tests.unit.rewriter.golden import load_cases

CASES = load_cases()


def _trees() -> list[exp.Expr]:
    trees = []
    for case in CASES:
        try:
            tree = sqlglot.parse_one(case.sql, read=case.dialect)
        except Exception:  # cases that do not parse have no tree to walk
            continue
        if tree is not None:
            trees.append(tree)
    return trees


TREES = _trees()


def _depth(tree: exp.Expr) -> int:
    """Iterative: some golden trees are deeper than Python's recursion limit."""
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in node.iter_expressions())
    return deepest


def test_there_are_trees() -> None:
    assert len(TREES) > 100


@pytest.mark.parametrize("tree", TREES, ids=lambda t: t.sql()[:60])
def test_bfs_and_levels_are_walk(tree: exp.Expr) -> None:
    walked = [id(node) for node in tree.walk()]
    assert [id(node) for node in bfs(tree)] == walked
    depth = _depth(tree)
    found = levels(tree, depth)
    assert found is not None
    assert [id(node) for node in found] == walked
    assert levels(tree, depth - 1) is None


def test_every_transform_trigger_is_a_node_type() -> None:
    for types in transforms.TRIGGERS.values():
        assert types
        assert all(issubclass(kind, exp.Expr) for kind in types)
