"""The one Python module that touches the Rust extension (``bulkops._native``).

``JsonlEncoder(spec).encode(batch)`` turns an Arrow record batch into JSONL bytes in Rust, with
the GIL released, so rows never become Python objects on the export path.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from bulkops._native import Buffer
from bulkops._native import JsonlEncoder as _NativeEncoder
from bulkops._native import global_id as native_global_id
from bulkops._native import version as native_version

__all__ = ["Buffer", "JsonlEncoder", "native_global_id", "native_version"]


class JsonlEncoder:
    """Encode record batches whose columns follow ``spec``: (JSON key, kind, extra) each."""

    __slots__ = ("_native", "spec")

    def __init__(self, spec: Sequence[tuple[str, str, str | None]]) -> None:
        self.spec = tuple(spec)
        self._native = _NativeEncoder(list(self.spec))

    def encode(self, batch: pa.RecordBatch) -> bytes:
        return self._native.encode(batch)

    def encode_buffer(self, batch: pa.RecordBatch) -> Buffer:
        """The same bytes, owned by Rust and read through the buffer protocol: no copy."""
        return self._native.encode_buffer(batch)
