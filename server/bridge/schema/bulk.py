"""Bulk operations in GraphQL: the RFC's schema at Shopify parity, plus percent done, ETA,
sha256 and snapshot time.

Submission validates before anything is queued: syntax, the live sync schema (the one clients
page through), the bulk rules (``bulkops.bulkquery``) and the token's scopes for every
connection. Each violation is a ``userErrors`` entry with code INVALID naming the field and its
line:column.
"""

import enum
from datetime import UTC, datetime
from typing import Optional

import strawberry
from graphql import GraphQLError, parse, validate

from bridge.errors import BAD_USER_INPUT, FORBIDDEN, coded
from bridge.schema.context import Context
from bridge.schema.scalars import BigInt, Time
from bridge.schema.types import ConnectionInput, Node, PageInfo, TimeRangeInput
from bulkops import ids, operations
from bulkops.bulkquery import MAX_QUERY_BYTES, BulkQueryError, parse_bulk_query
from bulkops.catalog import Scope
from bulkops.links import result_url
from bulkops.operations import LimitReached, NotCancelable, Operation
from bulkops.paging import DEFAULT_PAGE, MAX_PAGE, PagingError
from bulkops.signing import BadSignature, sign, unsign

# The domain's enums are the GraphQL enums: one list of statuses and error codes.
BulkOperationStatus = strawberry.enum(
    operations.Status,
    name="BulkOperationStatus",
    description="CREATED -> RUNNING -> COMPLETED (-> EXPIRED), or FAILED, CANCELING -> CANCELED.",
)
BulkOperationErrorCode = strawberry.enum(operations.ErrorCode, name="BulkOperationErrorCode")


@strawberry.enum
class BulkOperationType(enum.Enum):
    QUERY = "QUERY"
    MUTATION = "MUTATION"


@strawberry.enum
class BulkOperationUserErrorCode(enum.Enum):
    INVALID = "INVALID"
    LIMIT_REACHED = "LIMIT_REACHED"
    NOT_FOUND = "NOT_FOUND"


@strawberry.type
class UserError:
    field: list[str] | None
    message: str
    code: BulkOperationUserErrorCode


@strawberry.type(description="One connection of a bulk query and the lines it wrote.")
class BulkOperationConnectionCount:
    path: str = strawberry.field(
        description="The connection in the query, e.g. streamsConnection.clipsConnection."
    )
    type: str = strawberry.field(description="The node type of its lines.")
    object_count: BigInt = strawberry.field(  # type: ignore[valid-type]
        description="Lines of this connection in the file; they are contiguous, in this list's order."
    )


@strawberry.type(description="An asynchronous export of a query's nodes as JSONL.")
class BulkOperation(Node):
    status: BulkOperationStatus  # type: ignore[valid-type]
    error_code: BulkOperationErrorCode | None  # type: ignore[valid-type]
    error_message: str | None
    type: BulkOperationType
    query: str
    created_at: Time  # type: ignore[valid-type]
    started_at: Time | None  # type: ignore[valid-type]
    completed_at: Time | None  # type: ignore[valid-type]
    object_count: BigInt = strawberry.field(  # type: ignore[valid-type]
        description="Lines written so far; updated at least every second."
    )
    root_object_count: BigInt  # type: ignore[valid-type]
    expected_object_count: BigInt | None = strawberry.field(  # type: ignore[valid-type]
        description="Lines the export will write, counted in its snapshot when it starts."
    )
    percent_complete: float | None
    estimated_seconds_remaining: float | None
    file_size: BigInt  # type: ignore[valid-type]
    sha256: str | None = strawberry.field(description="Hex SHA-256 of the file at url.")
    url: str | None = strawberry.field(
        description="Signed JSONL download URL; null when there are no results."
    )
    partial_data_url: str | None = strawberry.field(description="Lines written before a failure.")
    url_expires_at: Time | None  # type: ignore[valid-type]
    snapshot_at: Time | None = strawberry.field(  # type: ignore[valid-type]
        description="Every line reflects the data as of this instant (one consistent snapshot)."
    )
    connections: list[BulkOperationConnectionCount] | None = strawberry.field(
        description="Each connection of the query with its line count, in the file's order "
        "(root first); set once the operation has a file. Reconcile what you read against it."
    )


def to_gql(ctx: Context, op: Operation) -> BulkOperation:
    link = result_url(op, ctx.settings, ctx.secret)
    eta = None
    if (
        op.status == operations.Status.RUNNING
        and op.started_at
        and op.expected_object_count
        and op.object_count
    ):
        elapsed = (datetime.now(UTC) - op.started_at).total_seconds()
        rate = op.object_count / max(elapsed, 1e-3)
        eta = round(max(0.0, op.expected_object_count - op.object_count) / rate, 1)
    return BulkOperation(
        id=strawberry.ID(ids.encode("BulkOperation", op.id)),
        status=op.status,
        error_code=operations.ErrorCode(op.error_code) if op.error_code else None,
        error_message=op.error_message,
        type=BulkOperationType(op.type),
        query=op.query,
        created_at=op.created_at,
        started_at=op.started_at,
        completed_at=op.completed_at,
        object_count=op.object_count,
        root_object_count=op.root_object_count,
        expected_object_count=op.expected_object_count,
        percent_complete=op.percent_complete,
        estimated_seconds_remaining=eta,
        file_size=op.file_size,
        sha256=op.sha256,
        url=None if op.partial else link,
        partial_data_url=link if op.partial else None,
        url_expires_at=op.url_expires_at if link else None,
        snapshot_at=op.snapshot_at,
        connections=None
        if op.connections is None
        else [
            BulkOperationConnectionCount(
                path=c["path"], type=c["type"], object_count=int(c["objectCount"])
            )
            for c in op.connections
        ],
    )


@strawberry.type
class BulkOperationRunQueryPayload:
    bulk_operation: BulkOperation | None
    user_errors: list[UserError]


@strawberry.type
class BulkOperationCancelPayload:
    bulk_operation: BulkOperation | None
    user_errors: list[UserError]


@strawberry.type
class BulkOperationEdge:
    cursor: str
    node: BulkOperation


@strawberry.type
class BulkOperationConnection:
    edges: list[BulkOperationEdge]
    nodes: list[BulkOperation]
    page_info: PageInfo


def _invalid(message: str) -> UserError:
    return UserError(field=["query"], message=message, code=BulkOperationUserErrorCode.INVALID)


def validate_bulk_query(ctx: Context, text: str) -> list[UserError]:
    """Every reason the query cannot run in bulk for this token; [] when it can."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_QUERY_BYTES:
        return [_invalid(f"the query is larger than {MAX_QUERY_BYTES} bytes")]
    try:
        document = parse(text, max_tokens=5_000)
    except GraphQLError as exc:
        loc = exc.locations[0] if exc.locations else None
        where = f" ({loc.line}:{loc.column})" if loc else ""
        return [_invalid(f"syntax error{where}: {exc.message}")]
    from bridge.schema import schema  # the live sync schema, built after this module

    problems = validate(schema._schema, document)
    if problems:
        return [
            _invalid(
                f"{p.message}"
                + (f" ({p.locations[0].line}:{p.locations[0].column})" if p.locations else "")
            )
            for p in problems
        ]
    try:
        query = parse_bulk_query(text)
    except BulkQueryError as exc:
        return [_invalid(str(p)) for p in exc.problems]
    errors = []
    for conn in query.connections():
        scope = conn.node_type.scope.value
        if scope not in ctx.principal.scopes:
            errors.append(_invalid(f"{conn.path}: needs the {scope} scope, which this token lacks"))
    return errors


async def run_query(info: strawberry.Info, query: str) -> BulkOperationRunQueryPayload:
    ctx: Context = info.context
    if Scope.BULK_WRITE.value not in ctx.principal.scopes:
        raise coded("bulkOperationRunQuery needs the bulk:write scope, which this token lacks",
                    FORBIDDEN, field="bulkOperationRunQuery", scope=Scope.BULK_WRITE.value)  # fmt: skip
    errors = validate_bulk_query(ctx, query)
    if errors:
        return BulkOperationRunQueryPayload(bulk_operation=None, user_errors=errors)
    try:
        async with ctx.pool.acquire() as conn:
            op = await operations.submit(
                conn, ctx.tenant_id, query, ctx.settings.max_concurrent_per_tenant
            )
    except LimitReached as exc:
        err = UserError(field=None, message=str(exc), code=BulkOperationUserErrorCode.LIMIT_REACHED)
        return BulkOperationRunQueryPayload(bulk_operation=None, user_errors=[err])
    return BulkOperationRunQueryPayload(bulk_operation=to_gql(ctx, op), user_errors=[])


def _op_id(value: str, field: str) -> int | None:
    try:
        return ids.decode(value, expected="BulkOperation")[1]
    except ids.InvalidId:
        return None


async def cancel(info: strawberry.Info, id: strawberry.ID) -> BulkOperationCancelPayload:
    ctx: Context = info.context
    if Scope.BULK_WRITE.value not in ctx.principal.scopes:
        raise coded("bulkOperationCancel needs the bulk:write scope, which this token lacks",
                    FORBIDDEN, field="bulkOperationCancel", scope=Scope.BULK_WRITE.value)  # fmt: skip
    op_id = _op_id(str(id), "id")
    if op_id is None:
        err = UserError(field=["id"], message=f"{id!r} is not a BulkOperation id",
                        code=BulkOperationUserErrorCode.INVALID)  # fmt: skip
        return BulkOperationCancelPayload(bulk_operation=None, user_errors=[err])
    async with ctx.pool.acquire() as conn:
        try:
            op = await operations.cancel(conn, ctx.tenant_id, op_id)
        except NotCancelable as exc:
            current = await operations.get(conn, ctx.tenant_id, op_id)
            err = UserError(field=["id"], message=str(exc), code=BulkOperationUserErrorCode.INVALID)
            return BulkOperationCancelPayload(
                bulk_operation=to_gql(ctx, current) if current else None, user_errors=[err]
            )
    if op is None:
        err = UserError(field=["id"], message="no bulk operation with this id",
                        code=BulkOperationUserErrorCode.NOT_FOUND)  # fmt: skip
        return BulkOperationCancelPayload(bulk_operation=None, user_errors=[err])
    return BulkOperationCancelPayload(bulk_operation=to_gql(ctx, op), user_errors=[])


async def bulk_operation_by_pk(ctx: Context, op_id: int) -> BulkOperation | None:
    async with ctx.pool.acquire() as conn:
        op = await operations.get(conn, ctx.tenant_id, op_id)
    return None if op is None else to_gql(ctx, op)


async def bulk_operation(info: strawberry.Info, id: strawberry.ID) -> BulkOperation | None:
    op_id = _op_id(str(id), "id")
    if op_id is None:
        raise coded(f"id: {id!r} is not a BulkOperation id", BAD_USER_INPUT)
    return await bulk_operation_by_pk(info.context, op_id)


async def current_bulk_operation(
    info: strawberry.Info, type: BulkOperationType = BulkOperationType.QUERY
) -> BulkOperation | None:
    ctx: Context = info.context
    if type is not BulkOperationType.QUERY:
        return None  # bulk mutations are not in v1 (RFC non-goal)
    async with ctx.pool.acquire() as conn:
        op = await operations.current(conn, ctx.tenant_id)
    return None if op is None else to_gql(ctx, op)


async def bulk_operations(
    info: strawberry.Info,
    page: Optional[ConnectionInput] = None,  # noqa: UP045
    status: Optional[list[BulkOperationStatus]] = None,  # type: ignore[valid-type]  # noqa: UP045
    created_at: Optional[TimeRangeInput] = None,  # noqa: UP045
    reverse: bool = False,
) -> BulkOperationConnection:
    """The tenant's operations, newest first; ``reverse`` lists them oldest first (as
    Shopify's ``bulkOperations(reverse:)``). Cursors are positions, valid in either order."""
    ctx: Context = info.context
    p = page or ConnectionInput()
    first = p.first if p.first is not None else DEFAULT_PAGE
    if not 0 <= first <= MAX_PAGE or p.last is not None or p.before is not None:
        raise coded(f"page: use first (0..{MAX_PAGE}) and after (and reverse for oldest first)",
                    BAD_USER_INPUT)  # fmt: skip
    after = None
    if p.after:
        try:
            created, op_id = unsign(ctx.secret, p.after, "bulkops-cursor").decode().split("|")
            after = (datetime.fromisoformat(created), int(op_id))
        except (BadSignature, ValueError, PagingError):
            raise coded("page.after: not a valid cursor", BAD_USER_INPUT) from None
    async with ctx.pool.acquire() as conn:
        ops = await operations.list_page(
            conn, ctx.tenant_id, limit=first + 1, after=after,
            statuses=[str(s) for s in status] if status else None,
            created_from=created_at.start if created_at else None,
            created_to=created_at.end if created_at else None, oldest_first=reverse,
        )  # fmt: skip
    has_more = len(ops) > first
    ops = ops[:first]
    nodes = [to_gql(ctx, op) for op in ops]
    edges = [
        BulkOperationEdge(
            cursor=sign(
                ctx.secret, f"{op.created_at.isoformat()}|{op.id}".encode(), "bulkops-cursor"
            ),
            node=n,
        )
        for op, n in zip(ops, nodes, strict=True)
    ]
    return BulkOperationConnection(
        edges=edges,
        nodes=nodes,
        page_info=PageInfo(
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
            has_next_page=has_more,
            has_previous_page=after is not None,
        ),
    )
