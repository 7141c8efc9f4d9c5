"""Durable intake: transactional outbox -> Kafka -> dispatcher -> arq.

* The **relay** publishes outbox rows to Kafka (acks=all, idempotent producer), then marks
  them published. If Kafka is down the rows wait in PostgreSQL and go out once it is back, so
  an accepted operation is never lost. A crash between send and mark re-sends: consumers
  tolerate duplicates (arq job ids, conditional state transitions).
* The **dispatcher** is a Kafka consumer group. It enqueues each operation into arq with
  ``_job_id = bulkop:<id>`` (idempotent) and commits the offset only after the enqueue, so a
  crash re-delivers rather than drops. It never runs an export itself: a long job in a Kafka
  consumer would blow ``max.poll.interval.ms`` and trigger rebalances.
* The **webhook notifier** (``bulkops.webhooks``) consumes the lifecycle events the outbox
  relays to ``bulkops.events`` and POSTs them to the tenants' webhook URLs.

``bulkops dispatcher`` runs the three loops in one process; run several for availability.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from contextlib import suppress

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from redis.exceptions import RedisError

from bulkops.config import Settings
from bulkops.operations import EVENTS_TOPIC, NOTIFY_CHANNEL, OPERATIONS_TOPIC

log = logging.getLogger("bulkops.intake")

DISPATCHER_GROUP = "bulkops-dispatcher"
PARTITIONS = 6
RUN_JOB = "run_bulk_operation"


def job_id(op_id: int) -> str:
    return f"bulkop:{op_id}"


def redis_settings(settings: Settings) -> RedisSettings:
    return RedisSettings.from_dsn(settings.redis_url)


async def ensure_topics(settings: Settings) -> None:
    """Create the project's topics if missing (error 36 = already exists is fine)."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=10_000
    )
    await admin.start()
    try:
        resp = await admin.create_topics(
            [
                NewTopic(t, num_partitions=PARTITIONS, replication_factor=1)
                for t in (OPERATIONS_TOPIC, EVENTS_TOPIC)
            ]
        )
        for topic, code, *_ in resp.topic_errors:
            if code not in (0, 36):
                raise RuntimeError(f"cannot create Kafka topic {topic}: error {code}")
    finally:
        await admin.close()


#: how often consumers refresh topic metadata (aiokafka's default: 5 min). A consumer that
#: joins its group while Kafka is still electing partition leaders (just after a restart) is
#: assigned no partitions, and only a metadata change makes it rejoin: with the default, intake
#: and webhooks stalled for minutes after a Kafka restart (seen in a full test run).
METADATA_MAX_AGE_MS = 5_000


def group_consumer(settings: Settings, topic: str, group_id: str) -> AIOKafkaConsumer:
    """A consumer in ``group_id`` that commits by hand, only after its work is done."""
    return AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        metadata_max_age_ms=METADATA_MAX_AGE_MS,
    )


async def relay_outbox(settings: Settings, stop: asyncio.Event) -> None:
    """Publish pending outbox rows until ``stop`` is set; survives Kafka and Postgres outages."""
    wake = asyncio.Event()
    while not stop.is_set():
        listener: asyncpg.Connection | None = None
        producer: AIOKafkaProducer | None = None
        try:
            listener = await asyncpg.connect(settings.database_url)
            await listener.add_listener(NOTIFY_CHANNEL, lambda *_: wake.set())
            producer = AIOKafkaProducer(
                bootstrap_servers=settings.kafka_bootstrap, enable_idempotence=True,
                request_timeout_ms=10_000,
            )  # fmt: skip
            await producer.start()
            conn = await asyncpg.connect(settings.database_url)
            try:
                while not stop.is_set():
                    sent = await _publish_pending(conn, producer)
                    if sent:
                        continue
                    wake.clear()
                    with suppress(TimeoutError):
                        await asyncio.wait_for(wake.wait(), timeout=1.0)  # NOTIFY, or poll
            finally:
                await conn.close()
        except (OSError, KafkaError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("outbox relay: %s: %s; retrying", exc.__class__.__name__, exc)
            await _sleep_unless(stop, 1.0)
        finally:
            if producer is not None:
                with suppress(Exception):
                    await producer.stop()
            if listener is not None:
                with suppress(Exception):
                    await listener.close()


async def _publish_pending(conn: asyncpg.Connection, producer: AIOKafkaProducer) -> int:
    async with conn.transaction():
        rows = await conn.fetch(
            """SELECT id, topic, key, payload FROM outbox WHERE published_at IS NULL
                ORDER BY id LIMIT 100 FOR UPDATE SKIP LOCKED"""
        )
        if not rows:
            return 0
        futures = [
            await producer.send(r["topic"], r["payload"].encode(), key=r["key"].encode())
            for r in rows
        ]
        await asyncio.gather(*futures)  # every message acknowledged by the broker
        await conn.execute(
            "UPDATE outbox SET published_at = clock_timestamp() WHERE id = ANY($1::bigint[])",
            [r["id"] for r in rows],
        )
    log.info("published %d outbox message(s)", len(rows))
    return len(rows)


async def dispatch(settings: Settings, stop: asyncio.Event) -> None:
    """Consume operations from Kafka and hand them to arq until ``stop`` is set."""
    arq: ArqRedis | None = None
    while not stop.is_set():
        consumer: AIOKafkaConsumer | None = None
        try:
            arq = arq or await create_pool(redis_settings(settings))
            consumer = group_consumer(settings, OPERATIONS_TOPIC, DISPATCHER_GROUP)
            await consumer.start()
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=500, max_records=100)
                for tp, messages in batches.items():
                    for msg in messages:
                        await _hand_off(arq, msg.value)
                        await consumer.commit(
                            {TopicPartition(tp.topic, tp.partition): msg.offset + 1}
                        )
        except (OSError, KafkaError, ConnectionError, RedisError) as exc:
            log.warning("dispatcher: %s: %s; retrying", exc.__class__.__name__, exc)
            await _sleep_unless(stop, 1.0)
        finally:
            if consumer is not None:
                with suppress(Exception):
                    await consumer.stop()
    if arq is not None:
        await arq.aclose()


async def _hand_off(arq: ArqRedis, raw: bytes) -> None:
    try:
        op_id = int(json.loads(raw)["operation_id"])
    except (ValueError, KeyError, TypeError):
        log.error("dropping malformed message on %s: %r", OPERATIONS_TOPIC, raw[:200])
        return
    job = await arq.enqueue_job(RUN_JOB, op_id, _job_id=job_id(op_id))
    log.info("operation %d %s", op_id, "enqueued" if job else "already enqueued")


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


async def run_dispatcher(settings: Settings) -> None:
    """The ``bulkops dispatcher`` process: topics, relay, consumer and webhook notifier, until
    SIGTERM/SIGINT."""
    import signal

    from bulkops.webhooks import deliver_webhooks  # it imports this module

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    while not stop.is_set():
        try:
            await ensure_topics(settings)
            break
        except (OSError, KafkaError, RuntimeError) as exc:
            log.warning("waiting for Kafka to create topics: %s", exc)
            await _sleep_unless(stop, 1.0)
    await asyncio.gather(
        supervise("outbox relay", relay_outbox, settings, stop),
        supervise("dispatcher", dispatch, settings, stop),
        supervise("webhooks", deliver_webhooks, settings, stop),
    )


async def supervise(
    name: str, component: Callable[[Settings, asyncio.Event], Awaitable[None]],
    settings: Settings, stop: asyncio.Event,
) -> None:  # fmt: skip
    """Run ``component`` until ``stop``, restarting it after any error it let through.

    Each component retries the outages it knows (Kafka, PostgreSQL, Redis going away); this
    catches the rest, e.g. asyncpg's InternalClientError from a pooled connection broken by a
    database restart, which once ended the whole dispatcher and with it intake and webhooks."""
    while not stop.is_set():
        try:
            await component(settings, stop)
            return
        except Exception:
            log.exception("%s stopped on an unexpected error; restarting it in 1 s", name)
            await _sleep_unless(stop, 1.0)
