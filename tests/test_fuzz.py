"""Fuzzing the Bridge: generated GraphQL documents and random bytes to bulkOperationRunQuery,
and malformed HTTP bodies. There must be no 500, and every error must carry a code."""

from __future__ import annotations

import json
import string
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import BridgeProcess

FIELDS = ["id", "name", "bogus", "__typename", "connectedAt", "nodes", "edges", "node", "pageInfo",
          "viewerSessionsConnection", "streamsConnection", "clipsConnection", "__schema", "cursor"]  # fmt: skip
ARGS = ['(page: {first: 3})', '(streamId: "x")', "(status: READY)", '(search: "\\u0000")',
        '(timeRange: {start: "2026-01-01T00:00:00Z", end: "2025-01-01T00:00:00Z"})', "($v: Int)", ""]  # fmt: skip


@st.composite
def documents(draw: Any, depth: int = 0) -> str:
    names = draw(st.lists(st.sampled_from(FIELDS), min_size=1, max_size=3))
    parts = []
    for n in names:
        arg = draw(st.sampled_from(ARGS))
        sub = draw(documents(depth + 1)) if depth < 4 and draw(st.booleans()) else ""
        parts.append(f"{n}{arg} {sub}")
    body = "{ " + " ".join(parts) + " }"
    return (
        draw(st.sampled_from(["", "query ", "mutation ", "subscription ", "query Q($v: Int) "]))
        + body
    )


ODD_TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=300) | st.sampled_from(
    ["\x00", "\ud800".encode("utf-8", "surrogatepass").decode("utf-8", "replace"), "{" * 5000,
     "{ streamsConnection(search: \"" + "é" * 20_000 + "\") { nodes { id } } }", "#" * 30_000,
     "{ a" + " { a" * 300 + " }" * 301, "query { " + "x: streamsConnection { nodes { id } } " * 50 + "}"]
)  # fmt: skip


def _check(resp: httpx.Response) -> None:
    assert resp.status_code < 500, resp.text[:500]
    body = resp.json()
    for err in body.get("errors") or []:
        assert err.get("extensions", {}).get("code"), err
    payload = (body.get("data") or {}).get("bulkOperationRunQuery")
    if payload:
        for err in payload["userErrors"]:
            assert err["code"] in ("INVALID", "LIMIT_REACHED"), err
        if payload["bulkOperation"] is None:
            assert payload["userErrors"]


RUN = "mutation($q: String!) { bulkOperationRunQuery(query: $q) { bulkOperation { id } userErrors { field message code } } }"


@pytest.fixture(scope="module")
def client(bridge: BridgeProcess, request: pytest.FixtureRequest) -> Any:
    import asyncio

    from bulkops import config
    from bulkops.tenants import create_tenant

    async def make() -> str:
        import asyncpg

        conn = await asyncpg.connect(config.load().database_url)
        try:
            tid, token = await create_tenant(conn, f"fuzz-{id(request)}")
            # high limits; 0 concurrent operations: valid documents are admitted by nothing
            await conn.execute("UPDATE tenants SET rate_limit_per_minute = 10000000, rate_limit_burst = 10000000,"
                               " max_concurrent_bulk_operations = 0 WHERE id = $1", tid)  # fmt: skip
            return token
        finally:
            await conn.close()

    token = asyncio.run(make())
    with httpx.Client(
        base_url=bridge.url, timeout=30, headers={"Authorization": f"Bearer {token}"}
    ) as c:
        yield c


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(doc=documents() | ODD_TEXT)
def test_bulk_query_fuzz(client: httpx.Client, doc: str) -> None:
    _check(client.post("/graphql", json={"query": RUN, "variables": {"q": doc}}))


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(doc=documents() | ODD_TEXT)
def test_sync_api_fuzz(client: httpx.Client, doc: str) -> None:
    _check(client.post("/graphql", json={"query": doc}))


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=st.binary(max_size=2000) | st.builds(lambda v: json.dumps(v).encode(), st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(["query", "variables", "operationName", "x"]), inner, max_size=4),
    max_leaves=20)))  # fmt: skip
def test_http_body_fuzz(client: httpx.Client, body: bytes) -> None:
    resp = client.post("/graphql", content=body, headers={"Content-Type": "application/json"})
    assert resp.status_code < 500, resp.text[:300]
    assert all(e["extensions"]["code"] for e in resp.json().get("errors") or [])


def test_deeply_nested_json_and_huge_literals(client: httpx.Client) -> None:
    deep = b'{"query": "{ x }", "variables": ' + b'{"a": ' * 5000 + b"1" + b"}" * 5000 + b"}"
    resp = client.post("/graphql", content=deep, headers={"Content-Type": "application/json"})
    assert resp.status_code < 500 and resp.json()["errors"][0]["extensions"]["code"]
    huge_int = "{ streamsConnection(page: {first: " + "9" * 5000 + "}) { nodes { id } } }"
    _check(client.post("/graphql", json={"query": huge_int}))
    odd = "".join(chr(c) for c in (0x202E, 0xFEFF, 0x1F600, 0x0301)) + string.punctuation
    _check(client.post("/graphql", json={"query": RUN, "variables": {"q": odd}}))
