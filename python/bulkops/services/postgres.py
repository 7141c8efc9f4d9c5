"""PostgreSQL from Debian's package, one cluster per ``BULKOPS_HOME``, run as the ``postgres`` user."""

from __future__ import annotations

import asyncio
import os
import pwd
import signal
import subprocess
from pathlib import Path

import asyncpg

from bulkops.services.base import Service, ServiceError, apt_install

PG_ROOT = Path("/usr/lib/postgresql")


def _bin_dir() -> Path | None:
    versions = sorted(
        (p for p in PG_ROOT.glob("*/bin/postgres") if p.parent.parent.name.isdigit()),
        key=lambda p: int(p.parent.parent.name),
    )
    return versions[-1].parent if versions else None


class Postgres(Service):
    name = "postgres"
    user = "postgres"
    # SIGTERM is a "smart" shutdown that waits for every client to leave, which pooled clients
    # never do; SIGINT is the "fast" one: sessions are ended, then a clean shutdown checkpoint.
    stop_signal = signal.SIGINT

    @property
    def port(self) -> int:
        return self.settings.pg_port

    @property
    def data_dir(self) -> Path:
        return self.dir / "data"

    def ensure_installed(self) -> None:
        if _bin_dir() is None:
            apt_install("postgresql", "postgresql-contrib")
        if _bin_dir() is None:
            raise ServiceError(
                "postgresql installed but no server binary under /usr/lib/postgresql"
            )

    def prepare(self) -> None:
        pw = pwd.getpwnam("postgres")
        self._ensure_traversable(pw.pw_uid)
        for d in (self.dir, self.data_dir, self.dir / "run"):
            d.mkdir(parents=True, exist_ok=True)
        for d in (self.data_dir, self.dir / "run"):
            os.chown(d, pw.pw_uid, pw.pw_gid)
        os.chmod(self.data_dir, 0o700)
        if (self.data_dir / "PG_VERSION").exists():
            return
        bin_dir = _bin_dir()
        assert bin_dir is not None
        result = subprocess.run(
            [
                str(bin_dir / "initdb"),
                "-D", str(self.data_dir),
                "-U", "bulkops",
                "-A", "trust",  # loopback only; see listen_addresses below
                "-E", "UTF8",
                "--locale=C.UTF-8",
            ],
            user="postgres",
            capture_output=True,
            text=True,
            cwd="/",
        )  # fmt: skip
        if result.returncode != 0:
            raise ServiceError(f"initdb failed: {result.stderr.strip()[-800:]}")

    def _ensure_traversable(self, uid: int) -> None:
        # The server runs as `postgres`, so every directory above its data dir must be
        # searchable by it. Add only the x bit (no listing) where a parent lacks it.
        probe = subprocess.run(["test", "-x", str(self.dir.parent)], user=uid, check=False)
        if probe.returncode == 0:
            return
        for parent in reversed(self.dir.parents):
            mode = parent.stat().st_mode
            if not mode & 0o001:
                os.chmod(parent, mode | 0o001)

    def command(self) -> list[str]:
        bin_dir = _bin_dir()
        assert bin_dir is not None
        opts = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.dir / "run"),
            "max_connections": "200",
            "shared_buffers": "512MB",
            "work_mem": "32MB",
            "maintenance_work_mem": "256MB",
            "synchronous_commit": "off",  # a local dev/test cluster; commits stay atomic
            "max_wal_size": "4GB",
            "checkpoint_timeout": "30min",
            "timezone": "UTC",
            "log_min_messages": "warning",
            # per-statement counters: the Bridge tests prove there are no N+1 queries
            "shared_preload_libraries": "pg_stat_statements",
        }
        cmd = [str(bin_dir / "postgres"), "-D", str(self.data_dir)]
        for key, value in opts.items():
            cmd += ["-c", f"{key}={value}"]
        return cmd

    def probe(self) -> bool:
        async def check() -> bool:
            try:
                conn = await asyncpg.connect(
                    host="127.0.0.1", port=self.port, user="bulkops", database="postgres",
                    timeout=2,
                )  # fmt: skip
            except (TimeoutError, OSError, asyncpg.PostgresError):
                return False
            try:
                return await conn.fetchval("SELECT 1") == 1
            finally:
                await conn.close()

        return asyncio.run(check())

    def after_ready(self) -> None:
        """Create the application database named by BULKOPS_DATABASE_URL if it is missing."""
        name = self.settings.database_name

        async def create() -> None:
            conn = await asyncpg.connect(
                host="127.0.0.1", port=self.port, user="bulkops", database="postgres"
            )
            try:
                exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
                if not exists:
                    ident = '"' + name.replace('"', '""') + '"'
                    await conn.execute(f"CREATE DATABASE {ident}")
            finally:
                await conn.close()

        asyncio.run(create())
