"""The export engine: plan -> (fetch -> encode -> write) per connection -> one JSONL object.

Data path per batch: ADBC COPY binary -> Arrow record batch -> Rust JSONL bytes -> obstore
multipart writer. Fetch runs in a prefetch thread so Postgres' decoding (GIL released in
pyarrow/ADBC) overlaps with encoding (GIL released in Rust) and the upload on the second core.
No row is ever a Python object here.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from bulkops.encoder import JsonlEncoder
from bulkops.fetch import DEFAULT_BATCH_BYTES, Snapshot
from bulkops.planner import Plan
from bulkops.storage import Location, ObjectSink

log = logging.getLogger("bulkops.engine")
T = TypeVar("T")


class ExportCanceled(Exception):
    """``should_stop`` said "cancel": the partial object was deleted."""


class ExportStopped(Exception):
    """``should_stop`` gave another reason (a deadline): what was written is kept."""


class FileTooLarge(Exception):
    """The output passed ``max_file_bytes``; what was written is kept as partial data."""


@dataclass
class Progress:
    object_count: int = 0
    root_object_count: int = 0
    file_size: int = 0


@dataclass(frozen=True)
class ExportResult:
    object_count: int
    root_object_count: int
    file_size: int
    sha256: str | None  #: None when there were no rows (and so no object)
    snapshot_at: datetime
    location: Location | None  #: None when there were no rows


def _prefetch(
    items: Iterator[T], check: Callable[[], None], on_abandon: Callable[[], None], depth: int = 2
) -> Iterator[T]:
    """Iterate ``items`` in a background thread, ``depth`` ahead of the consumer.

    While waiting for the next item the consumer calls ``check()`` every 100 ms, so a cancel
    is seen even while PostgreSQL is still sorting; if ``check`` raises (or the consumer stops
    early) ``on_abandon()`` runs first, to unblock a producer stuck in a server-side read.
    """
    q: queue.Queue[tuple[str, object]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                q.put(("item", item))
            q.put(("done", None))
        except BaseException as exc:  # handed to the consumer, re-raised there
            q.put(("error", exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()  # in this thread, which owns the generator: runs its cleanup now

    thread = threading.Thread(target=produce, name="bulkops-fetch", daemon=True)
    thread.start()
    finished = False
    try:
        while True:
            try:
                tag, value = q.get(timeout=0.1)
            except queue.Empty:
                check()
                continue
            if tag == "done":
                finished = True
                return
            if tag == "error":
                raise value  # type: ignore[misc]
            yield value  # type: ignore[misc]
    finally:
        stop.set()
        if not finished:
            on_abandon()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(0.01)


def run_export(
    plan: Plan,
    database_url: str,
    location: Location,
    *,
    on_progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], str | None] | None = None,
    on_start: Callable[[int, datetime], None] | None = None,
    max_file_bytes: int | None = None,
    batch_bytes: int = DEFAULT_BATCH_BYTES,
) -> ExportResult:
    """Run ``plan`` into ``location``.

    ``should_stop`` is asked between batches: "cancel" deletes the partial object and raises
    ExportCanceled; any other reason keeps it and raises ExportStopped. ``on_start`` receives
    the number of lines the export will write (counted in its snapshot) and the snapshot time.
    """
    sink = ObjectSink(location)
    progress = Progress()

    def check() -> None:
        reason = should_stop() if should_stop is not None else None
        if reason == "cancel":
            raise ExportCanceled
        if reason is not None:
            raise ExportStopped(reason)

    try:
        with Snapshot(database_url, batch_bytes) as snap:
            if on_start is not None:
                expected = 0
                for cp in plan.connections:  # through _prefetch: a cancel interrupts counting too
                    for batch in _prefetch(snap.batches(cp.count_sql), check, snap.cancel):
                        expected += int(batch.column(0)[0].as_py())
                on_start(expected, snap.taken_at)
            for conn_plan in plan.connections:
                encoder = JsonlEncoder(conn_plan.spec)
                for batch in _prefetch(snap.batches(conn_plan.sql), check, snap.cancel):
                    check()
                    sink.write(encoder.encode(batch))
                    progress.object_count += batch.num_rows
                    if conn_plan.is_root:
                        progress.root_object_count += batch.num_rows
                    progress.file_size = sink.size
                    if on_progress is not None:
                        on_progress(progress)
                    if max_file_bytes is not None and sink.size > max_file_bytes:
                        raise FileTooLarge(
                            f"the export passed the maximum file size of {max_file_bytes} bytes"
                        )
            snapshot_at = snap.taken_at
    except ExportCanceled:
        sink.discard()
        raise
    except BaseException:
        sink.close()  # keep what was written: it is the partial data of a failure
        raise
    sink.close()
    return ExportResult(
        object_count=progress.object_count,
        root_object_count=progress.root_object_count,
        file_size=sink.size,
        sha256=sink.sha256 if sink.written else None,
        snapshot_at=snapshot_at,
        location=location if sink.written else None,
    )
