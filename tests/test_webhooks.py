"""Lifecycle events and webhooks, end to end on the real services: a terminal transition's
outbox row -> Kafka bulkops.events -> the dispatcher's notifier -> a real HTTP receiver."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer

from bulkops import ids
from bulkops.config import Settings
from bulkops.operations import EVENTS_TOPIC
from bulkops.seed import SeedPlan
from tests.conftest import BridgeProcess, bulkops_cli, seeded_tenants
from tests.reference import all_fields_query
from tests.test_bulk import CANCEL, Api, download

SMALL = "{ streamsConnection { nodes { id name } } }"
PAYLOAD_KEYS = {
    "topic", "admin_graphql_api_id", "status", "error_code", "created_at", "completed_at",
    "type", "object_count", "root_object_count", "file_size", "sha256", "tenant_id",
}  # fmt: skip


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes
    answered: int
    at: float  #: time.monotonic() when it arrived

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A real HTTP server on 127.0.0.1 that records every POST; ``script[path]`` is the list
    of statuses to answer next on that path (then 200)."""

    url: str = ""
    requests: list[Request] = field(default_factory=list)
    script: dict[str, list[int]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def for_op(self, op_id: str) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if r.json.get("admin_graphql_api_id") == op_id]

    async def wait_for(
        self, op_id: str, count: int, timeout_s: float = 30, settle_s: float = 1.5
    ) -> list[Request]:
        """The requests about ``op_id`` once there are ``count``, after ``settle_s`` more
        seconds to catch any extra (duplicate) delivery."""
        deadline = time.monotonic() + timeout_s
        while len(self.for_op(op_id)) < count:
            assert time.monotonic() < deadline, f"{len(self.for_op(op_id))} of {count} arrived"
            await asyncio.sleep(0.1)
        await asyncio.sleep(settle_s)
        return self.for_op(op_id)


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    rec = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with rec.lock:
                queued = rec.script.get(self.path, [])
                status = queued.pop(0) if queued else 200
                rec.requests.append(
                    Request(self.path, dict(self.headers), body, status, time.monotonic())
                )
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    rec.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
async def tenants(settings: Settings) -> AsyncIterator[dict[str, Any]]:
    small = SeedPlan(streams=3, sessions=20, clips=0, audit_events=0, usage_records=0)
    plans = {
        "hooked": SeedPlan(streams=3, sessions=30_000, clips=0, audit_events=0, usage_records=0),
        "flaky": small,
        "plain": small,
    }
    async with seeded_tenants(settings, "hooks", plans) as out:
        yield out


async def set_webhook(db: asyncpg.Connection, tenant_id: int, *args: str) -> dict[str, Any]:
    """``bulkops tenants webhook NAME ARGS...``, as an operator runs it."""
    name = await db.fetchval("SELECT name FROM tenants WHERE id = $1", tenant_id)
    result = await asyncio.to_thread(bulkops_cli, "tenants", "webhook", name, *args)
    return json.loads(result.stdout)


async def kafka_event(settings: Settings, op_id: str, timeout_s: float = 20) -> dict[str, Any]:
    """The bulk_operations/finish event of ``op_id`` on bulkops.events, read from the start."""
    consumer = AIOKafkaConsumer(
        EVENTS_TOPIC, bootstrap_servers=settings.kafka_bootstrap, group_id=None,
        auto_offset_reset="earliest", enable_auto_commit=False,
    )  # fmt: skip
    await consumer.start()
    try:
        deadline = time.monotonic() + timeout_s
        found: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for messages in batches.values():
                for msg in messages:
                    event = json.loads(msg.value)
                    if event["admin_graphql_api_id"] == op_id:
                        assert msg.key == str(event["tenant_id"]).encode()
                        found.append(event)
            if found and not batches:  # caught up
                assert len(found) == 1, found
                return found[0]
        raise AssertionError(f"no event for {op_id} on {EVENTS_TOPIC} after {timeout_s}s")
    finally:
        await consumer.stop()


def check_signature(request: Request, secret: str) -> None:
    want = "sha256=" + hmac.new(secret.encode(), request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request.headers["X-Bulkops-Signature"], want)


async def test_completed_operation_is_delivered_once_with_its_result(
    pipeline: BridgeProcess, tenants: dict[str, Any], receiver: Receiver,
    db: asyncpg.Connection, settings: Settings,
) -> None:  # fmt: skip
    t = tenants["hooked"]
    first = await set_webhook(db, t["id"], f"{receiver.url}/elsewhere")
    hook = await set_webhook(db, t["id"], f"{receiver.url}/hooked")
    assert hook["webhook_url"] == f"{receiver.url}/hooked" and hook["secret"] == first["secret"]
    assert len(hook["secret"]) >= 40  # made once, kept when the URL changes
    api = Api(pipeline, t["token"])
    op = await api.wait((await api.run(SMALL))["bulkOperation"]["id"])
    assert op["status"] == "COMPLETED" and op["url"], op

    (delivery,) = await receiver.wait_for(op["id"], 1)  # exactly one
    assert delivery.path == "/hooked" and delivery.answered == 200
    assert delivery.headers["Content-Type"] == "application/json"
    assert delivery.headers["X-Bulkops-Topic"] == "bulk_operations/finish"
    _, pk = ids.decode(op["id"], "BulkOperation")
    assert delivery.headers["X-Bulkops-Event-Id"] == f"{pk}-completed"
    check_signature(delivery, hook["secret"])
    body = delivery.json
    assert set(body) == PAYLOAD_KEYS | {"url", "url_expires_at"}
    assert {k: body[k] for k in PAYLOAD_KEYS} == {
        "topic": "bulk_operations/finish", "admin_graphql_api_id": op["id"],
        "status": "completed", "error_code": None, "created_at": op["createdAt"],
        "completed_at": op["completedAt"], "type": "query", "object_count": op["objectCount"],
        "root_object_count": op["rootObjectCount"], "file_size": op["fileSize"],
        "sha256": op["sha256"], "tenant_id": t["id"],
    }  # fmt: skip
    expires = datetime.fromisoformat(body["url_expires_at"])
    assert expires > datetime.now(UTC)
    data = await download(body["url"])  # the webhook alone is enough to fetch the result
    assert len(data) == op["fileSize"] and hashlib.sha256(data).hexdigest() == op["sha256"]

    on_kafka = await kafka_event(settings, op["id"])
    assert on_kafka == {k: body[k] for k in PAYLOAD_KEYS}  # the webhook adds only the link


async def test_canceled_operation_is_delivered(
    pipeline: BridgeProcess, tenants: dict[str, Any], receiver: Receiver,
    db: asyncpg.Connection, settings: Settings,
) -> None:  # fmt: skip
    t = tenants["hooked"]
    hook = await set_webhook(db, t["id"], f"{receiver.url}/hooked")
    api = Api(pipeline, t["token"])
    op_id = (await api.run(all_fields_query("ViewerSession")))["bulkOperation"]["id"]
    await api(CANCEL, id=op_id)  # at once: it is CREATED or just RUNNING (30,000 lines)
    op = await api.wait(op_id)
    assert op["status"] == "CANCELED", op
    (delivery,) = await receiver.wait_for(op_id, 1)
    check_signature(delivery, hook["secret"])
    body = delivery.json
    assert set(body) == PAYLOAD_KEYS  # no link: there is no result
    assert (body["status"], body["error_code"], body["completed_at"]) == (
        "canceled", None, op["completedAt"],
    )  # fmt: skip
    assert delivery.headers["X-Bulkops-Event-Id"].endswith("-canceled")
    assert (await kafka_event(settings, op_id))["status"] == "canceled"


async def test_expiry_is_announced(
    pipeline: BridgeProcess, tenants: dict[str, Any], receiver: Receiver,
    db: asyncpg.Connection, settings: Settings,
) -> None:  # fmt: skip
    t = tenants["hooked"]
    await set_webhook(db, t["id"], f"{receiver.url}/hooked")
    api = Api(pipeline, t["token"])
    op = await api.wait((await api.run(SMALL))["bulkOperation"]["id"])
    _, pk = ids.decode(op["id"], "BulkOperation")
    await db.execute(
        "UPDATE bulk_operations SET url_expires_at = now() - interval '1 second' WHERE id = $1", pk
    )
    await api.wait(op["id"], {"EXPIRED"}, timeout_s=15)  # the arq cron runs every second here
    completed, expired = await receiver.wait_for(op["id"], 2)
    assert completed.json["status"] == "completed" and expired.json["status"] == "expired"
    assert expired.headers["X-Bulkops-Event-Id"] == f"{pk}-expired"
    assert set(expired.json) == PAYLOAD_KEYS and expired.json["sha256"] == op["sha256"]


async def test_a_failing_receiver_is_retried_with_backoff(
    pipeline: BridgeProcess, tenants: dict[str, Any], receiver: Receiver, db: asyncpg.Connection
) -> None:
    t = tenants["flaky"]
    hook = await set_webhook(db, t["id"], f"{receiver.url}/flaky")
    with receiver.lock:
        receiver.script["/flaky"] = [500, 500]  # then 200
    api = Api(pipeline, t["token"])
    op = await api.wait((await api.run(SMALL))["bulkOperation"]["id"])
    assert op["status"] == "COMPLETED"
    tries = await receiver.wait_for(op["id"], 3, settle_s=3)
    assert [r.answered for r in tries] == [500, 500, 200]
    assert len({r.headers["X-Bulkops-Event-Id"] for r in tries}) == 1  # one event, three tries
    assert len({r.body for r in tries}) == 1
    for r in tries:
        check_signature(r, hook["secret"])
    gaps = [b.at - a.at for a, b in itertools.pairwise(tries)]
    assert gaps[0] >= 0.45 and gaps[1] >= 0.95, gaps  # backoff: 0.5 s, then 1 s


async def test_a_receiver_that_keeps_failing_is_given_up_on(
    pipeline: BridgeProcess, tenants: dict[str, Any], receiver: Receiver, db: asyncpg.Connection
) -> None:
    t = tenants["flaky"]
    await set_webhook(db, t["id"], f"{receiver.url}/down")
    with receiver.lock:
        receiver.script["/down"] = [503] * 4
    api = Api(pipeline, t["token"])
    lost = await api.wait((await api.run(SMALL))["bulkOperation"]["id"])
    tries = await receiver.wait_for(lost["id"], 4, settle_s=3)
    assert [r.answered for r in tries] == [503] * 4  # bounded: 4 tries, then no more
    # the notifier moved on (its offset committed): the tenant's next event is delivered
    after = await api.wait((await api.run(SMALL))["bulkOperation"]["id"])
    assert [r.answered for r in await receiver.wait_for(after["id"], 1)] == [200]
    assert len(receiver.for_op(lost["id"])) == 4


async def test_no_webhook_no_delivery(
    pipeline: BridgeProcess, tenants: dict[str, Any], receiver: Receiver,
    db: asyncpg.Connection, settings: Settings,
) -> None:  # fmt: skip
    t = tenants["plain"]
    await set_webhook(db, t["id"], f"{receiver.url}/plain")
    cleared = await set_webhook(db, t["id"], "--clear")
    assert cleared["webhook_url"] is None and cleared["secret"] is None
    api = Api(pipeline, t["token"])
    op = await api.wait((await api.run(SMALL))["bulkOperation"]["id"])
    assert op["status"] == "COMPLETED"
    assert (await kafka_event(settings, op["id"]))["status"] == "completed"  # the event exists
    await asyncio.sleep(3)  # the notifier has seen it by now
    assert receiver.for_op(op["id"]) == []


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("some-tenant", "ftp://example.com/hook"), "must be http:// or https://"),
        (("some-tenant", "example.com/hook"), "must be http:// or https://"),
        (("some-tenant", "http://"), "must be http:// or https://"),
        (("some-tenant", "https://exa mple.com/"), "must be http:// or https://"),
        (("some-tenant", "http://[::1/x"), "must be http:// or https://"),
        (("some-tenant",), "give either a URL or --clear"),
        (("no-such-tenant-xyz", "https://example.com/hook"), "no tenant named"),
    ],
)
def test_webhook_cli_rejects_bad_input(args: tuple[str, ...], fragment: str) -> None:
    result = bulkops_cli("tenants", "webhook", *args, check=False)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("bulkops: error: ") and fragment in result.stderr, result.stderr
