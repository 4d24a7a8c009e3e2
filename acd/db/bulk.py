"""Batches as column arrays in psycopg's binary format: the writer's fast path.

A batch travels as one array per column into ``INSERT ... SELECT FROM unnest(...)``: one
statement per batch whatever its size. Sent as text, every array element goes through
psycopg's pure-Python quoting (a regular expression per value), which cost more than the
server's whole insert; the binary format (``%b`` placeholders) skips it. JSON values
travel as text and are cast on the server, so no Python object needs a binary dumper.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

from sqlalchemy import Double, Float, Integer, Table
from sqlalchemy.dialects.postgresql import JSON, JSONB
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.sql import ClauseElement

_DIALECT = PGDialect_psycopg()  # type: ignore[no-untyped-call]
_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def binary_sql(statement: ClauseElement) -> str:
    """``statement`` as psycopg SQL text whose parameters are all sent in binary."""
    return _PLACEHOLDER.sub(r"%(\1)b", str(statement.compile(dialect=_DIALECT)))


@cache
def insert_sql(table: Table, columns: tuple[str, ...]) -> str:
    """``INSERT INTO table (columns) SELECT FROM unnest(arrays) ON CONFLICT DO NOTHING``,
    with parameters ``c0``, ``c1``... in ``columns`` order (see ``column_arrays``)."""
    quote = _DIALECT.identifier_preparer.quote
    arrays = []
    picks = []
    for n, name in enumerate(columns):
        column_type = table.c[name].type
        if isinstance(column_type, JSON | JSONB):
            arrays.append(f"%(c{n})b::TEXT[]")
            picks.append(f"{quote(name)}::{column_type.compile(dialect=_DIALECT)}")
        else:
            arrays.append(f"%(c{n})b::{column_type.compile(dialect=_DIALECT)}[]")
            picks.append(quote(name))
    names = ", ".join(quote(c) for c in columns)
    return (
        f"INSERT INTO {quote(table.name)} ({names}) SELECT {', '.join(picks)}"
        f" FROM unnest({', '.join(arrays)}) AS rows ({names}) ON CONFLICT DO NOTHING"
    )


def column_arrays(
    table: Table, columns: tuple[str, ...], rows: Sequence[Mapping[str, Any]]
) -> dict[str, list[Any]]:
    """The parameters of ``insert_sql(table, columns)`` for ``rows``.

    JSON columns are serialised here (``None`` as JSON ``null``, as SQLAlchemy stores
    it); numbers are made one Python type per column, since a binary array holds one.
    """
    params: dict[str, list[Any]] = {}
    for n, name in enumerate(columns):
        column_type = table.c[name].type
        values = [row[name] for row in rows]
        if isinstance(column_type, JSON | JSONB):
            values = [json.dumps(v) for v in values]
        elif isinstance(column_type, Float | Double):
            values = [None if v is None else float(v) for v in values]
        elif isinstance(column_type, Integer):
            values = [None if v is None else int(v) for v in values]
        params[f"c{n}"] = values
    return params
