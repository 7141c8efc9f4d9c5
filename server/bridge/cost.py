"""Query cost and depth, computed from the document before anything runs.

Cost counts the nodes a query may return: every connection field contributes its page size
multiplied by the page sizes of the connections above it. One unit of the rate-limit bucket
pays for up to ``NODES_PER_UNIT`` (500) nodes, so one full 500-row page costs what one request
costs in the platform's documented limits (100 requests/min, burst 20).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    value_from_ast_untyped,
)

from bulkops.paging import DEFAULT_PAGE

NODES_PER_UNIT = 500
MAX_NODES = 10_000
MAX_DEPTH = 8


@dataclass(frozen=True)
class Cost:
    nodes: int
    depth: int

    @property
    def units(self) -> int:
        return max(1, math.ceil(self.nodes / NODES_PER_UNIT))


def _page_size(field: FieldNode, variables: dict[str, Any]) -> int:
    for arg in field.arguments or ():
        if arg.name.value == "page":
            try:
                page = value_from_ast_untyped(arg.value, variables) or {}
            except Exception:
                return DEFAULT_PAGE
            if isinstance(page, dict):
                size = page.get("last") if page.get("last") is not None else page.get("first")
                if isinstance(size, int) and size >= 0:
                    return size
    return DEFAULT_PAGE


def estimate(document: DocumentNode, operation_name: str | None, variables: dict[str, Any]) -> Cost:
    frags = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    ops = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    op = next(
        (o for o in ops if o.name and o.name.value == operation_name), ops[0] if ops else None
    )
    if op is None:
        return Cost(0, 0)
    seen: set[str] = set()

    def walk(sel: SelectionSetNode | None, multiplier: int, depth: int) -> tuple[int, int]:
        nodes, max_depth = 0, depth
        for s in sel.selections if sel else ():
            if isinstance(s, FieldNode):
                m = multiplier
                if s.name.value.endswith("Connection"):
                    m = multiplier * _page_size(s, variables)
                    nodes += m
                n, d = walk(s.selection_set, m, depth + 1)
            elif isinstance(s, InlineFragmentNode):
                n, d = walk(s.selection_set, multiplier, depth)
            elif isinstance(s, FragmentSpreadNode):
                frag = frags.get(s.name.value)
                if frag is None or s.name.value in seen:
                    continue  # unknown or cyclic: validation reports it
                seen.add(s.name.value)
                n, d = walk(frag.selection_set, multiplier, depth)
                seen.discard(s.name.value)
            else:
                continue
            nodes += n
            max_depth = max(max_depth, d)
        return nodes, max_depth

    nodes, depth = walk(op.selection_set, 1, 0)
    return Cost(nodes, depth)
