"""Webhooks: ``bulk_operations/finish``, POSTed to a tenant's URL with the result in it.

Shopify's webhook carries no URL, so its clients must query again. This one carries what a
client needs, as Stripe's and Saleor's do: Shopify's payload plus counts, size and sha256, and
for a COMPLETED operation a freshly signed ``url`` with its ``url_expires_at``.

The notifier is a Kafka consumer group on ``bulkops.events``, which the outbox fills in the
same statement as every terminal transition; it runs inside ``bulkops dispatcher``.

* Each request is signed: ``X-Bulkops-Signature: sha256=<hex HMAC-SHA256(secret, raw body)>``.
* It is tried up to ``1 + len(RETRY_DELAYS_S)`` times, then logged and given up on.
* Offsets are committed only after every event of a batch was delivered or given up on, so a
  crash re-delivers: delivery is at least once, and ``X-Bulkops-Event-Id`` (operation and
  status, the same for every re-delivery of one event) is what receivers dedupe by.

Neither the tenant's secret nor a result link (its signature is the credential) is logged.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import secrets
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from bulkops import ids, operations
from bulkops.config import Settings
from bulkops.intake import _sleep_unless, group_consumer
from bulkops.links import result_url
from bulkops.operations import EVENTS_TOPIC, FINISH_EVENT
from bulkops.signing import secret_key
from bulkops.tenants import tenant_id_by_name

log = logging.getLogger("bulkops.webhooks")

WEBHOOK_GROUP = "bulkops-webhooks"
RETRY_DELAYS_S = (0.5, 1.0, 2.0)  #: waits before the 2nd, 3rd and 4th try
TIMEOUT_S = 5.0  #: per request: a receiver should answer at once and work afterwards
MAX_URL_CHARS = 2000
BATCH_EVENTS = 50  #: delivered concurrently, so one slow receiver holds up at most a batch


class WebhookError(ValueError):
    """A webhook setting that cannot be used; the message is safe to show."""


def validate_url(url: str) -> str:
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:  # e.g. an unbalanced IPv6 bracket
        host = None
        parts = None
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not host
        or len(url) > MAX_URL_CHARS
        or any(c.isspace() for c in url)
    ):
        raise WebhookError(
            f"the webhook URL must be http:// or https:// with a host, e.g. "
            f"https://example.com/hooks/bulkops; got {url[:100]!r}"
        )
    return url


async def configure(conn: asyncpg.Connection, tenant: str, url: str | None) -> dict[str, Any]:
    """Set (``url``) or remove (None) tenant ``tenant``'s webhook. The signing secret is made
    when a URL is first set and kept when it changes, so receivers need not be updated."""
    if url is not None:
        validate_url(url)
    tenant_id = await tenant_id_by_name(conn, tenant)
    if url is None:
        await conn.execute(
            "UPDATE tenants SET webhook_url = NULL, webhook_secret = NULL WHERE id = $1", tenant_id
        )
        return {"tenant": tenant, "webhook_url": None, "secret": None}
    row = await conn.fetchrow(
        """UPDATE tenants SET webhook_url = $2, webhook_secret = coalesce(webhook_secret, $3)
            WHERE id = $1 RETURNING webhook_url, webhook_secret""",
        tenant_id,
        url,
        secrets.token_urlsafe(32),
    )
    return {"tenant": tenant, "webhook_url": row["webhook_url"], "secret": row["webhook_secret"]}


def signature(secret: str, body: bytes) -> str:
    """The ``X-Bulkops-Signature`` header of ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _rfc3339(value: datetime) -> str:
    """As the API shows times (and as the outbox payload's SQL writes them)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def deliver_webhooks(settings: Settings, stop: asyncio.Event) -> None:
    """Consume ``bulkops.events`` and POST each to its tenant's webhook until ``stop`` is
    set; survives Kafka and PostgreSQL outages (an undelivered batch is consumed again)."""
    link_key = secret_key(settings)
    pool: asyncpg.Pool | None = None
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT_S) as http:
            while not stop.is_set():
                consumer: AIOKafkaConsumer | None = None
                try:
                    pool = pool or await asyncpg.create_pool(
                        settings.database_url, min_size=1, max_size=4
                    )
                    consumer = group_consumer(settings, EVENTS_TOPIC, WEBHOOK_GROUP)
                    await consumer.start()
                    while not stop.is_set():
                        batches = await consumer.getmany(timeout_ms=500, max_records=BATCH_EVENTS)
                        messages = [m for ms in batches.values() for m in ms]
                        if not messages:
                            continue
                        await asyncio.gather(*(
                            _notify(pool, http, settings, link_key, stop, m.value, f"{m.partition}-{m.offset}")
                            for m in messages
                        ))  # fmt: skip
                        if stop.is_set():  # a delivery may be cut short: the next one redoes it
                            break
                        await consumer.commit(
                            {
                                TopicPartition(tp.topic, tp.partition): ms[-1].offset + 1
                                for tp, ms in batches.items()
                                if ms
                            }
                        )
                except (
                    OSError, KafkaError, ConnectionError, asyncpg.PostgresError, asyncpg.InterfaceError,
                ) as exc:  # fmt: skip
                    log.warning("webhooks: %s: %s; retrying", exc.__class__.__name__, exc)
                    await _sleep_unless(stop, 1.0)
                finally:
                    if consumer is not None:
                        with suppress(Exception):
                            await consumer.stop()
    finally:  # also after an error the supervisor restarts us from: its connections may be
        if pool is not None:  # mid-operation, so they are dropped rather than reused
            pool.terminate()


async def _notify(
    pool: asyncpg.Pool, http: httpx.AsyncClient, settings: Settings, link_key: bytes,
    stop: asyncio.Event, raw: bytes, where: str,
) -> None:  # fmt: skip
    """Deliver one event, if its tenant has a webhook; ``where`` (partition-offset) is for logs."""
    try:
        event = json.loads(raw)
        _, op_id = ids.decode(event["admin_graphql_api_id"], "BulkOperation")
        tenant_id, status = int(event["tenant_id"]), str(event["status"])
    except (ValueError, KeyError, TypeError):
        log.error("dropping malformed event %s on %s: %r", where, EVENTS_TOPIC, raw[:200])
        return
    async with pool.acquire() as conn:
        hook = await conn.fetchrow(
            "SELECT webhook_url, webhook_secret FROM tenants WHERE id = $1", tenant_id
        )
        if hook is None or hook["webhook_url"] is None:
            return
        body = dict(event)
        if status == operations.Status.COMPLETED.lower():  # signed now, so valid for longest
            op = await operations.load(conn, op_id)
            body["url"] = body["url_expires_at"] = None
            if op is not None and op.tenant_id == tenant_id and op.url_expires_at is not None:
                body["url"] = result_url(op, settings, link_key)
                if body["url"] is not None:
                    body["url_expires_at"] = _rfc3339(op.url_expires_at)
    content = json.dumps(body, separators=(",", ":")).encode()
    event_id = f"{op_id}-{status}"
    headers = {
        "Content-Type": "application/json",
        "X-Bulkops-Topic": FINISH_EVENT,
        "X-Bulkops-Event-Id": event_id,
        "X-Bulkops-Signature": signature(hook["webhook_secret"], content),
    }
    await _post(http, hook["webhook_url"], content, headers, stop, f"{event_id} ({where})")


async def _post(
    http: httpx.AsyncClient, url: str, content: bytes, headers: dict[str, str],
    stop: asyncio.Event, what: str,
) -> bool:  # fmt: skip
    """POST with bounded retries; True once a 2xx came back, False if given up (or stopped)."""
    host = httpx.URL(url).host  # never the whole URL: its path or query may hold a credential
    tries = 1 + len(RETRY_DELAYS_S)
    for attempt, delay_s in enumerate((0.0, *RETRY_DELAYS_S), start=1):
        if delay_s:
            await _sleep_unless(stop, delay_s)
            if stop.is_set():
                return False
        try:
            resp = await http.post(url, content=content, headers=headers)
        except httpx.HTTPError as exc:
            reason = exc.__class__.__name__
        else:
            if resp.is_success:
                log.info("webhook %s delivered to %s (try %d)", what, host, attempt)
                return True
            reason = f"HTTP {resp.status_code}"
        log.warning("webhook %s to %s: try %d of %d failed: %s", what, host, attempt, tries, reason)
    log.error("webhook %s to %s: giving up after %d tries", what, host, tries)
    return False
