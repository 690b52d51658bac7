"""AST transforms applied just before generation: T-SQL meaning on each backend.

sqlglot's dialects cannot be subclassed when its compiled extension (sqlglotc) is
installed, so every correction to its translation is a small pure transform of the
tree, one concern per module. Each runs on the qualified, parameter-marked tree, for
one backend; a construct a backend cannot express faithfully is refused with
``ConstructNotSupportedOnBackend`` naming the construct and the backend.

The T-SQL-meaning transforms run only when the logical SQL is T-SQL; a statement
written in the backend's own dialect means what that dialect means.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlglot import exp

from rewriter.shapes import TableShape
from rewriter.transforms import concat, dates, numbers, strings
from rewriter.transforms.types import Types


def apply(
    tree: exp.Expr, backend: str, shapes: Mapping[str, TableShape], source_dialect: str = "tsql"
) -> None:
    """Rewrite ``tree`` in place for ``backend``."""
    strings.convert_to_cast(tree, backend)
    if source_dialect == "tsql":
        types = Types(tree, shapes)
        # Kinds are read before anything is rewritten below them, innermost first.
        numbers.integer_avg(tree, backend, types)
        numbers.decimal_division(tree, backend, types)
        concat.string_plus(tree, backend, types)
        strings.casts(tree, backend, types)
        dates.dateadd(tree, backend, types)
        dates.datediff(tree, backend)
        dates.now(tree, backend)
        strings.len_ignores_trailing_spaces(tree, backend)
        strings.like_patterns(tree, backend)
    strings.left_right(tree, backend)
    strings.national_literals(tree, backend)
