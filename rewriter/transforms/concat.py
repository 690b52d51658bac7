"""T-SQL ``+`` on strings is concatenation; PostgreSQL and SQLite spell it ``||``.

sqlglot keeps ``+`` (SQLite then adds the strings as numbers: ``'Ada' + 'L'`` is 0).
The operands' kinds decide (``types.Types``): both strings -> ``||``; both numbers
(or either unknown while neither is a string) -> ``+`` as written. A string with a
number is refused: T-SQL converts the string to a number there, which PostgreSQL
does not do and SQLite does silently wrong. A string with an operand of unknown kind
(a parameter, a column without a declared type) is refused too, as is ``+``/``-``
with a date (T-SQL adds days; use DATEADD).
"""

from __future__ import annotations

from sqlglot import exp

from rewriter.functions import not_supported
from rewriter.transforms.common import post_order
from rewriter.transforms.types import Types
from rewriter.type_names import TEMPORAL, TEXT


def string_plus(tree: exp.Expr, backend: str, types: Types) -> None:
    for node in post_order(tree, exp.Add, exp.Sub):
        left, right = types.of(node.this), types.of(node.expression)
        operator = "+" if isinstance(node, exp.Add) else "-"
        if left in TEMPORAL or right in TEMPORAL:
            raise not_supported(f"{operator} with a date or time", backend, "use DATEADD/DATEDIFF")
        if TEXT not in (left, right):
            continue
        if isinstance(node, exp.Sub):
            raise not_supported("- with a string", backend)
        if left == right == TEXT:
            node.replace(exp.DPipe(this=node.this, expression=node.expression))
            continue
        other = right if left == TEXT else left
        why = (
            "T-SQL would convert the string to a number"
            if other is not None
            else "the other operand's type is unknown (CAST it to a string type)"
        )
        raise not_supported("+ between a string and a non-string", backend, why)
