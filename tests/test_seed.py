from __future__ import annotations

import json

import asyncpg

from bulkops.catalog import TENANT_TABLES
from bulkops.seed import SeedPlan, seed
from tests.conftest import TenantFactory, bulkops_cli


async def _counts(db: asyncpg.Connection, tenant_id: int) -> dict[str, int]:
    return {
        table: await db.fetchval(f"SELECT count(*) FROM {table} WHERE tenant_id = $1", tenant_id)
        for table in TENANT_TABLES
    }


async def test_seed_counts_are_exact_and_tenants_are_isolated(
    db: asyncpg.Connection, make_tenant: TenantFactory
) -> None:
    a, b = await make_tenant(), await make_tenant()
    plan_a = SeedPlan(streams=7, sessions=3_001, clips=41, audit_events=257, usage_records=13)
    plan_b = SeedPlan(streams=3, sessions=999, clips=5, audit_events=11, usage_records=4)
    await seed(db, a.id, plan_a)
    await seed(db, b.id, plan_b)
    for tenant, plan in ((a, plan_a), (b, plan_b)):
        counts = await _counts(db, tenant.id)
        assert counts["streams"] == plan.streams
        assert counts["viewer_sessions"] == plan.sessions
        assert counts["clips"] == plan.clips
        assert counts["audit_events"] == plan.audit_events
        assert counts["usage_records"] == plan.usage_records
        assert counts["stream_analytics_daily"] > 0
    # children only ever point at their own tenant's streams (also enforced by the FK)
    for table in ("viewer_sessions", "clips", "stream_analytics_daily"):
        leaks = await db.fetchval(
            f"""SELECT count(*) FROM {table} c JOIN streams s ON s.id = c.stream_id
                 WHERE c.tenant_id <> s.tenant_id"""
        )
        assert leaks == 0, table
    total = await db.fetchval(
        "SELECT sum(total_views) FROM stream_analytics_daily WHERE tenant_id = $1", a.id
    )
    assert total == plan_a.sessions


async def test_seed_data_is_realistic(db: asyncpg.Connection, make_tenant: TenantFactory) -> None:
    t = await make_tenant()
    await seed(db, t.id, SeedPlan(streams=20, sessions=20_000, clips=0, audit_events=0,
                                  usage_records=0))  # fmt: skip
    # Distributions over every session (a sample of ~40 rows once saw only 9 countries)...
    row = await db.fetchrow(
        """SELECT count(DISTINCT country_code) AS countries, count(DISTINCT connector) AS connectors,
                  count(DISTINCT date_trunc('month', connected_at)) AS months
             FROM viewer_sessions WHERE tenant_id = $1""",
        t.id,
    )
    # ...and the skew of sessions per stream
    row = {**row, **await db.fetchrow(
        """SELECT max(n) AS top, min(n) AS bottom
             FROM (SELECT count(*) AS n FROM viewer_sessions WHERE tenant_id = $1
                    GROUP BY stream_id) per_stream""",
        t.id,
    )}  # fmt: skip
    assert row["countries"] >= 10
    assert row["connectors"] == 4
    assert row["months"] >= 5
    assert row["top"] > 5 * row["bottom"]  # skew: popular streams dominate


async def test_seed_cli(make_tenant: TenantFactory) -> None:
    t = await make_tenant()
    out = bulkops_cli("seed", "--tenant", t.name, "--streams", "2", "--sessions", "50",
                      "--clips", "3", "--audit-events", "4", "--usage-records", "5")  # fmt: skip
    report = json.loads(out.stdout)
    assert report["rows"]["viewer_sessions"] == 50
    assert report["rows"]["streams"] == 2
