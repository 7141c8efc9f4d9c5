"""Trying to make the export faster: bench-local variants of run_export (bench/variants.py).

The variants share one bench-local copy of the export loop (fetch thread, ADBC COPY reader,
Rust encoder, one obstore object + sha256): "pipeline". Each variant changes one knob of it, so
"variant / pipeline" (< 1 is faster) is like for like. "pipeline / run_export" compares that
copy with the engine as it is now (which may do more: parts, checkpoints...).

Everything runs ``ROUNDS`` times interleaved (in a shuffled order each round). Ratios are of
the *median* times: on a shared machine one lucky run would make the best-of ratio swing by
+-20% between runs (observed), the median much less. Full variants must write the
very same file (same sha256). Two lower bounds show where the time goes: the fetch alone
(ADBC batches drained) and fetch + encode with nothing written.

Set BENCH_EXPERIMENTS=0 to skip this module (about 3 minutes).
"""

from __future__ import annotations

import functools
import os
import random
import resource
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bench.e2e import viewer_sessions_plan
from bench.support import RESULTS, timed
from bench.variants import (
    Outcome,
    PlainFileSink,
    export_pipeline,
    export_sharded,
    sql_without_keyset_columns,
)
from bulkops.config import Settings
from bulkops.engine import run_export
from bulkops.storage import locate

SECTION = "experiment"
ROUNDS = 5
MiB = 1024 * 1024

pytestmark = pytest.mark.skipif(
    os.environ.get("BENCH_EXPERIMENTS", "1") == "0", reason="BENCH_EXPERIMENTS=0"
)


def test_export_variants(bench_tenant: Any, settings: Settings, exports_dir: Path) -> None:
    the_plan = viewer_sessions_plan(bench_tenant.id)
    url = settings.database_url
    loc = locate((exports_dir / "experiment.jsonl").as_uri(), settings)
    pipe = functools.partial(export_pipeline, the_plan, url, loc)

    def reference() -> Outcome:
        r = run_export(the_plan, url, loc)
        return Outcome(r.object_count, r.file_size, r.sha256)

    variants: dict[str, tuple[Callable[[], Outcome], str]] = {
        "reference": (reference, "engine.run_export as it is"),
        "pipeline": (pipe, "bench copy of the export loop: 8 MiB batches, prefetch depth 2"),
        "lower bound: fetch only": (lambda: pipe(stop_after="fetch"), "ADBC batches drained"),
        "lower bound: fetch + encode": (lambda: pipe(stop_after="encode"), "nothing written"),
        "batch_bytes 8 MiB": (lambda: pipe(batch_bytes=8 * MiB), "fetch.Snapshot(batch_bytes)"),
        "batch_bytes 32 MiB": (lambda: pipe(batch_bytes=32 * MiB), "more memory per batch"),
        "prefetch depth 1": (lambda: pipe(depth=1), "engine._prefetch(depth=)"),
        "prefetch depth 4": (lambda: pipe(depth=4), "engine._prefetch(depth=)"),
        "writer thread": (lambda: pipe(writer_thread=True), "sha256 + sink.write on a 3rd thread"),
        "encode in fetch thread": (
            lambda: pipe(encode_in_fetch_thread=True),
            "main thread only hashes and writes",
        ),
        "plain file sink": (
            lambda: pipe(sink_factory=PlainFileSink),
            "file:// without obstore's writer",
        ),
        "2 key-range shards": (
            lambda: export_sharded(the_plan, url, loc, shards=2, spill_dir=exports_dir),
            "2 connections, one exported snapshot; shard 2 spilled to a temp file",
        ),
    }
    if sql_without_keyset_columns(the_plan.connections[0]) is not None:
        variants["without keyset columns"] = (
            lambda: pipe(sql_for=lambda cp: sql_without_keyset_columns(cp) or cp.sql),
            "SQL without the k0, k1 columns appended for checkpoints",
        )
    times: dict[str, list[float]] = {name: [] for name in variants}
    cpus: dict[str, list[float]] = {name: [] for name in variants}  # this process, all threads
    outcomes: dict[str, Outcome] = {}
    for round_no in range(ROUNDS):
        order = list(variants)
        random.Random(round_no).shuffle(order)  # no variant always follows the same one
        for name in order:
            fn = variants[name][0]
            (exports_dir / "experiment.jsonl").unlink(missing_ok=True)  # untimed: see support
            cpu0 = _cpu()
            seconds, outcome = timed(fn)
            times[name].append(seconds)
            cpus[name].append(_cpu() - cpu0)
            outcomes[name] = outcome

    ref = outcomes["reference"]
    assert ref.object_count == bench_tenant.sessions
    for name, outcome in outcomes.items():
        assert outcome.object_count == ref.object_count, name
        if outcome.sha256 is not None:
            assert (outcome.file_size, outcome.sha256) == (ref.file_size, ref.sha256), name
    (exports_dir / "experiment.jsonl").unlink(missing_ok=True)

    med = {name: statistics.median(t) for name, t in times.items()}
    cpu = {name: statistics.median(c) for name, c in cpus.items()}

    def note(name: str) -> str:
        return (f"median {med[name]:.2f} s (best {min(times[name]):.2f}), "
                f"client CPU {cpu[name]:.2f} s")  # fmt: skip

    RESULTS.add(SECTION, f"run_export (median of {ROUNDS})", med["reference"], "s",
                note=note("reference") + " (Postgres' CPU not included)")  # fmt: skip
    RESULTS.add(SECTION, "pipeline / run_export", med["pipeline"] / med["reference"], "x",
                note=note("pipeline"))  # fmt: skip
    for name, (_fn, what) in variants.items():
        if name not in ("reference", "pipeline"):
            RESULTS.add(SECTION, f"{name} / pipeline", med[name] / med["pipeline"], "x",
                        note=f"{note(name)}; {what}")  # fmt: skip


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
