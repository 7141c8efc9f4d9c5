"""Load and fairness: 3 tenants x 3 concurrent operations, plus 200 polls/s for 60 s.

Fairness here means (README): a tenant never holds more worker slots than its concurrency
limit, so while another tenant's large exports run, a small export waits only for a free slot,
never for those exports to finish. The test records the small export's queue wait and
duration next to the large export's."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from bulkops.config import Settings
from bulkops.seed import SeedPlan
from tests.conftest import BridgeProcess, seeded_tenants
from tests.reference import all_fields_query
from tests.test_bulk import POLL, Api

DURATION_S = 60
POLLS_PER_S = 200


@pytest.fixture(scope="module")
async def tenants(settings: Settings) -> AsyncIterator[dict[str, Any]]:
    plans = {
        "big": SeedPlan(streams=20, sessions=400_000, clips=0, audit_events=0, usage_records=0),
        "mid": SeedPlan(streams=10, sessions=60_000, clips=100, audit_events=500, usage_records=50),
        "small": SeedPlan(streams=5, sessions=10_000, clips=50, audit_events=100, usage_records=20),
    }
    async with seeded_tenants(settings, "load", plans) as out:
        yield out


@pytest.mark.timeout(300)
async def test_three_tenants_under_polling_load(pipeline: BridgeProcess, tenants: dict[str, Any],
                                                db: Any) -> None:  # fmt: skip
    apis = {k: Api(pipeline, t["token"]) for k, t in tenants.items()}
    q = all_fields_query("ViewerSession")
    nested = "{ streamsConnection { nodes { id viewerSessionsConnection { nodes { id connectedAt } } } } }"
    started = time.monotonic()
    ops: dict[str, list[str]] = {}
    for key in ("big", "mid"):
        ops[key] = [(await apis[key].run(query))["bulkOperation"]["id"] for query in (q, nested, q)]
    await asyncio.sleep(1.0)  # the large exports are running
    t_small = time.monotonic()
    small = (await apis["small"].run(q))["bulkOperation"]["id"]
    ops["small"] = [small] + [(await apis["small"].run(x))["bulkOperation"]["id"]
                              for x in (all_fields_query("Clip"), all_fields_query("AuditEvent"))]  # fmt: skip

    errors: list[str] = []
    latencies: list[float] = []
    every = [(tenants[k]["token"], op) for k, ids in ops.items() for op in ids]

    async def poller(client: httpx.AsyncClient, index: int) -> None:
        period = len(pollers) / POLLS_PER_S
        next_at = time.monotonic() + index * period / len(pollers)
        while time.monotonic() - started < DURATION_S:
            token, op = every[index % len(every)]
            index += len(pollers)
            t0 = time.monotonic()
            try:
                resp = await client.post("/graphql", json={"query": POLL, "variables": {"id": op}},
                                         headers={"Authorization": f"Bearer {token}"})  # fmt: skip
                body = resp.json()
                if (
                    resp.status_code != 200
                    or body.get("errors")
                    or body["data"]["bulkOperation"] is None
                ):
                    errors.append(f"{resp.status_code} {resp.text[:200]}")
            except httpx.HTTPError as exc:
                errors.append(repr(exc))
            latencies.append(time.monotonic() - t0)
            next_at += period
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    pollers = range(20)
    async with httpx.AsyncClient(base_url=pipeline.url, timeout=30,
                                 limits=httpx.Limits(max_connections=40)) as client:  # fmt: skip
        await asyncio.gather(*(poller(client, i) for i in pollers))

    finals = {k: [await apis[k].wait(op, timeout_s=240) for op in ids] for k, ids in ops.items()}
    assert not errors, errors[:5]
    for key, results in finals.items():
        assert all(r["status"] == "COMPLETED" for r in results), (key, results)
    rate = len(latencies) / DURATION_S
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99)]
    rows = {r["id"]: r for r in await db.fetch(
        "SELECT id, tenant_id, created_at, started_at, completed_at FROM bulk_operations "
        "WHERE tenant_id = ANY($1::bigint[])", [t["id"] for t in tenants.values()])}  # fmt: skip
    import base64

    def timing(op_id: str) -> tuple[float, float]:
        r = rows[int(base64.b64decode(op_id).decode().split(":")[1])]
        return ((r["started_at"] - r["created_at"]).total_seconds(),
                (r["completed_at"] - r["created_at"]).total_seconds())  # fmt: skip

    small_wait, small_total = timing(small)
    big_total = max(timing(op)[1] for op in ops["big"])
    print(f"\n  load: {len(latencies)} polls in {DURATION_S}s = {rate:.0f}/s, p99 {p99 * 1000:.0f} ms, "
          f"errors {len(errors)}; 10k-row export queued {small_wait:.2f}s, done in {small_total:.2f}s "
          f"(submitted {t_small - started:.1f}s after the 400k-row exports, which took up to {big_total:.1f}s)")  # fmt: skip
    # The load generator shares the 2 cores with the Bridge, the exports and the services: it
    # reaches 160-195/s alone and ~100/s when the machine is busy. This is a correctness test
    # (no errors, no waiting behind large exports), so it guards only against a collapse; the
    # print reports the figure, and docs/reliability.md records it.
    assert rate >= 0.25 * POLLS_PER_S, rate
    assert small_total < big_total, "the small export did not wait for the large ones"
