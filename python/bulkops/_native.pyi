"""Native core of bulkops (Rust, PyO3): Arrow record batches to JSON Lines.

Only ``bulkops.encoder`` imports this module; everything else goes through it.
"""

from collections.abc import Sequence
from typing import Literal, Protocol, TypeAlias, final

_FieldKind: TypeAlias = Literal[
    "global_id", "int", "float", "bool", "string", "time", "date", "json"
]

class _ArrowArrayExportable(Protocol):
    """Anything exporting a struct array through the Arrow PyCapsule interface.

    ``pyarrow.RecordBatch`` (pyarrow >= 14), ``arro3.core.RecordBatch``, polars' and nanoarrow's
    equivalents all qualify.
    """

    def __arrow_c_array__(
        self, requested_schema: object | None = None
    ) -> tuple[object, object]: ...

@final
class JsonlEncoder:
    """Encodes Arrow record batches as JSON Lines: one ``{"key":value,...}`` object per row.

    Keys come in field order with no spaces, and every key is always present (``null`` for
    nulls). Built once per export, then fed every batch; thread-safe.

    Kinds and the Arrow column types each accepts (a ``null``-typed column suits every kind):

    - ``"global_id"``: any integer. The JSON string ``base64("TypeName:<id>")`` (standard
      alphabet, padded), with ``extra`` as the GraphQL type name.
    - ``"int"``: any signed or unsigned integer. A JSON number.
    - ``"float"``: float32, float64 or any integer. The shortest text that reads back as the
      same float, laid out as Python's ``repr`` (``0.0001``, ``1e-05``, ``2.0``, ``1e+16``),
      so float64 text equals the sync API's; NaN and +/-inf become ``null``.
    - ``"bool"``: boolean. ``true`` / ``false``.
    - ``"string"``: utf8, large_utf8 or utf8_view. A JSON string: ``"`` and ``\\``, the
      short escapes ``\\n \\r \\t \\b \\f``, other characters below U+0020 and DEL as
      ``\\u00xx``; all other characters written raw as UTF-8.
    - ``"time"``: timestamp in any unit, with any or no time zone (the stored instant is
      written in UTC). Always ``"YYYY-MM-DDTHH:MM:SS.ffffffZ"``, nanoseconds floored to
      microseconds. Only years 0001-9999 can be written.
    - ``"date"``: date32 or date64. ``"YYYY-MM-DD"``, years 0001-9999.
    - ``"json"``: utf8, large_utf8 or utf8_view (including the ``arrow.json`` extension type)
      holding JSON text, which is embedded as is, without checking; an empty string becomes
      ``null``.

    Args:
        fields: ``(key, kind, extra)`` per column, positionally: field ``i`` describes column
            ``i`` of every batch (column names are not read). ``extra`` is the GraphQL type
            name for ``"global_id"`` and ignored for other kinds.

    Raises:
        ValueError: A kind is unknown, or a ``"global_id"`` field has no type name.
    """

    def __init__(self, fields: Sequence[tuple[str, str, str | None]]) -> None: ...
    @property
    def fields(self) -> list[tuple[str, _FieldKind, str | None]]:
        """The field list, as ``(key, kind, extra)`` tuples."""

    def encode(self, batch: _ArrowArrayExportable) -> bytes:
        """Encodes every row of ``batch``, releasing the GIL while it works.

        Args:
            batch: A record batch whose columns follow the field list.

        Returns:
            UTF-8 JSON Lines, each line ending in ``\\n``; ``b""`` for an empty batch.

        Raises:
            ValueError: The column count differs from the field count, a column's Arrow type
                does not suit its field's kind, a timestamp or date lies outside years
                0001-9999, or ``batch`` does not expose ``__arrow_c_array__``. The message
                names the field (and row).
        """

    def encode_buffer(self, batch: _ArrowArrayExportable) -> Buffer:
        """Like ``encode``, without copying the output into a ``bytes``: the export path
        hands it straight to the hash and the object-store writer."""

@final
class Buffer:
    """Bytes owned by Rust, readable through the buffer protocol without a copy
    (``memoryview(buf)``, ``hashlib``, obstore writers); ``len(buf)`` is their size."""

    def __len__(self) -> int: ...
    def __buffer__(self, flags: int, /) -> memoryview: ...
    def to_bytes(self) -> bytes: ...

def global_id(type_name: str, id: int, /) -> str:
    """The Relay global id of an object: ``base64("{type_name}:{id}")``.

    The same text as ``base64.b64encode(f"{type_name}:{id}".encode()).decode()`` and as the
    ``"global_id"`` kind of :class:`JsonlEncoder`.

    Raises:
        OverflowError: ``id`` does not fit in a signed 64-bit integer.
    """

def version() -> str:
    """The version of the native extension (the Cargo package version)."""
