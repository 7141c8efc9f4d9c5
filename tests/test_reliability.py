"""Faults the bulk path survives: a worker killed mid-export, workers that vanish for good,
operations stuck in CANCELING or never picked up, and services restarting under load."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import signal
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from bulkops.config import Settings
from bulkops.seed import SeedPlan
from bulkops.storage import locate
from tests.conftest import ROOT, BridgeProcess, bulkops_cli, seeded_tenants
from tests.reference import REFERENCE, all_fields_query
from tests.test_bulk import POLL, Api


@pytest.fixture(scope="module")
async def tenant(settings: Settings) -> AsyncIterator[dict[str, Any]]:
    plan = SeedPlan(streams=30, sessions=300_000, clips=50, audit_events=10, usage_records=10)
    async with seeded_tenants(settings, "faults", {"t": plan}) as out:
        yield out["t"]


def _pk(global_id: str) -> int:
    import base64

    return int(base64.b64decode(global_id).decode().split(":")[1])


async def _wait_status(
    db: asyncpg.Connection, pk: int, statuses: set[str], timeout_s: float = 60
) -> asyncpg.Record:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        row = await db.fetchrow("SELECT * FROM bulk_operations WHERE id = $1", pk)
        if row["status"] in statuses:
            return row
        await asyncio.sleep(0.05)
    raise AssertionError(f"operation {pk} not in {statuses}: {dict(row)}")


async def _sha_of(settings: Settings, url: str) -> str:
    import obstore

    loc = locate(url, settings)
    return hashlib.sha256(obstore.get(loc.store, loc.key).bytes().to_bytes()).hexdigest()


async def test_worker_killed_mid_export_is_retried_to_an_identical_file(
    pipeline: BridgeProcess, tenant: dict[str, Any], db: asyncpg.Connection, settings: Settings
) -> None:
    api = Api(pipeline, tenant["token"])
    q = all_fields_query("ViewerSession")
    undisturbed = await api.wait((await api.run(q))["bulkOperation"]["id"], timeout_s=120)
    assert undisturbed["status"] == "COMPLETED"

    op_id = (await api.run(q))["bulkOperation"]["id"]
    pk = _pk(op_id)
    await _wait_status(db, pk, {"RUNNING"})
    for _ in range(600):  # until a part is durable and its checkpoint recorded
        row = await db.fetchrow("SELECT * FROM bulk_operations WHERE id = $1", pk)
        if row["checkpoint"] is not None or row["status"] != "RUNNING":
            break
        await asyncio.sleep(0.02)
    assert row["status"] == "RUNNING" and row["checkpoint"] is not None, dict(row)
    worker_pid = int(row["worker_id"].rsplit(":", 1)[1])
    os.kill(worker_pid, signal.SIGKILL)  # no cleanup, no goodbye
    lines_before_crash = json.loads(row["checkpoint"])["object_count"]
    assert 0 < lines_before_crash < 300_000
    t_kill = time.monotonic()
    done = await api.wait(op_id, timeout_s=120)
    assert done["status"] == "COMPLETED", done
    final = await db.fetchrow("SELECT * FROM bulk_operations WHERE id = $1", _pk(op_id))
    assert (
        final["attempts"] - final["slices"] == 2
        and int(final["worker_id"].rsplit(":", 1)[1]) != worker_pid
    )
    assert done["sha256"] == undisturbed["sha256"] and done["fileSize"] == undisturbed["fileSize"]
    assert done["objectCount"] == undisturbed["objectCount"] == 300_000
    assert await _sha_of(settings, final["storage_url"]) == undisturbed["sha256"]
    assert time.monotonic() - t_kill < 60
    log = (ROOT / ".local" / "test" / "workers.log").read_text()
    resumed = re.findall(rf"operation {pk} resumes after (\d+) lines", log)
    assert resumed and int(resumed[-1]) >= lines_before_crash, (
        "resumed from its checkpoint, not from zero"
    )
    assert not list((settings.home / "exports" / str(tenant["id"])).glob(f"{pk}.parts/*"))


async def test_a_vanished_worker_fails_the_operation_after_the_last_try(
    pipeline: BridgeProcess, tenant: dict[str, Any], db: asyncpg.Connection
) -> None:
    pk = await db.fetchval(
        """INSERT INTO bulk_operations (tenant_id, query, status, attempts, started_at, heartbeat_at,
                                        object_count)
           VALUES ($1, '{ streamsConnection { nodes { id } } }', 'RUNNING', 3, now() - interval '1 hour',
                   now() - interval '1 hour', 1234) RETURNING id""", tenant["id"])  # fmt: skip
    row = await _wait_status(db, pk, {"FAILED"}, timeout_s=20)
    assert (
        row["error_code"] == "INTERNAL_SERVER_ERROR"
        and "stopped responding 3 times" in row["error_message"]
    )
    assert row["object_count"] == 1234 and row["completed_at"] is not None


async def test_nothing_stays_canceling_forever(pipeline: BridgeProcess, tenant: dict[str, Any],
                                               db: asyncpg.Connection) -> None:  # fmt: skip
    pk = await db.fetchval(
        """INSERT INTO bulk_operations (tenant_id, query, status, attempts, heartbeat_at)
           VALUES ($1, '{ streamsConnection { nodes { id } } }', 'CANCELING', 1, now() - interval '1 hour')
           RETURNING id""", tenant["id"])  # fmt: skip
    await _wait_status(db, pk, {"CANCELED"}, timeout_s=20)


async def test_an_operation_whose_job_was_lost_still_runs(pipeline: BridgeProcess, tenant: dict[str, Any],
                                                          db: asyncpg.Connection) -> None:  # fmt: skip
    # as if Redis lost the job: the row exists, no outbox message, no arq job
    pk = await db.fetchval(
        """INSERT INTO bulk_operations (tenant_id, query, created_at)
           VALUES ($1, '{ clipsConnection { nodes { id } } }', now() - interval '1 minute') RETURNING id""",
        tenant["id"],
    )
    row = await _wait_status(db, pk, {"COMPLETED"}, timeout_s=30)
    assert row["object_count"] == 50


@pytest.mark.parametrize("service", ["redis", "kafka", "dispatcher"])
async def test_service_restart_during_submissions_and_exports(
    service: str, pipeline: BridgeProcess, tenant: dict[str, Any], db: asyncpg.Connection
) -> None:
    api = Api(pipeline, tenant["token"])
    queries = [
        all_fields_query("Clip"),
        all_fields_query("Stream"),
        "{ streamsConnection { nodes { id name } } }",
    ]
    before = [(await api.run(queries[0]))["bulkOperation"]["id"]]
    if service == "dispatcher":
        # only this suite's dispatcher (by its BULKOPS_HOME): a running demo's is left alone
        home = f"BULKOPS_HOME={os.environ['BULKOPS_HOME']}".encode()
        procs = os.popen("pgrep -f 'bulkops.cli -v dispatcher'").read().split()
        for pid in procs:
            with contextlib.suppress(OSError):
                if home in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                    os.kill(int(pid), signal.SIGKILL)
        from tests.conftest import REPLACEMENTS, Background

        restarted: Any = Background("dispatcher-restarted", "dispatcher")
        REPLACEMENTS.append(restarted)  # serves the rest of the session; stopped with it
    else:
        await asyncio.to_thread(bulkops_cli, "services", "down", service)
        restarted = None
    during = [(await api.run(q))["bulkOperation"]["id"] for q in queries[1:]]
    if restarted is None:
        await asyncio.to_thread(bulkops_cli, "services", "up", service)
    for op_id in before + during:
        op = await api.wait(op_id, timeout_s=120)
        assert op["status"] == "COMPLETED", (service, op)
    rows = await db.fetch(
        "SELECT id, attempts FROM bulk_operations WHERE id = ANY($1::bigint[])",
        [_pk(i) for i in before + during],
    )
    assert all(r["attempts"] <= 2 for r in rows)  # none ran twice to completion


async def test_a_long_export_yields_its_slot_and_resumes_identically(
    pipeline: BridgeProcess, tenant: dict[str, Any], db: asyncpg.Connection, settings: Settings
) -> None:
    """Time slicing: with other work waiting, an export past BULKOPS_SLICE_S stops at a
    checkpoint and re-queues itself; a worker of the pipeline picks it up and finishes it."""
    from dataclasses import replace

    from arq import create_pool

    from bulkops.intake import redis_settings
    from bulkops.worker import run_bulk_operation

    api = Api(pipeline, tenant["token"])
    fields = " ".join(REFERENCE["ViewerSession"][2])
    # nested: the sort keeps the export busy long enough to yield mid-way on any machine
    q = f"{{ streamsConnection {{ nodes {{ id name viewerSessionsConnection {{ nodes {{ {fields} }} }} }} }} }}"
    undisturbed = await api.wait((await api.run(q))["bulkOperation"]["id"], timeout_s=120)
    pk = await db.fetchval(
        "INSERT INTO bulk_operations (tenant_id, query) VALUES ($1, $2) RETURNING id",
        tenant["id"],
        q,
    )
    arq = await create_pool(redis_settings(settings))
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=4)
    waiting = f"bulkops:test-waiting:{uuid.uuid4().hex}"
    try:
        await arq.zadd(waiting, {"someone-else's-job": 0})  # work that is due, and waits
        ctx = {
            "settings": replace(settings, slice_s=0.2),
            "pool": pool,
            "redis": arq,
            "queue_name": waiting,
        }
        assert await run_bulk_operation(ctx, pk) == "yielded"
        row = await db.fetchrow("SELECT * FROM bulk_operations WHERE id = $1", pk)
        assert row["status"] == "RUNNING" and row["slices"] == 1 and row["checkpoint"] is not None
        yielded_at = json.loads(row["checkpoint"])["object_count"]
        assert yielded_at < 300_030
        done = await _wait_status(
            db, pk, {"COMPLETED", "FAILED"}, timeout_s=120
        )  # the pipeline resumes it
        assert done["status"] == "COMPLETED" and done["sha256"] == undisturbed["sha256"]
        assert done["object_count"] == 300_030 and done["attempts"] - done["slices"] == 1
    finally:
        await arq.delete(waiting)
        await arq.aclose()
        await pool.close()


async def test_postgres_restart_during_an_export(
    pipeline: BridgeProcess, tenant: dict[str, Any], settings: Settings
) -> None:
    """PostgreSQL goes down mid-export (a fast shutdown: every session is ended) and comes
    back. The API answers 503 SERVICE_UNAVAILABLE meanwhile, never a 500; the export resumes
    from its checkpoint and its file is identical to an undisturbed run; new submissions work."""
    api = Api(pipeline, tenant["token"])
    q = all_fields_query("ViewerSession")
    undisturbed = await api.wait((await api.run(q))["bulkOperation"]["id"], timeout_s=120)
    assert undisturbed["status"] == "COMPLETED"

    op_id = (await api.run(q))["bulkOperation"]["id"]
    db = await asyncpg.connect(settings.database_url)
    try:
        for _ in range(600):  # until a part is durable and its checkpoint recorded
            row = await db.fetchrow("SELECT * FROM bulk_operations WHERE id = $1", _pk(op_id))
            if row["checkpoint"] is not None or row["status"] not in ("CREATED", "RUNNING"):
                break
            await asyncio.sleep(0.02)
        assert row["status"] == "RUNNING" and row["checkpoint"] is not None, dict(row)
    finally:
        await db.close()

    await asyncio.to_thread(bulkops_cli, "services", "down", "postgres")
    try:
        down = await api.raw(POLL, id=op_id)
        assert down.status_code == 503, down.text
        assert down.json()["errors"][0]["extensions"]["code"] == "SERVICE_UNAVAILABLE"
        assert "Retry-After" in down.headers
    finally:
        await asyncio.to_thread(bulkops_cli, "services", "up", "postgres")

    done = await api.wait(op_id, timeout_s=180)
    assert done["status"] == "COMPLETED", done
    assert done["sha256"] == undisturbed["sha256"] and done["objectCount"] == 300_000
    after = await api.wait(
        (await api.run("{ clipsConnection { nodes { id } } }"))["bulkOperation"]["id"]
    )
    assert after["status"] == "COMPLETED" and after["objectCount"] == 50
