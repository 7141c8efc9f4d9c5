"""The local services are real: idempotent start, one status line each, Kafka round-trips a
message, and s3proxy checks signatures."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
import uuid
from datetime import timedelta

import obstore
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bulkops.config import Settings
from bulkops.storage import s3_store
from tests.conftest import bulkops_cli

SERVICES = ("postgres", "redis", "kafka", "s3proxy")


def _pids(status: str) -> dict[str, str]:
    return dict(re.findall(r"^(\w+)\s.*\(pid (\d+)\)", status, flags=re.M))


def test_up_twice_is_a_no_op() -> None:
    before = _pids(bulkops_cli("services", "status").stdout)
    again = bulkops_cli("services", "up").stdout
    assert again.count("already running") == len(SERVICES), again
    assert _pids(bulkops_cli("services", "status").stdout) == before


def test_status_prints_one_line_per_service() -> None:
    lines = bulkops_cli("services", "status").stdout.strip().splitlines()
    assert [line.split()[0] for line in lines] == list(SERVICES)
    assert all("running (pid" in line for line in lines), lines


async def test_kafka_round_trips_a_message(settings: Settings) -> None:
    topic = f"test-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"hello", key=b"tenant-1")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=f"g-{topic}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        msg = await consumer.getone()
    finally:
        await consumer.stop()
    assert (msg.key, msg.value) == (b"tenant-1", b"hello")


def test_s3proxy_checks_signatures(settings: Settings) -> None:
    store = s3_store(settings, settings.s3_bucket)
    key = f"sig-test/{uuid.uuid4().hex}.txt"
    obstore.put(store, key, b"secret data")
    url = str(obstore.sign(store, "GET", key, timedelta(minutes=5)))
    with urllib.request.urlopen(url) as resp:
        assert resp.read() == b"secret data"
    tampered = re.sub(r"(X-Amz-Signature=)(.)", lambda m: m[1] + ("0" if m[2] != "0" else "1"), url)
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(tampered)
    assert err.value.code == 403
    wrong_secret = s3_store(
        Settings(**{**settings.__dict__, "s3_secret_key": "not-the-secret"}), settings.s3_bucket
    )
    with pytest.raises(Exception, match=r"(?i)403|denied|signature"):
        obstore.get(wrong_secret, key).bytes()
    unsigned = f"{settings.s3_endpoint}/{settings.s3_bucket}/{key}"
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(unsigned)
    assert err.value.code == 403


def test_a_foreign_listener_on_the_port_is_reported(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A service whose port is taken by a process we did not start fails with one clear line."""
    import os

    from bulkops.config import load

    port = load().redis_port  # the test Redis answers there, but not under this home
    result = bulkops_cli("services", "up", "redis", env={**os.environ, "BULKOPS_HOME": str(tmp_path)},
                         check=False)  # fmt: skip
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert f"port {port} already answers" in result.stderr
