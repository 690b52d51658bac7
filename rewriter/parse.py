"""Pass 1: text -> one sqlglot statement, with ``?`` placeholders numbered in text order.

sqlglot keeps no source position on ``exp.Placeholder`` and its tree order is not
text order (``TOP ?`` lives in the ``limit`` argument, after ``WHERE``). So the
statement is tokenized first, each ``?`` token gets a tag comment with its ordinal,
and after parsing the tag moves from the node's comments into its ``meta``.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ParseError, SqlglotError, TokenError
from sqlglot.parser import Parser
from sqlglot.tokenizer_core import Token, TokenType
from sqlglot.tokens import Tokenizer

from rewriter import allowlist, functions, params, statement, writes
from rewriter.errors import (
    ConstructNotAllowed,
    MultipleStatements,
    SqlParseError,
    StatementTooLarge,
)
from rewriter.limits import DEFAULT_LIMITS, Limits
from rewriter.markers import DEFAULT_SCHEMAS, MARKER_PREFIX, META_POSITION, POSITION_TAG
from rewriter.nodes import bfs, levels
from rewriter.tables import check_references, normalize_and_classify


@dataclass(frozen=True)
class ParsedStatement:
    """A checked logical statement. ``expression`` is never mutated after parsing."""

    sql: str
    dialect: str
    expression: exp.Expr
    tables: frozenset[str]  # casefolded physical table names (CTE names excluded)
    statement_class: str
    positional_params: int
    named_params: tuple[str, ...]
    # An UPDATE or DELETE without WHERE: ``rewrite`` refuses it unless allowed.
    unfiltered: bool = False
    # Nodes of the tree: what it weighs in a cache (``plan_cache``).
    node_count: int = 0


def parse_statement(
    sql: str, *, dialect: str = "tsql", limits: Limits = DEFAULT_LIMITS
) -> ParsedStatement:
    """Parse and check one logical statement (passes 1-6 run in this order).

    The checks share one list of the tree's nodes (``nodes.bfs``); it is taken again
    after a pass that changed which nodes the tree holds. ``limits`` are checked as
    early as each can be: the text's length first, then depth and IN lists right
    after parsing, the parameters once they are counted.
    """
    if len(sql) > limits.max_sql_chars:
        raise StatementTooLarge(
            f"the statement has more than {limits.max_sql_chars} characters",
            limit=limits.max_sql_chars,
            limit_name="max_sql_chars",
        )
    # 1. one statement, ? numbered in text order
    tree, nodes = _parse(sql, dialect, limits.max_depth)
    _check_sizes(nodes, limits)
    unwrapped = statement.unwrap(tree)
    if unwrapped is not tree:
        tree, nodes = unwrapped, bfs(unwrapped)
    statement_class = statement.classify(tree)  # 2. read or write
    tables = [node for node in nodes if isinstance(node, exp.Table)]
    if check_references(tree, dialect, tables):  # 3. no other database, schema or system object
        nodes = bfs(tree)  # a default schema qualifier was dropped
    allowlist.check(tree, nodes)  # 4. deny by default
    unfiltered = False
    if statement_class == statement.WRITE:
        unfiltered = writes.check(tree)  # 4b. writes
        nodes = bfs(tree)
    physical = normalize_and_classify(tree, nodes)  # 5. casefold names, find the physical tables
    positional, named = params.collect(nodes)  # 6. parameters
    markers = positional + len(named)
    if markers > limits.max_params:
        raise StatementTooLarge(
            f"the statement has {markers} parameters; at most {limits.max_params} are allowed",
            limit=limits.max_params,
            limit_name="max_params",
        )
    return ParsedStatement(
        sql=sql,
        dialect=dialect,
        expression=tree,
        tables=physical,
        statement_class=statement_class,
        positional_params=positional,
        named_params=named,
        unfiltered=unfiltered,
        node_count=len(nodes),
    )


# Deeper trees are refused: later passes and sqlglot's generator recurse per level.
MAX_DEPTH = DEFAULT_LIMITS.max_depth


def parse_one(sql: str, dialect: str, max_depth: int = MAX_DEPTH) -> exp.Expr:
    """Parse exactly one statement; tag positional placeholders; check nesting depth."""
    return _parse(sql, dialect, max_depth)[0]


def _parse(sql: str, dialect: str, max_depth: int) -> tuple[exp.Expr, list[exp.Expr]]:
    """``parse_one``, and the tree's nodes in ``walk()`` order."""
    if dialect not in DEFAULT_SCHEMAS:
        known = ", ".join(sorted(DEFAULT_SCHEMAS))
        raise SqlParseError(f"unknown SQL dialect {dialect!r} (use one of {known})")
    if MARKER_PREFIX in sql.casefold():
        raise ConstructNotAllowed(
            f"the text {MARKER_PREFIX!r} is reserved and may not appear in a statement",
            construct=MARKER_PREFIX,
        )
    if not sql.strip():
        raise SqlParseError("the statement is empty")
    _check_characters(sql)

    tokenizer, parser = _reader(dialect)
    try:
        tokens = tokenizer.tokenize(sql)
        # Checks first: the ? tags replace the comments of ? tokens.
        placeholders, returning = _check_and_tag_tokens(tokens)
        if returning and dialect == "tsql":
            tokens = writes.delete_output_tokens(tokens)
        parsed = parser.parse(tokens, sql)
    except ParseError as error:
        raise SqlParseError(_parse_error_message(error)) from None
    except TokenError as error:
        raise SqlParseError(f"could not read the statement: {error}") from None
    except RecursionError:
        # The same refusal as the depth check below: how deep sqlglot's parser can
        # recurse depends on whether its compiled modules (sqlglotc) are installed.
        raise too_deep(max_depth, counted=False) from None
    except SqlglotError as error:
        raise SqlParseError(f"could not parse the statement: {error}") from None
    except (TypeError, AttributeError, ValueError, IndexError, KeyError) as error:
        # sqlglotc's compiled parser type-checks its own calls: where pure sqlglot
        # raises ParseError (``0?`` in postgres), it raises TypeError.
        raise SqlParseError(f"could not parse the statement ({type(error).__name__})") from None
    finally:
        # Both keep the last statement's text and tokens until their next run: per
        # thread and dialect, megabytes for a statement near max_sql_chars.
        tokenizer.tokenize("")
        parser.reset()

    statements = [s for s in parsed if s is not None and not isinstance(s, exp.Semicolon)]
    if not statements:
        raise SqlParseError("the statement is empty")
    if len(statements) > 1:
        raise MultipleStatements(
            f"one statement per request, got {len(statements)}", count=len(statements)
        )
    tree = statements[0]
    nodes = _check_depth(tree, max_depth)
    _move_position_tags(nodes, placeholders)
    return tree, nodes


_READERS = threading.local()


def _reader(dialect: str) -> tuple[Tokenizer, Parser]:
    """This thread's tokenizer and parser for ``dialect``.

    Building them costs about a sixth of a parse (sqlglot's ``parse_one`` does it per
    call); both reset their state at the start of each run, and one per thread keeps
    concurrent requests apart.
    """
    readers: dict[str, tuple[Tokenizer, Parser]] | None = getattr(_READERS, "by_dialect", None)
    if readers is None:
        readers = _READERS.by_dialect = {}
    reader = readers.get(dialect)
    if reader is None:
        parser_dialect = Dialect.get_or_raise(dialect)
        reader = readers[dialect] = (parser_dialect.tokenizer(), parser_dialect.parser())
    return reader


# C0 controls other than tab, line feed, vertical tab, form feed and carriage return.
_CONTROL_RE = re.compile("[\x00-\x08\x0e-\x1f\x7f]")


def _check_characters(sql: str) -> None:
    """NUL and other control characters are refused: sqlglot reads them as part of a
    name (``Contacts\\x00DROP`` is one identifier), and ODBC drivers that take C
    strings would cut the generated statement at a NUL."""
    found = _CONTROL_RE.search(sql)
    if found:
        raise SqlParseError(
            f"control character U+{ord(found.group()):04X} at position {found.start()} "
            "is not allowed in a statement"
        )


# Tokens after which a ``.`` would start a table name; sqlglot drops such empty leading
# parts (``FROM .Contacts``, ``FROM ...Contacts``) instead of failing.
_NAME_STARTS = frozenset(
    {
        TokenType.FROM,
        TokenType.JOIN,
        TokenType.COMMA,
        TokenType.L_PAREN,
        TokenType.INTO,
        TokenType.UPDATE,
        TokenType.TABLE,
    }
)
_VAR_OR_COMMAND = frozenset({TokenType.VAR, TokenType.COMMAND})


def _check_and_tag_tokens(tokens: list[Token]) -> tuple[int, bool]:
    """Refuse text that dialects, tools or sqlglot read in more than one way; in the
    same pass, tag each ``?`` with its ordinal in a comment. Returns (number of ``?``,
    whether an OUTPUT/RETURNING token is there)."""
    placeholders = 0
    returning = False
    for index, token in enumerate(tokens):
        kind = _check_token(tokens, index, token)
        if kind == TokenType.PLACEHOLDER:
            token.comments = [f"{POSITION_TAG}{placeholders}"]
            placeholders += 1
        elif kind == TokenType.RETURNING:
            returning = True
    return placeholders, returning


def _check_token(tokens: list[Token], index: int, token: Token) -> TokenType:
    comments = token.comments
    if comments and any("/*" in comment for comment in comments):
        # T-SQL and PostgreSQL nest block comments, SQLite and MySQL do not: the
        # same text hides different code in each.
        raise ConstructNotAllowed(
            "a comment that contains '/*' (nested comments are read differently "
            "by different databases) is not allowed",
            construct="nested comments",
        )
    kind: TokenType = token.token_type
    if kind in _VAR_OR_COMMAND and token.text.upper() == "GO":
        # sqlcmd and SSMS split batches at GO; sqlglot reads it as an alias.
        raise MultipleStatements(
            'GO separates batches: one statement per request (write [GO] or "GO" for a name)'
        )
    if kind == TokenType.L_PAREN:
        # DATEPART(w, d) -> DATEPART(weekday, d): T-SQL's abbreviations, written out.
        functions.canonical_date_part(tokens, index)
        if index and tokens[index - 1].text.upper() == "FORMAT":
            raise ConstructNotAllowed(
                "FORMAT(...) is not supported: its output follows .NET format strings and "
                "the session's language; for dates use CONVERT(varchar, d, style) with "
                "style 23, 101, 103, 112, 120, 121 or 126, or DATENAME/DATEPART",
                construct="FORMAT(...)",
            )
    if kind == TokenType.DOT:
        previous = tokens[index - 1] if index else None
        following = tokens[index + 1] if index + 1 < len(tokens) else None
        starts = previous is None or previous.token_type in _NAME_STARTS
        if starts and (following is None or following.token_type != TokenType.NUMBER):
            raise ConstructNotAllowed(
                "a name that starts with '.' is not allowed: write the table's name",
                construct="leading dot",
            )
    return kind


def _parse_error_message(error: ParseError) -> str:
    details = error.errors[0] if error.errors else {}
    description = _TOKEN_RE.sub(
        _describe_token, str(details.get("description") or "invalid syntax")
    )
    line, col = details.get("line"), details.get("col")
    if line is not None and col is not None:
        return f"could not parse the statement at line {line}, column {col}: {description}"
    return f"could not parse the statement: {description}"


_TOKEN_RE = re.compile(r"<Token token_type: TokenType\.(\w+), text: (.*?), line: [^>]*>")


def _describe_token(match: re.Match[str]) -> str:
    if match.group(1) == "SENTINEL":
        return "the end of the statement"
    return repr(match.group(2))


_TOKEN_POSITIONS = ("line", "col", "start", "end")


def too_deep(max_depth: int | None = None, *, counted: bool = False) -> StatementTooLarge:
    """The refusal of a tree past ``max_depth`` levels (``counted``), or of one that ran
    out of Python's recursion limit first (pure-Python sqlglot's parser does at about
    60 nested parentheses)."""
    more = f": more than {max_depth} levels deep" if counted else ""
    return StatementTooLarge(
        f"the statement is nested too deeply{more}", limit=max_depth, limit_name="max_depth"
    )


def _check_sizes(nodes: list[exp.Expr], limits: Limits) -> None:
    """IN lists and names within their limits."""
    max_items, max_name = limits.max_in_list, limits.max_name_chars
    for node in nodes:
        kind = type(node)
        if kind is exp.Identifier:
            name = node.this
            if isinstance(name, str) and len(name) > max_name:
                raise StatementTooLarge(
                    f"a name has {len(name)} characters; at most {max_name} are allowed",
                    limit=max_name,
                    limit_name="max_name_chars",
                )
        elif kind is exp.In:
            items = node.args.get("expressions")
            if items and len(items) > max_items:
                raise StatementTooLarge(
                    f"an IN list has {len(items)} items; at most {max_items} are allowed",
                    limit=max_items,
                    limit_name="max_in_list",
                )


def _check_depth(tree: exp.Expr, max_depth: int) -> list[exp.Expr]:
    """Refuse deep trees; drop the token positions sqlglot keeps in ``meta``; return
    the tree's nodes (``nodes.bfs``).

    Level by level, so the walk costs little per node. The positions serve no later
    pass, and every ``copy()`` of the tree (one per plan-cache miss, and sqlglot's
    generator) would deep-copy a dict per identifier: dropping them makes copies
    about three times cheaper.
    """
    nodes = levels(tree, max_depth)
    if nodes is None:
        raise too_deep(max_depth, counted=True)
    for node in nodes:
        meta = node._meta
        if meta:
            for key in _TOKEN_POSITIONS:
                meta.pop(key, None)
            if not meta:
                node._meta = None
    return nodes


def _move_position_tags(nodes: list[exp.Expr], expected: int) -> None:
    """Move each ``?`` tag from the comments into the placeholder's ``meta``.

    sqlglot sometimes hands a node's comments to its parent (``? AS x`` moves them
    to the Alias), so a tag found on another node goes to the one untagged
    placeholder below it; anything less certain is refused. ``nodes`` is breadth
    first: read backwards, every node comes after all of its descendants.
    """
    refused = ConstructNotAllowed(
        "a ? parameter is not allowed in this position", construct="parameter"
    )
    seen: set[int] = set()
    for node in reversed(nodes):  # children before parents
        comments = node.comments
        if not comments:
            continue
        tags = [c for c in comments if c.startswith(POSITION_TAG)]
        if not tags:
            continue
        rest = [c for c in comments if not c.startswith(POSITION_TAG)]
        node.comments = rest or None
        if len(tags) != 1:
            raise refused
        target = node
        if not isinstance(node, exp.Placeholder):
            untagged = [
                p
                for p in node.find_all(exp.Placeholder)
                if p.this is None and META_POSITION not in p.meta
            ]
            if len(untagged) != 1:
                raise refused
            target = untagged[0]
        position = int(tags[0][len(POSITION_TAG) :])
        if META_POSITION in target.meta or position in seen:
            raise refused
        target.meta[META_POSITION] = position
        seen.add(position)
    if len(seen) != expected:
        raise refused
    for node in nodes:
        if isinstance(node, exp.Placeholder) and node.this is None:
            meta = node._meta
            if not meta or META_POSITION not in meta:
                # sqlglot dropped, duplicated or moved a placeholder: refuse rather than guess.
                raise refused
