"""The Bridge over real HTTP: paging, filters, auth and scopes, isolation, limits, bad input."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from bulkops.config import Settings
from bulkops.seed import SeedPlan
from bulkops.tenants import create_tenant, issue_token, revoke_token
from tests.conftest import BridgeProcess, seeded_tenants
from tests.reference import REFERENCE, ROOT_FIELDS, expected, gid

SEED = SeedPlan(streams=5, sessions=400, clips=40, audit_events=120, usage_records=30)


@pytest.fixture(scope="module")
async def tenants(settings: Settings) -> AsyncIterator[dict[str, Any]]:
    async with seeded_tenants(settings, "bridge", {"a": SEED, "b": SEED}) as out:
        yield out


async def post(bridge: BridgeProcess, token: str | None, query: str,
               variables: dict[str, Any] | None = None, **kw: Any) -> httpx.Response:  # fmt: skip
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    headers.update(kw.pop("headers", {}))
    async with httpx.AsyncClient(base_url=bridge.url, timeout=30) as client:
        return await client.post("/graphql", json={"query": query, "variables": variables or {}},
                                 headers=headers, **kw)  # fmt: skip


async def data(bridge: BridgeProcess, token: str, query: str, **variables: Any) -> dict[str, Any]:
    resp = await post(bridge, token, query, variables)
    body = resp.json()
    assert resp.status_code == 200 and "errors" not in body, body
    return body["data"]


def codes(resp: httpx.Response) -> list[str]:
    return [e["extensions"]["code"] for e in resp.json().get("errors", [])]


PAGE_Q = """query($first: Int, $after: String, $last: Int, $before: String) {
  viewerSessionsConnection(page: {first: $first, after: $after, last: $last, before: $before}) {
    totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { id } } } }"""


async def _page_all(bridge: BridgeProcess, token: str, forward: bool, size: int,
                    between_pages: Any = None) -> list[str]:  # fmt: skip
    seen: list[str] = []
    cursor = None
    while True:
        args = (
            {"first": size, "after": cursor}
            if forward
            else {"last": size, "before": cursor, "first": None}
        )
        conn = (await data(bridge, token, PAGE_Q, **args))["viewerSessionsConnection"]
        ids = [e["node"]["id"] for e in conn["edges"]]
        seen.extend(ids if forward else reversed(ids))
        info = conn["pageInfo"]
        if between_pages is not None:
            await between_pages()
        if not (info["hasNextPage"] if forward else info["hasPreviousPage"]):
            return seen if forward else list(reversed(seen))
        cursor = info["endCursor"] if forward else info["startCursor"]


async def test_exhaustive_paging_forwards_and_backwards(bridge: BridgeProcess, tenants: dict[str, Any],
                                                       db: asyncpg.Connection) -> None:  # fmt: skip
    a = tenants["a"]
    want = [r["id"] for r in await expected(db, "ViewerSession", a["id"])]
    forwards = await _page_all(bridge, a["token"], True, 37)
    backwards = await _page_all(bridge, a["token"], False, 41)
    assert forwards == want
    assert backwards == want


async def test_paging_is_stable_while_rows_are_inserted(bridge: BridgeProcess, tenants: dict[str, Any],
                                                       db: asyncpg.Connection) -> None:  # fmt: skip
    a = tenants["a"]
    before = [r["id"] for r in await expected(db, "ViewerSession", a["id"])]
    stream = await db.fetchval("SELECT id FROM streams WHERE tenant_id = $1 LIMIT 1", a["id"])
    inserted: list[int] = []

    async def insert() -> None:  # one row before everything, one after everything
        for when in ("1990-01-01", "2100-01-01"):
            inserted.append(await db.fetchval(
                """INSERT INTO viewer_sessions (tenant_id, stream_id, node_id, connected_at, connector)
                   VALUES ($1, $2, 'edge-x', $3::date, 'HLS') RETURNING id""", a["id"], stream,
                datetime.fromisoformat(when)))  # fmt: skip

    try:
        got = await _page_all(bridge, a["token"], True, 50, between_pages=insert)
        assert len(got) == len(set(got)), "no duplicates"
        assert [x for x in got if x in set(before)] == before, "no original row is missing"
        assert gid("ViewerSession", inserted[1]) in got  # rows appended ahead of the cursor appear
    finally:
        await db.execute("DELETE FROM viewer_sessions WHERE id = ANY($1::bigint[])", inserted)


@pytest.mark.parametrize("type_name", sorted(REFERENCE))
async def test_every_root_connection_returns_the_reference(
    type_name: str, bridge: BridgeProcess, tenants: dict[str, Any], db: asyncpg.Connection
) -> None:
    a = tenants["a"]
    fields = " ".join(REFERENCE[type_name][2])
    q = f"{{ {ROOT_FIELDS[type_name]}(page: {{first: 500}}) {{ totalCount nodes {{ {fields} }} }} }}"
    conn = (await data(bridge, a["token"], q))[ROOT_FIELDS[type_name]]
    want = await expected(db, type_name, a["id"])
    want = [
        {k: (None if isinstance(v, float) and v != v else v) for k, v in r.items()} for r in want
    ]
    assert conn["nodes"] == want[:500]
    assert conn["totalCount"] == len(want)


async def test_every_filter(
    bridge: BridgeProcess, tenants: dict[str, Any], db: asyncpg.Connection
) -> None:
    a = tenants["a"]
    sid = await db.fetchval(
        "SELECT stream_id FROM viewer_sessions WHERE tenant_id = $1 LIMIT 1", a["id"]
    )
    mid = await db.fetchval(
        "SELECT connected_at FROM viewer_sessions WHERE tenant_id = $1 ORDER BY connected_at OFFSET 100 LIMIT 1",
        a["id"],
    )
    end = datetime.now(UTC) + timedelta(days=1)
    tr = f'{{start: "{mid.isoformat()}", end: "{end.isoformat()}"}}'
    cases = [
        ("ViewerSession", f'streamId: "{gid("Stream", sid)}"', "stream_id = $2", (sid,)),
        (
            "ViewerSession",
            f"timeRange: {tr}",
            "connected_at >= $2 AND connected_at < $3",
            (mid, end),
        ),
        ("Clip", f'streamId: "{gid("Stream", sid)}"', "stream_id = $2", (sid,)),
        ("Clip", "status: READY", "status = $2", ("READY",)),
        ("UsageRecord", f"timeRange: {tr}", "period_start >= $2 AND period_start < $3", (mid, end)),
        ("AuditEvent", f"timeRange: {tr}", "created_at >= $2 AND created_at < $3", (mid, end)),
        ("AuditEvent", 'eventType: "login.failed"', "event_type = $2", ("login.failed",)),
        ("StreamAnalyticsDaily", f'streamId: "{gid("Stream", sid)}"', "stream_id = $2", (sid,)),
        (
            "StreamAnalyticsDaily",
            f"timeRange: {tr}",
            "day >= $2::timestamptz AND day < $3::timestamptz",
            (mid, end),
        ),
        ("Stream", 'search: "#2"', "name ILIKE '%#2%'", ()),
    ]
    for type_name, args, where, params in cases:
        q = f"{{ {ROOT_FIELDS[type_name]}({args}, page: {{first: 500}}) {{ totalCount nodes {{ id }} }} }}"
        conn = (await data(bridge, a["token"], q))[ROOT_FIELDS[type_name]]
        want = [r["id"] for r in await expected(db, type_name, a["id"], where, *params)]
        assert [n["id"] for n in conn["nodes"]] == want, (type_name, args)
        assert conn["totalCount"] == len(want)


async def test_nested_connections_are_batched(bridge: BridgeProcess, tenants: dict[str, Any],
                                              db: asyncpg.Connection) -> None:  # fmt: skip
    a = tenants["a"]
    await db.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    await db.execute("SELECT pg_stat_statements_reset()")
    q = """{ streamsConnection(page: {first: 5}) { nodes { id
              viewerSessionsConnection(page: {first: 3}) { totalCount nodes { id streamId } }
              clipsConnection(page: {first: 2}) { nodes { id } } } } }"""
    streams = (await data(bridge, a["token"], q))["streamsConnection"]["nodes"]
    assert len(streams) == 5
    for s in streams:
        sessions = s["viewerSessionsConnection"]
        assert 0 < len(sessions["nodes"]) <= 3 and sessions["totalCount"] >= len(sessions["nodes"])
        assert {n["streamId"] for n in sessions["nodes"]} == {s["id"]}
    rows = await db.fetch(
        """SELECT query, calls FROM pg_stat_statements
            WHERE query ILIKE '%FROM viewer_sessions%' OR query ILIKE '%FROM clips%'"""
    )
    calls = {
        ("viewer_sessions" if "viewer_sessions" in r["query"] else "clips")
        + (":count" if "count(*)" in r["query"] else ""): r["calls"]
        for r in rows
    }
    assert calls == {"viewer_sessions": 1, "viewer_sessions:count": 1, "clips": 1}, rows


async def test_auth_matrix(
    bridge: BridgeProcess, tenants: dict[str, Any], db: asyncpg.Connection
) -> None:
    a = tenants["a"]
    q = "{ streamsConnection { nodes { id } } }"
    expired = await issue_token(db, a["id"], expires_in=timedelta(seconds=-1))
    revoked = await issue_token(db, a["id"])
    await revoke_token(db, revoked)
    for token in (None, "", "garbage", "bko_" + "A" * 40, expired, revoked, a["token"] + "x"):
        resp = await post(bridge, token, q)
        assert resp.status_code == 401, token
        assert codes(resp) == ["UNAUTHENTICATED"]
    resp = await post(bridge, None, q, headers={"Authorization": f"Basic {a['token']}"})
    assert codes(resp) == ["UNAUTHENTICATED"]
    streams_only = await issue_token(db, a["id"], scopes=("streams:read",))
    ok = await post(bridge, streams_only, q)
    assert ok.status_code == 200 and "errors" not in ok.json()
    denied = await post(bridge, streams_only, "{ auditEventsConnection { nodes { id } } }")
    err = denied.json()["errors"][0]
    assert err["extensions"] == {
        "code": "FORBIDDEN",
        "field": "auditEventsConnection",
        "scope": "audit:read",
    }
    nested = await post(
        bridge,
        streams_only,
        "{ streamsConnection { nodes { viewerSessionsConnection { nodes { id } } } } }",
    )
    assert "FORBIDDEN" in codes(nested) and "analytics:read" in nested.text


async def test_tenants_are_isolated(
    bridge: BridgeProcess, tenants: dict[str, Any], db: asyncpg.Connection
) -> None:
    a, b = tenants["a"], tenants["b"]
    for type_name, root in ROOT_FIELDS.items():
        a_ids = {r["id"] for r in await expected(db, type_name, a["id"])}
        got = (
            await data(
                bridge, b["token"], f"{{ {root}(page: {{first: 500}}) {{ nodes {{ id }} }} }}"
            )
        )[root]
        b_ids = {n["id"] for n in got["nodes"]}
        assert b_ids and not (a_ids & b_ids), type_name
        one = next(iter(a_ids))
        node_q = "query($id: ID!) { node(id: $id) { id } }"
        assert (await data(bridge, b["token"], node_q, id=one))["node"] is None
        assert (await data(bridge, a["token"], node_q, id=one))["node"] == {"id": one}
        assert (await data(bridge, a["token"], node_q, id=gid(type_name, 2**60)))["node"] is None
    # filters that name another tenant's stream find nothing rather than leaking
    a_stream = await db.fetchval("SELECT id FROM streams WHERE tenant_id = $1 LIMIT 1", a["id"])
    q = f'{{ viewerSessionsConnection(streamId: "{gid("Stream", a_stream)}") {{ totalCount nodes {{ id }} }} }}'
    assert (await data(bridge, b["token"], q))["viewerSessionsConnection"] == {
        "totalCount": 0,
        "nodes": [],
    }


async def test_rate_limit_holds_across_processes(bridge: BridgeProcess, second_bridge: BridgeProcess,
                                                 db: asyncpg.Connection) -> None:  # fmt: skip
    tid, token = await create_tenant(db, f"rl-{uuid.uuid4().hex[:8]}")
    try:
        await db.execute(
            "UPDATE tenants SET rate_limit_per_minute = 1, rate_limit_burst = 5 WHERE id = $1", tid
        )
        q = "{ streamsConnection(page: {first: 1}) { nodes { id } } }"
        results = await asyncio.gather(
            *(post(bridge if i % 2 else second_bridge, token, q) for i in range(16))
        )
        statuses = [r.status_code for r in results]
        assert statuses.count(200) in (5, 6), statuses  # the burst, plus at most one refill (1/min)
        assert statuses.count(429) == 16 - statuses.count(200)
        limited = next(r for r in results if r.status_code == 429)
        assert codes(limited) == ["RATE_LIMITED"]
        for h in ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "Retry-After"):
            assert h in limited.headers, h
        assert limited.headers["X-RateLimit-Limit"] == "1"
        assert int(limited.headers["Retry-After"]) >= 1
        ok = next(r for r in results if r.status_code == 200)
        assert "X-RateLimit-Remaining" in ok.headers
    finally:
        await db.execute("DELETE FROM tenants WHERE id = $1", tid)


@pytest.mark.parametrize(
    ("query", "variables", "code"),
    [
        ("{ streamsConnection { nodes { id } ", {}, "GRAPHQL_PARSE_FAILED"),
        ("{ streamsConnection { nodes { nope } } }", {}, "GRAPHQL_VALIDATION_FAILED"),
        (
            "query($n: Int) { streamsConnection(page: {first: $n}) { nodes { id } } }",
            {"n": "ten"},
            "BAD_USER_INPUT",
        ),
        ('{ streamsConnection(page: {after: "tampered"}) { nodes { id } } }', {}, "BAD_USER_INPUT"),
        ("{ streamsConnection(page: {first: 100000}) { nodes { id } } }", {}, "QUERY_TOO_COMPLEX"),
        ("{ streamsConnection(page: {first: -1}) { nodes { id } } }", {}, "BAD_USER_INPUT"),
        ('{ node(id: "not-an-id") { id } }', {}, "BAD_USER_INPUT"),
        (
            '{ viewerSessionsConnection(streamId: "Zm9vOjE=") { nodes { id } } }',
            {},
            "BAD_USER_INPUT",
        ),
        (
            '{ viewerSessionsConnection(timeRange: {start: "2026-02-01T00:00:00Z", end: "2026-01-01T00:00:00Z"}) { nodes { id } } }',
            {},
            "BAD_USER_INPUT",
        ),
        (
            '{ viewerSessionsConnection(timeRange: {start: "yesterday", end: "2026-01-01T00:00:00Z"}) { nodes { id } } }',
            {},
            "GRAPHQL_VALIDATION_FAILED",
        ),
        (
            "{ a: streamsConnection { nodes { id } } b: streamsConnection { nodes { id "
            + "s { " * 10
            + "} " * 10
            + "} } }",
            {},
            "QUERY_TOO_COMPLEX",
        ),
    ],
)
async def test_bad_graphql_input_gets_a_coded_error(query: str, variables: dict[str, Any], code: str,
                                                   bridge: BridgeProcess, tenants: dict[str, Any]) -> None:  # fmt: skip
    resp = await post(bridge, tenants["a"]["token"], query, variables)
    assert resp.status_code < 500
    assert code in codes(resp), resp.text
    assert "Traceback" not in resp.text


async def test_tampered_cursor_is_refused(bridge: BridgeProcess, tenants: dict[str, Any]) -> None:
    a = tenants["a"]
    conn = (await data(bridge, a["token"], PAGE_Q, first=2))["viewerSessionsConnection"]
    cursor = conn["pageInfo"]["endCursor"]
    payload, mac = cursor.split(".")
    forged = payload[:-2] + ("A" if payload[-2] != "A" else "B") + payload[-1] + "." + mac
    resp = await post(bridge, a["token"], PAGE_Q, {"first": 2, "after": forged})
    assert codes(resp) == ["BAD_USER_INPUT"] and "page.after" in resp.text
    other = await post(
        bridge,
        a["token"],
        "query($c: String) { streamsConnection(page: {after: $c}) { nodes { id } } }",
        {"c": cursor},
    )
    assert codes(other) == ["BAD_USER_INPUT"]


async def test_http_level_bad_input(
    bridge: BridgeProcess, tenants: dict[str, Any], settings: Settings
) -> None:
    token = tenants["a"]["token"]
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    async with httpx.AsyncClient(base_url=bridge.url, timeout=30) as client:
        cases = [
            (b"{not json", 400, "BAD_REQUEST"),
            (b"[1, 2]", 400, "BAD_REQUEST"),
            (json.dumps({"query": 5}).encode(), 400, "BAD_REQUEST"),
            (json.dumps({"query": "{ x }", "variables": [1]}).encode(), 400, "BAD_REQUEST"),
            (b"\xff\xfe\x00garbage", 400, "BAD_REQUEST"),
            (
                b'{"query": "' + b"a" * (settings.max_body_bytes + 10) + b'"}',
                413,
                "PAYLOAD_TOO_LARGE",
            ),
        ]
        for body, status, code in cases:
            resp = await client.post("/graphql", content=body, headers=headers)
            assert resp.status_code == status, (body[:30], resp.text[:200])
            assert [e["extensions"]["code"] for e in resp.json()["errors"]] == [code]
        missing = await client.get("/nope")
        assert (
            missing.status_code == 404
            and missing.json()["errors"][0]["extensions"]["code"] == "NOT_FOUND"
        )
        ide = await client.get("/graphql", headers={"Accept": "text/html"})
        assert ide.status_code == 200 and "graphiql" in ide.text.lower()
        health = await client.get("/healthz")
        assert health.json() == {"status": "ok", "checks": {"postgres": "ok", "redis": "ok"}}
        metrics = await client.get("/metrics")
        assert "bulkops_http_requests_total" in metrics.text
