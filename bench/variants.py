"""Bench-local variants of ``bulkops.engine.run_export``, for experiments only.

The engine is not changed from here. This module carries its own copy of the few lines of
engine.py / fetch.py / storage.py the export loop needs (a fetch thread, the ADBC COPY reader,
one obstore writer plus sha256), as they were when the benchmark was written, so the variants
do not break when the engine's internals move. Each variant changes one thing; its effect is
measured next to the real ``run_export`` (the reference) in the same run
(bench/test_experiments.py) and can then be ported by hand if it pays.

Every full variant writes the same bytes as ``run_export`` (the experiment checks the sha256),
so a faster variant is never faster because it writes something else.
"""

from __future__ import annotations

import hashlib
import itertools
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlparse

import adbc_driver_postgresql.dbapi as pg
import obstore
import pyarrow as pa

from bulkops.catalog import TYPES
from bulkops.encoder import JsonlEncoder
from bulkops.fetch import DEFAULT_BATCH_BYTES
from bulkops.planner import ConnectionPlan, Plan, sql_literal
from bulkops.storage import Location

T = TypeVar("T")

PART_BYTES = 16 * 1024 * 1024  #: storage.PART_BYTES
SPILL_CHUNK = 16 * 1024 * 1024


@dataclass(frozen=True)
class Outcome:
    object_count: int
    file_size: int
    sha256: str | None


def data_columns(conn_plan: ConnectionPlan, batch: pa.RecordBatch) -> pa.RecordBatch:
    """The spec's columns only (the planner may append keyset columns after them)."""
    n = len(conn_plan.spec)
    return batch if batch.num_columns == n else batch.select(list(range(n)))


def prefetch(items: Iterator[T], depth: int = 2) -> Iterator[T]:
    """Iterate ``items`` in a background thread, ``depth`` ahead (engine._prefetch, simplified)."""
    q: queue.Queue[tuple[str, object]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                q.put(("item", item))
            q.put(("done", None))
        except BaseException as exc:
            q.put(("error", exc))

    thread = threading.Thread(target=produce, name="bench-fetch", daemon=True)
    thread.start()
    try:
        while True:
            tag, value = q.get()
            if tag == "done":
                return
            if tag == "error":
                raise value  # type: ignore[misc]
            yield value  # type: ignore[misc]
    finally:
        stop.set()
        while thread.is_alive():
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(0.01)


class BenchSnapshot:
    """One REPEATABLE READ transaction read through ADBC's binary COPY (fetch.Snapshot), or,
    with ``snapshot_id``, another connection on a snapshot exported by the first."""

    def __init__(self, database_url: str, batch_bytes: int = DEFAULT_BATCH_BYTES,
                 snapshot_id: str | None = None) -> None:  # fmt: skip
        self._conn: Any = pg.connect(database_url)
        self.batch_bytes = batch_bytes
        cur = self._conn.cursor()
        cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")  # as fetch.Snapshot
        if snapshot_id is None:
            cur.execute("SELECT now()")  # the first statement pins the snapshot
            cur.fetch_arrow_table()
        else:
            cur.adbc_statement.set_options(**{"adbc.postgresql.use_copy": "false"})
            cur.execute(f"SET TRANSACTION SNAPSHOT {sql_literal(snapshot_id)}")
        cur.close()

    def batches(self, sql: str) -> Iterator[pa.RecordBatch]:
        cur = self._conn.cursor()
        cur.adbc_statement.set_options(
            **{"adbc.postgresql.batch_size_hint_bytes": str(self.batch_bytes)}
        )
        try:
            cur.execute(sql)
            yield from cur.fetch_record_batch()
        finally:
            cur.close()

    def scalar(self, sql: str) -> Any:
        cur = self._conn.cursor()
        try:
            cur.execute(sql)
            return cur.fetchone()[0]
        finally:
            cur.close()

    def close(self) -> None:
        try:
            self._conn.rollback()
        finally:
            self._conn.close()

    def __enter__(self) -> BenchSnapshot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ObstoreSink:
    """One object through ``obstore.open_writer`` plus hashlib (the engine's sink before
    parts: no segments, no assembly)."""

    def __init__(self, location: Location) -> None:
        self.location = location
        self.size = 0
        self._sha = hashlib.sha256()
        self._writer: Any = None

    def write(self, data: bytes) -> None:
        if not data:
            return
        if self._writer is None:
            self._writer = obstore.open_writer(
                self.location.store, self.location.key, buffer_size=PART_BYTES
            )
        self._writer.write(data)
        self._sha.update(data)
        self.size += len(data)

    @property
    def sha256(self) -> str:
        return self._sha.hexdigest()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


class PlainFileSink:
    """file:// only: a plain buffered file plus hashlib, instead of obstore's writer."""

    def __init__(self, location: Location) -> None:
        path = Path(unquote(urlparse(location.url).path))
        self._fh = open(path, "wb", buffering=0)  # noqa: SIM115 - closed in close()
        self._sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        self._fh.write(data)
        self._sha.update(data)
        self.size += len(data)

    @property
    def sha256(self) -> str:
        return self._sha.hexdigest()

    def close(self) -> None:
        self._fh.close()


class ThreadedWriter:
    """sha256 + sink writes on their own thread, ``depth`` encoded batches behind."""

    def __init__(self, sink: Any, depth: int) -> None:
        self.sink = sink
        self._q: queue.Queue[bytes | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="bench-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (data := self._q.get()) is not None:
            if self._error is None:
                try:
                    self.sink.write(data)
                except BaseException as exc:
                    self._error = exc

    def write(self, data: bytes) -> None:
        if self._error is not None:
            raise self._error
        self._q.put(data)

    def close(self) -> None:
        self._q.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error
        self.sink.close()

    @property
    def size(self) -> int:
        return int(self.sink.size)

    @property
    def sha256(self) -> str:
        return str(self.sink.sha256)


def export_pipeline(
    plan: Plan,
    database_url: str,
    location: Location,
    *,
    batch_bytes: int = DEFAULT_BATCH_BYTES,
    depth: int = 2,
    writer_thread: bool = False,
    encode_in_fetch_thread: bool = False,
    sink_factory: Callable[[Location], Any] = ObstoreSink,
    stop_after: str | None = None,  #: "fetch" or "encode": a lower bound, nothing written
    sql_for: Callable[[ConnectionPlan], str] = lambda cp: cp.sql,
) -> Outcome:
    """The export loop (engine.run_export minus progress, cancel, size checks, parts and
    checkpoints), with knobs."""
    sink: Any = None if stop_after else sink_factory(location)
    if writer_thread and sink is not None:
        sink = ThreadedWriter(sink, depth)
    rows = 0
    with BenchSnapshot(database_url, batch_bytes) as snap:
        for conn_plan in plan.connections:
            encoder = JsonlEncoder(conn_plan.spec)
            items: Iterator[Any]
            if stop_after == "fetch":
                items = snap.batches(sql_for(conn_plan))  # no prefetch thread: just drain
            elif encode_in_fetch_thread:
                items = prefetch(
                    (
                        (b.num_rows, encoder.encode(data_columns(conn_plan, b)))
                        for b in snap.batches(sql_for(conn_plan))
                    ),
                    depth,
                )
            else:
                items = prefetch(snap.batches(sql_for(conn_plan)), depth)
            for item in items:
                if stop_after == "fetch":
                    rows += item.num_rows
                    continue
                if encode_in_fetch_thread:
                    n, data = item
                else:
                    n, data = item.num_rows, encoder.encode(data_columns(conn_plan, item))
                rows += n
                if sink is not None:
                    sink.write(data)
    if sink is None:
        return Outcome(rows, 0, None)
    sink.close()
    return Outcome(rows, sink.size, sink.sha256)


# -- key-range shards read in parallel on several connections of one snapshot -------------


def sql_without_keyset_columns(conn_plan: ConnectionPlan) -> str | None:
    """The plan's statement without the keyset columns (k0, k1...) the planner appends for
    checkpoints; None if this planner appends none."""
    columns = getattr(conn_plan, "columns", None)
    if columns is None or len(columns) == len(conn_plan.spec):
        return None
    keyset = ", ".join(conn_plan.keyset)  # type: ignore[attr-defined]
    return f"SELECT {', '.join(columns[: len(conn_plan.spec)])} {conn_plan.body} ORDER BY {keyset}"  # type: ignore[attr-defined]


def split_points(snap: BenchSnapshot, plan: Plan, shards: int, sample_pct: float = 1.0) -> list[datetime]:  # fmt: skip
    """Boundaries on the first keyset column from a TABLESAMPLE of the tenant's rows.

    Splitting on the first order column alone keeps the keyset order exact: shard i holds
    ``b[i-1] <= col < b[i]``, so shard 1's lines then shard 2's are the full order."""
    nt = TYPES[plan.connections[0].type_name]
    col = f"t.{nt.order[0]}"
    fractions = ", ".join(f"{i / shards:.6f}" for i in range(1, shards))
    bounds = snap.scalar(
        f"SELECT percentile_disc(ARRAY[{fractions}]::float8[]) WITHIN GROUP (ORDER BY {col}) "
        f"FROM {nt.table} t TABLESAMPLE SYSTEM ({sample_pct}) "
        f"WHERE t.tenant_id = {sql_literal(plan.tenant_id)}"
    )
    return sorted({b for b in (bounds or []) if b is not None})


def shard_sql(sql: str, col: str, lo: datetime | None, hi: datetime | None) -> str:
    clauses = []
    if lo is not None:
        clauses.append(f"{col} >= {sql_literal(lo)}")
    if hi is not None:
        clauses.append(f"{col} < {sql_literal(hi)}")
    head, sep, order = sql.rpartition(" ORDER BY ")
    assert sep and " WHERE " in head, sql
    return f"{head} AND {' AND '.join(clauses)}{sep}{order}" if clauses else sql


def _spill(batches: Iterator[pa.RecordBatch], conn_plan: ConnectionPlan, path: Path,
           counts: list[int], errors: list[BaseException]) -> None:  # fmt: skip
    encoder = JsonlEncoder(conn_plan.spec)
    try:
        with open(path, "wb", buffering=0) as fh:
            for batch in batches:
                fh.write(encoder.encode(data_columns(conn_plan, batch)))
                counts.append(batch.num_rows)
    except BaseException as exc:
        errors.append(exc)


def export_sharded(
    plan: Plan,
    database_url: str,
    location: Location,
    *,
    shards: int = 2,
    spill_dir: Path,
    batch_bytes: int = DEFAULT_BATCH_BYTES,
) -> Outcome:
    """One root connection split into ``shards`` key ranges of one snapshot, read at once on
    ``shards`` connections. Shard 1 streams to the sink as today; the later shards are fetched
    and encoded meanwhile on their own threads into spill files (memory stays bounded), which
    are appended to the sink in order once shard 1 is done."""
    assert len(plan.connections) == 1, "the experiment covers single-connection plans"
    conn_plan = plan.connections[0]
    col = f"t.{TYPES[conn_plan.type_name].order[0]}"
    sink = ObstoreSink(location)
    rows = 0
    with BenchSnapshot(database_url, batch_bytes) as snap:
        bounds = split_points(snap, plan, shards)
        edges: list[datetime | None] = [None, *bounds, None]
        sqls = [shard_sql(conn_plan.sql, col, lo, hi) for lo, hi in itertools.pairwise(edges)]
        snapshot_id = str(snap.scalar("SELECT pg_export_snapshot()"))
        others = [BenchSnapshot(database_url, batch_bytes, snapshot_id) for _ in sqls[1:]]
        spills = [spill_dir / f".shard-{i}.jsonl" for i in range(1, len(sqls))]
        counts: list[list[int]] = [[] for _ in others]
        errors: list[BaseException] = []
        threads = [
            threading.Thread(
                target=_spill,
                args=(other.batches(sql), conn_plan, path, count, errors),
                name=f"bench-shard-{i}",
                daemon=True,
            )
            for i, (other, sql, path, count) in enumerate(
                zip(others, sqls[1:], spills, counts, strict=True), start=2
            )
        ]
        try:
            for t in threads:
                t.start()
            encoder = JsonlEncoder(conn_plan.spec)
            for batch in prefetch(snap.batches(sqls[0])):
                sink.write(encoder.encode(data_columns(conn_plan, batch)))
                rows += batch.num_rows
            for t, path, count in zip(threads, spills, counts, strict=True):
                t.join()
                if errors:
                    raise errors[0]
                rows += sum(count)
                with open(path, "rb", buffering=0) as fh:
                    while block := fh.read(SPILL_CHUNK):
                        sink.write(block)
        finally:
            for t in threads:
                t.join()
            for other in others:
                other.close()
            for path in spills:
                path.unlink(missing_ok=True)
    sink.close()
    return Outcome(rows, sink.size, sink.sha256)
