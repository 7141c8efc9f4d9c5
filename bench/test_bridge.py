"""The Bridge (sync GraphQL API): what a client does *without* bulk operations.

``bulkops serve --workers 2 --port 57000`` runs for this module. The bench tenant's rate limit
is raised to 10,000,000/min (burst too), so these measure the API itself, not the limiter.

* load: 500-row pages of viewer sessions (all 16 fields), the first page and pages after
  random cursors, 16 requests in flight for ~15 s: requests/s, p50/p99 latency;
* paging: all 1M sessions page by page with ``after`` cursors, one request at a time as a
  client must (each cursor comes from the previous page), compared with the bulk export's time
  from the same run: "paging / bulk export", the before-bulk baseline.

The client runs on the same 2 cores as the server and Postgres; it parses responses with
orjson to keep its share small.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import orjson
import pytest

from bench.e2e import ExportBaseline
from bench.support import QUERIES, RESULTS, ROOT, psql
from bulkops.catalog import TYPES
from bulkops.config import Settings
from bulkops.paging import encode_cursor
from bulkops.signing import secret_key

SECTION = "bridge"
PORT = 57000
WORKERS = 2
PAGE = 500
CONCURRENCY = 16
LOAD_SECONDS = 15.0
FIRST_PAGE_SHARE = 0.2  #: of the load requests; the rest start after a random cursor
CURSOR_POOL = 256
REQUEST_TIMEOUT_S = 60.0
PAGE_QUERY = (QUERIES / "viewer_sessions_page.graphql").read_text()
NO_LIMIT = 10_000_000
DEFAULT_LIMIT_PER_MIN, DEFAULT_BURST = 100, 20  # tenants' column defaults (0001_initial.sql)


class Bridge:
    def __init__(self, port: int, workers: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        log = ROOT / ".local" / "bench" / f"bridge-{port}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bulkops.cli", "serve", "--port", str(port),
             "--workers", str(workers)],
            cwd=ROOT,
            env=os.environ.copy(),
            stdout=subprocess.DEVNULL,
            stderr=open(log, "wb"),  # noqa: SIM115 - the child owns it
            start_new_session=True,  # its own process group: stopped as one below
        )  # fmt: skip
        self._wait_ready()

    def _wait_ready(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the Bridge exited with {self.proc.returncode}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the Bridge was not ready after {timeout_s}s")

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(15)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)


@pytest.fixture(scope="module")
def bridge(bench_tenant: Any, settings: Settings) -> Iterator[Bridge]:
    psql(settings.database_url,
         f"UPDATE tenants SET rate_limit_per_minute = {NO_LIMIT}, rate_limit_burst = {NO_LIMIT} "
         f"WHERE id = {bench_tenant.id}")  # fmt: skip
    proc = Bridge(PORT, WORKERS)
    try:
        yield proc
    finally:
        proc.stop()


def _client(bridge: Bridge, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=bridge.url,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        timeout=REQUEST_TIMEOUT_S,
        limits=httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY),
    )


def _body(after: str | None) -> bytes:
    return orjson.dumps({"query": PAGE_QUERY, "variables": {"after": after}})


async def _page(client: httpx.AsyncClient, after: str | None) -> dict[str, Any]:
    resp = await client.post("/graphql", content=_body(after))
    payload = orjson.loads(resp.content)
    if resp.status_code != 200 or payload.get("errors"):
        raise AssertionError(f"HTTP {resp.status_code}: {resp.text[:500]}")
    return payload["data"]["viewerSessionsConnection"]


async def _random_cursors(settings: Settings, tenant_id: int, n: int) -> list[str]:
    """Cursors at random positions, signed with the Bridge's key (the same $BULKOPS_HOME)."""
    nt = TYPES["ViewerSession"]
    key = secret_key(settings)
    conn = await asyncpg.connect(settings.database_url)
    try:
        rows = await conn.fetch(
            "SELECT connected_at, id FROM viewer_sessions TABLESAMPLE SYSTEM (2) "
            "WHERE tenant_id = $1 ORDER BY random() LIMIT $2",
            tenant_id,
            n,
        )
    finally:
        await conn.close()
    assert rows, "no sampled rows"
    return [encode_cursor(key, nt, (r["connected_at"], r["id"])) for r in rows]


def _pct(values: list[float], p: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


async def test_page_load(bridge: Bridge, bench_tenant: Any, settings: Settings) -> None:
    cursors = await _random_cursors(settings, bench_tenant.id, CURSOR_POOL)
    latencies: dict[str, list[float]] = {"first page": [], "random cursor": []}
    async with _client(bridge, bench_tenant.token) as client:
        first = await _page(client, None)  # warm both the connection and the server
        assert len(first["edges"]) == PAGE
        started = time.perf_counter()
        deadline = started + LOAD_SECONDS

        async def worker(seed: int) -> None:
            rng = random.Random(seed)
            while time.perf_counter() < deadline:
                kind = "first page" if rng.random() < FIRST_PAGE_SHARE else "random cursor"
                after = None if kind == "first page" else rng.choice(cursors)
                t0 = time.perf_counter()
                conn = await _page(client, after)
                latencies[kind].append(time.perf_counter() - t0)
                assert len(conn["edges"]) == PAGE or not conn["pageInfo"]["hasNextPage"]

        await asyncio.gather(*(worker(i) for i in range(CONCURRENCY)))
        elapsed = time.perf_counter() - started

    every = latencies["first page"] + latencies["random cursor"]
    RESULTS.add(SECTION, f"500-row pages, {CONCURRENCY} in flight", len(every) / elapsed, "req/s",
                note=f"({len(every)} requests in {elapsed:.1f} s, {WORKERS} workers)")  # fmt: skip
    RESULTS.add(SECTION, "rows/s served by pages", len(every) * PAGE / elapsed, "rows/s")
    RESULTS.add(SECTION, "page latency p50", _pct(every, 50) * 1000, "ms")
    RESULTS.add(SECTION, "page latency p99", _pct(every, 99) * 1000, "ms")
    for kind, values in latencies.items():
        if len(values) >= 2:
            RESULTS.add(SECTION, f"page latency p50/p99 ({kind})", _pct(values, 50) * 1000, "ms",
                        note=f"p99 {_pct(values, 99) * 1000:.1f} ms, n={len(values)}")  # fmt: skip


async def test_paging_all_vs_bulk_export(bridge: Bridge, bench_tenant: Any,
                                         export_baseline: ExportBaseline) -> None:  # fmt: skip
    total, pages, after = 0, 0, None
    last_time = ""
    latencies: list[float] = []
    async with _client(bridge, bench_tenant.token) as client:
        started = time.perf_counter()
        while True:
            t0 = time.perf_counter()
            conn = await _page(client, after)
            latencies.append(time.perf_counter() - t0)
            edges = conn["edges"]
            if edges:  # keyset order holds across pages (RFC 3339 Z strings sort as times)
                assert edges[0]["node"]["connectedAt"] >= last_time
                last_time = edges[-1]["node"]["connectedAt"]
            total += len(edges)
            pages += 1
            if not conn["pageInfo"]["hasNextPage"]:
                break
            after = conn["pageInfo"]["endCursor"]
        elapsed = time.perf_counter() - started
    assert total == bench_tenant.sessions

    RESULTS.add(SECTION, "paging / bulk export (1M sessions)", elapsed / export_baseline.export_s,
                "x", note="the before-bulk baseline, no rate limit")  # fmt: skip
    RESULTS.add(SECTION, f"page through 1M ({pages} requests, no rate limit)", elapsed, "s",
                note=f"p50 {_pct(latencies, 50) * 1000:.1f} ms, p99 "
                     f"{_pct(latencies, 99) * 1000:.1f} ms per page")  # fmt: skip
    RESULTS.add(SECTION, "paging rows/s", total / elapsed, "rows/s")
    # What the same client would wait at the default limit (100 pages/min, burst 20): computed,
    # not measured; the larger of that and the measured time.
    limited_s = max(elapsed, (pages - DEFAULT_BURST) / DEFAULT_LIMIT_PER_MIN * 60)
    RESULTS.add(SECTION, "paging at default rate limit (computed) / bulk export",
                limited_s / export_baseline.export_s, "x",
                note=f"{limited_s / 60:.1f} min at {DEFAULT_LIMIT_PER_MIN}/min, burst {DEFAULT_BURST}")  # fmt: skip
