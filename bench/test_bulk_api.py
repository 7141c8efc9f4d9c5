"""The whole product: submit -> COMPLETED -> downloaded and verified, for 1M viewer sessions
through the API (Bridge, outbox, Kafka, dispatcher, arq worker, object store, signed link),
against PostgreSQL's own COPY binary of the same SQL and against paging the sync API, all
measured in this run."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.conftest import BENCH_HOME
from bench.e2e import copy_binary_sql, viewer_sessions_plan
from bench.support import QUERIES, RESULTS, best_of_alternating, bulkops_cli, psql_copy_to_devnull
from bulkops.config import Settings

SECTION = "bulk API (issue 5)"
BRIDGE_PORT = "57010"


@pytest.fixture(scope="module")
def pipeline(bench_tenant: Any) -> Iterator[str]:
    url = f"http://127.0.0.1:{BRIDGE_PORT}"
    saved = {k: os.environ.get(k) for k in ("BULKOPS_BRIDGE_PORT", "BULKOPS_PUBLIC_URL")}
    os.environ.update({"BULKOPS_BRIDGE_PORT": BRIDGE_PORT, "BULKOPS_PUBLIC_URL": url})
    try:
        bulkops_cli("services", "up", "kafka")
        bulkops_cli("services", "up", "bridge", "dispatcher", "worker")
        yield url
    finally:
        bulkops_cli("services", "down", "worker", "dispatcher", "bridge", "kafka", check=False)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def test_bulk_export_through_the_api(pipeline: str, bench_tenant: Any, settings: Settings) -> None:
    out = BENCH_HOME / "api-export.jsonl"
    sql = viewer_sessions_plan(bench_tenant.id).connections[0].sql

    def export() -> None:
        bulkops_cli("export", "--query", str(QUERIES / "viewer_sessions.graphql"), "--out", str(out),
                    "--token", bench_tenant.token, "--url", pipeline, "--quiet")  # fmt: skip

    best = best_of_alternating(
        {
            "api": export,
            "copy_binary": lambda: psql_copy_to_devnull(
                settings.database_url, copy_binary_sql(sql)
            ),
        },
        rounds=3,
        setup={"api": lambda: out.unlink(missing_ok=True)},
    )
    assert _lines(out) == bench_tenant.sessions
    RESULTS.add(SECTION, "API export (submit->downloaded+verified) / COPY binary", best["api"] / best["copy_binary"],
                "x", target="<= 1.3")  # fmt: skip
    paging = next((f for f in RESULTS.figures if f.name.startswith("page through 1M")), None)
    if paging is not None:
        RESULTS.add(
            SECTION,
            "paging the sync API / API export",
            paging.value / best["api"],
            "x",
            target=">= 20",
        )
    RESULTS.add(SECTION, "API export of 1M sessions", best["api"], "s")


def _lines(path: Path) -> int:
    n = 0
    with path.open("rb") as f:
        while chunk := f.read(16 << 20):
            n += chunk.count(b"\n")
    return n
