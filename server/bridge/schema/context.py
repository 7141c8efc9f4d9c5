"""Per-request context handed to every resolver."""

from dataclasses import dataclass, field
from typing import Any

import asyncpg

from bridge.errors import FORBIDDEN, coded
from bulkops.catalog import NodeType
from bulkops.config import Settings
from bulkops.tenants import Principal


@dataclass
class Context:
    settings: Settings
    pool: asyncpg.Pool
    principal: Principal  # always set for POST: graphql_gate authenticates first
    secret: bytes
    #: dataloaders of this request, keyed by (nested field, arguments)
    loaders: dict[tuple[Any, ...], Any] = field(default_factory=dict)
    request: Any = None
    response: Any = None

    @property
    def tenant_id(self) -> int:
        return self.principal.tenant_id

    def require_scope(self, nt: NodeType, field_name: str) -> None:
        scope = nt.scope.value
        if scope not in self.principal.scopes:
            raise coded(
                f"{field_name} needs the {scope} scope, which this token lacks",
                FORBIDDEN,
                field=field_name,
                scope=scope,
            )
