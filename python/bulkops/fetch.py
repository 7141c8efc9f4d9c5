"""Rows out of PostgreSQL as Arrow record batches, through ADBC's streaming binary COPY.

One ``Snapshot`` is one REPEATABLE READ transaction: every connection of an export reads the
same snapshot, whose time is reported as ``snapshotAt``. Statements carry no bound parameters
(see planner), so ADBC streams them as ``COPY (...) TO STDOUT (FORMAT binary)`` in batches of
about ``batch_bytes``, and memory stays bounded by the batch size, not the export size.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import adbc_driver_postgresql.dbapi as pg
import pyarrow as pa

DEFAULT_BATCH_BYTES = 8 * 1024 * 1024


class Snapshot:
    def __init__(self, database_url: str, batch_bytes: int = DEFAULT_BATCH_BYTES) -> None:
        self._conn: Any = pg.connect(database_url)
        self._conn.adbc_connection.set_options(
            **{
                "adbc.connection.transaction.isolation_level": (
                    "adbc.connection.transaction.isolation.repeatable_read"
                )
            }
        )
        self.batch_bytes = batch_bytes
        cur = self._conn.cursor()
        cur.execute("SELECT now() AS snapshot_at")  # pins the snapshot: first statement
        self.taken_at: datetime = cur.fetch_arrow_table().column(0)[0].as_py()
        cur.close()

    def batches(self, sql: str) -> Iterator[pa.RecordBatch]:
        cur = self._conn.cursor()
        cur.adbc_statement.set_options(
            **{"adbc.postgresql.batch_size_hint_bytes": str(self.batch_bytes)}
        )
        try:
            cur.execute(sql)
            reader = cur.fetch_record_batch()
            yield from reader
        finally:
            cur.close()

    def count(self, sql: str) -> int:
        cur = self._conn.cursor()
        try:
            cur.execute(sql)
            return int(cur.fetch_arrow_table().column(0)[0].as_py())
        finally:
            cur.close()

    def close(self) -> None:
        try:
            self._conn.rollback()  # read-only: nothing to commit
        finally:
            self._conn.close()

    def __enter__(self) -> Snapshot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
