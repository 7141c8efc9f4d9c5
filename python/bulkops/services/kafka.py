"""A local Apache Kafka 4.x broker in KRaft combined mode (broker + controller in one JVM).

The jars come from Maven Central (``maven/kafka/pom.xml``, no tarball) and are shared by
every ``BULKOPS_HOME`` through a cache under ``~/.cache/bulkops/maven/``; the broker's
config, log and data live under ``<BULKOPS_HOME>/kafka/``.

Topics are not auto-created (``auto.create.topics.enable=false``): producing to a topic that
nobody created fails (aiokafka: ``KafkaTimeoutError`` after ``request_timeout_ms``) instead
of silently creating a misspelt one. Create topics with the admin client; they default to
``num.partitions=6`` and replication factor 1.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import os
import shutil
import socket
import struct
import subprocess
import uuid
from pathlib import Path

from bulkops.services.base import Service, ServiceError, apt_install, maven_fetch

POM = Path(__file__).parent / "maven" / "kafka" / "pom.xml"
NODE_ID = 1
HOST = "127.0.0.1"
JVM_OPTS = [
    "-Xms256m",
    "-Xmx512m",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
]

LOG4J2_XML = """\
<?xml version="1.0" encoding="UTF-8"?>
<!-- written by bulkops on every start; edits are overwritten -->
<Configuration status="warn" shutdownHook="disable">
  <Appenders>
    <Console name="stdout" target="SYSTEM_OUT">
      <PatternLayout pattern="[%d{ISO8601}] %-5p %m (%c{1})%n"/>
    </Console>
  </Appenders>
  <Loggers>
    <!-- WARN and up, plus the few INFO lines that tell start, fencing and stop -->
    <Root level="WARN"><AppenderRef ref="stdout"/></Root>
    <Logger name="kafka.server.KafkaRaftServer" level="INFO"/>
    <Logger name="org.apache.kafka.server.BrokerLifecycleManager" level="INFO"/>
    <Logger name="org.apache.kafka.common.utils.internals.LoggingSignalHandler" level="INFO"/>
    <Logger name="org.apache.kafka.common.utils.internals.AppInfoParser" level="INFO"/>
  </Loggers>
</Configuration>
"""


class Kafka(Service):
    name = "kafka"
    # a cold JVM plus KRaft election and broker unfencing on 2 busy cores
    start_timeout_s = 90.0

    @property
    def port(self) -> int:
        return self.settings.kafka_port

    @property
    def controller_port(self) -> int:
        return self.settings.kafka_controller_port

    @property
    def lib_dir(self) -> Path:
        return maven_cache_dir(self.name, POM)

    @property
    def data_dir(self) -> Path:
        return self.dir / "data"

    @property
    def config_file(self) -> Path:
        return self.dir / "server.properties"

    @property
    def log4j_file(self) -> Path:
        return self.dir / "log4j2.xml"

    # -- Service ---------------------------------------------------------------------------
    def ensure_installed(self) -> None:
        ensure_java()
        fetch_locked(POM, self.lib_dir)

    def prepare(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(self.server_properties())
        self.log4j_file.write_text(LOG4J2_XML)
        if (self.data_dir / "meta.properties").exists():
            return
        result = subprocess.run(
            [
                *self._java(),
                "kafka.tools.StorageTool",
                "format",
                "--standalone",
                "-t",
                random_cluster_id(),
                "-c",
                str(self.config_file),
            ],
            capture_output=True,
            text=True,
            cwd=self.dir,
        )
        if result.returncode != 0:
            raise ServiceError(
                f"kafka storage format failed:\n{(result.stdout + result.stderr)[-1500:]}"
            )

    def command(self) -> list[str]:
        return [*self._java(), "kafka.Kafka", str(self.config_file)]

    def probe(self) -> bool:
        return kafka_broker_ready(HOST, self.port, NODE_ID)

    # -- helpers ---------------------------------------------------------------------------
    def _java(self) -> list[str]:
        return [
            "java",
            *JVM_OPTS,
            f"-Dlog4j2.configurationFile={self.log4j_file}",
            f"-Dkafka.logs.dir={self.dir}",
            "-cp",
            str(self.lib_dir / "*"),
        ]

    def server_properties(self) -> str:
        listener = f"PLAINTEXT://{HOST}:{self.port},CONTROLLER://{HOST}:{self.controller_port}"
        props = {
            "process.roles": "broker,controller",
            "node.id": NODE_ID,
            "controller.quorum.bootstrap.servers": f"{HOST}:{self.controller_port}",
            "listeners": listener,
            "advertised.listeners": listener,
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": self.data_dir,
            # one local node: everything replicated once
            "num.partitions": 6,
            "default.replication.factor": 1,
            "min.insync.replicas": 1,
            "offsets.topic.replication.factor": 1,
            "offsets.topic.num.partitions": 10,
            "transaction.state.log.replication.factor": 1,
            "transaction.state.log.min.isr": 1,
            "transaction.state.log.num.partitions": 10,
            "share.coordinator.state.topic.replication.factor": 1,
            "share.coordinator.state.topic.min.isr": 1,
            "group.initial.rebalance.delay.ms": 0,
            "auto.create.topics.enable": "false",
            # sized for 2 cores and a 512 MiB heap
            "num.network.threads": 2,
            "num.io.threads": 4,
            "log.cleaner.dedupe.buffer.size": 32 * 1024 * 1024,
        }
        lines = ["# written by bulkops from its settings on every start; edits are overwritten"]
        lines += [f"{key}={value}" for key, value in props.items()]
        return "\n".join(lines) + "\n"


# -- helpers for the Java services (s3proxy.py imports them too) ------------------------


def random_cluster_id() -> str:
    """A Kafka ``Uuid`` as ``kafka-storage random-uuid`` prints it: 16 random bytes, base64url."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):  # Kafka avoids ids that look like a CLI flag
            return cid


def ensure_java() -> None:
    if shutil.which("java") is None:
        apt_install("openjdk-17-jre-headless")


def maven_cache_dir(name: str, pom: Path) -> Path:
    """Jars of one pom, shared by all BULKOPS_HOMEs; a new pom gets a new dir, so a broker
    still running from the old jars is never pulled out from under."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()[:12]
    return base / "bulkops" / "maven" / f"{name}-{digest}"


def fetch_locked(pom: Path, lib_dir: Path) -> None:
    """``maven_fetch`` under a file lock, so two instances starting at once don't race."""
    lib_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(lib_dir.parent / f".{lib_dir.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        maven_fetch(pom, lib_dir)


# -- readiness probe: two hand-written Kafka requests -----------------------------------

_CLIENT_ID = b"bulkops-probe"


def _request(sock: socket.socket, api_key: int, version: int, corr: int, body: bytes) -> bytes:
    # request header v1: api_key, api_version, correlation_id, client_id (int16 string)
    header = struct.pack(">hhih", api_key, version, corr, len(_CLIENT_ID)) + _CLIENT_ID
    payload = header + body
    sock.sendall(struct.pack(">i", len(payload)) + payload)
    size = struct.unpack(">i", _recv_exact(sock, 4))[0]
    response = _recv_exact(sock, size)
    if struct.unpack_from(">i", response)[0] != corr:
        raise ValueError("correlation id mismatch")
    return response[4:]


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed by broker")
        buf += chunk
    return bytes(buf)


def kafka_broker_ready(host: str, port: int, node_id: int, timeout: float = 2.0) -> bool:
    """ApiVersions, then Metadata: True once the broker lists itself as a live (unfenced) node.

    Never raises: anything short of a well-formed answer means "not ready yet".
    """
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            # ApiVersions v0 (key 18): error_code, [api_key, min_version, max_version]
            body = _request(sock, 18, 0, 1, b"")
            error, count = struct.unpack_from(">hi", body)
            if error != 0:
                return False
            versions = {}
            for i in range(count):
                key, low, high = struct.unpack_from(">hhh", body, 6 + 6 * i)
                versions[key] = (low, high)
            low, high = versions.get(3, (0, -1))
            version = max(low, 4)  # Metadata v4..v8 share one non-flexible layout
            if not (version <= high and version <= 8):
                return False
            # Metadata (key 3): topics=[] (none), allow_auto_topic_creation=false
            request = struct.pack(">i?", 0, False)
            if version >= 8:  # include cluster/topic authorized operations
                request += struct.pack(">??", False, False)
            body = _request(sock, 3, version, 2, request)
            (brokers,) = struct.unpack_from(">i", body, 4)  # after throttle_time_ms
            offset = 8
            for _ in range(brokers):
                broker_id, host_len = struct.unpack_from(">ih", body, offset)
                offset += 6 + host_len + 4  # node_id, host, port
                (rack_len,) = struct.unpack_from(">h", body, offset)
                offset += 2 + max(rack_len, 0)
                if broker_id == node_id:
                    return True
            return False
    except (OSError, ValueError, struct.error):
        return False
