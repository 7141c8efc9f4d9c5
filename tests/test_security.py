"""An IDOR matrix over every field that takes an id, across two tenants; and tokens never
reach a log."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from bulkops.config import Settings
from bulkops.seed import SeedPlan
from tests.conftest import ROOT, BridgeProcess, seeded_tenants
from tests.reference import gid
from tests.test_bulk import CANCEL, Api


@pytest.fixture(scope="module")
async def pair(settings: Settings) -> AsyncIterator[dict[str, Any]]:
    plan = SeedPlan(streams=2, sessions=40, clips=4, audit_events=4, usage_records=4)
    async with seeded_tenants(settings, "idor", {"a": plan, "b": plan}) as out:
        yield out


async def test_idor_matrix(
    pipeline: BridgeProcess, pair: dict[str, Any], db: asyncpg.Connection
) -> None:
    a, b = pair["a"], pair["b"]
    a_api, b_api = Api(pipeline, a["token"]), Api(pipeline, b["token"])
    ids: dict[str, str] = {}
    for type_name, table in (("Stream", "streams"), ("ViewerSession", "viewer_sessions"), ("Clip", "clips"),
                             ("UsageRecord", "usage_records"), ("AuditEvent", "audit_events"),
                             ("StreamAnalyticsDaily", "stream_analytics_daily")):  # fmt: skip
        ids[type_name] = gid(
            type_name,
            await db.fetchval(f"SELECT id FROM {table} WHERE tenant_id = $1 LIMIT 1", a["id"]),
        )
    op = await a_api.wait(
        (await a_api.run("{ streamsConnection { nodes { id } } }"))["bulkOperation"]["id"]
    )
    ids["BulkOperation"] = op["id"]
    node_q = "query($id: ID!) { node(id: $id) { id } }"
    for type_name, gid_ in ids.items():  # node(id:) with b's token: indistinguishable from absent
        assert (await b_api(node_q, id=gid_))["node"] is None, type_name
        assert (await a_api(node_q, id=gid_))["node"] == {"id": gid_}, type_name
    assert (
        await b_api("query($id: ID!) { bulkOperation(id: $id) { id } }", id=ids["BulkOperation"])
    )["bulkOperation"] is None
    cancel = (await b_api(CANCEL, id=ids["BulkOperation"]))["bulkOperationCancel"]
    assert cancel["bulkOperation"] is None and cancel["userErrors"][0]["code"] == "NOT_FOUND"
    for field in ("viewerSessionsConnection", "clipsConnection", "streamAnalyticsDailyConnection"):
        q = f'{{ {field}(streamId: "{ids["Stream"]}") {{ totalCount nodes {{ id }} }} }}'
        assert (await b_api(q))[field] == {"totalCount": 0, "nodes": []}, field
    # a bulk export filtered on a's stream, submitted by b, exports nothing of a's
    q = f'{{ viewerSessionsConnection(streamId: "{ids["Stream"]}") {{ nodes {{ id }} }} }}'
    b_op = await b_api.wait((await b_api.run(q))["bulkOperation"]["id"])
    assert b_op["status"] == "COMPLETED" and b_op["objectCount"] == 0 and b_op["url"] is None
    # b's list of operations holds none of a's
    listed = (await b_api("{ bulkOperations(page: {first: 500}) { nodes { id } } }"))[
        "bulkOperations"
    ]["nodes"]
    assert ids["BulkOperation"] not in {n["id"] for n in listed}


async def test_tokens_never_reach_logs(pipeline: BridgeProcess, pair: dict[str, Any]) -> None:
    api = Api(pipeline, pair["a"]["token"])
    await api.wait((await api.run("{ clipsConnection { nodes { id } } }"))["bulkOperation"]["id"])
    await Api(pipeline, pair["a"]["token"] + "tampered").raw(
        "{ streamsConnection { nodes { id } } }"
    )
    secret_part = pair["a"]["token"][12:]  # everything after the stored, displayable prefix
    for log in (ROOT / ".local" / "test").rglob("*.log"):
        assert secret_part not in log.read_text(errors="replace"), log
