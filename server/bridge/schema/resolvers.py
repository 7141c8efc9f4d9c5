"""Resolvers: root connections, nested connections (batched by dataloaders) and ``node``.

They translate GraphQL arguments into the same typed filter values the bulk parser produces,
then reuse the planner's filter SQL and ``bulkops.paging``: the sync API and bulk exports
share one definition of every filter and order.
"""

import inspect
from typing import Any

import strawberry
from strawberry.dataloader import DataLoader

from bridge.errors import BAD_USER_INPUT, coded
from bridge.schema.context import Context
from bridge.schema.types import (
    REGISTRY,
    ConnectionInput,
    PageInfo,
    build,
    filter_params,
    signature_resolver,
)
from bulkops import ids
from bulkops.bulkquery import MAX_SEARCH_CHARS, TimeRange
from bulkops.catalog import ROOT_CONNECTIONS, TYPES, Filter, FilterOp, Nested, NodeType
from bulkops.paging import (
    DEFAULT_PAGE,
    Page,
    PagingError,
    count_sql,
    encode_cursor,
    nested_count_sql,
    nested_page_sql,
    page_from_args,
    root_page_sql,
)

_INFO = inspect.Parameter("info", inspect.Parameter.KEYWORD_ONLY, annotation=strawberry.Info)
_SELF = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)


def _filters(
    declared: tuple[Filter, ...], kwargs: dict[str, Any], path: str
) -> list[tuple[Filter, Any]]:
    """GraphQL argument values -> (filter, typed value), as ``bulkquery`` would parse them."""
    out: list[tuple[Filter, Any]] = []
    for flt in declared:
        value = kwargs.get(flt.arg)
        if value is None:
            continue
        where = f"{path}.{flt.arg}"
        if flt.op is FilterOp.TIME_RANGE:
            if value.start >= value.end:
                raise coded(f"{where}: start must be before end", BAD_USER_INPUT)
            out.append((flt, TimeRange(value.start, value.end)))
        elif flt.op is FilterOp.ID_EQ:
            try:
                out.append((flt, ids.decode(str(value), expected=flt.ref)[1]))
            except ids.InvalidId as exc:
                raise coded(f"{where}: {exc}", BAD_USER_INPUT) from None
        elif hasattr(value, "value"):  # an enum member
            out.append((flt, value.value))
        else:
            if "\x00" in value or len(value) > MAX_SEARCH_CHARS:
                raise coded(
                    f"{where}: at most {MAX_SEARCH_CHARS} characters, no NUL", BAD_USER_INPUT
                )
            out.append((flt, value))
    return out


def _page(ctx: Context, nt: NodeType, page: ConnectionInput | None, path: str) -> Page:
    p = page or ConnectionInput()
    first = p.first
    if p.last is not None and first == DEFAULT_PAGE:
        first = None  # the default of `first` does not clash with an explicit `last`
    try:
        return page_from_args(ctx.secret, nt, first, p.after, p.last, p.before)
    except PagingError as exc:
        raise coded(f"{path}: {exc}", BAD_USER_INPUT) from None


def _connection(ctx: Context, nt: NodeType, rows: list[Any], page: Page, count: Any) -> Any:
    has_more = len(rows) > page.limit
    rows = rows[: page.limit]
    if not page.forward:
        rows.reverse()
    nodes = [REGISTRY.make_node(nt, r) for r in rows]
    edges = [
        REGISTRY.edges[nt.name](cursor=encode_cursor(ctx.secret, nt, n._keyset), node=n)
        for n in nodes
    ]
    info = PageInfo(
        start_cursor=edges[0].cursor if edges else None,
        end_cursor=edges[-1].cursor if edges else None,
        has_next_page=has_more if page.forward else page.cursor is not None,
        has_previous_page=page.cursor is not None if page.forward else has_more,
    )
    conn = REGISTRY.connections[nt.name](edges=edges, nodes=nodes, page_info=info)
    conn._count = count
    return conn


def root_resolver(field_name: str, nt: NodeType) -> Any:
    async def impl(*, info: strawberry.Info, page: ConnectionInput | None = None, **kw: Any) -> Any:
        ctx: Context = info.context
        ctx.require_scope(nt, field_name)
        filters = _filters(nt.root_filters, kw, field_name)
        pg = _page(ctx, nt, page, field_name)
        async with ctx.pool.acquire() as conn:
            rows = await conn.fetch(root_page_sql(nt, ctx.tenant_id, filters, pg))

        async def count() -> int:
            async with ctx.pool.acquire() as c:
                return int(await c.fetchval(count_sql(nt, ctx.tenant_id, filters)))

        return _connection(ctx, nt, rows, pg, count)

    params = [_INFO, *filter_params(nt.root_filters)]
    return signature_resolver(field_name, impl, params, REGISTRY.connections[nt.name])


def nested_resolver(parent: NodeType, nested: Nested) -> Any:
    child = TYPES[nested.child]
    path = f"{parent.name}.{nested.field}"

    async def impl(self: Any, *, info: strawberry.Info, page: ConnectionInput | None = None,
                   **kw: Any) -> Any:  # fmt: skip
        ctx: Context = info.context
        ctx.require_scope(child, path)
        filters = _filters(nested.filters, kw, path)
        pg = _page(ctx, child, page, path)
        key = (path, pg, tuple((f.arg, v) for f, v in filters))
        loader = ctx.loaders.get(key)
        if loader is None:
            loader = ctx.loaders[key] = _page_loader(ctx, child, nested, filters, pg)
        count_key = ("count", path, key[2])
        counter = ctx.loaders.get(count_key)
        if counter is None:
            counter = ctx.loaders[count_key] = _count_loader(ctx, child, nested, filters)
        parent_key = getattr(self, "_pk")  # noqa: B009 - set by Registry.make_node
        rows = await loader.load(parent_key)
        return _connection(ctx, child, rows, pg, lambda: counter.load(parent_key))

    params = [_SELF, _INFO, *filter_params(nested.filters)]
    return signature_resolver(nested.field, impl, params, REGISTRY.connections[child.name])


def _page_loader(ctx: Context, nt: NodeType, nested: Nested, filters: list[tuple[Filter, Any]],
                 page: Page) -> DataLoader[int, list[Any]]:  # fmt: skip
    """All parents' pages of one nested connection in one statement (no N+1)."""
    sql = nested_page_sql(nt, nested.child_key, ctx.tenant_id, filters, page)

    async def load(keys: list[int]) -> list[list[Any]]:
        async with ctx.pool.acquire() as conn:
            rows = await conn.fetch(sql, list(keys))
        by_parent: dict[int, list[Any]] = {k: [] for k in keys}
        for r in rows:
            by_parent[r["parent_key"]].append(r)
        return [by_parent[k] for k in keys]

    return DataLoader(load_fn=load)


def _count_loader(ctx: Context, nt: NodeType, nested: Nested,
                  filters: list[tuple[Filter, Any]]) -> DataLoader[int, int]:  # fmt: skip
    sql = nested_count_sql(nt, nested.child_key, ctx.tenant_id, filters)

    async def load(keys: list[int]) -> list[int]:
        async with ctx.pool.acquire() as conn:
            rows = await conn.fetch(sql, list(keys))
        counts = {r["parent_key"]: r["n"] for r in rows}
        return [int(counts.get(k, 0)) for k in keys]

    return DataLoader(load_fn=load)


async def total_count(self: Any) -> int:
    return int(await self._count())


async def resolve_node(ctx: Context, global_id: str) -> Any:
    """Any node by global id, or None when it does not exist *for this tenant*: another
    tenant's id looks exactly like an id that was never issued."""
    try:
        type_name, pk = ids.decode(global_id)
    except ids.InvalidId as exc:
        raise coded(f"node.id: {exc}", BAD_USER_INPUT) from None
    nt = TYPES[type_name]
    ctx.require_scope(nt, "node")
    from bulkops.paging import select_sql

    async with ctx.pool.acquire() as conn:
        row = await conn.fetchrow(
            f"SELECT {select_sql(nt)} FROM {nt.table} t WHERE t.tenant_id = $1 AND t.id = $2",
            ctx.tenant_id,
            pk,
        )
    return None if row is None else REGISTRY.make_node(nt, row)


build(nested_resolver, total_count)
ROOT_RESOLVERS = {name: root_resolver(name, nt) for name, nt in ROOT_CONNECTIONS.items()}
