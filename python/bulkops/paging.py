"""Relay keyset paging for the sync API: page arguments, signed cursors and page SQL.

A cursor is the row's keyset position (its sort-key values and id) for one node type, signed
with HMAC so a tampered cursor is refused rather than silently pointing elsewhere. Paging is
never by offset: a page is ``WHERE (sort key, id) > cursor ORDER BY sort key, id LIMIT n + 1``
(or the mirror image for ``last``/``before``), which stays correct while rows are inserted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from bulkops.catalog import Filter, NodeType
from bulkops.planner import sql_literal, where_sql
from bulkops.signing import BadSignature, sign, unsign

DEFAULT_PAGE = 50
MAX_PAGE = 500


class PagingError(ValueError):
    """Bad page arguments or a bad cursor; the message names the argument."""


@dataclass(frozen=True)
class Page:
    limit: int
    forward: bool
    cursor: tuple[Any, ...] | None  #: keyset values to start after (forward) / before


def order_types(nt: NodeType) -> list[str]:
    """The GraphQL type of each keyset column (Time, Date or an integer id)."""
    by_sql = {f.sql: f.gql_type for f in nt.fields}
    return ["ID" if col == "id" else by_sql[f"t.{col}"] for col in nt.order]


def encode_cursor(key: bytes, nt: NodeType, values: tuple[Any, ...]) -> str:
    parts = [v.isoformat() if isinstance(v, date | datetime) else v for v in values]
    return sign(key, json.dumps([nt.name, parts], separators=(",", ":")).encode(), "cursor")


def decode_cursor(key: bytes, nt: NodeType, cursor: str, arg: str) -> tuple[Any, ...]:
    try:
        type_name, parts = json.loads(unsign(key, cursor, "cursor"))
    except (BadSignature, ValueError, TypeError):
        raise PagingError(f"{arg}: not a valid cursor") from None
    types = order_types(nt)
    if type_name != nt.name or len(parts) != len(types):
        raise PagingError(f"{arg}: this cursor belongs to another connection")
    out: list[Any] = []
    for part, gql_type in zip(parts, types, strict=True):
        if gql_type == "Time":
            out.append(datetime.fromisoformat(part))
        elif gql_type == "Date":
            out.append(date.fromisoformat(part))
        else:
            out.append(int(part))
    return tuple(out)


def page_from_args(
    key: bytes, nt: NodeType, first: int | None, after: str | None, last: int | None,
    before: str | None,
) -> Page:  # fmt: skip
    if first is not None and last is not None:
        raise PagingError("page: pass either first or last, not both")
    if after is not None and before is not None:
        raise PagingError("page: pass either after or before, not both")
    for name, value in (("first", first), ("last", last)):
        if value is not None and not 0 <= value <= MAX_PAGE:
            raise PagingError(f"page.{name} must be between 0 and {MAX_PAGE}, got {value}")
    if last is not None or before is not None:
        limit = last if last is not None else DEFAULT_PAGE
        cursor = decode_cursor(key, nt, before, "page.before") if before else None
        return Page(limit, False, cursor)
    limit = first if first is not None else DEFAULT_PAGE
    return Page(limit, True, decode_cursor(key, nt, after, "page.after") if after else None)


def _date_literal(value: Any) -> str:
    if isinstance(value, date) and not isinstance(value, datetime):
        return f"{sql_literal(value.isoformat())}::date"
    return sql_literal(value)


def keyset_sql(nt: NodeType, page: Page) -> tuple[str, str]:
    """(extra WHERE clause or "", ORDER BY) for a page over alias ``t``."""
    cols = ", ".join(f"t.{c}" for c in nt.order)
    direction = "" if page.forward else " DESC"
    order = ", ".join(f"t.{c}{direction}" for c in nt.order)
    if page.cursor is None:
        return "", order
    values = ", ".join(_date_literal(v) for v in page.cursor)
    op = ">" if page.forward else "<"
    return f"({cols}) {op} ({values})", order


def select_sql(nt: NodeType) -> str:
    """Every field of the type (as c0..cn) plus its keyset columns (as k0..km)."""
    cols = [f"{f.sql} AS c{i}" for i, f in enumerate(nt.fields)]
    cols += [f"t.{c} AS k{i}" for i, c in enumerate(nt.order)]
    return ", ".join(cols)


def root_page_sql(
    nt: NodeType, tenant_id: int, filters: list[tuple[Filter, Any]], page: Page
) -> str:
    keyset, order = keyset_sql(nt, page)
    where = where_sql(tenant_id, filters) + (f" AND {keyset}" if keyset else "")
    return (
        f"SELECT {select_sql(nt)} FROM {nt.table} t WHERE {where} "
        f"ORDER BY {order} LIMIT {page.limit + 1}"
    )


def nested_page_sql(
    nt: NodeType, child_key: str, tenant_id: int, filters: list[tuple[Filter, Any]], page: Page
) -> str:
    """One statement for the pages of many parents (``$1`` = bigint[] of parent keys)."""
    keyset, order = keyset_sql(nt, page)
    where = where_sql(tenant_id, filters) + f" AND t.{child_key} = ANY($1::bigint[])"
    where += f" AND {keyset}" if keyset else ""
    return (
        f"SELECT * FROM (SELECT {select_sql(nt)}, t.{child_key} AS parent_key, "
        f"row_number() OVER (PARTITION BY t.{child_key} ORDER BY {order}) AS rn "
        f"FROM {nt.table} t WHERE {where}) x WHERE rn <= {page.limit + 1} ORDER BY parent_key, rn"
    )


def count_sql(nt: NodeType, tenant_id: int, filters: list[tuple[Filter, Any]]) -> str:
    return f"SELECT count(*) FROM {nt.table} t WHERE {where_sql(tenant_id, filters)}"


def nested_count_sql(nt: NodeType, child_key: str, tenant_id: int,
                     filters: list[tuple[Filter, Any]]) -> str:  # fmt: skip
    return (
        f"SELECT t.{child_key} AS parent_key, count(*) AS n FROM {nt.table} t "
        f"WHERE {where_sql(tenant_id, filters)} AND t.{child_key} = ANY($1::bigint[]) "
        f"GROUP BY t.{child_key}"
    )
