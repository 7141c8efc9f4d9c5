"""Micro benchmark: Arrow batches already in memory -> JSONL bytes.

The same 1M viewer sessions (all 16 fields of queries/viewer_sessions.graphql), fetched once
through ``Snapshot`` into a list of record batches, encoded by:

* the Rust encoder (``JsonlEncoder(spec).encode_buffer(batch)`` per batch), as the export
  calls it (the output stays in Rust's buffer, read through the buffer protocol);
* ``polars.from_arrow(table).write_ndjson()``, a general-purpose columnar encoder;
* ``to_pylist()`` + ``orjson.dumps`` per row: what rows-as-Python-objects cost. It is slow, so
  it runs on the first 100,000 rows and its time is scaled x10 to 1M (reported as such).

Outputs differ in size (the Rust encoder writes global ids and RFC 3339 ``Z`` times, polars
and orjson raw integers and ``+00:00`` times), so each gets its own MB/s; the ratio between
encoders is on rows/s, i.e. time for the same rows.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson
import polars as pl
import pyarrow as pa
import pytest

from bench.e2e import viewer_sessions_plan
from bench.support import MB, RESULTS
from bench.variants import data_columns
from bulkops.encoder import JsonlEncoder
from bulkops.fetch import Snapshot
from bulkops.planner import FieldSpec

ROUNDS = 3
ORJSON_ROWS = 100_000
SECTION = "encode"


class Batches:
    def __init__(self, batches: list[pa.RecordBatch], spec: tuple[FieldSpec, ...]) -> None:
        self.batches = batches
        self.spec = spec
        self.rows = sum(b.num_rows for b in batches)
        # polars and orjson see the JSON keys as column names, as the Rust encoder writes them
        self.table = pa.Table.from_batches(batches).rename_columns([k for k, _, _ in spec])


@pytest.fixture(scope="module")
def arrow_batches(bench_tenant: Any, settings: Any) -> Batches:
    conn_plan = viewer_sessions_plan(bench_tenant.id).connections[0]
    with Snapshot(settings.database_url) as snap:
        batches = [data_columns(conn_plan, b) for b in snap.batches(conn_plan.sql)]
    data = Batches(batches, conn_plan.spec)
    assert data.rows == bench_tenant.sessions
    assert len(data.spec) == 16
    return data


def run_timed(benchmark: Any, fn: Callable[[], Any], rounds: int = ROUNDS) -> tuple[float, Any]:
    """pytest-benchmark drives the rounds (and keeps its own table); we keep the best time
    ourselves as well, so the figure exists with --benchmark-disable too."""
    import time

    times: list[float] = []
    last: list[Any] = [None]

    def wrapped() -> None:
        last[0] = None  # free the previous round's output first
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
        last[0] = out

    benchmark.pedantic(wrapped, rounds=rounds, iterations=1, warmup_rounds=0)
    return min(times), last[0]


def record(name: str, seconds: float, rows: int, out_bytes: int, note: str = "") -> None:
    RESULTS.values[f"encode.{name}.s"] = seconds
    RESULTS.values[f"encode.{name}.rows_per_s"] = rows / seconds
    RESULTS.add(SECTION, f"{name} throughput", out_bytes / seconds / MB, "MB/s",
                note=f"{out_bytes / MB:.0f} MB of JSON {note}".rstrip())  # fmt: skip
    RESULTS.add(SECTION, f"{name} rows/s", rows / seconds, "rows/s", note=note)


# Outputs kept for the equivalence check (line counts, a few rows).
_OUTPUTS: dict[str, bytes] = {}


@pytest.mark.benchmark(group="encode")
def test_encode_rust(benchmark: Any, arrow_batches: Batches) -> None:
    """As the export runs it: each batch's JSON is handed on (here: measured) and dropped, so
    its memory is reused; keeping 442 MB of outputs alive would time page faults instead."""
    encoder = JsonlEncoder(arrow_batches.spec)

    def encode() -> int:
        return sum(len(encoder.encode_buffer(b)) for b in arrow_batches.batches)

    seconds, size = run_timed(benchmark, encode)
    out = b"".join(encoder.encode(b) for b in arrow_batches.batches)  # untimed, for the check
    assert len(out) == size
    record("rust", seconds, arrow_batches.rows, size)
    _OUTPUTS["rust"] = out


@pytest.mark.benchmark(group="encode")
def test_encode_polars(benchmark: Any, arrow_batches: Batches) -> None:
    def encode() -> bytes:
        buf = io.BytesIO()
        pl.from_arrow(arrow_batches.table).write_ndjson(buf)  # type: ignore[union-attr]
        return buf.getvalue()

    seconds, out = run_timed(benchmark, encode)
    record("polars", seconds, arrow_batches.rows, len(out), "(from_arrow + write_ndjson)")
    _OUTPUTS["polars"] = out


@pytest.mark.benchmark(group="encode")
def test_encode_orjson_per_row(benchmark: Any, arrow_batches: Batches) -> None:
    part = arrow_batches.table.slice(0, ORJSON_ROWS)
    scale = arrow_batches.rows / part.num_rows

    def encode() -> bytes:
        opt = orjson.OPT_APPEND_NEWLINE
        return b"".join([orjson.dumps(row, option=opt) for row in part.to_pylist()])

    seconds, out = run_timed(benchmark, encode, rounds=2)
    assert out.count(b"\n") == part.num_rows
    record("orjson per row", seconds * scale, arrow_batches.rows, int(len(out) * scale),
           f"(measured on {part.num_rows:,} rows, scaled x{scale:g})")  # fmt: skip


def _norm(key: str, value: Any) -> Any:
    """Compare values whose formats differ: global ids -> pk, times -> datetime."""
    if isinstance(value, str) and key in ("id", "streamId"):
        return int(base64.b64decode(value).decode().rsplit(":", 1)[1])
    if isinstance(value, str) and key in ("connectedAt", "disconnectedAt"):
        return datetime.fromisoformat(value)
    return value


def test_encode_equivalence_and_ratios(arrow_batches: Batches) -> None:
    if not {"rust", "polars"} <= _OUTPUTS.keys():
        pytest.skip("needs test_encode_rust and test_encode_polars in the same run")
    rust, polars_out = _OUTPUTS.pop("rust"), _OUTPUTS.pop("polars")
    # Every row is one line in both (ids and times differ in format, so lines differ).
    assert rust.count(b"\n") == polars_out.count(b"\n") == arrow_batches.rows
    # On a few rows, the same keys and the same values once ids and times are normalised.
    rust_lines, polars_lines = rust.split(b"\n", 5)[:5], polars_out.split(b"\n", 5)[:5]
    for r_line, p_line in zip(rust_lines, polars_lines, strict=True):
        r, p = json.loads(r_line), json.loads(p_line)
        assert list(r) == list(p) == [k for k, _, _ in arrow_batches.spec]
        assert {k: _norm(k, v) for k, v in r.items()} == {k: _norm(k, v) for k, v in p.items()}

    v = RESULTS.values
    RESULTS.add(SECTION, "rust / polars (rows/s)",
                v["encode.rust.rows_per_s"] / v["encode.polars.rows_per_s"], "x")  # fmt: skip
    if "encode.orjson per row.rows_per_s" in v:
        RESULTS.add(SECTION, "rust / orjson per row (rows/s)",
                    v["encode.rust.rows_per_s"] / v["encode.orjson per row.rows_per_s"], "x",
                    note="orjson scaled from 100k rows")  # fmt: skip
