"""GraphQL types generated from the catalog: one object type, edge and connection per node
type, the ``Node`` interface, the platform's enums and the input objects.

This module builds classes at import time from ``bulkops.catalog``; there is no hand-written
list of fields. Annotations are real objects (no ``from __future__ import annotations``)
because the classes are created dynamically.
"""

import enum
import inspect
import json
import math
from collections.abc import Awaitable, Callable
from typing import Any, Optional

import strawberry

from bridge.schema.scalars import JSON, BigInt, Date, Time
from bulkops import ids
from bulkops.catalog import ENUMS, TYPES, Field, NodeType

GQL_ENUMS: dict[str, type[enum.Enum]] = {
    name: strawberry.enum(enum.Enum(name, {v: v for v in values}))  # type: ignore[call-overload]
    for name, values in ENUMS.items()
}

_SCALARS: dict[str, Any] = {
    "ID": strawberry.ID,
    "String": str,
    "Int": int,
    "BigInt": BigInt,
    "Float": float,
    "Boolean": bool,
    "Time": Time,
    "Date": Date,
    "JSON": JSON,
}


def py_type(gql_type: str, nullable: bool = False) -> Any:
    base = GQL_ENUMS.get(gql_type) or _SCALARS[gql_type]
    return Optional[base] if nullable else base  # noqa: UP045 - runtime object


@strawberry.interface(description="An object with a global id, resolvable with node(id:).")
class Node:
    id: strawberry.ID


@strawberry.type
class PageInfo:
    start_cursor: str | None
    end_cursor: str | None
    has_next_page: bool
    has_previous_page: bool


@strawberry.input(description="Keyset paging: first/after forwards, last/before backwards.")
class ConnectionInput:
    first: int | None = strawberry.field(default=50, description="Page size, at most 500.")
    after: str | None = None
    last: int | None = None
    before: str | None = None


@strawberry.input
class TimeRangeInput:
    start: Time  # type: ignore[valid-type]
    end: Time  # type: ignore[valid-type]


FILTER_TYPES: dict[str, Any] = {"TimeRangeInput": TimeRangeInput, "ID": strawberry.ID,
                                "String": str, **GQL_ENUMS}  # fmt: skip


def to_value(f: Field, raw: Any) -> Any:
    """A database value (from the catalog's SQL expression) as the GraphQL layer wants it."""
    if raw is None:
        return None
    if f.kind == "global_id":
        return strawberry.ID(ids.encode(f.ref or "", raw)) if f.ref else raw
    if f.gql_type in GQL_ENUMS:
        return GQL_ENUMS[f.gql_type](raw)
    if f.kind == "json":
        return json.loads(raw)
    if f.kind == "float" and isinstance(raw, float) and not math.isfinite(raw):
        return None  # as the bulk encoder: NaN and infinities are not JSON numbers
    return raw


class Registry:
    """The generated classes, by node type name."""

    def __init__(self) -> None:
        self.objects: dict[str, type] = {}
        self.edges: dict[str, type] = {}
        self.connections: dict[str, type] = {}

    def make_node(self, nt: NodeType, row: Any) -> Any:
        """Build the object of ``nt`` from a row selected with ``paging.select_sql``."""
        values = {}
        for i, f in enumerate(nt.fields):
            raw = row[f"c{i}"]
            values[f.name] = (
                strawberry.ID(ids.encode(nt.name, raw)) if f.name == "id" else to_value(f, raw)
            )
        obj = self.objects[nt.name](**values)
        obj._pk = row["c0"]
        obj._keyset = tuple(row[f"k{i}"] for i in range(len(nt.order)))
        return obj


REGISTRY = Registry()


def signature_resolver(
    name: str, impl: Callable[..., Awaitable[Any]], params: list[inspect.Parameter], returns: Any
) -> Callable[..., Awaitable[Any]]:
    """A resolver with a generated signature, so Strawberry sees typed, named arguments."""

    async def resolver(*args: Any, **kwargs: Any) -> Any:
        return await impl(*args, **kwargs)

    resolver.__name__ = name
    resolver.__signature__ = inspect.Signature(params, return_annotation=returns)  # type: ignore[attr-defined]
    resolver.__annotations__ = {p.name: p.annotation for p in params} | {"return": returns}
    return resolver


def filter_params(filters: Any) -> list[inspect.Parameter]:
    params = [
        inspect.Parameter(
            "page", inspect.Parameter.KEYWORD_ONLY, default=None,
            annotation=Optional[ConnectionInput],  # noqa: UP045
        )
    ]  # fmt: skip
    for flt in filters:
        params.append(
            inspect.Parameter(
                flt.arg, inspect.Parameter.KEYWORD_ONLY, default=None,
                annotation=Optional[FILTER_TYPES[flt.gql_type]],  # noqa: UP045
            )
        )  # fmt: skip
    return params


def build(nested_resolver: Callable[[NodeType, Any], Callable[..., Awaitable[Any]]],
          total_count: Callable[..., Awaitable[int]]) -> Registry:  # fmt: skip
    """Create every object/edge/connection class. Nested connection fields get resolvers
    from ``nested_resolver(parent type, nested)``; connections get ``totalCount``."""
    # Connections first refer to objects and objects to (nested) connections: create the
    # plain classes, then decorate in dependency order (children before parents).
    order = sorted(TYPES.values(), key=lambda t: len(t.nested))
    for nt in order:
        ns: dict[str, Any] = {"__module__": __name__, "__annotations__": {}}
        for f in nt.fields:
            if f.name == "id":
                continue  # from Node
            ns["__annotations__"][f.name] = py_type(f.gql_type, f.nullable)
            ns[f.name] = strawberry.field(description=f.description or None)
        for n in nt.nested:
            ns[n.field] = strawberry.field(resolver=nested_resolver(nt, n))
        cls = type(nt.name, (Node,), ns)
        REGISTRY.objects[nt.name] = strawberry.type(cls, description=nt.description or None)
        edge = type(f"{nt.name}Edge", (), {"__module__": __name__, "__annotations__": {
            "cursor": str, "node": REGISTRY.objects[nt.name]}})  # fmt: skip
        REGISTRY.edges[nt.name] = strawberry.type(edge)
        conn_ns = {
            "__module__": __name__,
            "__annotations__": {
                "edges": list[REGISTRY.edges[nt.name]],  # type: ignore[name-defined]
                "nodes": list[REGISTRY.objects[nt.name]],  # type: ignore[name-defined]
                "page_info": PageInfo,
            },
            "total_count": strawberry.field(resolver=total_count),
        }
        REGISTRY.connections[nt.name] = strawberry.type(type(f"{nt.name}Connection", (), conn_ns))
    return REGISTRY
