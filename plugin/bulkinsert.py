"""Multi-row INSERTs whose values are converted before the write lock is taken.

Intake's writes are committed by :mod:`plugin.groupcommit` while SQLite's write lock is held,
and every microsecond of Python spent under that lock is a microsecond every other writer
waits (measured: about 0.7 ms of CPU per record through SQLAlchemy's executemany, most of it
converting values). A :class:`BulkInsert` splits the work in two:

* :meth:`BulkInsert.prepare` (any thread, no lock): one row's values in column order,
  converted by the columns' own SQLAlchemy types for the dialect (``UTCDateTime``, ``JSON``...),
  so what is stored is exactly what the ORM would store;
* :meth:`BulkInsert.execute` (under the lock): one ``INSERT ... VALUES (...), (...)`` for all
  rows, through the connection (errors are SQLAlchemy's, e.g. ``IntegrityError``).

Limits: every column with a Python-side default must be given (checked when built: nothing
fills defaults here); at most ``max_rows`` rows per statement (SQLite allows 32766 variables).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from itertools import chain
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError


class BulkInsert:
    """An INSERT of many rows into ``table`` (see the module doc)."""

    def __init__(
        self,
        table: Table,
        columns: Sequence[str],
        *,
        returning: Sequence[str] = (),
        ignore_conflicts: bool = False,
        max_rows: int = 500,
    ) -> None:
        missing = [c.name for c in table.columns
                   if c.default is not None and c.name not in columns]
        if missing:
            raise ValueError(f"{table.name}: columns with defaults must be given: {missing}")
        self.table = table
        self.columns = tuple(columns)
        self.returning = tuple(returning)
        self.ignore_conflicts = ignore_conflicts
        self.max_rows = max_rows
        self._processors: dict[str, tuple[tuple[int, Callable[[Any], Any]], ...]] = {}
        # a tuple of the row's values in column order (itemgetter of one name gives a bare value)
        getter = itemgetter(*self.columns)
        self._get: Callable[[Mapping[str, Any]], tuple[Any, ...]] = (
            getter if len(self.columns) > 1 else lambda row: (getter(row),))
        self._sql: dict[tuple[str, int], str] = {}

    def _procs(self, dialect: Dialect) -> tuple[tuple[int, Callable[[Any], Any]], ...]:
        """The columns that have a bind processor on ``dialect``: (position, processor)."""
        key = f"{dialect.name}+{dialect.driver}"
        procs = self._processors.get(key)
        if procs is None:
            found = ((i, self.table.c[name].type.dialect_impl(dialect).bind_processor(dialect))
                     for i, name in enumerate(self.columns))
            procs = self._processors[key] = tuple((i, p) for i, p in found if p is not None)
        return procs

    def prepare(self, dialect: Dialect, row: Mapping[str, Any]) -> tuple[Any, ...]:
        """``row``'s values in column order, converted for ``dialect`` (``KeyError`` for a
        column ``row`` lacks). Only the columns with a processor (dates, JSON... most text
        and integer columns have none) are touched after one C-level look-up of them all."""
        values = self._get(row)
        procs = self._processors.get(f"{dialect.name}+{dialect.driver}")
        if procs is None:
            procs = self._procs(dialect)
        if not procs:
            return values
        out = list(values)
        for i, proc in procs:
            out[i] = proc(out[i])
        return tuple(out)

    def sql(self, dialect: Dialect, rows: int) -> str:
        """The statement for ``rows`` rows (built once per dialect and row count)."""
        key = (f"{dialect.name}+{dialect.driver}", rows)
        text = self._sql.get(key)
        if text is None:
            quote = dialect.identifier_preparer.quote
            marks = {"qmark": "?", "format": "%s", "pyformat": "%s"}  # pyformat takes %s too
            if dialect.paramstyle not in marks:
                raise ValueError(f"unsupported DB-API paramstyle {dialect.paramstyle!r}")
            mark = marks[dialect.paramstyle]
            group = "(" + ", ".join([mark] * len(self.columns)) + ")"
            # identifiers come from the models, quoted by the dialect; every value is bound
            text = (f"INSERT INTO {quote(self.table.name)} "  # noqa: S608
                    f"({', '.join(quote(c) for c in self.columns)}) VALUES "
                    + ", ".join([group] * rows))
            if self.ignore_conflicts:
                text += " ON CONFLICT DO NOTHING"
            if self.returning:
                text += " RETURNING " + ", ".join(quote(c) for c in self.returning)
            self._sql[key] = text
        return text

    def execute(self, conn: Connection, rows: Sequence[tuple[Any, ...]]) -> list[Any]:
        """Insert prepared ``rows``; the ``returning`` columns of the inserted rows (if any).

        The order of returned rows is not guaranteed: match them on a unique column. On
        SQLite the statement goes straight to the driver's connection (SQLAlchemy's execution
        context cost about 25 us a statement in a profiled loop, spent while the write lock
        is held); its
        errors are raised as SQLAlchemy's (``IntegrityError``...) all the same. A SQLite
        file connection cannot be lost, so nothing needs invalidating.
        """
        out: list[Any] = []
        raw = conn.connection.driver_connection if conn.dialect.name == "sqlite" else None
        for start in range(0, len(rows), self.max_rows):
            chunk = rows[start:start + self.max_rows]
            params = tuple(chain.from_iterable(chunk))
            sql = self.sql(conn.dialect, len(chunk))
            if raw is None:
                result = conn.exec_driver_sql(sql, params)
                if self.returning:
                    out.extend(result.all())
                continue
            try:
                cursor = raw.execute(sql, params)
                if self.returning:
                    out.extend(cursor.fetchall())
                cursor.close()
            except sqlite3.Error as exc:
                raise DBAPIError.instance(sql, params, exc, sqlite3.Error,
                                          dialect=conn.dialect) from exc
        return out
