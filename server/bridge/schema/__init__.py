"""The Strawberry schema of the Bridge, assembled from the generated types and resolvers."""

from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import MaxAliasesLimiter, QueryDepthLimiter

from bridge.schema.resolvers import ROOT_RESOLVERS, resolve_node
from bridge.schema.types import REGISTRY, Node

MAX_DEPTH = 8


async def _node(info: strawberry.Info, id: strawberry.ID) -> Node | None:
    return await resolve_node(info.context, str(id))


def _query_type() -> type:
    ns: dict[str, Any] = {
        "__module__": __name__,
        "node": strawberry.field(resolver=_node, description="Any object by its global id."),
    }
    for name, resolver in ROOT_RESOLVERS.items():
        ns[name] = strawberry.field(resolver=resolver)
    return strawberry.type(type("Query", (), ns))


class BridgeSchema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        # Coded errors are the client's mistakes, answered in the response; log the rest.
        unexpected = [e for e in errors if not (e.extensions or {}).get("code") and e.path]
        if unexpected:
            super().process_errors(unexpected, execution_context)


schema = BridgeSchema(
    query=_query_type(),
    types=list(REGISTRY.objects.values()),
    extensions=[  # instances are accepted at runtime; the stub only names classes
        QueryDepthLimiter(max_depth=MAX_DEPTH),  # type: ignore[list-item]
        MaxAliasesLimiter(max_alias_count=30),  # type: ignore[list-item]
    ],
)
