"""Bulk operations end to end: Bridge -> outbox -> Kafka -> dispatcher -> arq -> worker ->
object store -> signed URL, on the real services."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import obstore
import pytest

from bulkops import bulkquery, operations
from bulkops.config import Settings
from bulkops.links import result_url
from bulkops.seed import SeedPlan, seed
from bulkops.signing import secret_key, sign
from bulkops.storage import locate
from bulkops.tenants import create_tenant, issue_token
from bulkops.worker import run_bulk_operation
from tests.conftest import BridgeProcess, bulkops_cli, seeded_tenants
from tests.reference import REFERENCE, ROOT_FIELDS, all_fields_query, expected

OP = """id status errorCode errorMessage objectCount rootObjectCount expectedObjectCount
        percentComplete fileSize sha256 url partialDataUrl createdAt completedAt snapshotAt type query"""
RUN = f"mutation($q: String!) {{ bulkOperationRunQuery(query: $q) {{ bulkOperation {{ {OP} }} userErrors {{ field message code }} }} }}"
POLL = f"query($id: ID!) {{ bulkOperation(id: $id) {{ {OP} }} }}"
CANCEL = f"mutation($id: ID!) {{ bulkOperationCancel(id: $id) {{ bulkOperation {{ {OP} }} userErrors {{ field message code }} }} }}"


class Api:
    def __init__(self, bridge: BridgeProcess, token: str) -> None:
        self.bridge, self.token = bridge, token

    async def raw(self, query: str, **variables: Any) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.bridge.url, timeout=60) as c:
            return await c.post("/graphql", json={"query": query, "variables": variables},
                                headers={"Authorization": f"Bearer {self.token}"})  # fmt: skip

    async def __call__(self, query: str, **variables: Any) -> dict[str, Any]:
        resp = await self.raw(query, **variables)
        body = resp.json()
        assert resp.status_code == 200 and not body.get("errors"), body
        return body["data"]

    async def run(self, query: str) -> dict[str, Any]:
        return (await self(RUN, q=query))["bulkOperationRunQuery"]

    async def poll(self, op_id: str) -> dict[str, Any] | None:
        return (await self(POLL, id=op_id))["bulkOperation"]

    async def wait(
        self, op_id: str, until: set[str] | None = None, timeout_s: float = 60
    ) -> dict[str, Any]:
        until = until or {"COMPLETED", "FAILED", "CANCELED", "EXPIRED"}
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            op = await self.poll(op_id)
            assert op is not None
            if op["status"] in until:
                return op
            await asyncio.sleep(0.1)
        raise AssertionError(f"operation {op_id} not in {until} after {timeout_s}s: {op}")


async def download(url: str) -> bytes:
    async with httpx.AsyncClient(timeout=60) as c:
        resp = await c.get(url)
        assert resp.status_code == 200, resp.text[:300]
        return resp.content


def lines(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(x) for x in data.splitlines()]


@pytest.fixture(scope="module")
async def tenants(settings: Settings) -> AsyncIterator[dict[str, Any]]:
    plans = {
        "a": SeedPlan(streams=4, sessions=1_200, clips=30, audit_events=80, usage_records=20),
        "b": SeedPlan(streams=2, sessions=50, clips=3, audit_events=5, usage_records=5),
        "big": SeedPlan(streams=20, sessions=200_000, clips=0, audit_events=0, usage_records=0),
    }
    async with seeded_tenants(settings, "bulk", plans) as out:
        yield out


def _nan(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {k: (None if isinstance(v, float) and v != v else v) for k, v in r.items()} for r in rows
    ]


async def test_full_lifecycle(
    pipeline: BridgeProcess, tenants: dict[str, Any], db: asyncpg.Connection
) -> None:
    a = tenants["a"]
    api = Api(pipeline, a["token"])
    payload = await api.run(all_fields_query("ViewerSession"))
    assert payload["userErrors"] == []
    created = payload["bulkOperation"]
    assert created["status"] == "CREATED" and created["type"] == "QUERY" and created["url"] is None
    op = await api.wait(created["id"])
    assert op["status"] == "COMPLETED", op
    data = await download(op["url"])
    want = _nan(await expected(db, "ViewerSession", a["id"]))
    assert lines(data) == want
    assert op["objectCount"] == op["rootObjectCount"] == op["expectedObjectCount"] == len(want)
    assert op["fileSize"] == len(data) and op["sha256"] == hashlib.sha256(data).hexdigest()
    assert op["percentComplete"] == 100.0 and op["completedAt"] and op["snapshotAt"]
    assert op["partialDataUrl"] is None and op["errorCode"] is None
    current = (await api("{ currentBulkOperation { id status } }"))["currentBulkOperation"]
    assert current == {"id": op["id"], "status": "COMPLETED"}
    node = await api(
        "query($id: ID!) { node(id: $id) { ... on BulkOperation { id status } } }", id=op["id"]
    )
    assert node["node"] == {"id": op["id"], "status": "COMPLETED"}
    # Range requests resume a download
    async with httpx.AsyncClient() as c:
        part = await c.get(op["url"], headers={"Range": "bytes=10-99"})
        rest = await c.get(op["url"], headers={"Range": "bytes=100-"})
        head = await c.head(op["url"])
        whole = await c.get(op["url"])
    assert part.status_code == 206 and part.content == data[10:100]
    assert part.headers["Content-Range"] == f"bytes 10-99/{len(data)}"
    assert rest.status_code == 206 and rest.content == data[100:]
    # the size is announced up front (no chunked framing), on GET and HEAD alike
    assert head.status_code == 200 and head.headers["Content-Length"] == str(len(data))
    assert whole.headers["Content-Length"] == str(len(data)) and whole.content == data
    assert "chunked" not in whole.headers.get("Transfer-Encoding", "")


async def test_nested_query_lifecycle(pipeline: BridgeProcess, tenants: dict[str, Any]) -> None:
    api = Api(pipeline, tenants["a"]["token"])
    q = "{ streamsConnection { edges { node { id name viewerSessionsConnection { edges { node { id } } } } } } }"
    op = await api.wait((await api.run(q))["bulkOperation"]["id"])
    assert op["status"] == "COMPLETED"
    got = lines(await download(op["url"]))
    roots = [x for x in got if "__parentId" not in x]
    seen: set[str] = set()
    for line in got:  # every child after its parent
        if "__parentId" in line:
            assert line["__parentId"] in seen
        else:
            seen.add(line["id"])
    assert op["rootObjectCount"] == len(roots) == 4 and op["objectCount"] == len(got) == 4 + 1_200
    counts = (await api("query($id: ID!) { bulkOperation(id: $id) { connections { path type objectCount } } }",
                        id=op["id"]))["bulkOperation"]["connections"]  # fmt: skip
    assert counts == [
        {"path": "streamsConnection", "type": "Stream", "objectCount": 4},
        {"path": "streamsConnection.viewerSessionsConnection", "type": "ViewerSession",
         "objectCount": 1_200},
    ]  # fmt: skip


@pytest.mark.parametrize("type_name", sorted(REFERENCE))
async def test_bulk_output_equals_sync_paging(type_name: str, pipeline: BridgeProcess,
                                              tenants: dict[str, Any]) -> None:  # fmt: skip
    api = Api(pipeline, tenants["a"]["token"])
    fields = " ".join(REFERENCE[type_name][2])
    root = ROOT_FIELDS[type_name]
    synced: list[dict[str, Any]] = []
    after = None
    while True:
        page = (await api(f"query($a: String) {{ {root}(page: {{first: 500, after: $a}}) "
                          f"{{ pageInfo {{ hasNextPage endCursor }} nodes {{ {fields} }} }} }}", a=after))[root]  # fmt: skip
        synced.extend(page["nodes"])
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    op = await api.wait((await api.run(all_fields_query(type_name)))["bulkOperation"]["id"])
    assert op["status"] == "COMPLETED"
    assert lines(await download(op["url"])) == synced


INVALID_QUERIES = [
    ("{ streamsConnection { nodes { id }", "syntax error"),
    ("{ streamsConnection { nodes { nope } } }", "Cannot query field 'nope'"),
    (
        'mutation { bulkOperationCancel(id: "x") { userErrors { message } } }',
        "only query operations",
    ),
    (
        "{ streamsConnection { nodes { id } } clipsConnection { nodes { id } } }",
        "exactly one top-level field",
    ),
    ("{ __schema { types { name } } }", "introspection"),
    ('{ node(id: "U3RyZWFtOjE=") { id } }', "not a connection that can run in bulk"),
    ("{ streamsConnection { nodes { id __type: __typename } } }", None),
    (
        "{ streamsConnection { nodes { id viewerSessionsConnection { nodes { id } } clipsConnection { nodes { id } }"
        " analyticsDailyConnection { nodes { id } } a: clipsConnection { nodes { id } } b: clipsConnection { nodes { id } } } } }",
        "at most 5 connections",
    ),
    ("{ streamsConnection { nodes { id } } }" + " " * 20_001, "larger than"),
    ("{ currentBulkOperation { id } }", "not a connection"),
]


@pytest.mark.parametrize(("query", "fragment"), INVALID_QUERIES)
async def test_validation_rules(query: str, fragment: str | None, pipeline: BridgeProcess,
                                tenants: dict[str, Any]) -> None:  # fmt: skip
    payload = await Api(pipeline, tenants["b"]["token"]).run(query)
    if fragment is None:  # valid: aliases and __typename are allowed
        assert payload["userErrors"] == [] and payload["bulkOperation"]["status"] == "CREATED"
        return
    assert payload["bulkOperation"] is None
    errors = payload["userErrors"]
    assert errors and all(e["code"] == "INVALID" and e["field"] == ["query"] for e in errors)
    assert any(fragment in e["message"] for e in errors), errors


async def test_paging_arguments_are_ignored_and_locations_named(pipeline: BridgeProcess,
                                                                tenants: dict[str, Any]) -> None:  # fmt: skip
    api = Api(pipeline, tenants["b"]["token"])
    q = "{ viewerSessionsConnection(page: {first: 3}) { pageInfo { hasNextPage } edges { cursor node { id } } } }"
    op = await api.wait((await api.run(q))["bulkOperation"]["id"])
    assert op["objectCount"] == 50  # first: 3 is ignored, every node is exported
    bad = await api.run("{ viewerSessionsConnection {\n  nodes { id\n    bogus } } }")
    assert "(3:5)" in bad["userErrors"][0]["message"]


def test_nesting_depth_rule() -> None:
    q = "{ streamsConnection { nodes { id viewerSessionsConnection { nodes { id } } } } }"
    bulkquery.parse_bulk_query(q)
    import bulkops.bulkquery as bq

    saved, bq.MAX_NESTING = bq.MAX_NESTING, 1
    try:
        with pytest.raises(bq.BulkQueryError, match="nested at most 1 levels"):
            bq.parse_bulk_query(q)
    finally:
        bq.MAX_NESTING = saved


async def test_scopes_are_checked_for_every_field(pipeline: BridgeProcess, tenants: dict[str, Any],
                                                  db: asyncpg.Connection) -> None:  # fmt: skip
    token = await issue_token(db, tenants["b"]["id"], scopes=("streams:read", "bulk:write"))
    api = Api(pipeline, token)
    payload = await api.run(
        "{ streamsConnection { nodes { id viewerSessionsConnection { nodes { id } } } } }"
    )
    assert payload["userErrors"] == [{"field": ["query"], "code": "INVALID",
        "message": "streamsConnection.viewerSessionsConnection: needs the analytics:read scope, which this token lacks"}]  # fmt: skip
    no_bulk = Api(pipeline, await issue_token(db, tenants["b"]["id"], scopes=("streams:read",)))
    resp = await no_bulk.raw(RUN, q="{ streamsConnection { nodes { id } } }")
    assert resp.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_parallel_submits_admit_exactly_the_limit(pipeline: BridgeProcess, tenants: dict[str, Any],
                                                        db: asyncpg.Connection) -> None:  # fmt: skip
    big = tenants["big"]  # 200k sessions: each admitted export stays active while the rest arrive
    await db.execute(
        "UPDATE tenants SET max_concurrent_bulk_operations = 3 WHERE id = $1", big["id"]
    )
    api = Api(pipeline, big["token"])
    q = all_fields_query("ViewerSession")
    results = await asyncio.gather(*(api.run(q) for _ in range(20)))
    admitted = [r["bulkOperation"]["id"] for r in results if r["bulkOperation"]]
    refused = [e for r in results for e in r["userErrors"]]
    try:
        assert len(admitted) == 3, results
        assert len(refused) == 17 and {e["code"] for e in refused} == {"LIMIT_REACHED"}
        assert "3 bulk operation(s)" in refused[0]["message"]
    finally:
        for op_id in admitted:
            await api(CANCEL, id=op_id)
        for op_id in admitted:
            await api.wait(op_id)
        await db.execute(
            "UPDATE tenants SET max_concurrent_bulk_operations = NULL WHERE id = $1", big["id"]
        )


async def test_cancel_is_fast_and_frees_the_slot(pipeline: BridgeProcess, tenants: dict[str, Any],
                                                 settings: Settings) -> None:  # fmt: skip
    big = tenants["big"]
    api = Api(pipeline, big["token"])
    q = "{ streamsConnection { nodes { id viewerSessionsConnection { nodes { id sessionId connectedAt city } } } } }"
    op_id = (await api.run(q))["bulkOperation"]["id"]
    running = await api.wait(op_id, {"RUNNING", "COMPLETED"})
    assert running["status"] == "RUNNING", "the export of 200k lines is still running"
    t0 = time.monotonic()
    canceling = (await api(CANCEL, id=op_id))["bulkOperationCancel"]
    assert canceling["userErrors"] == [] and canceling["bulkOperation"]["status"] == "CANCELING"
    done = await api.wait(op_id, {"CANCELED", "COMPLETED", "FAILED"}, timeout_s=10)
    elapsed = time.monotonic() - t0
    assert done["status"] == "CANCELED" and elapsed < 2.0, (done["status"], elapsed)
    assert done["url"] is None and done["partialDataUrl"] is None
    pk = int(base64.b64decode(op_id).decode().split(":")[1])
    assert not list((settings.home / "exports" / str(big["id"])).glob(f"{pk}-*.jsonl"))
    again = (await api(CANCEL, id=op_id))["bulkOperationCancel"]
    assert (
        again["userErrors"][0]["code"] == "INVALID"
        and "CANCELED" in again["userErrors"][0]["message"]
    )


async def test_cancel_errors(pipeline: BridgeProcess, tenants: dict[str, Any]) -> None:
    a_api, b_api = Api(pipeline, tenants["a"]["token"]), Api(pipeline, tenants["b"]["token"])
    op = await a_api.wait(
        (await a_api.run("{ streamsConnection { nodes { id } } }"))["bulkOperation"]["id"]
    )
    finished = (await a_api(CANCEL, id=op["id"]))["bulkOperationCancel"]
    assert (
        finished["userErrors"][0]["code"] == "INVALID"
        and "COMPLETED" in finished["userErrors"][0]["message"]
    )
    other = (await b_api(CANCEL, id=op["id"]))["bulkOperationCancel"]
    assert other["userErrors"][0]["code"] == "NOT_FOUND" and other["bulkOperation"] is None
    garbage = (await a_api(CANCEL, id="garbage"))["bulkOperationCancel"]
    assert garbage["userErrors"][0]["code"] == "INVALID"


async def test_tenant_isolation(pipeline: BridgeProcess, tenants: dict[str, Any]) -> None:
    a_api, b_api = Api(pipeline, tenants["a"]["token"]), Api(pipeline, tenants["b"]["token"])
    op = await a_api.wait(
        (await a_api.run("{ clipsConnection { nodes { id } } }"))["bulkOperation"]["id"]
    )
    assert await b_api.poll(op["id"]) is None
    b_list = (await b_api("{ bulkOperations(page: {first: 500}) { nodes { id } } }"))[
        "bulkOperations"
    ]["nodes"]
    a_list = (await a_api("{ bulkOperations(page: {first: 500}) { nodes { id } } }"))[
        "bulkOperations"
    ]["nodes"]
    assert op["id"] in {n["id"] for n in a_list}
    assert not {n["id"] for n in a_list} & {n["id"] for n in b_list}


async def test_list_is_newest_first_and_filters(
    pipeline: BridgeProcess, tenants: dict[str, Any]
) -> None:
    api = Api(pipeline, tenants["a"]["token"])
    first = await api.wait(
        (await api.run("{ streamsConnection { nodes { id } } }"))["bulkOperation"]["id"]
    )
    second = await api.wait(
        (await api.run("{ streamsConnection { nodes { name } } }"))["bulkOperation"]["id"]
    )
    page = (
        await api(
            "{ bulkOperations(page: {first: 1}) { pageInfo { hasNextPage endCursor } nodes { id } } }"
        )
    )["bulkOperations"]
    assert page["nodes"] == [{"id": second["id"]}] and page["pageInfo"]["hasNextPage"]
    nxt = (await api("query($a: String) { bulkOperations(page: {first: 1, after: $a}) "
                     "{ pageInfo { endCursor } nodes { id } } }",
                     a=page["pageInfo"]["endCursor"]))["bulkOperations"]  # fmt: skip
    assert nxt["nodes"] == [{"id": first["id"]}]
    # reverse: oldest first; a cursor is a position, so after `first` comes `second`
    oldest = (await api("{ bulkOperations(reverse: true, page: {first: 500}) { nodes { id createdAt } } }"))[
        "bulkOperations"]["nodes"]  # fmt: skip
    ids_in_order = [n["id"] for n in oldest]
    assert [n["createdAt"] for n in oldest] == sorted(n["createdAt"] for n in oldest)
    assert ids_in_order.index(first["id"]) < ids_in_order.index(second["id"])
    after_first = (await api("query($a: String) { bulkOperations(reverse: true, page: {first: 1, after: $a}) "
                             "{ nodes { id } } }", a=nxt["pageInfo"]["endCursor"]))["bulkOperations"]  # fmt: skip
    assert after_first["nodes"] == [{"id": second["id"]}]
    failed = (await api("{ bulkOperations(status: [FAILED]) { nodes { id } } }"))["bulkOperations"][
        "nodes"
    ]
    assert {"id": first["id"]} not in failed


async def test_empty_export_completes_without_url(
    pipeline: BridgeProcess, tenants: dict[str, Any]
) -> None:
    api = Api(pipeline, tenants["a"]["token"])
    q = '{ viewerSessionsConnection(timeRange: {start: "1990-01-01T00:00:00Z", end: "1990-01-02T00:00:00Z"}) { nodes { id } } }'
    op = await api.wait((await api.run(q))["bulkOperation"]["id"])
    assert (op["status"], op["url"], op["objectCount"], op["fileSize"]) == ("COMPLETED", None, 0, 0)


async def test_results_expire(pipeline: BridgeProcess, tenants: dict[str, Any], db: asyncpg.Connection,
                              settings: Settings) -> None:  # fmt: skip
    api = Api(pipeline, tenants["a"]["token"])
    op = await api.wait(
        (await api.run("{ streamsConnection { nodes { id } } }"))["bulkOperation"]["id"]
    )
    pk = int(base64.b64decode(op["id"]).decode().split(":")[1])
    storage_url = await db.fetchval("SELECT storage_url FROM bulk_operations WHERE id = $1", pk)
    path = Path(storage_url.removeprefix("file://"))
    assert path.exists() and path.is_relative_to(
        settings.home / "exports" / str(tenants["a"]["id"])
    )
    await db.execute(
        "UPDATE bulk_operations SET url_expires_at = now() - interval '1 second' WHERE id = $1", pk
    )
    expired = await api.wait(
        op["id"], {"EXPIRED"}, timeout_s=15
    )  # the arq cron runs every second here
    assert expired["url"] is None and not path.exists()
    async with httpx.AsyncClient() as c:
        assert (await c.get(op["url"])).status_code in (403, 410)


async def test_signed_links_are_checked(pipeline: BridgeProcess, tenants: dict[str, Any], settings: Settings,
                                        db: asyncpg.Connection) -> None:  # fmt: skip
    a, b = tenants["a"], tenants["b"]
    api = Api(pipeline, a["token"])
    op = await api.wait(
        (await api.run("{ streamsConnection { nodes { id } } }"))["bulkOperation"]["id"]
    )
    token = op["url"].rsplit("/", 1)[1]
    payload, mac = token.split(".")
    async with httpx.AsyncClient() as c:
        flipped = payload[:-1] + ("A" if payload[-1] != "A" else "B")
        assert (await c.get(op["url"].replace(token, f"{flipped}.{mac}"))).status_code == 403
        assert (await c.get(op["url"].replace(token, f"{payload}.{mac[:-1]}x"))).status_code == 403
        pk = int(base64.b64decode(op["id"]).decode().split(":")[1])
        key = secret_key(settings)
        past = sign(
            key,
            json.dumps(
                {"o": pk, "t": a["id"], "e": int(time.time()) - 5}, separators=(",", ":")
            ).encode(),
            "download",
        )
        expired = await c.get(f"{settings.public_url}/downloads/{past}")
        assert expired.status_code == 403 and "expired" in expired.text
        # a link minted for tenant b naming a's operation finds nothing
        cross = sign(
            key,
            json.dumps(
                {"o": pk, "t": b["id"], "e": int(time.time()) + 60}, separators=(",", ":")
            ).encode(),
            "download",
        )
        assert (await c.get(f"{settings.public_url}/downloads/{cross}")).status_code == 410
    # S3 results are presigned; s3proxy checks the signature and the expiry
    url = f"s3://{settings.s3_bucket}/links/{uuid.uuid4().hex}.jsonl"
    loc = locate(url, settings)
    obstore.put(loc.store, loc.key, b'{"id":"x"}\n')
    row = await db.fetchrow(
        """INSERT INTO bulk_operations (tenant_id, query, status, storage_url, url_expires_at)
           VALUES ($1, '{}', 'COMPLETED', $2, now() + interval '4 seconds') RETURNING *""", a["id"], url)  # fmt: skip
    signed = result_url(operations.Operation.from_row(row), settings, key)
    assert signed is not None
    async with httpx.AsyncClient() as c:
        assert (await c.get(signed)).content == b'{"id":"x"}\n'
        assert (
            await c.get(signed.replace("X-Amz-Signature=", "X-Amz-Signature=0"))
        ).status_code == 403
        await asyncio.sleep(5.5)
        expired = await c.get(signed)
        assert expired.status_code == 403 and b"expired" in expired.content


async def _direct_operation(db: asyncpg.Connection, tenant_id: int, query: str) -> int:
    """An operation row without an outbox message: run by the test, not by the pipeline."""
    return int(await db.fetchval("INSERT INTO bulk_operations (tenant_id, query) VALUES ($1, $2) RETURNING id",
                                 tenant_id, query))  # fmt: skip


async def test_file_size_and_run_time_limits(tenants: dict[str, Any], db: asyncpg.Connection,
                                             settings: Settings) -> None:  # fmt: skip
    big = tenants["big"]
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=4)
    try:
        q = all_fields_query("ViewerSession")
        too_big = await _direct_operation(db, big["id"], q)
        ctx = {"settings": replace(settings, max_file_bytes=20 * 1024 * 1024), "pool": pool}
        assert await run_bulk_operation(ctx, too_big) == "FILE_TOO_LARGE"
        op = await operations.get(db, big["id"], too_big)
        assert op is not None and op.status == "FAILED" and op.error_code == "FILE_TOO_LARGE"
        assert op.partial and op.storage_url and 20 * 1024 * 1024 < op.file_size < 40 * 1024 * 1024
        assert result_url(op, settings, secret_key(settings)) is not None  # partialDataUrl

        slow = await _direct_operation(db, big["id"], q)
        ctx = {"settings": replace(settings, max_run_s=0), "pool": pool}
        assert await run_bulk_operation(ctx, slow) == "TIMEOUT"
        op = await operations.get(db, big["id"], slow)
        assert op is not None and op.status == "FAILED" and op.error_code == "TIMEOUT"
        assert op.partial and op.object_count > 0
    finally:
        await pool.close()


async def test_bulk_runs_are_not_rate_limited(
    pipeline: BridgeProcess, db: asyncpg.Connection
) -> None:
    tid, token = await create_tenant(db, f"free-{uuid.uuid4().hex[:8]}")
    try:
        await db.execute(
            "UPDATE tenants SET rate_limit_per_minute = 1, rate_limit_burst = 10 WHERE id = $1", tid
        )
        await seed(
            db, tid, SeedPlan(streams=3, sessions=5_000, clips=0, audit_events=0, usage_records=0)
        )
        api = Api(pipeline, token)
        resp = await api.raw(RUN, q=all_fields_query("ViewerSession"))
        remaining = int(resp.headers["X-RateLimit-Remaining"])
        pk = int(
            base64.b64decode(resp.json()["data"]["bulkOperationRunQuery"]["bulkOperation"]["id"])
            .decode()
            .split(":")[1]
        )
        for _ in range(100):  # wait through the database, not the API: polling would cost
            if (
                await db.fetchval("SELECT status FROM bulk_operations WHERE id = $1", pk)
                == "COMPLETED"
            ):
                break
            await asyncio.sleep(0.1)
        after = await api.raw(
            POLL, id=resp.json()["data"]["bulkOperationRunQuery"]["bulkOperation"]["id"]
        )
        assert after.json()["data"]["bulkOperation"]["objectCount"] == 5_000
        assert (
            int(after.headers["X-RateLimit-Remaining"]) == remaining - 1
        )  # only the poll was charged
    finally:
        await db.execute("DELETE FROM tenants WHERE id = $1", tid)


async def test_export_cli(
    pipeline: BridgeProcess, tenants: dict[str, Any], tmp_path: Path, db: asyncpg.Connection
) -> None:
    qfile = tmp_path / "q.graphql"
    qfile.write_text(all_fields_query("Clip"))
    out = tmp_path / "clips.jsonl"
    result = await asyncio.to_thread(bulkops_cli, "export", "--query", str(qfile), "--out", str(out),
                                     "--token", tenants["a"]["token"], "--url", pipeline.url)  # fmt: skip
    summary = json.loads(result.stdout)
    assert summary["objectCount"] == 30 and out.stat().st_size == summary["fileSize"]
    assert lines(out.read_bytes()) == _nan(await expected(db, "Clip", tenants["a"]["id"]))
    to_device = await asyncio.to_thread(bulkops_cli, "export", "--query", str(qfile), "--out",
                                        "/dev/null", "--token", tenants["a"]["token"], "--url",
                                        pipeline.url, "--quiet")  # fmt: skip
    assert json.loads(to_device.stdout)["sha256"] == summary["sha256"]  # verified on the way
    bad = await asyncio.to_thread(bulkops_cli, "export", "--query", str(qfile), "--out", str(out),
                                  "--token", "bko_" + "x" * 40, "--url", pipeline.url, check=False)  # fmt: skip
    assert bad.returncode != 0 and "UNAUTHENTICATED" in bad.stderr and "Traceback" not in bad.stderr


async def test_export_cli_waits_for_a_free_slot(
    pipeline: BridgeProcess, tenants: dict[str, Any], tmp_path: Path, db: asyncpg.Connection
) -> None:
    """With every slot taken, ``bulkops export`` fails with LIMIT_REACHED at once under
    ``--wait-for-slot 0``, and otherwise retries until a slot frees up, then runs."""
    b = tenants["b"]
    await db.execute("UPDATE tenants SET max_concurrent_bulk_operations = 1 WHERE id = $1", b["id"])
    # The slot's holder: a RUNNING row no worker will touch, ended by the test when it likes.
    holder = await _direct_operation(db, b["id"], "{ streamsConnection { nodes { id } } }")
    await db.execute("UPDATE bulk_operations SET status = 'RUNNING' WHERE id = $1", holder)
    qfile = tmp_path / "q.graphql"
    qfile.write_text("{ streamsConnection { nodes { id name } } }")
    out = tmp_path / "streams.jsonl"
    args = ("export", "--query", str(qfile), "--out", str(out), "--token", b["token"], "--url",
            pipeline.url)  # fmt: skip
    try:
        refused = await asyncio.to_thread(bulkops_cli, *args, "--wait-for-slot", "0", check=False)
        assert refused.returncode != 0 and "LIMIT_REACHED" in refused.stderr
        assert "Traceback" not in refused.stderr
        waiting = asyncio.create_task(
            asyncio.to_thread(bulkops_cli, *args, "--wait-for-slot", "60")
        )
        await asyncio.sleep(2.5)  # long enough for the client to have been refused and to wait
        assert not waiting.done()
        await db.execute("UPDATE bulk_operations SET status = 'FAILED' WHERE id = $1", holder)
        done = await asyncio.wait_for(waiting, 60)
        assert "waiting for a free slot" in done.stderr
        assert json.loads(done.stdout)["objectCount"] == 2 and len(lines(out.read_bytes())) == 2
    finally:
        await db.execute("DELETE FROM bulk_operations WHERE id = $1", holder)
        await db.execute(
            "UPDATE tenants SET max_concurrent_bulk_operations = NULL WHERE id = $1", b["id"]
        )


async def test_export_cli_nests_children_under_their_parents(
    pipeline: BridgeProcess, tenants: dict[str, Any], tmp_path: Path
) -> None:
    """``bulkops export --nest``: one line per stream, its clips and analytics inside, equal to
    grouping the flat file by __parentId (in order), streams with no children included."""
    q = ("{ streamsConnection { nodes { id name clipsConnection { nodes { id title } } "
         "analyticsDailyConnection { nodes { id day totalViews } } } } }")  # fmt: skip
    qfile = tmp_path / "q.graphql"
    qfile.write_text(q)
    flat, nested = tmp_path / "flat.jsonl", tmp_path / "nested.jsonl"
    for out, extra in ((flat, ()), (nested, ("--nest",))):
        await asyncio.to_thread(bulkops_cli, "export", "--query", str(qfile), "--out", str(out),
                                "--token", tenants["a"]["token"], "--url", pipeline.url, "--quiet",
                                *extra)  # fmt: skip
    rows = lines(flat.read_bytes())
    want = []
    for root in (r for r in rows if "__parentId" not in r):
        kids: dict[str, list[dict[str, Any]]] = {
            "clipsConnection": [],
            "analyticsDailyConnection": [],
        }
        for r in rows:
            if r.get("__parentId") == root["id"]:
                key = "clipsConnection" if "title" in r else "analyticsDailyConnection"
                kids[key].append({k: v for k, v in r.items() if k != "__parentId"})
        want.append({**root, **kids})
    assert lines(nested.read_bytes()) == want and len(want) == 4
    assert sum(len(w["clipsConnection"]) for w in want) == 30
    assert not list(tmp_path.glob("*.flat"))
    deep = tmp_path / "deep.graphql"
    deep.write_text("{ streamsConnection { nodes { name clipsConnection { nodes { id } } } } }")
    refused = await asyncio.to_thread(bulkops_cli, "export", "--query", str(deep), "--out",
                                      str(nested), "--token", tenants["a"]["token"], "--url",
                                      pipeline.url, "--nest", check=False)  # fmt: skip
    assert refused.returncode != 0 and "select id in streamsConnection" in refused.stderr


async def test_submission_survives_kafka_being_down(
    pipeline: BridgeProcess, tenants: dict[str, Any]
) -> None:
    api = Api(pipeline, tenants["b"]["token"])
    await asyncio.to_thread(bulkops_cli, "services", "down", "kafka")
    try:
        payload = await api.run("{ streamsConnection { nodes { id } } }")
        assert payload["userErrors"] == [] and payload["bulkOperation"]["status"] == "CREATED"
        await asyncio.sleep(1)
        assert (await api.poll(payload["bulkOperation"]["id"]))["status"] == "CREATED"
    finally:
        await asyncio.to_thread(bulkops_cli, "services", "up", "kafka")
    op = await api.wait(payload["bulkOperation"]["id"], timeout_s=90)
    assert op["status"] == "COMPLETED"
