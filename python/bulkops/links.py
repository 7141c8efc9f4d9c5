"""Expiring download links for results.

S3 results get a presigned GET URL (signature and expiry checked by the store itself). Local
results are served by the Bridge at ``/downloads/<token>``, where the token is an HMAC-signed
(operation, tenant, expiry) triple; a tampered or expired token is refused.
"""

from __future__ import annotations

import json
import math
import time
from datetime import UTC, datetime, timedelta

from bulkops.config import Settings
from bulkops.operations import Operation
from bulkops.signing import BadSignature, sign, unsign
from bulkops.storage import locate, sign_get


class LinkError(ValueError):
    pass


def result_url(op: Operation, settings: Settings, secret: bytes) -> str | None:
    """The signed URL of the operation's object, valid until ``url_expires_at``; None if none."""
    if op.storage_url is None or op.url_expires_at is None:
        return None
    remaining = op.url_expires_at - datetime.now(UTC)
    if remaining <= timedelta(0):
        return None
    if op.storage_url.startswith("s3://"):
        # whole seconds: the signature's date is truncated to the second, so round up
        return sign_get(
            locate(op.storage_url, settings),
            timedelta(seconds=math.ceil(remaining.total_seconds())),
        )
    payload = json.dumps(
        {"o": op.id, "t": op.tenant_id, "e": int(op.url_expires_at.timestamp())},
        separators=(",", ":"),
    ).encode()
    return f"{settings.public_url.rstrip('/')}/downloads/{sign(secret, payload, 'download')}"


def verify_download(token: str, secret: bytes) -> tuple[int, int]:
    """(operation id, tenant id) of a valid, unexpired download token."""
    try:
        claims = json.loads(unsign(secret, token, "download"))
        op_id, tenant_id, expires = int(claims["o"]), int(claims["t"]), int(claims["e"])
    except (BadSignature, ValueError, KeyError, TypeError):
        raise LinkError("this download link is invalid") from None
    if time.time() >= expires:
        raise LinkError("this download link has expired; query the operation for a new one")
    return op_id, tenant_id
