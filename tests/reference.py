"""An independent oracle for bulk output: plain SQL through asyncpg, then Python's json.

It deliberately does not read the catalog: it is a second, hand-written statement of what each
type's JSON must be, so a mistake in the catalog, planner or encoder shows up as a diff.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC
from typing import Any

import asyncpg


def gid(type_name: str, pk: int | None) -> str | None:
    return None if pk is None else base64.b64encode(f"{type_name}:{pk}".encode()).decode()


def ts(value: Any) -> str | None:
    return None if value is None else value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def text(value: Any) -> str | None:
    return None if value is None else str(value)


Row = asyncpg.Record
#: type -> (table, ORDER BY, {GraphQL field: row -> JSON value})
REFERENCE: dict[str, tuple[str, str, dict[str, Callable[[Row], Any]]]] = {
    "Stream": ("streams", "created_at, id", {
        "id": lambda r: gid("Stream", r["id"]),
        "streamId": lambda r: str(r["stream_uuid"]),
        "name": lambda r: r["name"],
        "description": lambda r: r["description"],
        "playbackId": lambda r: r["playback_id"],
        "record": lambda r: r["record"],
        "ingestMode": lambda r: r["ingest_mode"],
        "createdAt": lambda r: ts(r["created_at"]),
        "updatedAt": lambda r: ts(r["updated_at"]),
    }),
    "ViewerSession": ("viewer_sessions", "connected_at, id", {
        "id": lambda r: gid("ViewerSession", r["id"]),
        "sessionId": lambda r: str(r["session_id"]),
        "streamId": lambda r: gid("Stream", r["stream_id"]),
        "nodeId": lambda r: r["node_id"],
        "connectedAt": lambda r: ts(r["connected_at"]),
        "disconnectedAt": lambda r: ts(r["disconnected_at"]),
        "connector": lambda r: r["connector"],
        "countryCode": lambda r: r["country_code"],
        "city": lambda r: r["city"],
        "latitude": lambda r: r["latitude"],
        "longitude": lambda r: r["longitude"],
        "durationSeconds": lambda r: r["duration_seconds"],
        "bytesUp": lambda r: r["bytes_up"],
        "bytesDown": lambda r: r["bytes_down"],
        "connectionQuality": lambda r: r["connection_quality"],
        "bufferHealth": lambda r: r["buffer_health"],
    }),
    "Clip": ("clips", "created_at, id", {
        "id": lambda r: gid("Clip", r["id"]),
        "clipHash": lambda r: r["clip_hash"],
        "playbackId": lambda r: r["playback_id"],
        "streamId": lambda r: gid("Stream", r["stream_id"]),
        "title": lambda r: r["title"],
        "description": lambda r: r["description"],
        "startTime": lambda r: ts(r["start_time"]),
        "duration": lambda r: r["duration"],
        "sizeBytes": lambda r: r["size_bytes"],
        "status": lambda r: r["status"],
        "createdAt": lambda r: ts(r["created_at"]),
    }),
    "UsageRecord": ("usage_records", "period_start, id", {
        "id": lambda r: gid("UsageRecord", r["id"]),
        "usageType": lambda r: r["usage_type"],
        "usageValue": lambda r: r["usage_value"],
        "periodStart": lambda r: ts(r["period_start"]),
        "periodEnd": lambda r: ts(r["period_end"]),
        "granularity": lambda r: r["granularity"],
        "createdAt": lambda r: ts(r["created_at"]),
    }),
    "AuditEvent": ("audit_events", "created_at, id", {
        "id": lambda r: gid("AuditEvent", r["id"]),
        "eventType": lambda r: r["event_type"],
        "actorType": lambda r: r["actor_type"],
        "actorId": lambda r: r["actor_id"],
        "resourceType": lambda r: r["resource_type"],
        "resourceId": lambda r: r["resource_id"],
        "ip": lambda r: None if r["ip"] is None else str(r["ip"]).split("/")[0],
        "payload": lambda r: json.loads(r["payload"]),
        "createdAt": lambda r: ts(r["created_at"]),
    }),
    "StreamAnalyticsDaily": ("stream_analytics_daily", "day, id", {
        "id": lambda r: gid("StreamAnalyticsDaily", r["id"]),
        "day": lambda r: r["day"].isoformat(),
        "streamId": lambda r: gid("Stream", r["stream_id"]),
        "totalViews": lambda r: r["total_views"],
        "uniqueViewers": lambda r: r["unique_viewers"],
        "uniqueCountries": lambda r: r["unique_countries"],
        "egressBytes": lambda r: r["egress_bytes"],
    }),
}  # fmt: skip

ROOT_FIELDS = {
    "Stream": "streamsConnection",
    "ViewerSession": "viewerSessionsConnection",
    "Clip": "clipsConnection",
    "UsageRecord": "usageRecordsConnection",
    "AuditEvent": "auditEventsConnection",
    "StreamAnalyticsDaily": "streamAnalyticsDailyConnection",
}


def all_fields_query(type_name: str, args: str = "") -> str:
    fields = " ".join(REFERENCE[type_name][2])
    call = f"{ROOT_FIELDS[type_name]}({args})" if args else ROOT_FIELDS[type_name]
    return f"{{ {call} {{ edges {{ node {{ {fields} }} }} }} }}"


async def expected(
    conn: asyncpg.Connection, type_name: str, tenant_id: int, where: str = "", *args: Any
) -> list[dict[str, Any]]:
    table, order, fields = REFERENCE[type_name]
    extra = f" AND ({where})" if where else ""
    rows = await conn.fetch(
        f"SELECT * FROM {table} WHERE tenant_id = $1{extra} ORDER BY {order}", tenant_id, *args
    )
    return [{name: fn(r) for name, fn in fields.items()} for r in rows]
