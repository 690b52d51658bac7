"""The PEP 249 cursor: one statement's result at a time, held whole.

A statement's answer arrives whole in one HTTP response (``/v1/query`` has no server
cursor to page through), so ``execute`` keeps its rows and the ``fetch*`` methods only
walk them. ``max_rows`` (the connection's, else the service's default) bounds what one
answer carries; a result that had more rows raises ``Warning`` rather than pass for a
complete one, after setting the first rows as the cursor's result (a caller who
catches it can still fetch them).

``executemany`` is one batch (``/v1/batch``, or the transaction's batch endpoint):
every parameter set validated before any runs, all in one transaction. Its
``rowcount`` is the sum of the statements'. A write with ``OUTPUT`` / ``RETURNING``
gives its rows even there: the result set is every statement's rows in order (the PEP
leaves ``executemany`` with result sets undefined; this is the useful reading).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeAlias

from proxy.client.dbapi.errors import InterfaceError, ProgrammingError, Warning
from proxy.client.dbapi.types import decode_rows, encode_param
from proxy.client.models import Result

if TYPE_CHECKING:
    from proxy.client.dbapi.connection import Connection

__all__ = ["Cursor", "Description"]

Description: TypeAlias = tuple[str, str, None, None, None, None, None]
"""``(name, type_code, display_size, internal_size, precision, scale, null_ok)``: the
API reports a column's name and type only; the other five are ``None``."""

Row: TypeAlias = tuple[Any, ...]


def encode_params(parameters: Any) -> list[Any] | dict[str, Any]:
    """``qmark`` values in order; a mapping goes as ``@name`` values (an extension)."""
    if parameters is None:
        return []
    if isinstance(parameters, Mapping):
        return {str(k): encode_param(v) for k, v in parameters.items()}
    if isinstance(parameters, str | bytes) or not isinstance(parameters, Sequence):
        raise ProgrammingError(
            "parameters must be a sequence (for ?) or a mapping (for @name), "
            f"not {type(parameters).__name__}",
            code="invalid_parameters",
        )
    return [encode_param(v) for v in parameters]


class Cursor:
    """A cursor of a ``Connection`` (``connection.cursor()``)."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        """The connection it was made from (PEP 249's optional extension)."""
        self.arraysize = 1
        """How many rows ``fetchmany()`` returns by default."""
        self._description: tuple[Description, ...] | None = None
        self._rows: list[Row] = []
        self._position = 0
        self._rowcount = -1
        self._closed = False

    # -- the result ------------------------------------------------------------------

    @property
    def description(self) -> tuple[Description, ...] | None:
        """A 7-tuple per column of the last result set; ``None`` without one."""
        return self._description

    @property
    def rowcount(self) -> int:
        """Rows returned by the last read, rows changed by the last write; -1 before
        any statement and when the database did not say."""
        return self._rowcount

    @property
    def rownumber(self) -> int | None:
        """The 0-based index of the next row to fetch (optional extension)."""
        return None if self._description is None else self._position

    @property
    def lastrowid(self) -> None:
        """Always ``None``: the API has no row ids; use ``OUTPUT`` / ``RETURNING``."""
        return None

    def _set(self, results: Sequence[Result]) -> None:
        with_rows = [r for r in results if r.columns]
        if with_rows:
            columns = with_rows[0].columns
            self._description = tuple(
                (c.name, c.type, None, None, None, None, None) for c in columns
            )
            # Each result by its own types: SQLite names a column's type from its values.
            self._rows = [
                row for r in with_rows for row in decode_rows(r.rows, [c.type for c in r.columns])
            ]
        else:
            self._description = None
            self._rows = []
        self._position = 0
        counts = [r.row_count for r in results]
        self._rowcount = -1 if any(c < 0 for c in counts) else sum(counts)

    def _reset(self) -> None:
        self._description = None
        self._rows = []
        self._position = 0
        self._rowcount = -1

    # -- statements ------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise InterfaceError("the cursor is closed", code="cursor_closed")
        self.connection._check_open()

    def execute(self, operation: str, parameters: Any = None) -> Cursor:
        """Run one statement with ``?`` markers for ``parameters``; returns the cursor."""
        self._check_open()
        params = encode_params(parameters)
        self._reset()
        result = self.connection._query(operation, params)
        self._set([result])
        if result.truncated:
            raise Warning(
                f"the result has more than the {len(result.rows)} rows it carries; "
                "raise max_rows (up to the service's query.max_rows_cap) or narrow the query"
            )
        return self

    def executemany(self, operation: str, seq_of_parameters: Any) -> Cursor:
        """Run ``operation`` once per parameter set, as one atomic batch."""
        self._check_open()
        statements = [(operation, encode_params(p)) for p in seq_of_parameters]
        self._reset()
        if not statements:
            self._rowcount = 0
            return self
        results = self.connection._batch(statements)
        self._set(results)
        if any(r.truncated for r in results):
            raise Warning("a statement's result has more rows than it carries; raise max_rows")
        return self

    # -- fetching --------------------------------------------------------------------

    def _check_result(self) -> None:
        self._check_open()
        if self._description is None:
            raise ProgrammingError(
                "no result set: the last statement returned no rows, or none ran",
                code="no_result_set",
            )

    def fetchone(self) -> Row | None:
        self._check_result()
        if self._position >= len(self._rows):
            return None
        row = self._rows[self._position]
        self._position += 1
        return row

    def fetchmany(self, size: int | None = None) -> list[Row]:
        self._check_result()
        size = self.arraysize if size is None else size
        rows = self._rows[self._position : self._position + max(size, 0)]
        self._position += len(rows)
        return rows

    def fetchall(self) -> list[Row]:
        self._check_result()
        rows = self._rows[self._position :]
        self._position = len(self._rows)
        return rows

    def __iter__(self) -> Iterator[Row]:
        return self

    def __next__(self) -> Row:
        row = self.fetchone()
        if row is None:
            raise StopIteration
        return row

    # -- the rest of the PEP -----------------------------------------------------------

    def setinputsizes(self, sizes: Any) -> None:
        """Nothing to do: parameters travel as JSON values."""

    def setoutputsize(self, size: int, column: int | None = None) -> None:
        """Nothing to do: values arrive whole."""

    def close(self) -> None:
        """Forget the result; any later use raises ``InterfaceError``. Idempotent."""
        self._closed = True
        self._reset()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> Cursor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
