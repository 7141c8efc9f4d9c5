"""Fixtures for a suite that runs against real services.

The suite uses its own BULKOPS_HOME (.local/test), ports and database, so a running demo is
left alone. If the services are not running it starts them with ``bulkops services up``, the
same command a user runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
TEST_ENV = {
    "BULKOPS_HOME": str(ROOT / ".local" / "test"),
    "BULKOPS_PG_PORT": "55432",
    "BULKOPS_REDIS_PORT": "56379",
    "BULKOPS_KAFKA_PORT": "29092",
    "BULKOPS_KAFKA_CONTROLLER_PORT": "29093",
    "BULKOPS_S3_PORT": "28080",
    "BULKOPS_DATABASE_URL": "postgresql://bulkops@127.0.0.1:55432/bulkops_test",
    "BULKOPS_REDIS_URL": "redis://127.0.0.1:56379/0",
    "BULKOPS_KAFKA_BOOTSTRAP": "127.0.0.1:29092",
    "BULKOPS_BRIDGE_PORT": "28000",
    "BULKOPS_PUBLIC_URL": "http://127.0.0.1:28000",
    "BULKOPS_EXPIRE_EVERY_S": "1",
    "BULKOPS_WORKER_CONCURRENCY": "2",
    "BULKOPS_STALE_AFTER_S": "3",
    "BULKOPS_SEGMENT_BYTES": str(4 * 1024 * 1024),
    "BULKOPS_SLICE_S": "2",
}
# Forced, not setdefault: a BULKOPS_* left in the shell (a demo's, the benchmarks') must never
# point the suite, which restarts services and deletes tenants, at another instance.
for _k in [k for k in os.environ if k.startswith("BULKOPS_")]:
    del os.environ[_k]
os.environ.update(TEST_ENV)

import asyncpg  # noqa: E402

from bulkops import config  # noqa: E402
from bulkops.config import Settings  # noqa: E402


def bulkops_cli(*args: str, env: dict[str, str] | None = None, check: bool = True,
                timeout: float = 900) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """Run the real CLI in a subprocess, as a user would."""
    result = subprocess.run(
        [sys.executable, "-m", "bulkops.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
        cwd=ROOT,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"bulkops {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="session")
def settings() -> Settings:
    return config.load()


@pytest.fixture(scope="session", autouse=True)
def services(settings: Settings) -> str:
    """Start (or find running) the test services, then migrate the test database."""
    up = bulkops_cli("services", "up")
    bulkops_cli("migrate")
    return up.stdout


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(settings.database_url)
    try:
        yield conn
    finally:
        await conn.close()


@asynccontextmanager
async def seeded_tenants(
    settings: Settings, prefix: str, plans: dict[str, Any]
) -> AsyncIterator[dict[str, Any]]:
    """Fresh tenants seeded with ``plans`` (key -> SeedPlan), unthrottled so the tests measure
    behaviour rather than the rate limit; deleted with their data afterwards.
    Yields key -> {"id", "token"}."""
    from bulkops.seed import seed
    from bulkops.tenants import create_tenant

    out: dict[str, Any] = {}
    try:
        conn = await asyncpg.connect(settings.database_url)
        try:
            for key, plan in plans.items():
                tid, token = await create_tenant(conn, f"{prefix}-{key}-{uuid.uuid4().hex[:8]}")
                await conn.execute(
                    "UPDATE tenants SET rate_limit_per_minute = 100000, rate_limit_burst = 100000 WHERE id = $1",
                    tid,
                )
                await seed(conn, tid, plan)
                out[key] = {"id": tid, "token": token}
        finally:
            await conn.close()  # not held while the tests run: one of them restarts PostgreSQL
        yield out
    finally:
        conn = await asyncpg.connect(settings.database_url)
        ids = [t["id"] for t in out.values()]
        await conn.execute("DELETE FROM tenants WHERE id = ANY($1::bigint[])", ids)
        await conn.close()


@dataclass(frozen=True)
class TestTenant:
    id: int
    name: str
    token: str


TenantFactory = Callable[..., Awaitable[TestTenant]]


@pytest.fixture
async def make_tenant(settings: Settings) -> AsyncIterator[TenantFactory]:
    """Factory of fresh tenants (unique names); each is deleted, with its data, afterwards."""
    from bulkops.tenants import DEFAULT_SCOPES, create_tenant

    conn = await asyncpg.connect(settings.database_url)
    made: list[int] = []

    async def make(scopes: tuple[str, ...] = DEFAULT_SCOPES, **kwargs: object) -> TestTenant:
        name = f"t-{uuid.uuid4().hex[:10]}"
        tenant_id, token = await create_tenant(conn, name, scopes=scopes, **kwargs)  # type: ignore[arg-type]
        made.append(tenant_id)
        return TestTenant(tenant_id, name, token)

    try:
        yield make
    finally:
        if made:
            await conn.execute("DELETE FROM tenants WHERE id = ANY($1::bigint[])", made)
        await conn.close()


class Background:
    """A real ``bulkops <command>`` process tree, stopped with SIGTERM to its group."""

    def __init__(self, name: str, *args: str, ready_url: str | None = None) -> None:
        self.name = name
        log = ROOT / ".local" / "test" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bulkops.cli", "-v", *args],
            cwd=ROOT,
            env=os.environ.copy(),
            stdout=subprocess.DEVNULL,
            stderr=open(log, "ab"),  # noqa: SIM115
            start_new_session=True,
        )
        if ready_url:
            self._wait_ready(ready_url)

    def _wait_ready(self, url: str, timeout_s: float = 60) -> None:
        import time
        import urllib.request

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}")
            try:
                with urllib.request.urlopen(url, timeout=1) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready after {timeout_s}s")

    def stop(self) -> None:
        import signal

        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(20)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)


class BridgeProcess(Background):
    def __init__(self, port: int, workers: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        super().__init__(f"bridge-{port}", "serve", "--port", str(port), "--workers", str(workers),
                         ready_url=f"{self.url}/healthz")  # fmt: skip


@pytest.fixture(scope="session")
def bridge(services: str) -> Iterator[BridgeProcess]:
    """The Bridge on two worker processes."""
    proc = BridgeProcess(28000, workers=2)
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="session")
def second_bridge(services: str) -> Iterator[BridgeProcess]:
    """Another, separate Bridge process: shares only Postgres and Redis with the first."""
    proc = BridgeProcess(28001, workers=1)
    try:
        yield proc
    finally:
        proc.stop()


#: processes a test started to replace part of the pipeline (a restarted dispatcher); they
#: serve the rest of the session and are stopped with the pipeline, never left running
REPLACEMENTS: list[Background] = []


@pytest.fixture(scope="session")
def pipeline(bridge: BridgeProcess) -> Iterator[BridgeProcess]:
    """The whole bulk path: Bridge, dispatcher (outbox relay + Kafka consumer), 2 workers."""
    dispatcher = Background("dispatcher", "dispatcher")
    workers = Background("workers", "worker", "--processes", "2")
    try:
        yield bridge
    finally:
        for proc in (workers, dispatcher, *REPLACEMENTS):
            proc.stop()
