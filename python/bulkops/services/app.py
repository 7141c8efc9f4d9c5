"""bulkops' own long-running processes (the Bridge, the dispatcher, the workers), managed
like the infrastructure services so ``make demo`` can start them and ``services down`` can
stop them by pid. They are not started by a bare ``services up``: name them."""

from __future__ import annotations

import socket
import sys
import urllib.request

from bulkops.services.base import Service


class _BulkopsProcess(Service):
    start_timeout_s = 60.0
    args: tuple[str, ...] = ()

    def ensure_installed(self) -> None:
        pass  # it is this package

    def env(self) -> dict[str, str] | None:
        # The process runs in its own directory: a relative BULKOPS_HOME (the default ".local")
        # would resolve there, and each process would get its own secret key and exports.
        return {"BULKOPS_HOME": str(self.settings.home)}

    def command(self) -> list[str]:
        return [sys.executable, "-m", "bulkops.cli", "-v", *self.args]


class Bridge(_BulkopsProcess):
    name = "bridge"

    @property
    def port(self) -> int:
        return self.settings.bridge_port

    def command(self) -> list[str]:
        return [*super().command(), "serve", "--port", str(self.port), "--workers", "2"]

    def probe(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False


class Dispatcher(_BulkopsProcess):
    name = "dispatcher"
    owns_port = False  # shown with Kafka's port; it listens on none
    args = ("dispatcher",)

    @property
    def port(self) -> int:
        return self.settings.kafka_port

    def probe(self) -> bool:
        return self.pid() is not None  # it retries Kafka itself; alive is ready


class Worker(_BulkopsProcess):
    name = "worker"
    owns_port = False  # shown with Redis' port; workers on other machines share it
    args = ("worker", "--processes", "2")

    @property
    def port(self) -> int:
        return self.settings.redis_port

    def probe(self) -> bool:
        # arq writes this key once a worker polls the queue
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"EXISTS arq:queue:health-check\r\n")
                return sock.recv(16).startswith(b":1")
        except OSError:
            return False
