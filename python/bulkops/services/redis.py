"""Redis from Debian's package, with an append-only file so queued jobs survive a restart."""

from __future__ import annotations

import shutil
import socket

from bulkops.services.base import Service, apt_install


class Redis(Service):
    name = "redis"

    @property
    def port(self) -> int:
        return self.settings.redis_port

    def ensure_installed(self) -> None:
        if shutil.which("redis-server") is None:
            apt_install("redis-server")

    def command(self) -> list[str]:
        return [
            shutil.which("redis-server") or "redis-server",
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.dir),
            "--daemonize", "no",
            "--save", "",
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--protected-mode", "no",
        ]  # fmt: skip

    def probe(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False
