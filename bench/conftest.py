"""Fixtures of the benchmark suite (``make bench``).

The benchmarks run on their own instance: BULKOPS_HOME=.local/bench, their own ports and
database (set below, before bulkops is imported), so neither the test suite nor a running demo
is touched. Only PostgreSQL and Redis are started, with ``bulkops services up postgres redis``.

Data: tenant ``bench`` holds exactly 1,000,000 viewer sessions (500 streams), seeded once and
reused across runs. Tenant ``bench5m`` (5,000,000 sessions, about 2.5 minutes to seed) exists
only for the memory benchmark; ``BENCH_LARGE=0`` skips it.

Every figure is collected in ``bench.support.RESULTS`` and printed as one table at the end.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH_HOME = ROOT / ".local" / "bench"
BENCH_ENV = {
    "BULKOPS_HOME": str(BENCH_HOME),
    "BULKOPS_PG_PORT": "57432",
    "BULKOPS_REDIS_PORT": "57379",
    "BULKOPS_KAFKA_PORT": "57092",
    "BULKOPS_KAFKA_CONTROLLER_PORT": "57093",
    "BULKOPS_S3_PORT": "57080",
    "BULKOPS_DATABASE_URL": "postgresql://bulkops@127.0.0.1:57432/bulkops_bench",
    "BULKOPS_REDIS_URL": "redis://127.0.0.1:57379/0",
    "BULKOPS_KAFKA_BOOTSTRAP": "127.0.0.1:57092",
    "BULKOPS_STORAGE_URL": (BENCH_HOME / "exports").as_uri(),
}
# Forced, not setdefault: a BULKOPS_* left in the shell must never point the benchmarks (which
# seed millions of rows and change rate limits) at the demo's or the tests' instance.
os.environ.update(BENCH_ENV)

from bench.support import RESULTS, bulkops_cli, psql  # noqa: E402
from bulkops import config  # noqa: E402
from bulkops.config import Settings  # noqa: E402

SESSIONS_1M = 1_000_000
SESSIONS_5M = 5_000_000
STREAMS = 500
BENCH_TIMEOUT_S = 1800  # the suite's default (120 s) is for tests, not for seeding 5M rows

#: files run in this order: the micro benchmark, then the export and its experiments, memory,
#: then the Bridge (which compares with the export time)
MODULE_ORDER = (
    "test_encode",
    "test_export",
    "test_experiments",
    "test_memory",
    "test_bridge",
    "test_bulk_api",  # compares with the paging figure of test_bridge
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = Path(str(item.fspath)).stem
        return MODULE_ORDER.index(name) if name in MODULE_ORDER else len(MODULE_ORDER)

    items.sort(key=rank)  # stable: keeps each file's own order
    for item in items:
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(BENCH_TIMEOUT_S))


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    lines = RESULTS.render()
    if not lines:
        return
    terminalreporter.section("bulkops benchmark summary")
    for line in lines:
        terminalreporter.write_line(line)


@dataclass(frozen=True)
class BenchTenant:
    id: int
    name: str
    token: str
    sessions: int


@pytest.fixture(scope="session")
def settings() -> Settings:
    return config.load()


@pytest.fixture(scope="session")
def bench_services(settings: Settings) -> str:
    """Start (or find running) the bench's PostgreSQL and Redis, then migrate its database."""
    up = bulkops_cli("services", "up", "postgres", "redis")
    migrated = bulkops_cli("migrate", check=False)
    if migrated.returncode != 0 and "changed after it was applied" in migrated.stderr:
        # Migrations are forward-only, but one edited in a work tree (not yet released) no
        # longer matches this database. The bench's database is disposable: recreate it and
        # reseed (the fixtures below do) rather than fail.
        print(f"\n  bench: {migrated.stderr.strip()}\n  bench: recreating {settings.database_name}")
        admin_url = settings.database_url.rsplit("/", 1)[0] + "/postgres"
        psql(admin_url, f'DROP DATABASE IF EXISTS "{settings.database_name}" WITH (FORCE)')
        up = bulkops_cli("services", "up", "postgres", "redis")  # creates it again
        migrated = bulkops_cli("migrate", check=False)
    if migrated.returncode != 0:
        raise AssertionError(f"bulkops migrate failed:\n{migrated.stdout}\n{migrated.stderr}")
    return up.stdout


def ensure_tenant(settings: Settings, name: str, sessions: int) -> BenchTenant:
    """Tenant ``name`` with exactly ``sessions`` viewer sessions; seeds only when needed.

    ``bulkops seed`` adds rows in one transaction, so a tenant holds 0 or a multiple of what
    was asked; any other count (a different size asked earlier) drops the tenant and reseeds."""
    created = json.loads(bulkops_cli("tenants", "create", name, "--exists-ok").stdout)
    tenant_id = int(created["tenant_id"])
    count = int(psql(settings.database_url,
                     f"SELECT count(*) FROM viewer_sessions WHERE tenant_id = {tenant_id}"))  # fmt: skip
    if count == sessions:
        return BenchTenant(tenant_id, name, created["token"], sessions)
    if count != 0:
        print(f"\n  bench: tenant {name} has {count} sessions, not {sessions}: reseeding")
        psql(settings.database_url, f"DELETE FROM tenants WHERE id = {tenant_id}")
        created = json.loads(bulkops_cli("tenants", "create", name).stdout)
        tenant_id = int(created["tenant_id"])
    print(f"\n  bench: seeding tenant {name} with {sessions:,} viewer sessions ...", flush=True)
    out = bulkops_cli("seed", "--tenant", name, "--streams", str(STREAMS), "--sessions",
                      str(sessions), "--audit-events", "0", "--usage-records", "0")  # fmt: skip
    print(f"  bench: seeded: {out.stdout.strip()}", flush=True)
    # Set hint bits and the visibility map now, so the first export does not pay for them.
    psql(settings.database_url, "VACUUM (ANALYZE) viewer_sessions")
    count = int(psql(settings.database_url,
                     f"SELECT count(*) FROM viewer_sessions WHERE tenant_id = {tenant_id}"))  # fmt: skip
    assert count == sessions, f"seeded {count} sessions for {name}, wanted {sessions}"
    return BenchTenant(tenant_id, name, created["token"], sessions)


@pytest.fixture(scope="session")
def bench_tenant(bench_services: str, settings: Settings) -> BenchTenant:
    """Tenant ``bench``: exactly 1,000,000 viewer sessions."""
    return ensure_tenant(settings, "bench", SESSIONS_1M)


def large_enabled() -> bool:
    return os.environ.get("BENCH_LARGE", "1").strip().lower() not in ("0", "", "no", "false")


@pytest.fixture(scope="session")
def bench5m_tenant(bench_services: str, settings: Settings) -> BenchTenant:
    """Tenant ``bench5m``: 5,000,000 sessions, for the memory benchmark only (BENCH_LARGE=0
    skips it)."""
    if not large_enabled():
        pytest.skip("BENCH_LARGE=0: the 5M-session tenant is skipped")
    return ensure_tenant(settings, "bench5m", SESSIONS_5M)


@pytest.fixture(scope="session")
def exports_dir(settings: Settings) -> Iterator[Path]:
    """Where the benchmarks write their exports; emptied at the end (they are large)."""
    path = BENCH_HOME / "exports" / "bench"
    path.mkdir(parents=True, exist_ok=True)
    yield path
    for f in path.glob("*"):
        if f.is_file():
            f.unlink()


# The end-to-end baseline is a session fixture (not a test) because the Bridge's paging
# benchmark compares with it too, in the same run.
from bench.e2e import ExportBaseline, measure_export_baseline  # noqa: E402


@pytest.fixture(scope="session")
def export_baseline(bench_tenant: BenchTenant, settings: Settings, exports_dir: Path) -> ExportBaseline:  # fmt: skip
    return measure_export_baseline(bench_tenant.id, settings, exports_dir / "export-1m.jsonl")
