"""End to end: 1M viewer sessions, all fields, exported to the local store, against COPY.

See bench/e2e.py for the three contenders (best of 3, alternating, same SQL).
Targets: export / COPY binary <= 1.3; row_to_json / export >= 2.5.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.e2e import ExportBaseline
from bench.support import MB, RESULTS, count_lines, run_query

SECTION = "export 1M"


def test_export_vs_copy(export_baseline: ExportBaseline, bench_tenant: Any) -> None:
    b = export_baseline
    assert b.result.object_count == bench_tenant.sessions
    assert b.result.root_object_count == bench_tenant.sessions
    assert b.result.sha256 is not None
    assert count_lines(b.out_path) == bench_tenant.sessions
    assert b.out_path.stat().st_size == b.result.file_size

    RESULTS.add(SECTION, "export / COPY binary", b.export_over_copy, "x", target="<= 1.3")
    RESULTS.add(SECTION, "COPY row_to_json / export", b.row_to_json_over_export, "x",
                target=">= 2.5")  # fmt: skip
    RESULTS.add(SECTION, "run_export (in-process, best of 3)", b.export_s, "s")
    RESULTS.add(SECTION, "psql COPY binary -> /dev/null", b.copy_binary_s, "s")
    RESULTS.add(SECTION, "psql COPY row_to_json -> /dev/null", b.row_to_json_s, "s")
    RESULTS.add(SECTION, "export throughput", b.result.file_size / b.export_s / MB, "MB/s",
                note=f"{b.result.file_size / MB:.0f} MB of JSONL")  # fmt: skip
    RESULTS.add(SECTION, "export rows/s", b.result.object_count / b.export_s, "rows/s")


def test_run_query_subprocess(export_baseline: ExportBaseline, bench_tenant: Any,
                              exports_dir: Path) -> None:  # fmt: skip
    """``bulkops run-query`` once, as an operator runs it: process start, imports and all."""
    out = exports_dir / "run-query-1m.jsonl"
    run, result = run_query(bench_tenant.name, out)
    assert result["objectCount"] == bench_tenant.sessions
    assert count_lines(out) == bench_tenant.sessions
    out.unlink()
    RESULTS.add(SECTION, "bulkops run-query (subprocess wall)", run.seconds, "s",
                note=f"engine {result['seconds']:.3f} s; the rest is start-up")  # fmt: skip
    RESULTS.add(SECTION, "run-query wall / run_export in-process",
                run.seconds / export_baseline.export_s, "x")  # fmt: skip
