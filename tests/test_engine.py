"""The export engine against an independent reference, on real PostgreSQL and both stores."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import obstore
import pytest

from bulkops.bulkquery import BulkQueryError, parse_bulk_query
from bulkops.config import Settings
from bulkops.engine import ExportResult, run_export
from bulkops.planner import plan
from bulkops.seed import SeedPlan, seed
from bulkops.storage import Location, locate
from bulkops.tenants import create_tenant
from tests.reference import REFERENCE, all_fields_query, expected, gid

LONG = "long ✓ " * 150_000  # ~1.2 MB in one value
ODD = 'quote" backslash\\ nl\n tab\t cr\r ctrl\x01\x1f del\x7f astral 𝄞 ls\u2028 </script>'


@pytest.fixture(scope="module")
async def tenant(settings: Settings) -> AsyncIterator[dict[str, int]]:
    """Two seeded tenants; the first also holds hand-made edge cases."""
    conn = await asyncpg.connect(settings.database_url)
    ids = {}
    for key in ("a", "b"):
        ids[key], _ = await create_tenant(conn, f"engine-{key}-{uuid.uuid4().hex[:8]}")
        await seed(conn, ids[key], SeedPlan(streams=6, sessions=2_500, clips=60, audit_events=300,
                                            usage_records=40))  # fmt: skip
    a = ids["a"]
    stream = await conn.fetchval(
        """INSERT INTO streams (tenant_id, name, description, playback_id, ingest_mode,
                                created_at, updated_at)
           VALUES ($1, $2, $3, 'pb', 'RTMP', '1969-07-20 20:17:40.5+00', now()) RETURNING id""",
        a, ODD, LONG,
    )  # fmt: skip
    await conn.execute(
        """INSERT INTO viewer_sessions (tenant_id, stream_id, node_id, connected_at, connector,
                                        bytes_up, bytes_down, latitude)
           VALUES ($1, $2, $3, '2001-02-03 04:05:06.000007+00', 'DASH', 9007199254740993,
                   -9223372036854775808, 'NaN')""",
        a, stream, "ünïcødé-节点",
    )  # fmt: skip
    await conn.execute(
        """INSERT INTO audit_events (tenant_id, event_type, actor_type, actor_id, resource_type,
                                     resource_id, ip, payload, created_at)
           VALUES ($1, 'x', 'user', 'u', 'r', 'r1', '2001:db8::1', $2, now())""",
        a, json.dumps({"odd": ODD, "n": [1, 2.5, None, True], "nested": {"k": "𝄞"}}),
    )  # fmt: skip
    try:
        yield ids
    finally:
        await conn.execute("DELETE FROM tenants WHERE id = ANY($1::bigint[])", list(ids.values()))
        await conn.close()


async def export(settings: Settings, query: str, tenant_id: int, url: str) -> ExportResult:
    the_plan = plan(parse_bulk_query(query), tenant_id)
    return await asyncio.to_thread(
        run_export, the_plan, settings.database_url, locate(url, settings)
    )


def read_lines(location: Location) -> list[dict[str, Any]]:
    data = obstore.get(location.store, location.key).bytes().to_bytes()
    assert data.endswith(b"\n")
    return [json.loads(line) for line in data.split(b"\n")[:-1]]


def file_url(tmp_path: Path) -> str:
    return (tmp_path / f"{uuid.uuid4().hex}.jsonl").as_uri()


# NaN is not JSON: the reference says null, as GraphQL serialises it.
def _nan_to_none(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {k: (None if isinstance(v, float) and v != v else v) for k, v in r.items()} for r in rows
    ]


@pytest.mark.parametrize("type_name", sorted(REFERENCE))
async def test_every_type_equals_the_reference(
    type_name: str,
    tenant: dict[str, int],
    db: asyncpg.Connection,
    settings: Settings,
    tmp_path: Path,
) -> None:
    result = await export(settings, all_fields_query(type_name), tenant["a"], file_url(tmp_path))
    want = _nan_to_none(await expected(db, type_name, tenant["a"]))
    assert want, "the fixture seeds every type"
    assert result.location is not None
    got = read_lines(result.location)
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        assert list(g) == list(w), i  # key order = selection order
        assert g == w, i
    raw = obstore.get(result.location.store, result.location.key).bytes().to_bytes()
    assert result.object_count == result.root_object_count == len(want)
    assert result.file_size == len(raw)
    assert result.sha256 == hashlib.sha256(raw).hexdigest()


async def test_edge_cases_round_trip(
    tenant: dict[str, int], settings: Settings, tmp_path: Path
) -> None:
    result = await export(settings, "{ streamsConnection { nodes { name description createdAt } } }",
                          tenant["a"], file_url(tmp_path))  # fmt: skip
    assert result.location is not None
    first = read_lines(result.location)[0]  # created in 1969: first in keyset order
    assert first == {"name": ODD, "description": LONG, "createdAt": "1969-07-20T20:17:40.500000Z"}


async def test_nested_children_follow_parents_in_order(
    tenant: dict[str, int], db: asyncpg.Connection, settings: Settings, tmp_path: Path
) -> None:
    query = """{ streamsConnection { edges { node { id name
                   viewerSessionsConnection { edges { node { id streamId connectedAt } } }
                   clipsConnection { nodes { id streamId } } } } } }"""
    result = await export(settings, query, tenant["a"], file_url(tmp_path))
    assert result.location is not None
    lines = read_lines(result.location)
    streams = await expected(db, "Stream", tenant["a"])
    sessions = await expected(db, "ViewerSession", tenant["a"])
    clips = await expected(db, "Clip", tenant["a"])
    parent_rank = {s["id"]: i for i, s in enumerate(streams)}

    roots = [x for x in lines if "__parentId" not in x]
    assert roots == [{"id": s["id"], "name": s["name"]} for s in streams]
    assert lines[: len(roots)] == roots  # every parent comes before any child
    children = lines[len(roots) :]
    got_sessions, got_clips = children[: len(sessions)], children[len(sessions) :]

    def grouped(rows: list[dict[str, Any]], time_key: str | None) -> list[dict[str, Any]]:
        # by parent in parent order; inside a parent, the child's own keyset order (stable sort
        # of the reference, which is already in that order)
        return sorted(rows, key=lambda r: parent_rank[r["streamId"]])

    want_sessions = [
        {"id": s["id"], "streamId": s["streamId"], "connectedAt": s["connectedAt"],
         "__parentId": s["streamId"]} for s in grouped(sessions, "connectedAt")
    ]  # fmt: skip
    want_clips = [
        {"id": c["id"], "streamId": c["streamId"], "__parentId": c["streamId"]}
        for c in grouped(clips, None)
    ]
    assert got_sessions == want_sessions
    assert got_clips == want_clips
    assert result.object_count == len(lines)
    assert result.root_object_count == len(streams)


async def test_filters(tenant: dict[str, int], db: asyncpg.Connection, settings: Settings,
                       tmp_path: Path) -> None:  # fmt: skip
    a = tenant["a"]
    stream_pk = await db.fetchval(
        "SELECT stream_id FROM viewer_sessions WHERE tenant_id = $1 GROUP BY 1 ORDER BY count(*) DESC LIMIT 1",
        a,
    )
    start, end = datetime(2020, 1, 1, tzinfo=UTC), datetime.now(UTC)
    mid = await db.fetchval(
        "SELECT connected_at FROM viewer_sessions WHERE tenant_id = $1 ORDER BY connected_at OFFSET 1000 LIMIT 1",
        a,
    )
    cases = [
        ("ViewerSession", f'streamId: "{gid("Stream", stream_pk)}"', "stream_id = $2", (stream_pk,)),
        ("ViewerSession", f'timeRange: {{start: "{mid.isoformat()}", end: "{end.isoformat()}"}}',
         "connected_at >= $2 AND connected_at < $3", (mid, end)),
        ("Clip", "status: FAILED", "status = $2", ("FAILED",)),
        ("AuditEvent", 'eventType: "login.failed"', "event_type = $2", ("login.failed",)),
        ("UsageRecord", f'timeRange: {{start: "{start.isoformat()}", end: "{mid.isoformat()}"}}',
         "period_start >= $2 AND period_start < $3", (start, mid)),
        ("Stream", 'search: "#1"', "name ILIKE '%#1%'", ()),
        ("Stream", 'search: "100%_"', "false", ()),  # % and _ are literal characters
    ]  # fmt: skip
    for type_name, args, where, params in cases:
        result = await export(settings, all_fields_query(type_name, args), a, file_url(tmp_path))
        want = _nan_to_none(await expected(db, type_name, a, where, *params))
        got = read_lines(result.location) if result.location else []
        assert got == want, (type_name, args)
        assert result.object_count == len(want)


async def test_empty_result_writes_no_file(tenant: dict[str, int], settings: Settings,
                                           tmp_path: Path) -> None:  # fmt: skip
    url = file_url(tmp_path)
    query = all_fields_query(
        "ViewerSession", 'timeRange: {start: "1990-01-01T00:00:00Z", end: "1990-01-02T00:00:00Z"}'
    )
    result = await export(settings, query, tenant["a"], url)
    assert (result.location, result.sha256, result.object_count, result.file_size) == (
        None,
        None,
        0,
        0,
    )
    assert not Path(url.removeprefix("file://")).exists()


async def test_tenants_never_see_each_other(tenant: dict[str, int], db: asyncpg.Connection,
                                            settings: Settings, tmp_path: Path) -> None:  # fmt: skip
    for type_name in REFERENCE:
        result = await export(
            settings, all_fields_query(type_name), tenant["b"], file_url(tmp_path)
        )
        got = read_lines(result.location) if result.location else []
        assert got == _nan_to_none(await expected(db, type_name, tenant["b"])), type_name


async def test_s3_store_gives_the_same_bytes(tenant: dict[str, int], settings: Settings,
                                             tmp_path: Path) -> None:  # fmt: skip
    query = all_fields_query("ViewerSession")
    local = await export(settings, query, tenant["a"], file_url(tmp_path))
    s3 = await export(
        settings, query, tenant["a"], f"s3://{settings.s3_bucket}/engine/{uuid.uuid4().hex}.jsonl"
    )
    assert local.location is not None and s3.location is not None
    local_bytes = obstore.get(local.location.store, local.location.key).bytes().to_bytes()
    s3_bytes = obstore.get(s3.location.store, s3.location.key).bytes().to_bytes()
    assert s3_bytes == local_bytes
    assert s3.sha256 == local.sha256 == hashlib.sha256(s3_bytes).hexdigest()


@pytest.mark.parametrize(
    "args",
    [
        'search: "\'; DROP TABLE streams; --"',
        'search: "\\\\\'; DROP TABLE streams; --"',
        "search: \"x' OR '1'='1\"",
        'search: "$$; DELETE FROM streams; $$"',
    ],
)
async def test_sql_injection_through_filters_is_inert(
    args: str, tenant: dict[str, int], db: asyncpg.Connection, settings: Settings, tmp_path: Path
) -> None:
    before = await db.fetchval("SELECT count(*) FROM streams")
    result = await export(settings, f"{{ streamsConnection({args}) {{ nodes {{ id }} }} }}",
                          tenant["a"], file_url(tmp_path))  # fmt: skip
    assert result.object_count == 0
    assert await db.fetchval("SELECT count(*) FROM streams") == before


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ('{ viewerSessionsConnection(streamId: "1 OR 1=1") { nodes { id } } }', "streamId"),
        ('{ auditEventsConnection(eventType: "a\\u0000b") { nodes { id } } }', "NUL"),
        (
            '{ viewerSessionsConnection(timeRange: {start: "2020-01-01\'; --", end: "x"}) { nodes { id } } }',
            "timeRange",
        ),
        ('{ clipsConnection(status: "READY\' OR 1=1") { nodes { id } } }', "status"),
        ('{ viewerSessionsConnection { nodes { id, "t.id; DROP" } } }', "syntax"),
    ],
)
def test_unplannable_input_is_rejected_naming_the_field(query: str, fragment: str) -> None:
    with pytest.raises(BulkQueryError, match=fragment):
        parse_bulk_query(query)


async def test_snapshot_is_repeatable_read(settings: Settings, tenant: dict[str, int]) -> None:
    """Every statement of one Snapshot reads the same snapshot: a row committed by another
    session after the snapshot was taken is invisible to it, and its time is the first one."""
    from bulkops.fetch import Snapshot

    count_sql = (
        f"SELECT count(*) AS n, now() AS t FROM audit_events WHERE tenant_id = {tenant['b']}"
    )

    def count(snap: Snapshot) -> tuple[int, datetime]:
        (row,) = [r for b in snap.batches(count_sql) for r in b.to_pylist()]
        return row["n"], row["t"]

    conn = await asyncpg.connect(settings.database_url)
    row_id = None
    try:
        with Snapshot(settings.database_url) as snap:
            before, t0 = await asyncio.to_thread(count, snap)
            row_id = await conn.fetchval(
                """INSERT INTO audit_events (tenant_id, event_type, actor_type, actor_id,
                                             resource_type, resource_id, created_at)
                   VALUES ($1, 'late', 'user', 'u', 'r', 'r1', now()) RETURNING id""",
                tenant["b"],
            )
            after, t1 = await asyncio.to_thread(count, snap)
        assert (after, t1) == (before, t0) and t0 == snap.taken_at
        with Snapshot(settings.database_url) as fresh:
            assert (await asyncio.to_thread(count, fresh))[0] == before + 1
    finally:
        if row_id is not None:
            await conn.execute("DELETE FROM audit_events WHERE id = $1", row_id)
        await conn.close()
