"""Parse a bulk query (an ordinary GraphQL query over the catalog) into a typed selection.

This is the structural half of bulk validation: the shape rules of Shopify's bulk operations
(one top-level connection, at most 5 connections, nesting at most 2 levels, no introspection,
no variables) and typed parsing of every filter argument. The Bridge additionally validates
the document against the live sync schema; the planner only ever sees a ``BulkQuery``.

Every error names the field path and its line:column in the query, e.g.
``viewerSessionsConnection.timeRange (1:28): start must be before end``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from graphql import GraphQLError, parse
from graphql.language import (
    BooleanValueNode,
    DocumentNode,
    EnumValueNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    IntValueNode,
    Node,
    NullValueNode,
    ObjectValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    StringValueNode,
    ValueNode,
    VariableNode,
)

from bulkops import ids
from bulkops.catalog import ENUMS, ROOT_CONNECTIONS, TYPES, Field, Filter, FilterOp, NodeType

MAX_QUERY_BYTES = 20_000
MAX_CONNECTIONS = 5
MAX_NESTING = 2
MAX_SEARCH_CHARS = 200
#: arguments and fields that only make sense for paging; a bulk operation reads everything
IGNORED_ARGS = frozenset({"page", "first", "last", "before", "after"})
IGNORED_FIELDS = frozenset({"pageInfo", "cursor", "totalCount"})


@dataclass(frozen=True)
class Problem:
    path: str
    message: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        where = f" ({self.line}:{self.column})" if self.line is not None else ""
        return f"{self.path}{where}: {self.message}" if self.path else f"{self.message}{where}"


class BulkQueryError(ValueError):
    """The query cannot run as a bulk operation; ``problems`` lists every reason found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


@dataclass(frozen=True)
class TimeRange:
    start: datetime
    end: datetime


@dataclass(frozen=True)
class SelectedField:
    key: str  #: response key: the alias if given, else the field name
    field: Field | None  #: None for ``__typename``


@dataclass(frozen=True)
class ConnectionSelection:
    path: str
    node_type: NodeType
    filters: tuple[tuple[Filter, Any], ...]
    fields: tuple[SelectedField, ...]
    children: tuple[tuple[str, ConnectionSelection], ...] = ()  #: (nested field name, selection)

    def walk(self) -> list[ConnectionSelection]:
        out = [self]
        for _, child in self.children:
            out.extend(child.walk())
        return out


@dataclass(frozen=True)
class BulkQuery:
    text: str
    root: ConnectionSelection

    def connections(self) -> list[ConnectionSelection]:
        return self.root.walk()

    def scopes(self) -> set[str]:
        return {c.node_type.scope.value for c in self.connections()}


@dataclass
class _Parser:
    document: DocumentNode
    problems: list[Problem] = field(default_factory=list)
    connections: int = 0

    def fail(self, path: str, message: str, node: Node | None = None) -> None:
        line = column = None
        if node is not None and node.loc is not None:
            loc = node.loc.source.get_location(node.loc.start)
            line, column = loc.line, loc.column
        self.problems.append(Problem(path, message, line, column))

    @property
    def fragments(self) -> dict[str, FragmentDefinitionNode]:
        return {
            d.name.value: d
            for d in self.document.definitions
            if isinstance(d, FragmentDefinitionNode)
        }

    def fields_of(self, sel: SelectionSetNode | None, type_name: str, path: str) -> list[FieldNode]:
        """Flatten fragments whose type condition matches ``type_name``."""
        out: list[FieldNode] = []
        for s in sel.selections if sel else ():
            if isinstance(s, FieldNode):
                if s.directives:
                    self.fail(
                        f"{path}.{s.name.value}", "directives are not supported in bulk queries", s
                    )
                out.append(s)
            elif isinstance(s, InlineFragmentNode | FragmentSpreadNode):
                frag = s if isinstance(s, InlineFragmentNode) else self.fragments.get(s.name.value)
                if frag is None:
                    self.fail(path, f"unknown fragment {s.name.value!r}", s)  # type: ignore[union-attr]
                    continue
                cond = frag.type_condition.name.value if frag.type_condition else type_name
                if cond != type_name:
                    self.fail(path, f"fragment on {cond} cannot apply to {type_name}", s)
                    continue
                out.extend(self.fields_of(frag.selection_set, type_name, path))
        return out

    # -- the walk ------------------------------------------------------------------------
    def root(self) -> ConnectionSelection | None:
        ops = [d for d in self.document.definitions if isinstance(d, OperationDefinitionNode)]
        if len(ops) != 1:
            self.fail("", "a bulk query must contain exactly one operation")
            return None
        op = ops[0]
        if op.operation != OperationType.QUERY:
            self.fail("", f"only query operations can run in bulk, not {op.operation.value}", op)
            return None
        if op.variable_definitions:
            self.fail("", "variables are not supported in bulk queries; inline the values", op)
        top = self.fields_of(op.selection_set, "Query", "")
        if len(top) != 1:
            self.fail(
                "", f"a bulk query must select exactly one top-level field, not {len(top)}", op
            )
            return None
        node = top[0]
        name = node.name.value
        if name.startswith("__"):
            self.fail(name, "introspection is not allowed in bulk queries", node)
            return None
        if name not in ROOT_CONNECTIONS:
            roots = ", ".join(sorted(ROOT_CONNECTIONS))
            self.fail(name, f"not a connection that can run in bulk; use one of {roots}", node)
            return None
        node_type = ROOT_CONNECTIONS[name]
        return self.connection(node, name, node_type, node_type.root_filters, depth=1)

    def connection(
        self,
        node: FieldNode,
        path: str,
        node_type: NodeType,
        filters: tuple[Filter, ...],
        depth: int,
    ) -> ConnectionSelection | None:
        self.connections += 1
        if self.connections == MAX_CONNECTIONS + 1:
            self.fail(path, f"a bulk query may contain at most {MAX_CONNECTIONS} connections", node)
        if depth > MAX_NESTING:
            self.fail(path, f"connections may be nested at most {MAX_NESTING} levels deep", node)
        parsed = self.arguments(node, path, filters)
        node_sel = self.node_selection(node, path, node_type)
        if node_sel is None:
            return None
        fields: dict[str, SelectedField] = {}
        children: list[tuple[str, ConnectionSelection]] = []
        for f in self.fields_of(node_sel, node_type.name, path):
            fname, key = f.name.value, (f.alias or f.name).value
            fpath = f"{path}.{fname}"
            if fname == "__typename":
                fields.setdefault(key, SelectedField(key, None))
            elif fname.startswith("__"):
                self.fail(fpath, "introspection is not allowed in bulk queries", f)
            elif (nested := node_type.nested_connection(fname)) is not None:
                child = self.connection(f, fpath, TYPES[nested.child], nested.filters, depth + 1)
                if child is not None:
                    children.append((fname, child))
            elif (cat := node_type.field(fname)) is not None:
                if f.arguments:
                    self.fail(fpath, "this field takes no arguments", f)
                if f.selection_set:
                    self.fail(fpath, f"{fname} is a scalar and takes no sub-selection", f)
                fields.setdefault(key, SelectedField(key, cat))
            else:
                self.fail(fpath, f"{node_type.name} has no field {fname!r}", f)
        if not fields:
            self.fail(path, "select at least one field of the node", node)
        return ConnectionSelection(path, node_type, parsed, tuple(fields.values()), tuple(children))

    def node_selection(
        self, node: FieldNode, path: str, node_type: NodeType
    ) -> SelectionSetNode | None:
        """``edges { node { ... } }`` or ``nodes { ... }``; paging fields are ignored."""
        found: list[SelectionSetNode] = []
        for f in self.fields_of(node.selection_set, f"{node_type.name}Connection", path):
            name = f.name.value
            if name == "nodes" and f.selection_set:
                found.append(f.selection_set)
            elif name == "edges":
                for e in self.fields_of(f.selection_set, f"{node_type.name}Edge", path + ".edges"):
                    if e.name.value == "node" and e.selection_set:
                        found.append(e.selection_set)
                    elif e.name.value not in IGNORED_FIELDS:
                        self.fail(
                            f"{path}.edges.{e.name.value}", "edges have only node and cursor", e
                        )
            elif name not in IGNORED_FIELDS and name != "__typename":
                self.fail(
                    f"{path}.{name}",
                    "a connection has only edges, nodes, pageInfo and totalCount",
                    f,
                )
        if not found:
            self.fail(path, "select the nodes: `edges { node { ... } }` or `nodes { ... }`", node)
            return None
        if len(found) > 1:
            merged = SelectionSetNode(selections=tuple(s for sel in found for s in sel.selections))
            return merged
        return found[0]

    def arguments(
        self, node: FieldNode, path: str, filters: tuple[Filter, ...]
    ) -> tuple[tuple[Filter, Any], ...]:
        known = {f.arg: f for f in filters}
        out: list[tuple[Filter, Any]] = []
        for arg in node.arguments or ():
            name = arg.name.value
            apath = f"{path}.{name}"
            if name in IGNORED_ARGS:
                continue
            flt = known.get(name)
            if flt is None:
                accepted = ", ".join(sorted(known)) or "none"
                self.fail(apath, f"unknown argument; this connection accepts: {accepted}", arg)
                continue
            try:
                value = _parse_value(flt, arg.value)
            except ValueError as exc:
                self.fail(apath, str(exc), arg)
                continue
            if value is not None:
                out.append((flt, value))
        return tuple(out)


def _parse_value(flt: Filter, node: ValueNode) -> Any:
    """Turn a literal into its typed value; raise ValueError with a user-facing message."""
    if isinstance(node, VariableNode):
        raise ValueError("variables are not supported in bulk queries; inline the value")
    if isinstance(node, NullValueNode):
        return None
    if flt.op is FilterOp.TIME_RANGE:
        if not isinstance(node, ObjectValueNode):
            raise ValueError("expected {start: Time!, end: Time!}")
        parts = {f.name.value: f.value for f in node.fields}
        extra = set(parts) - {"start", "end"}
        if extra or not {"start", "end"} <= set(parts):
            raise ValueError("expected exactly the fields start and end")
        start, end = (parse_time(_string(parts[k]), k) for k in ("start", "end"))
        if start >= end:
            raise ValueError("start must be before end")
        return TimeRange(start, end)
    if flt.op is FilterOp.ID_EQ:
        try:
            return ids.decode(_string(node), expected=flt.ref)[1]
        except ids.InvalidId as exc:
            raise ValueError(str(exc)) from None
    if flt.gql_type in ENUMS:
        if not isinstance(node, EnumValueNode) or node.value not in ENUMS[flt.gql_type]:
            raise ValueError(f"expected one of {', '.join(ENUMS[flt.gql_type])}")
        return node.value
    text = _string(node)
    if "\x00" in text:
        raise ValueError("must not contain NUL characters")
    if len(text) > MAX_SEARCH_CHARS:
        raise ValueError(f"must be at most {MAX_SEARCH_CHARS} characters")
    return text


def _string(node: ValueNode) -> str:
    if isinstance(node, StringValueNode):
        return node.value
    if isinstance(node, IntValueNode | BooleanValueNode | EnumValueNode):
        raise ValueError("expected a string")
    raise ValueError("expected a string")


def parse_time(text: str, what: str = "value") -> datetime:
    """RFC 3339 with an explicit offset (``Z`` or ``±HH:MM``), normalised to UTC."""
    try:
        value = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise ValueError(f"{what}: {text[:40]!r} is not an RFC 3339 time") from None
    if value.tzinfo is None or "T" not in text.upper():
        raise ValueError(f"{what}: {text[:40]!r} needs a date, a time and an offset (e.g. Z)")
    return value.astimezone(UTC)


def parse_bulk_query(text: str) -> BulkQuery:
    """Parse and check ``text``; raise BulkQueryError listing every problem found."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_QUERY_BYTES:
        raise BulkQueryError([Problem("", f"the query is larger than {MAX_QUERY_BYTES} bytes")])
    try:
        document = parse(text, max_tokens=5_000)
    except GraphQLError as exc:
        loc = exc.locations[0] if exc.locations else None
        raise BulkQueryError(
            [
                Problem(
                    "",
                    f"syntax error: {exc.message}",
                    loc.line if loc else None,
                    loc.column if loc else None,
                )
            ]
        ) from None
    parser = _Parser(document)
    root = parser.root()
    if parser.problems or root is None:
        raise BulkQueryError(parser.problems)
    return BulkQuery(text, root)
