"""Peak RSS of an export process: ``bulkops run-query`` at 1M and 5M viewer sessions.

The child's own ``ru_maxrss`` is read with ``wait4`` when it exits. Memory must be bounded by
the batch size, not the export size: peak <= 300 MB, and 5M <= 1.1 x 1M.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench.support import RESULTS, count_lines, run_query

SECTION = "memory"
MIB = 1024 * 1024
PEAK_LIMIT_MB = 300


def _peak(tenant: Any, out: Path) -> int:
    run, result = run_query(tenant.name, out)
    assert result["objectCount"] == tenant.sessions
    assert count_lines(out) == tenant.sessions
    out.unlink()
    RESULTS.values[f"memory.{tenant.sessions}.rss"] = run.max_rss_bytes
    RESULTS.add(SECTION, f"peak RSS run-query {tenant.sessions // 1_000_000}M rows",
                run.max_rss_bytes / MIB, "MiB", target=f"<= {PEAK_LIMIT_MB}",
                note=f"({run.seconds:.1f} s wall)")  # fmt: skip
    return run.max_rss_bytes


def test_peak_rss_1m(bench_tenant: Any, exports_dir: Path) -> None:
    _peak(bench_tenant, exports_dir / "mem-1m.jsonl")


def test_peak_rss_5m(bench5m_tenant: Any, exports_dir: Path) -> None:
    rss_5m = _peak(bench5m_tenant, exports_dir / "mem-5m.jsonl")
    rss_1m = RESULTS.values.get("memory.1000000.rss")
    if rss_1m is None:
        pytest.skip("needs test_peak_rss_1m in the same run")
    RESULTS.add(SECTION, "peak RSS 5M / 1M", rss_5m / rss_1m, "x", target="<= 1.1")
