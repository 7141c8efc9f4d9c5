"""The Strawberry schema of the Bridge: the generated sync API plus bulk operations."""

from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import MaxAliasesLimiter, QueryDepthLimiter

from bridge.errors import BAD_USER_INPUT, coded
from bridge.schema import bulk
from bridge.schema.resolvers import ROOT_RESOLVERS, resolve_node
from bridge.schema.types import REGISTRY, Node
from bulkops import ids

MAX_DEPTH = 8


async def _node(info: strawberry.Info, id: strawberry.ID) -> Node | None:
    try:
        type_name, pk = ids.decode(str(id))
    except ids.InvalidId as exc:
        raise coded(f"node.id: {exc}", BAD_USER_INPUT) from None
    if type_name == "BulkOperation":
        return await bulk.bulk_operation_by_pk(info.context, pk)
    return await resolve_node(info.context, str(id))


def _query_type() -> type:
    ns: dict[str, Any] = {
        "__module__": __name__,
        "node": strawberry.field(resolver=_node, description="Any object by its global id."),
        "bulk_operation": strawberry.field(resolver=bulk.bulk_operation),
        "current_bulk_operation": strawberry.field(
            resolver=bulk.current_bulk_operation,
            description="The tenant's newest bulk operation.",
        ),
        "bulk_operations": strawberry.field(resolver=bulk.bulk_operations),
    }
    for name, resolver in ROOT_RESOLVERS.items():
        ns[name] = strawberry.field(resolver=resolver)
    return strawberry.type(type("Query", (), ns))


@strawberry.type
class Mutation:
    bulk_operation_run_query: bulk.BulkOperationRunQueryPayload = strawberry.field(
        resolver=bulk.run_query,
        description="Start exporting every node the query selects as JSONL. Costs one request; "
        "the run itself is not rate-limited.",
    )
    bulk_operation_cancel: bulk.BulkOperationCancelPayload = strawberry.field(
        resolver=bulk.cancel, description="CREATED -> CANCELED at once; RUNNING -> CANCELING."
    )


class BridgeSchema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        # Coded errors are the client's mistakes, answered in the response; log the rest.
        unexpected = [e for e in errors if not (e.extensions or {}).get("code") and e.path]
        if unexpected:
            super().process_errors(unexpected, execution_context)


schema = BridgeSchema(
    query=_query_type(),
    mutation=Mutation,
    types=[*REGISTRY.objects.values(), bulk.BulkOperation],
    extensions=[  # instances are accepted at runtime; the stub only names classes
        QueryDepthLimiter(max_depth=MAX_DEPTH),  # type: ignore[list-item]
        MaxAliasesLimiter(max_alias_count=30),  # type: ignore[list-item]
    ],
)
