"""The bulk operation lifecycle, in PostgreSQL: submit (with admission), cancel, read, and the
worker's transitions. Every transition is one conditional UPDATE, so two actors (a cancel and
a worker, two workers) can never both win.

    CREATED ──▶ RUNNING ──▶ COMPLETED ──▶ EXPIRED
       │           │ └────▶ FAILED (errorCode; partialDataUrl when something was written)
       │           └──▶ CANCELING ──▶ CANCELED
       └──────────────────────────────▶ CANCELED   (cancelled before a worker took it)

Every transition into a terminal status (COMPLETED, FAILED, CANCELED, EXPIRED) writes a
``bulk_operations/finish`` event into the outbox *in the same statement* as its UPDATE (a
data-modifying CTE): the event exists exactly when the transition happened, so a lost race
emits nothing and a crash can never keep one without the other.
"""

from __future__ import annotations

import json
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import asyncpg

OPERATIONS_TOPIC = "bulkops.operations"
EVENTS_TOPIC = "bulkops.events"  #: lifecycle events (key = tenant id), for webhooks and others
FINISH_EVENT = "bulk_operations/finish"  #: Shopify's webhook topic, and its payload's shape
NOTIFY_CHANNEL = "bulkops_outbox"


class Status(StrEnum):
    CREATED = "CREATED"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    CANCELING = "CANCELING"
    CANCELED = "CANCELED"
    FAILED = "FAILED"
    EXPIRED = "EXPIRED"


ACTIVE = (Status.CREATED, Status.RUNNING, Status.CANCELING)


class ErrorCode(StrEnum):
    ACCESS_DENIED = "ACCESS_DENIED"
    INTERNAL_SERVER_ERROR = "INTERNAL_SERVER_ERROR"
    TIMEOUT = "TIMEOUT"
    FILE_TOO_LARGE = "FILE_TOO_LARGE"
    INVALID_QUERY = "INVALID_QUERY"


class LimitReached(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(
            f"this tenant already has {limit} bulk operation(s) in CREATED, RUNNING or CANCELING; "
            "wait for one to finish or cancel it with bulkOperationCancel"
        )
        self.limit = limit


class NotCancelable(Exception):
    pass


@dataclass(frozen=True)
class Operation:
    id: int
    tenant_id: int
    type: str
    status: Status
    query: str
    error_code: str | None
    error_message: str | None
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    updated_at: datetime
    heartbeat_at: datetime | None
    attempts: int
    object_count: int
    root_object_count: int
    expected_object_count: int | None
    file_size: int
    sha256: str | None
    storage_url: str | None
    partial: bool
    url_expires_at: datetime | None
    snapshot_at: datetime | None
    worker_id: str | None  #: host:pid of the worker running the latest attempt
    checkpoint: Any  #: where a crashed attempt resumes (engine.Checkpoint as JSON)
    slices: int  #: times it yielded its worker slot at a checkpoint (not failures)
    #: lines per connection in file order, [{"path", "type", "objectCount"}], once it ended
    connections: Any = None

    @classmethod
    def _decode(cls, values: dict[str, Any]) -> dict[str, Any]:
        for key in ("checkpoint", "connections"):
            if isinstance(values.get(key), str):
                values[key] = json.loads(values[key])
        return values

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Operation:
        values = cls._decode(dict(row))
        values["status"] = Status(values["status"])
        return cls(**values)

    @property
    def percent_complete(self) -> float | None:
        if self.status == Status.COMPLETED:
            return 100.0
        if not self.expected_object_count:
            return None if self.expected_object_count is None else 100.0
        return round(min(99.99, 100.0 * self.object_count / self.expected_object_count), 2)


# -- lifecycle events -------------------------------------------------------------------------


def _rfc3339(column: str) -> str:
    """SQL for a time formatted as the API shows it (2026-01-02T03:04:05.000000Z), or null."""
    return f"""to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""


def _finish_event(source: str, *, status: str = "e.status", where: str = "true") -> str:
    """SQL that INSERTs one ``bulk_operations/finish`` outbox row per row of ``source`` (the
    RETURNING of a transition's UPDATE). The payload is Shopify's, lowercase values and all,
    plus counts, size, sha256 and tenant; ``admin_graphql_api_id`` is bulkops.ids' global id."""
    return f"""INSERT INTO outbox (topic, key, payload)
        SELECT '{EVENTS_TOPIC}', e.tenant_id::text, jsonb_build_object(
                   'topic', '{FINISH_EVENT}',
                   'admin_graphql_api_id', encode(convert_to('BulkOperation:' || e.id, 'UTF8'), 'base64'),
                   'status', lower({status}), 'error_code', lower(e.error_code),
                   'created_at', {_rfc3339("e.created_at")},
                   'completed_at', {_rfc3339("e.completed_at")}, 'type', lower(e.type),
                   'object_count', e.object_count, 'root_object_count', e.root_object_count,
                   'file_size', e.file_size, 'sha256', e.sha256, 'tenant_id', e.tenant_id)
          FROM {source} e WHERE {where}"""


async def _wake_relay(conn: asyncpg.Connection) -> None:
    """Tell the outbox relay an event is waiting. Only a hint: the relay also polls every
    second, so a NOTIFY lost to a dropped connection delays the event but never loses it."""
    with suppress(asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
        await conn.execute(f"NOTIFY {NOTIFY_CHANNEL}")


async def submit(
    conn: asyncpg.Connection, tenant_id: int, query: str, default_limit: int
) -> Operation:
    """Admit and record a new operation, plus its outbox message, in one transaction.

    The tenant's row is locked first, so concurrent submissions of one tenant queue up and
    the count of active operations cannot be raced past the limit.
    """
    async with conn.transaction():
        limit = await conn.fetchval(
            "SELECT coalesce(max_concurrent_bulk_operations, $2) FROM tenants WHERE id = $1 FOR UPDATE",
            tenant_id,
            default_limit,
        )
        active = await conn.fetchval(
            "SELECT count(*) FROM bulk_operations WHERE tenant_id = $1 AND status = ANY($2::text[])",
            tenant_id,
            [s.value for s in ACTIVE],
        )
        if active >= limit:
            raise LimitReached(limit)
        row = await conn.fetchrow(
            "INSERT INTO bulk_operations (tenant_id, query) VALUES ($1, $2) RETURNING *",
            tenant_id,
            query,
        )
        await conn.execute(
            "INSERT INTO outbox (topic, key, payload) VALUES ($1, $2, $3::jsonb)",
            OPERATIONS_TOPIC,
            str(tenant_id),
            json.dumps({"operation_id": row["id"], "tenant_id": tenant_id}),
        )
        await conn.execute(f"NOTIFY {NOTIFY_CHANNEL}")
    return Operation.from_row(row)


async def get(conn: asyncpg.Connection, tenant_id: int, op_id: int) -> Operation | None:
    row = await conn.fetchrow(
        "SELECT * FROM bulk_operations WHERE id = $1 AND tenant_id = $2", op_id, tenant_id
    )
    return None if row is None else Operation.from_row(row)


async def load(conn: asyncpg.Connection, op_id: int) -> Operation | None:
    """Any tenant's operation: for workers, never for the API."""
    row = await conn.fetchrow("SELECT * FROM bulk_operations WHERE id = $1", op_id)
    return None if row is None else Operation.from_row(row)


async def current(conn: asyncpg.Connection, tenant_id: int) -> Operation | None:
    row = await conn.fetchrow(
        "SELECT * FROM bulk_operations WHERE tenant_id = $1 ORDER BY created_at DESC, id DESC LIMIT 1",
        tenant_id,
    )
    return None if row is None else Operation.from_row(row)


async def list_page(
    conn: asyncpg.Connection,
    tenant_id: int,
    *,
    limit: int,
    after: tuple[datetime, int] | None = None,
    statuses: list[str] | None = None,
    created_from: datetime | None = None,
    created_to: datetime | None = None,
    oldest_first: bool = False,
) -> list[Operation]:
    """Newest first (oldest first with ``oldest_first``, Shopify's ``reverse``); ``after`` is
    the (created_at, id) of the last operation already seen."""
    clauses, args = ["tenant_id = $1"], [tenant_id]

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    if after is not None:
        beyond = ">" if oldest_first else "<"
        clauses.append(f"(created_at, id) {beyond} ({arg(after[0])}, {arg(after[1])})")
    if statuses:
        clauses.append(f"status = ANY({arg(statuses)}::text[])")
    if created_from is not None:
        clauses.append(f"created_at >= {arg(created_from)}")
    if created_to is not None:
        clauses.append(f"created_at < {arg(created_to)}")
    order = "ASC" if oldest_first else "DESC"
    rows = await conn.fetch(
        f"SELECT * FROM bulk_operations WHERE {' AND '.join(clauses)} "
        f"ORDER BY created_at {order}, id {order} LIMIT {int(limit)}",
        *args,
    )
    return [Operation.from_row(r) for r in rows]


async def cancel(conn: asyncpg.Connection, tenant_id: int, op_id: int) -> Operation | None:
    """CREATED -> CANCELED at once; RUNNING -> CANCELING (the worker finishes it). Returns None
    if there is no such operation for this tenant; raises NotCancelable if it has ended."""
    row = await conn.fetchrow(
        f"""WITH u AS (
            UPDATE bulk_operations
              SET status = CASE status WHEN 'CREATED' THEN 'CANCELED' ELSE 'CANCELING' END,
                  completed_at = CASE status WHEN 'CREATED' THEN clock_timestamp() END,
                  updated_at = clock_timestamp()
            WHERE id = $1 AND tenant_id = $2 AND status IN ('CREATED', 'RUNNING')
        RETURNING *), ev AS ({_finish_event("u", where="e.status = 'CANCELED'")})
        SELECT * FROM u""",
        op_id,
        tenant_id,
    )
    if row is not None:
        if row["status"] == Status.CANCELED:
            await _wake_relay(conn)
        return Operation.from_row(row)
    op = await get(conn, tenant_id, op_id)
    if op is None:
        return None
    if op.status == Status.CANCELING:
        return op  # already on its way: cancelling twice is harmless
    raise NotCancelable(
        f"the operation is {op.status.value}; only CREATED or RUNNING operations can be canceled"
    )


# -- the worker's transitions --------------------------------------------------------------


async def start(conn: asyncpg.Connection, op_id: int, worker_id: str) -> Operation | None:
    """Take the operation for running (again, after a crash); None if it must not run."""
    row = await conn.fetchrow(
        """UPDATE bulk_operations
              SET status = 'RUNNING', started_at = coalesce(started_at, clock_timestamp()),
                  heartbeat_at = clock_timestamp(), updated_at = clock_timestamp(),
                  attempts = attempts + 1, worker_id = $2
            WHERE id = $1 AND status IN ('CREATED', 'RUNNING')
        RETURNING *""",
        op_id,
        worker_id,
    )
    return None if row is None else Operation.from_row(row)


# Transitions made by a worker carry its ``attempt``: if the reaper has handed the operation
# to a newer attempt (the worker looked dead), the old worker's writes match no row.


async def record_start(
    conn: asyncpg.Connection, op_id: int, expected: int, snapshot_at: datetime, attempt: int
) -> None:
    await conn.execute(
        """UPDATE bulk_operations SET expected_object_count = $2, snapshot_at = $3
            WHERE id = $1 AND attempts = $4""",
        op_id,
        expected,
        snapshot_at,
        attempt,
    )


async def save_checkpoint(
    conn: asyncpg.Connection, op_id: int, attempt: int, checkpoint: dict[str, Any]
) -> None:
    await conn.execute(
        "UPDATE bulk_operations SET checkpoint = $2::jsonb WHERE id = $1 AND attempts = $3",
        op_id,
        json.dumps(checkpoint),
        attempt,
    )


async def yield_slot(
    conn: asyncpg.Connection, op_id: int, attempt: int, checkpoint: dict[str, Any]
) -> Status | None:
    """Record that the attempt stopped at ``checkpoint`` to give its slot to waiting work.
    The heartbeat is pushed ahead by a grace period so the reaper leaves the queued job alone.
    Returns the status (None if the operation is no longer this attempt's)."""
    status = await conn.fetchval(
        """UPDATE bulk_operations
              SET checkpoint = $3::jsonb, slices = slices + 1,
                  heartbeat_at = clock_timestamp() + interval '5 minutes', updated_at = clock_timestamp()
            WHERE id = $1 AND attempts = $2 RETURNING status""",
        op_id,
        attempt,
        json.dumps(checkpoint),
    )
    return None if status is None else Status(status)


async def heartbeat(
    conn: asyncpg.Connection, op_id: int, objects: int, roots: int, size: int, attempt: int
) -> Status | None:
    """Publish progress and prove this worker is alive; return the status, so the worker sees
    a cancel request (None: the operation was deleted or taken over by a newer attempt)."""
    status = await conn.fetchval(
        """UPDATE bulk_operations
              SET object_count = $2, root_object_count = $3, file_size = $4,
                  heartbeat_at = clock_timestamp(), updated_at = clock_timestamp()
            WHERE id = $1 AND attempts = $5 RETURNING status""",
        op_id,
        objects,
        roots,
        size,
        attempt,
    )
    return None if status is None else Status(status)


async def complete(
    conn: asyncpg.Connection, op_id: int, *, objects: int, roots: int, size: int,
    sha256: str | None, storage_url: str | None, ttl: timedelta, attempt: int,
    connections: list[dict[str, Any]] | None = None,
) -> Operation | None:  # fmt: skip
    row = await conn.fetchrow(
        f"""WITH u AS (
            UPDATE bulk_operations
              SET status = 'COMPLETED', completed_at = clock_timestamp(), updated_at = clock_timestamp(),
                  object_count = $2, root_object_count = $3, file_size = $4, sha256 = $5,
                  storage_url = $6, partial = false, checkpoint = NULL, connections = $9::jsonb,
                  url_expires_at = CASE WHEN $6::text IS NULL THEN NULL ELSE clock_timestamp() + $7::interval END
            WHERE id = $1 AND status = 'RUNNING' AND attempts = $8
        RETURNING *), ev AS ({_finish_event("u")})
        SELECT * FROM u""",
        op_id, objects, roots, size, sha256, storage_url, ttl, attempt,
        None if connections is None else json.dumps(connections),
    )  # fmt: skip
    if row is None:
        return None
    await _wake_relay(conn)
    return Operation.from_row(row)


async def fail(
    conn: asyncpg.Connection, op_id: int, code: ErrorCode, message: str, *, objects: int = 0,
    roots: int = 0, size: int = 0, sha256: str | None = None, partial_url: str | None = None,
    ttl: timedelta, attempt: int | None = None, connections: list[dict[str, Any]] | None = None,
) -> Operation | None:  # fmt: skip
    """FAILED; ``attempt`` fences a worker, None is the reaper's final word."""
    row = await conn.fetchrow(
        f"""WITH u AS (
            UPDATE bulk_operations
              SET status = 'FAILED', completed_at = clock_timestamp(), updated_at = clock_timestamp(),
                  error_code = $2, error_message = $3, object_count = $4, root_object_count = $5,
                  file_size = $6, sha256 = $7, storage_url = $8, partial = $8::text IS NOT NULL,
                  url_expires_at = CASE WHEN $8::text IS NULL THEN NULL ELSE clock_timestamp() + $9::interval END,
                  connections = CASE WHEN $8::text IS NULL THEN NULL ELSE $11::jsonb END
            WHERE id = $1 AND status IN ('CREATED', 'RUNNING', 'CANCELING')
              AND ($10::int IS NULL OR attempts = $10)
        RETURNING *), ev AS ({_finish_event("u")})
        SELECT * FROM u""",
        op_id, code.value, message, objects, roots, size, sha256, partial_url, ttl, attempt,
        None if connections is None else json.dumps(connections),
    )  # fmt: skip
    if row is None:
        return None
    await _wake_relay(conn)
    return Operation.from_row(row)


async def mark_canceled(conn: asyncpg.Connection, op_id: int, attempt: int | None = None) -> None:
    result = await conn.execute(
        f"""WITH u AS (
            UPDATE bulk_operations
              SET status = 'CANCELED', completed_at = clock_timestamp(), updated_at = clock_timestamp(),
                  storage_url = NULL
            WHERE id = $1 AND status IN ('CREATED', 'RUNNING', 'CANCELING')
              AND ($2::int IS NULL OR attempts = $2)
        RETURNING *)
        {_finish_event("u")}""",
        op_id,
        attempt,
    )
    if result != "INSERT 0 0":  # the UPDATE changed the row, so its event was written
        await _wake_relay(conn)


async def stale(
    conn: asyncpg.Connection, stale_after_s: float, limit: int = 100
) -> list[Operation]:
    """Operations whose worker vanished (no heartbeat for ``stale_after_s``), and CREATED ones
    that no worker picked up in that time (a job lost with Redis, say). Each is claimed by
    bumping its heartbeat, so concurrent reapers never act on the same one twice."""
    rows = await conn.fetch(
        """WITH due AS (
               SELECT id FROM bulk_operations
                WHERE (status IN ('RUNNING', 'CANCELING')
                       AND heartbeat_at < clock_timestamp() - make_interval(secs => $1))
                   OR (status = 'CREATED'
                       AND coalesce(heartbeat_at, created_at) < clock_timestamp() - make_interval(secs => $1))
                ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED)
           UPDATE bulk_operations b SET heartbeat_at = clock_timestamp()
             FROM due WHERE b.id = due.id
           RETURNING b.*""",
        float(stale_after_s),
        limit,
    )
    return [Operation.from_row(r) for r in rows]


async def expire_due(conn: asyncpg.Connection, limit: int = 100) -> list[Operation]:
    """Claim results whose URL lifetime is over: COMPLETED -> EXPIRED, url dropped. The caller
    deletes the objects (claimed rows are returned as they were before the update)."""
    rows = await conn.fetch(
        f"""WITH due AS (
               SELECT * FROM bulk_operations
                WHERE storage_url IS NOT NULL AND url_expires_at <= clock_timestamp()
                ORDER BY url_expires_at LIMIT $1 FOR UPDATE SKIP LOCKED),
           u AS (
           UPDATE bulk_operations b
              SET status = CASE WHEN b.status = 'COMPLETED' THEN 'EXPIRED' ELSE b.status END,
                  storage_url = NULL, updated_at = clock_timestamp()
             FROM due WHERE b.id = due.id
           RETURNING due.*),
           -- a COMPLETED row became EXPIRED (a FAILED one only lost its partial data)
           ev AS ({_finish_event("u", status="'EXPIRED'", where="e.status = 'COMPLETED'")})
           SELECT * FROM u""",
        limit,
    )
    if any(r["status"] == Status.COMPLETED for r in rows):
        await _wake_relay(conn)
    return [Operation.from_row(r) for r in rows]
