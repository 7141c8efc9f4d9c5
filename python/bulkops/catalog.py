"""The catalog: the one declaration of every exportable type.

The sync GraphQL schema, the bulk-query validator and the bulk planner are all generated from
(or checked against) this module; no other list of fields exists. Each ``NodeType`` says:

* its GraphQL name, table and the scope that guards it;
* its fields: GraphQL name -> SQL expression over the table alias ``t`` + GraphQL type;
* its global-id encoding (``ids.encode(type, pk)`` over ``t.id``) and its keyset order;
* the root connection that lists it, with the filters it accepts;
* its nested connections, with their join keys.

SQL text here is trusted code; user input never becomes SQL text (see ``filters``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType


class Scope(StrEnum):
    STREAMS_READ = "streams:read"
    ANALYTICS_READ = "analytics:read"
    BILLING_READ = "billing:read"
    AUDIT_READ = "audit:read"
    BULK_WRITE = "bulk:write"


#: GraphQL scalar -> the JSONL encoder's kind (see bulkops._native.JsonlEncoder).
SCALAR_KINDS = MappingProxyType(
    {
        "ID": "global_id",
        "String": "string",
        "Int": "int",
        "BigInt": "int",
        "Float": "float",
        "Boolean": "bool",
        "Time": "time",
        "Date": "date",
        "JSON": "json",
    }
)

#: GraphQL enums of the platform, stored as their value names in text columns.
ENUMS = MappingProxyType(
    {
        "IngestMode": ("RTMP", "SRT", "WHIP", "PULL"),
        "Connector": ("HLS", "WebRTC", "RTMP", "DASH"),
        "ClipStatus": ("PROCESSING", "READY", "FAILED"),
        "UsageType": ("EGRESS_BYTES", "STORAGE_BYTES", "TRANSCODE_MINUTES", "VIEWER_MINUTES"),
        "Granularity": ("HOURLY", "DAILY"),
    }
)


@dataclass(frozen=True)
class Field:
    name: str  #: GraphQL field name
    sql: str  #: SQL expression over the table alias ``t``
    gql_type: str  #: a key of SCALAR_KINDS or ENUMS
    nullable: bool = False
    #: for ``ID`` fields: the node type whose global id the value is
    ref: str | None = None
    description: str = ""

    @property
    def kind(self) -> str:
        return "string" if self.gql_type in ENUMS else SCALAR_KINDS[self.gql_type]


class FilterOp(StrEnum):
    TIME_RANGE = "time_range"  #: TimeRangeInput {start, end}: start <= col < end
    ID_EQ = "id_eq"  #: a global id of ``ref`` -> col = pk
    SEARCH = "search"  #: case-insensitive substring of col
    EQ = "eq"  #: col = value (an enum value or a string)


@dataclass(frozen=True)
class Filter:
    arg: str  #: GraphQL argument name
    gql_type: str  #: "TimeRangeInput", "ID", "String" or an enum
    op: FilterOp
    column: str  #: SQL expression over ``t``
    ref: str | None = None  #: for ID_EQ: the node type the id must belong to


@dataclass(frozen=True)
class Nested:
    """A connection under a node: ``parent.<field>`` lists ``child`` rows where
    ``child.<child_key> = parent.<parent_key>`` (and the same tenant)."""

    field: str
    child: str
    parent_key: str
    child_key: str
    filters: tuple[Filter, ...] = ()


@dataclass(frozen=True)
class NodeType:
    name: str
    table: str
    scope: Scope
    fields: tuple[Field, ...]
    #: keyset order: sort-key columns, always ending in the primary key "id"
    order: tuple[str, ...]
    #: the root connection field that lists this type, and its filters
    root_field: str
    root_filters: tuple[Filter, ...] = ()
    nested: tuple[Nested, ...] = ()
    description: str = ""

    def field(self, name: str) -> Field | None:
        return next((f for f in self.fields if f.name == name), None)

    def nested_connection(self, name: str) -> Nested | None:
        return next((n for n in self.nested if n.field == name), None)


def _id() -> Field:
    return Field("id", "t.id", "ID", description="Opaque global id, the same in every API.")


def _stream_ref() -> Field:
    return Field(
        "streamId", "t.stream_id", "ID", ref="Stream", description="Global id of the stream."
    )


def _time_range(column: str) -> Filter:
    return Filter("timeRange", "TimeRangeInput", FilterOp.TIME_RANGE, column)


_STREAM_ID = Filter("streamId", "ID", FilterOp.ID_EQ, "t.stream_id", ref="Stream")

STREAM = NodeType(
    name="Stream",
    table="streams",
    scope=Scope.STREAMS_READ,
    order=("created_at", "id"),
    root_field="streamsConnection",
    root_filters=(Filter("search", "String", FilterOp.SEARCH, "t.name"),),
    description="A live stream (channel) of the tenant.",
    fields=(
        _id(),
        Field(
            "streamId", "t.stream_uuid::text", "String", description="Public UUID of the stream."
        ),
        Field("name", "t.name", "String"),
        Field("description", "t.description", "String", nullable=True),
        Field("playbackId", "t.playback_id", "String"),
        Field("record", "t.record", "Boolean"),
        Field("ingestMode", "t.ingest_mode", "IngestMode"),
        Field("createdAt", "t.created_at", "Time"),
        Field("updatedAt", "t.updated_at", "Time"),
    ),
    nested=(
        Nested(
            "viewerSessionsConnection",
            "ViewerSession",
            "id",
            "stream_id",
            (_time_range("t.connected_at"),),
        ),
        Nested(
            "clipsConnection",
            "Clip",
            "id",
            "stream_id",
            (Filter("status", "ClipStatus", FilterOp.EQ, "t.status"),),
        ),
        Nested(
            "analyticsDailyConnection",
            "StreamAnalyticsDaily",
            "id",
            "stream_id",
            (_time_range("t.day"),),
        ),
    ),
)

VIEWER_SESSION = NodeType(
    name="ViewerSession",
    table="viewer_sessions",
    scope=Scope.ANALYTICS_READ,
    order=("connected_at", "id"),
    root_field="viewerSessionsConnection",
    root_filters=(_STREAM_ID, _time_range("t.connected_at")),
    description="One viewer's connection to a stream.",
    fields=(
        _id(),
        Field("sessionId", "t.session_id::text", "String"),
        _stream_ref(),
        Field("nodeId", "t.node_id", "String", description="Edge node that served the viewer."),
        Field("connectedAt", "t.connected_at", "Time"),
        Field("disconnectedAt", "t.disconnected_at", "Time", nullable=True),
        Field("connector", "t.connector", "Connector"),
        Field("countryCode", "t.country_code", "String", nullable=True),
        Field("city", "t.city", "String", nullable=True),
        Field("latitude", "t.latitude", "Float", nullable=True),
        Field("longitude", "t.longitude", "Float", nullable=True),
        Field("durationSeconds", "t.duration_seconds", "Int", nullable=True),
        Field("bytesUp", "t.bytes_up", "BigInt"),
        Field("bytesDown", "t.bytes_down", "BigInt"),
        Field("connectionQuality", "t.connection_quality", "Float", nullable=True),
        Field("bufferHealth", "t.buffer_health", "Float", nullable=True),
    ),
)

CLIP = NodeType(
    name="Clip",
    table="clips",
    scope=Scope.STREAMS_READ,
    order=("created_at", "id"),
    root_field="clipsConnection",
    root_filters=(_STREAM_ID, Filter("status", "ClipStatus", FilterOp.EQ, "t.status")),
    description="A clip cut from a stream's recording.",
    fields=(
        _id(),
        Field("clipHash", "t.clip_hash", "String"),
        Field("playbackId", "t.playback_id", "String"),
        _stream_ref(),
        Field("title", "t.title", "String"),
        Field("description", "t.description", "String", nullable=True),
        Field("startTime", "t.start_time", "Time"),
        Field("duration", "t.duration", "Float", description="Seconds."),
        Field("sizeBytes", "t.size_bytes", "BigInt", nullable=True),
        Field("status", "t.status", "ClipStatus"),
        Field("createdAt", "t.created_at", "Time"),
    ),
)

USAGE_RECORD = NodeType(
    name="UsageRecord",
    table="usage_records",
    scope=Scope.BILLING_READ,
    order=("period_start", "id"),
    root_field="usageRecordsConnection",
    root_filters=(_time_range("t.period_start"),),
    description="Metered usage over one billing period.",
    fields=(
        _id(),
        Field("usageType", "t.usage_type", "UsageType"),
        Field("usageValue", "t.usage_value", "Float"),
        Field("periodStart", "t.period_start", "Time"),
        Field("periodEnd", "t.period_end", "Time"),
        Field("granularity", "t.granularity", "Granularity"),
        Field("createdAt", "t.created_at", "Time"),
    ),
)

AUDIT_EVENT = NodeType(
    name="AuditEvent",
    table="audit_events",
    scope=Scope.AUDIT_READ,
    order=("created_at", "id"),
    root_field="auditEventsConnection",
    root_filters=(
        _time_range("t.created_at"),
        Filter("eventType", "String", FilterOp.EQ, "t.event_type"),
    ),
    description="Something an actor did to a resource of the tenant.",
    fields=(
        _id(),
        Field("eventType", "t.event_type", "String"),
        Field("actorType", "t.actor_type", "String"),
        Field("actorId", "t.actor_id", "String"),
        Field("resourceType", "t.resource_type", "String"),
        Field("resourceId", "t.resource_id", "String"),
        Field("ip", "host(t.ip)", "String", nullable=True),
        Field("payload", "t.payload::text", "JSON"),
        Field("createdAt", "t.created_at", "Time"),
    ),
)

STREAM_ANALYTICS_DAILY = NodeType(
    name="StreamAnalyticsDaily",
    table="stream_analytics_daily",
    scope=Scope.ANALYTICS_READ,
    order=("day", "id"),
    root_field="streamAnalyticsDailyConnection",
    root_filters=(_STREAM_ID, _time_range("t.day")),
    description="Per-stream viewing totals for one UTC day.",
    fields=(
        _id(),
        Field("day", "t.day", "Date"),
        _stream_ref(),
        Field("totalViews", "t.total_views", "BigInt"),
        Field("uniqueViewers", "t.unique_viewers", "BigInt"),
        Field("uniqueCountries", "t.unique_countries", "Int"),
        Field("egressBytes", "t.egress_bytes", "BigInt"),
    ),
)

TYPES: MappingProxyType[str, NodeType] = MappingProxyType(
    {
        t.name: t
        for t in (STREAM, VIEWER_SESSION, CLIP, USAGE_RECORD, AUDIT_EVENT, STREAM_ANALYTICS_DAILY)
    }
)

#: root connection field name -> node type
ROOT_CONNECTIONS: MappingProxyType[str, NodeType] = MappingProxyType(
    {t.root_field: t for t in TYPES.values()}
)

#: every table that holds tenant data, in an order safe for deletes (children first)
TENANT_TABLES = (
    "viewer_sessions",
    "clips",
    "stream_analytics_daily",
    "usage_records",
    "audit_events",
    "streams",
)


def node_type(name: str) -> NodeType:
    try:
        return TYPES[name]
    except KeyError:
        raise KeyError(f"unknown node type {name!r}") from None


def _check() -> None:
    """Fail at import time if the declaration is inconsistent (cheap, and catches typos)."""
    for t in TYPES.values():
        assert t.order[-1] == "id", t.name
        assert t.fields[0].name == "id", t.name
        names = [f.name for f in t.fields]
        assert len(names) == len(set(names)), t.name
        for f in t.fields:
            assert f.gql_type in SCALAR_KINDS or f.gql_type in ENUMS, (t.name, f.name)
            assert f.ref is None or f.ref in TYPES, (t.name, f.name)
        for n in t.nested:
            assert n.child in TYPES, (t.name, n.field)


_check()
