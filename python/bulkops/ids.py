"""Global ids: ``base64("<TypeName>:<primary key>")``, the Relay convention.

The same encoding is written by the Rust encoder (``global_id`` kind) for bulk output, so an
object has one id in the sync API, in bulk lines and in ``__parentId``.
"""

from __future__ import annotations

import base64
import binascii

from bulkops.catalog import TYPES

_MAX_PK = 2**63 - 1  # bigint
#: node types that are not exportable, so not in the catalog, but have global ids
OTHER_NODE_TYPES = frozenset({"BulkOperation"})


class InvalidId(ValueError):
    """The value is not a global id of the expected type; ``str()`` is safe to show users."""


def encode(type_name: str, pk: int) -> str:
    return base64.b64encode(f"{type_name}:{pk}".encode()).decode("ascii")


def decode(value: str, expected: str | None = None) -> tuple[str, int]:
    """Parse a global id into (type name, primary key); never returns an unknown type."""
    if not isinstance(value, str) or not 0 < len(value) <= 200:
        raise InvalidId("not a valid id")
    try:
        raw = base64.b64decode(value.encode("ascii"), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError):
        raise InvalidId(f"{value!r} is not a valid id") from None
    type_name, sep, pk_text = raw.partition(":")
    if (
        not sep
        or (type_name not in TYPES and type_name not in OTHER_NODE_TYPES)
        or not pk_text.isdigit()
        or len(pk_text) > 19
    ):
        raise InvalidId(f"{value!r} is not a valid id")
    if int(pk_text) > _MAX_PK:
        raise InvalidId(f"{value!r} is not a valid id")
    if expected is not None and type_name != expected:
        raise InvalidId(f"{value!r} is not the id of a {expected}")
    return type_name, int(pk_text)
