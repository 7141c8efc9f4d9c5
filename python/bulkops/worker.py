"""``bulkops worker``: arq worker processes that run bulk operations.

A job runs the export engine in a thread (the engine is synchronous and releases the GIL in
its hot parts) while the event loop publishes progress at least once a second, watches for
CANCELING and enforces the run-time limit. arq's own cron deletes results whose URL expired.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from typing import Any

import asyncpg
from arq import cron, func
from arq.worker import Worker

from bulkops import operations
from bulkops.bulkquery import BulkQueryError, parse_bulk_query
from bulkops.config import Settings
from bulkops.engine import ExportCanceled, ExportStopped, FileTooLarge, Progress, run_export
from bulkops.intake import RUN_JOB, redis_settings
from bulkops.operations import ErrorCode, Status
from bulkops.planner import plan
from bulkops.storage import delete, join, locate

log = logging.getLogger("bulkops.worker")

PROGRESS_EVERY_S = 0.5


def object_url(settings: Settings, op: operations.Operation) -> str:
    return join(settings.storage_url, f"{op.tenant_id}/{op.id}.jsonl")


async def run_bulk_operation(ctx: dict[str, Any], op_id: int) -> str:
    settings: Settings = ctx["settings"]
    pool: asyncpg.Pool = ctx["pool"]
    ttl = timedelta(seconds=settings.url_ttl_s)
    async with pool.acquire() as conn:
        op = await operations.start(conn, op_id)
        if op is None:
            current = await operations.load(conn, op_id)
            if current is not None and current.status == Status.CANCELING:
                await operations.mark_canceled(conn, op_id)
                return "canceled before start"
            return f"not runnable ({current.status if current else 'missing'})"
    try:
        the_plan = plan(parse_bulk_query(op.query), op.tenant_id)
    except BulkQueryError as exc:  # validated at submission; only a schema change gets here
        async with pool.acquire() as conn:
            await operations.fail(conn, op_id, ErrorCode.INVALID_QUERY, str(exc), ttl=ttl)
        return "invalid"

    url = object_url(settings, op)
    location = locate(url, settings)
    progress = Progress()
    stop_reason: list[str | None] = [None]
    started: dict[str, Any] = {}
    deadline = time.monotonic() + settings.max_run_s

    def on_progress(p: Progress) -> None:
        progress.object_count, progress.root_object_count = p.object_count, p.root_object_count
        progress.file_size = p.file_size

    export = asyncio.create_task(asyncio.to_thread(
        run_export, the_plan, settings.database_url, location,
        on_progress=on_progress,
        should_stop=lambda: stop_reason[0],
        on_start=lambda n, at: started.update(expected=n, at=at),
        max_file_bytes=settings.max_file_bytes,
    ))  # fmt: skip
    recorded_start = False
    while not export.done():
        await asyncio.wait({export}, timeout=PROGRESS_EVERY_S)
        async with pool.acquire() as conn:
            if started and not recorded_start:
                await operations.record_start(conn, op_id, started["expected"], started["at"])
                recorded_start = True
            status = await operations.heartbeat(
                conn, op_id, progress.object_count, progress.root_object_count, progress.file_size
            )
        if status in (Status.CANCELING, None):  # None: deleted along with its tenant
            stop_reason[0] = "cancel"
        elif time.monotonic() > deadline:
            stop_reason[0] = "timeout"

    partial = url if progress.file_size else None
    counts: dict[str, Any] = {
        "objects": progress.object_count,
        "roots": progress.root_object_count,
        "size": progress.file_size,
    }
    async with pool.acquire() as conn:
        try:
            result = export.result()
        except ExportCanceled:
            await operations.mark_canceled(conn, op_id)
            return "canceled"
        except ExportStopped:
            await operations.fail(
                conn, op_id, ErrorCode.TIMEOUT,
                f"the operation ran longer than the limit of {settings.max_run_s}s; "
                "the lines written so far are at partialDataUrl",
                partial_url=partial, ttl=ttl, **counts,
            )  # fmt: skip
            return "timeout"
        except FileTooLarge as exc:
            await operations.fail(conn, op_id, ErrorCode.FILE_TOO_LARGE,
                                  f"{exc}; narrow the query (e.g. timeRange) or split it",
                                  partial_url=partial, ttl=ttl, **counts)  # fmt: skip
            return "too large"
        except Exception as exc:
            log.exception("operation %d failed", op_id)
            await operations.fail(
                conn, op_id, ErrorCode.INTERNAL_SERVER_ERROR,
                f"the export stopped: {exc.__class__.__name__}: {str(exc)[:300]}",
                partial_url=partial, ttl=ttl, **counts,
            )  # fmt: skip
            return "failed"
        done = await operations.complete(
            conn, op_id, objects=result.object_count, roots=result.root_object_count,
            size=result.file_size, sha256=result.sha256,
            storage_url=url if result.location is not None else None, ttl=ttl,
        )  # fmt: skip
        if done is None:  # canceled at the very end: the cancel wins, the file goes
            if result.location is not None:
                delete(location)
            await operations.mark_canceled(conn, op_id)
            return "canceled"
    return "completed"


async def expire_results(ctx: dict[str, Any]) -> int:
    """Delete result objects whose URLs expired; COMPLETED operations become EXPIRED."""
    settings: Settings = ctx["settings"]
    async with ctx["pool"].acquire() as conn:
        due = await operations.expire_due(conn)
    for op in due:
        assert op.storage_url is not None
        try:
            delete(locate(op.storage_url, settings))
        except Exception:
            log.exception("could not delete expired result of operation %d", op.id)
    if due:
        log.info("expired %d result(s)", len(due))
    return len(due)


async def _startup(ctx: dict[str, Any]) -> None:
    ctx["pool"] = await asyncpg.create_pool(ctx["settings"].database_url, min_size=1, max_size=8)


async def _shutdown(ctx: dict[str, Any]) -> None:
    await ctx["pool"].close()


def build_worker(settings: Settings, *, burst: bool = False) -> Worker:
    every = max(1, settings.expire_every_s)
    seconds = set(range(0, 60, every)) if every < 60 else {0}
    return Worker(
        functions=[func(run_bulk_operation, name=RUN_JOB, max_tries=3)],
        cron_jobs=[cron(expire_results, second=seconds, run_at_startup=True)],
        redis_settings=redis_settings(settings),
        ctx={"settings": settings},
        on_startup=_startup,
        on_shutdown=_shutdown,
        max_jobs=settings.worker_concurrency,
        job_timeout=settings.max_run_s + 300,
        keep_result=3600,
        health_check_interval=10,
        poll_delay=0.1,
        burst=burst,
    )


def run_workers(settings: Settings, processes: int) -> None:
    """Run ``processes`` worker processes (each runs WORKER_CONCURRENCY jobs at once)."""
    if processes == 1:
        build_worker(settings).run()
        return
    children = [
        subprocess.Popen([sys.executable, "-m", "bulkops.cli", "worker", "--processes", "1"])
        for _ in range(processes)
    ]

    def forward(signum: int, _frame: Any) -> None:
        for c in children:
            if c.poll() is None:
                c.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    codes = [c.wait() for c in children]
    os._exit(max(codes))
