"""``CONVERT(varchar, d, style)``: a date or datetime as text, in SQL Server's formats.

The allow-list takes the date styles services use, to ``VARCHAR``/``NVARCHAR`` only;
here each becomes ``TO_CHAR`` on PostgreSQL and ``STRFTIME`` on SQLite, with SQL
Server's documented output:

======  ===========================  =============================================
style   datetime                     date
======  ===========================  =============================================
23      yyyy-mm-dd                   yyyy-mm-dd
101     mm/dd/yyyy                   mm/dd/yyyy
103     dd/mm/yyyy                   dd/mm/yyyy
112     yyyymmdd                     yyyymmdd
120     yyyy-mm-dd hh:mi:ss          yyyy-mm-dd (a date has no time to show)
121     yyyy-mm-dd hh:mi:ss.mmm      yyyy-mm-dd
126     yyyy-mm-ddThh:mi:ss[.mmm]    yyyy-mm-dd
======  ===========================  =============================================

Style 126 leaves the milliseconds out when they are 0 (SQL Server's documentation;
Babelfish writes ``.000``). Milliseconds are those of SQL Server's ``datetime`` (3
digits); a ``datetime2`` column on SQL Server itself shows 7. The text is cut to the
target's length (30 without one), as T-SQL does. Any other operand (a string, a
number) is refused: T-SQL ignores the style for those, a translation would not.
"""

from __future__ import annotations

from sqlglot import exp

from rewriter.functions import not_supported
from rewriter.transforms.common import call
from rewriter.transforms.types import Types
from rewriter.type_names import DATE, DATETIME

DEFAULT_LENGTH = 30
# style -> (PostgreSQL TO_CHAR pattern, SQLite STRFTIME format), for a datetime.
FORMATS = {
    "23": ("YYYY-MM-DD", "%Y-%m-%d"),
    "101": ("MM/DD/YYYY", "%m/%d/%Y"),
    "103": ("DD/MM/YYYY", "%d/%m/%Y"),
    "112": ("YYYYMMDD", "%Y%m%d"),
    "120": ("YYYY-MM-DD HH24:MI:SS", "%Y-%m-%d %H:%M:%S"),
    "121": ("YYYY-MM-DD HH24:MI:SS.MS", "%Y-%m-%d %H:%M:%f"),
    "126": ('YYYY-MM-DD"T"HH24:MI:SS.MS', "%Y-%m-%dT%H:%M:%f"),
}
WITH_TIME = frozenset({"120", "121", "126"})


def convert_styles(tree: exp.Expr, backend: str, types: Types) -> None:
    for node in list(tree.find_all(exp.Convert)):
        style = node.args.get("style")
        if style is None:
            continue
        number = style.name
        construct = f"CONVERT(varchar, d, {number})"
        value = node.expression
        kind = types.of(value)
        if kind not in (DATE, DATETIME):
            raise not_supported(
                construct,
                backend,
                "the style applies to a date or datetime value; this one is not known to be "
                "one (CAST it to DATE or DATETIME first)",
            )
        if kind == DATE and number in WITH_TIME:
            number = "23"  # a date has no time part to show
        pattern, fmt = FORMATS[number]
        text: exp.Expr
        if backend == "postgresql":
            text = call("TO_CHAR", value, exp.Literal.string(pattern))
        else:
            text = call("STRFTIME", exp.Literal.string(fmt), value)
        if number == "126":
            # '.000' can only be the milliseconds: no other part has a '.'.
            text = call("REPLACE", text, exp.Literal.string(".000"), exp.Literal.string(""))
        length = _length(node.this)
        if length < _width(number):
            text = call("SUBSTR", text, exp.Literal.number(1), exp.Literal.number(length))
        node.replace(text)


def _width(style: str) -> int:
    return {"112": 8, "120": 19, "121": 23, "126": 23}.get(style, 10)


def _length(to: exp.Expr) -> int:
    params = to.expressions if isinstance(to, exp.DataType) else []
    if params and isinstance(params[0], exp.DataTypeParam):
        value = params[0].this
        if isinstance(value, exp.Literal) and value.name.isdigit():
            return int(value.name)
        return 2**31  # (MAX)
    return DEFAULT_LENGTH
