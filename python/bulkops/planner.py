"""Bulk query -> one SQL statement per connection, plus the encoder spec for its columns.

Identifiers come only from the catalog. Values come only from ``BulkQuery``, already parsed to
their types (datetime, int primary key, enum member, str), and are rendered as literals by
``sql_literal``. They are not bound parameters on purpose: ADBC's PostgreSQL driver streams
results through ``COPY ... TO STDOUT (FORMAT binary)`` only for statements without parameters,
and falls back to buffering the whole result in memory otherwise (tech-notes §6).

Output order (the README's guarantee): the root connection's lines come first, in the sync
API's keyset order; then each nested connection, in query order, with its lines grouped by
parent in the parents' order, each group in the child connection's own keyset order.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from bulkops.bulkquery import BulkQuery, ConnectionSelection, TimeRange
from bulkops.catalog import TYPES, Filter, FilterOp

#: (JSON key, encoder kind, extra) — see bulkops._native.JsonlEncoder
FieldSpec = tuple[str, str, str | None]


@dataclass(frozen=True)
class ConnectionPlan:
    path: str
    type_name: str
    spec: tuple[FieldSpec, ...]
    parent_type: str | None  #: None for the root connection
    columns: tuple[str, ...]  #: SELECT list: the spec's columns, then keyset columns not among them
    body: str  #: FROM ... WHERE ...
    keyset: tuple[str, ...]  #: ORDER BY expressions; the row's position in the output
    key_columns: tuple[int, ...]  #: where each keyset expression is in the SELECT list

    @property
    def is_root(self) -> bool:
        return self.parent_type is None

    @property
    def sql(self) -> str:
        return self.sql_after(None)

    def sql_after(self, position: tuple[Any, ...] | None) -> str:
        """The statement, resumed after the row at keyset ``position`` (a checkpoint)."""
        where = ""
        if position is not None:
            if len(position) != len(self.keyset):
                raise ValueError("checkpoint does not match this connection's keyset")
            values = ", ".join(keyset_literal(v) for v in position)
            where = f" AND ({', '.join(self.keyset)}) > ({values})"
        return (
            f"SELECT {', '.join(self.columns)} {self.body}{where} ORDER BY {', '.join(self.keyset)}"
        )

    @property
    def count_sql(self) -> str:
        """How many lines ``sql`` yields (progress: percent done)."""
        return f"SELECT count(*) {self.body}"


@dataclass(frozen=True)
class Plan:
    tenant_id: int
    connections: tuple[ConnectionPlan, ...]


def sql_literal(value: Any) -> str:
    """A typed value as a SQL literal. Only types the parser produces are accepted."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        return f"{sql_literal(value.isoformat())}::timestamptz"
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("NUL in string literal")
        # An E'' string reads the same whatever standard_conforming_strings says.
        return "E'" + value.replace("\\", "\\\\").replace("'", "''") + "'"
    raise TypeError(f"cannot render {type(value).__name__} as SQL")


def keyset_literal(value: Any) -> str:
    if isinstance(value, date) and not isinstance(value, datetime):
        return f"{sql_literal(value.isoformat())}::date"
    return sql_literal(value)


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def filter_sql(flt: Filter, value: Any) -> str:
    col = flt.column
    if flt.op is FilterOp.TIME_RANGE:
        assert isinstance(value, TimeRange)
        return f"({col} >= {sql_literal(value.start)} AND {col} < {sql_literal(value.end)})"
    if flt.op is FilterOp.ID_EQ:
        assert isinstance(value, int)
        return f"{col} = {sql_literal(value)}"
    if flt.op is FilterOp.SEARCH:
        return f"{col} ILIKE {sql_literal(_like_pattern(value))} ESCAPE E'\\\\'"
    if flt.op is FilterOp.EQ:
        return f"{col} = {sql_literal(value)}"
    raise AssertionError(flt.op)


def where_sql(tenant_id: int, filters: Iterable[tuple[Filter, Any]]) -> str:
    """The tenant predicate and every filter, over the alias ``t``; shared with the sync API."""
    clauses = [f"t.tenant_id = {sql_literal(tenant_id)}"]
    clauses += [filter_sql(flt, value) for flt, value in filters]
    return " AND ".join(clauses)


def _columns(sel: ConnectionSelection) -> tuple[list[str], list[FieldSpec]]:
    cols: list[str] = []
    spec: list[FieldSpec] = []
    for i, f in enumerate(sel.fields):
        # Response keys (user aliases) never enter the SQL: columns are c0, c1, ...
        if f.field is None:
            cols.append(f"{sql_literal(sel.node_type.name)}::text AS c{i}")
            spec.append((f.key, "string", None))
        else:
            cols.append(f"{f.field.sql} AS c{i}")
            extra = (f.field.ref or sel.node_type.name) if f.field.kind == "global_id" else None
            spec.append((f.key, f.field.kind, extra))
    return cols, spec


def _add_keyset(cols: list[str], keyset: tuple[str, ...]) -> tuple[int, ...]:
    """Append the keyset expressions the selection lacks (usually the sort key and id are
    selected already: reuse them); return each one's column index."""
    exprs = [c.rsplit(" AS ", 1)[0] for c in cols]
    positions = []
    for i, key in enumerate(keyset):
        if key not in exprs:
            cols.append(f"{key} AS k{i}")
            exprs.append(key)
        positions.append(exprs.index(key))
    return tuple(positions)


def plan_root(tenant_id: int, sel: ConnectionSelection) -> ConnectionPlan:
    t = sel.node_type
    cols, spec = _columns(sel)
    keyset = tuple(f"t.{c}" for c in t.order)
    key_columns = _add_keyset(cols, keyset)
    body = f"FROM {t.table} t WHERE {where_sql(tenant_id, sel.filters)}"
    return ConnectionPlan(
        sel.path, t.name, tuple(spec), None, tuple(cols), body, keyset, key_columns
    )


def plan_nested(
    tenant_id: int, parent: ConnectionSelection, field_name: str, child: ConnectionSelection
) -> ConnectionPlan:
    p, c = parent.node_type, child.node_type
    nested = p.nested_connection(field_name)
    assert nested is not None
    cols, spec = _columns(child)
    cols.append("p.pid AS c_parent")
    spec.append(("__parentId", "global_id", p.name))
    parent_cols = ", ".join(
        ["t.id AS pid", f"t.{nested.parent_key} AS pkey"]
        + [f"t.{o} AS o{i}" for i, o in enumerate(p.order)]
    )
    keyset = tuple([f"p.o{i}" for i in range(len(p.order))] + [f"t.{o}" for o in c.order])
    key_columns = _add_keyset(cols, keyset)
    body = (
        f"FROM (SELECT {parent_cols} FROM {p.table} t WHERE {where_sql(tenant_id, parent.filters)}) p "
        f"JOIN {c.table} t ON t.{nested.child_key} = p.pkey "
        f"WHERE {where_sql(tenant_id, child.filters)}"
    )
    return ConnectionPlan(
        child.path, c.name, tuple(spec), p.name, tuple(cols), body, keyset, key_columns
    )


def plan(query: BulkQuery, tenant_id: int) -> Plan:
    plans = [plan_root(tenant_id, query.root)]
    stack = [query.root]
    while stack:
        parent = stack.pop(0)
        for field_name, child in parent.children:
            plans.append(plan_nested(tenant_id, parent, field_name, child))
            stack.append(child)
    assert all(cp.type_name in TYPES for cp in plans)
    return Plan(tenant_id, tuple(plans))
