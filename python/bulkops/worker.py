"""``bulkops worker``: arq worker processes that run bulk operations.

A job runs the export engine in a thread (the engine is synchronous and releases the GIL in
its hot parts) while the event loop publishes progress at least once a second, watches for
CANCELING and enforces the run-time limit. arq's own cron deletes results whose URL expired.
"""

from __future__ import annotations

import asyncio
import logging
import os
import posixpath
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from arq import Retry, cron, func
from arq.constants import default_queue_name, in_progress_key_prefix
from arq.worker import Worker

from bulkops import operations
from bulkops.bulkquery import BulkQueryError, parse_bulk_query
from bulkops.config import Settings
from bulkops.engine import (
    Checkpoint,
    ExportCanceled,
    ExportStopped,
    ExportSuperseded,
    ExportYielded,
    FileTooLarge,
    Progress,
    connection_counts,
    run_export,
)
from bulkops.intake import RUN_JOB, job_id, redis_settings
from bulkops.operations import ErrorCode, Status
from bulkops.outages import database_unavailable
from bulkops.planner import plan
from bulkops.storage import Location, SegmentedSink, delete, join, locate, parts_intact

log = logging.getLogger("bulkops.worker")

PROGRESS_EVERY_S = 0.5
QUEUE = default_queue_name


def object_url(settings: Settings, op: operations.Operation) -> str:
    # one object per attempt: a worker that was given up on can never overwrite its successor
    return join(settings.storage_url, f"{op.tenant_id}/{op.id}-{op.attempts}.jsonl")


async def run_bulk_operation(ctx: dict[str, Any], op_id: int) -> str:
    """Run (or resume) one operation. If PostgreSQL goes away meanwhile (a restart, a
    failover), the attempt stops keeping its closed parts, and arq runs the job again a little
    later; the next attempt resumes from the last checkpoint. An outage never FAILS an
    operation; if it outlasts arq's tries, the reaper picks the operation up once it is back."""
    try:
        return await _run(ctx, op_id)
    except Exception as exc:
        if not database_unavailable(exc):
            raise
        defer = min(2 * ctx.get("job_try", 1), 30)
        log.warning("operation %d: the database is unavailable (%s); retrying in %d s",
                    op_id, str(exc).strip()[:120], defer)  # fmt: skip
        raise Retry(defer=defer) from exc


async def _run(ctx: dict[str, Any], op_id: int) -> str:
    settings: Settings = ctx["settings"]
    pool: asyncpg.Pool = ctx["pool"]
    ttl = timedelta(seconds=settings.url_ttl_s)
    async with pool.acquire() as conn:
        op = await operations.start(conn, op_id, f"{socket.gethostname()}:{os.getpid()}")
        if op is None:
            current = await operations.load(conn, op_id)
            if current is not None and current.status == Status.CANCELING:
                await operations.mark_canceled(conn, op_id)
                return "canceled before start"
            return f"not runnable ({current.status if current else 'missing'})"
    attempt = op.attempts
    try:
        the_plan = plan(parse_bulk_query(op.query), op.tenant_id)
    except BulkQueryError as exc:  # validated at submission; only a schema change gets here
        async with pool.acquire() as conn:
            await operations.fail(
                conn, op_id, ErrorCode.INVALID_QUERY, str(exc), ttl=ttl, attempt=attempt
            )
        return "invalid"

    url = object_url(settings, op)
    location = locate(url, settings)
    resume = _resumable(op, location)
    sink = SegmentedSink(
        location, tag=str(attempt), segment_bytes=settings.segment_bytes,
        prior=resume.parts if resume else None,
        parts_prefix=posixpath.join(posixpath.dirname(location.key), f"{op.id}.parts/"),
    )  # fmt: skip
    if resume is not None:
        log.warning("operation %d resumes after %d lines, from attempt %d's checkpoint",
                    op_id, resume.object_count, attempt - 1)  # fmt: skip
    progress = Progress()
    stop_reason: list[str | None] = [None]
    started: dict[str, Any] = {}
    checkpoints: list[Checkpoint] = []
    # BULKOPS_MAX_RUN_S counts from the first start: neither a resumed attempt nor a time
    # slice gets a fresh allowance.
    ran_s = (datetime.now(UTC) - op.started_at).total_seconds() if op.started_at else 0.0
    deadline = time.monotonic() + settings.max_run_s - max(0.0, ran_s)

    def on_progress(p: Progress) -> None:
        progress.object_count, progress.root_object_count = p.object_count, p.root_object_count
        progress.file_size = p.file_size
        progress.connection_counts = p.connection_counts and list(p.connection_counts)

    export = asyncio.create_task(asyncio.to_thread(
        run_export, the_plan, settings.database_url, sink,
        on_progress=on_progress,
        should_stop=lambda: stop_reason[0],
        on_start=None if resume else (lambda n, at: started.update(expected=n, at=at)),
        on_checkpoint=checkpoints.append,
        resume=resume,
        max_file_bytes=settings.max_file_bytes,
        deadline=deadline,
    ))  # fmt: skip
    recorded_start = False
    saved: list[Checkpoint | None] = [None]
    slice_started = time.monotonic()
    slice_start_lines = resume.object_count if resume else 0
    try:
        while not export.done():
            await asyncio.wait({export}, timeout=PROGRESS_EVERY_S)
            async with pool.acquire() as conn:
                if started and not recorded_start:
                    await operations.record_start(
                        conn, op_id, started["expected"], started["at"], attempt
                    )
                    recorded_start = True
                newest = checkpoints[-1] if checkpoints else None
                if newest is not None and newest is not saved[0]:  # only the newest matters
                    saved[0] = newest
                    await operations.save_checkpoint(conn, op_id, attempt, newest.to_json())
                status = await operations.heartbeat(
                    conn, op_id, progress.object_count, progress.root_object_count,
                    progress.file_size, attempt,
                )  # fmt: skip
            if status == Status.CANCELING:
                stop_reason[0] = "cancel"
            elif status is None:  # deleted with its tenant, or handed to a newer attempt
                stop_reason[0] = "superseded"
            elif time.monotonic() > deadline:
                stop_reason[0] = "timeout"
            elif (
                (resume or recorded_start)
                # never yield before this slice wrote a line: a resumed export that must sort
                # again before its first batch would otherwise yield forever without progress
                and progress.object_count > slice_start_lines
                and await _should_yield(ctx, settings, slice_started)
            ):
                stop_reason[0] = "yield"
    except asyncio.CancelledError:  # worker shutdown: stop the thread; arq's retry resumes
        stop_reason[0] = "superseded"
        raise
    except Exception:  # the heartbeat could not be written (the database went away)
        stop_reason[0] = "superseded"
        await asyncio.wait({export})  # the thread keeps its closed parts for the retry
        if not export.cancelled():
            export.exception()  # retrieved: the heartbeat's error is the one that counts
        raise

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
            await operations.mark_canceled(conn, op_id, attempt)
            sink.sweep()
            return "canceled"
        except ExportSuperseded:
            return "superseded"
        except ExportYielded:
            status = await operations.yield_slot(conn, op_id, attempt, checkpoints[-1].to_json())
            if status == Status.CANCELING:  # a cancel arrived as it yielded: finish it here
                await operations.mark_canceled(conn, op_id)
                sink.sweep()
                return "canceled"
            if status is None:
                return "superseded"
            await ctx["redis"].enqueue_job(
                RUN_JOB, op_id, _job_id=f"{job_id(op_id)}:slice{attempt}"
            )
            log.info("operation %d yielded its slot after %d lines", op_id, progress.object_count)
            return "yielded"
        except Exception as exc:
            if database_unavailable(exc):
                raise
            code, message = _failure(exc, settings)
            if code is ErrorCode.INTERNAL_SERVER_ERROR:
                log.error("operation %d failed", op_id, exc_info=exc)
            owned = await operations.fail(
                conn, op_id, code, message, partial_url=partial, ttl=ttl, attempt=attempt,
                connections=connection_counts(the_plan, progress.connection_counts), **counts,
            )  # fmt: skip
            if owned is not None:  # still this attempt's operation: its parts can go
                sink.sweep()
            return code.value
        done = await operations.complete(
            conn, op_id, objects=result.object_count, roots=result.root_object_count,
            size=result.file_size, sha256=result.sha256,
            storage_url=url if result.location is not None else None, ttl=ttl, attempt=attempt,
            connections=connection_counts(the_plan, result.connection_counts),
        )  # fmt: skip
        if done is None:  # canceled at the very end (the cancel wins) or superseded
            if result.location is not None:
                delete(location)
            await operations.mark_canceled(conn, op_id, attempt)
            return "canceled"
        sink.sweep()  # this attempt won: orphans of crashed attempts go too
    return "completed"


async def _should_yield(ctx: dict[str, Any], settings: Settings, since: float) -> bool:
    """Time slicing, for fairness: after BULKOPS_SLICE_S, an export gives its slot back at a
    checkpoint if other jobs are waiting. One export per second yields (a Redis NX key), so a
    single waiting job does not make every running export stop at once."""
    if not settings.slice_s or time.monotonic() - since < settings.slice_s:
        return False
    redis = ctx["redis"]
    now_ms = int(time.time() * 1000)  # arq scores queued jobs by when they are due
    due = await redis.zrangebyscore(ctx.get("queue_name", QUEUE), "-inf", now_ms, start=0, num=20)
    # A job whose worker was killed keeps its in-progress key (and its queue entry) until the
    # job timeout; it is not work waiting for a slot.
    waiting = [j for j in due if not await redis.exists(in_progress_key_prefix + j.decode())]
    if not waiting:
        return False
    return bool(await redis.set("bulkops:yield-token", b"1", nx=True, px=1000))


def _failure(exc: Exception, settings: Settings) -> tuple[ErrorCode, str]:
    """The errorCode and a message that says what happened and what to do."""
    if isinstance(exc, ExportStopped):
        return ErrorCode.TIMEOUT, (
            f"the operation ran longer than the limit of {settings.max_run_s}s; "
            "the lines written so far are at partialDataUrl"
        )
    if isinstance(exc, FileTooLarge):
        return ErrorCode.FILE_TOO_LARGE, f"{exc}; narrow the query (e.g. timeRange) or split it"
    return ErrorCode.INTERNAL_SERVER_ERROR, (
        f"the export stopped: {exc.__class__.__name__}: {str(exc)[:300]}"
    )


def _resumable(op: operations.Operation, location: Location) -> Checkpoint | None:
    """The previous attempt's checkpoint, if every part it lists is still there."""
    if not op.checkpoint:
        return None
    checkpoint = Checkpoint.from_json(op.checkpoint)
    return checkpoint if parts_intact(location, checkpoint.parts) else None


async def reap_stale(ctx: dict[str, Any]) -> int:
    """Operations whose worker vanished (kill -9, a lost machine) run again, up to
    BULKOPS_MAX_ATTEMPTS; then they FAIL with INTERNAL_SERVER_ERROR. Nothing stays RUNNING
    or CANCELING forever."""
    settings: Settings = ctx["settings"]
    ttl = timedelta(seconds=settings.url_ttl_s)
    async with ctx["pool"].acquire() as conn:
        due = await operations.stale(conn, settings.stale_after_s)
        for op in due:
            if op.status == Status.CANCELING:
                await operations.mark_canceled(conn, op.id)
            elif op.status == Status.RUNNING and op.attempts - op.slices >= settings.max_attempts:
                await operations.fail(
                    conn, op.id, ErrorCode.INTERNAL_SERVER_ERROR,
                    f"the worker running this operation stopped responding {op.attempts} times; "
                    "giving up (submit it again, perhaps with a narrower timeRange)",
                    objects=op.object_count, roots=op.root_object_count, ttl=ttl,
                )  # fmt: skip
            else:  # RUNNING with a dead worker, or CREATED and never picked up
                suffix = f":retry{op.attempts}" if op.status == Status.RUNNING else ""
                await ctx["redis"].enqueue_job(RUN_JOB, op.id, _job_id=f"{job_id(op.id)}{suffix}")
                log.warning("operation %d (%s, attempt %d) had no live worker: re-enqueued",
                            op.id, op.status, op.attempts)  # fmt: skip
    return len(due)


async def maintenance(ctx: dict[str, Any]) -> None:
    await reap_stale(ctx)
    await expire_results(ctx)


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
        cron_jobs=[cron(maintenance, second=seconds, run_at_startup=True)],
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
    argv = [sys.executable, "-m", "bulkops.cli", "worker", "--processes", "1"]
    children = [subprocess.Popen(argv) for _ in range(processes)]
    stopping = False

    def forward(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for c in children:
            if c.poll() is None:
                c.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    # Supervise: a worker that dies (OOM kill, kill -9) is replaced; its operation is picked
    # up again by the reaper once its heartbeat goes stale.
    while not stopping:
        for i, c in enumerate(children):
            if c.poll() is not None and not stopping:
                log.warning("worker pid %d exited with %s; starting another", c.pid, c.returncode)
                children[i] = subprocess.Popen(argv)
        time.sleep(0.5)
    codes = [c.wait() for c in children]
    os._exit(max(codes))
