"""HMAC signing of small opaque tokens (page cursors, download links).

The key is ``BULKOPS_SECRET_KEY`` or, for local use, a random key created once in
``$BULKOPS_HOME/secret_key`` so that every Bridge and worker process on the machine agrees.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from bulkops.config import Settings

_MAC_BYTES = 16


class BadSignature(ValueError):
    pass


@functools.cache
def _key_from_file(path: Path) -> bytes:
    """The key in ``path``, created by whichever process gets there first. The key is written
    to a private temporary file and published with link(2), which fails if ``path`` exists:
    a process starting at the same moment (``serve --workers 2``) never reads a half-written
    or empty file, and every process ends up with the one key that won."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(secrets.token_hex(32).encode())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process published first: use its key
        finally:
            tmp.unlink()
    key = path.read_bytes().strip()
    if not key:
        raise RuntimeError(f"{path} is empty: delete it, or set BULKOPS_SECRET_KEY")
    return key


def secret_key(settings: Settings) -> bytes:
    env = os.environ.get("BULKOPS_SECRET_KEY")
    if env:
        return env.encode()
    return _key_from_file(settings.home / "secret_key")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(key: bytes, payload: bytes, purpose: str) -> str:
    """``<payload>.<mac>``, URL-safe; ``purpose`` keeps a cursor from passing as a link."""
    mac = hmac.new(key, purpose.encode() + b"\x00" + payload, hashlib.sha256).digest()[:_MAC_BYTES]
    return f"{_b64(payload)}.{_b64(mac)}"


def unsign(key: bytes, token: str, purpose: str) -> bytes:
    try:
        payload_text, mac_text = token.split(".")
        payload, mac = _unb64(payload_text), _unb64(mac_text)
    except (ValueError, TypeError):
        raise BadSignature("malformed") from None
    # base64 is malleable in its last character's unused bits: accept only the canonical form
    if _b64(payload) != payload_text or _b64(mac) != mac_text:
        raise BadSignature("malformed")
    want = hmac.new(key, purpose.encode() + b"\x00" + payload, hashlib.sha256).digest()[:_MAC_BYTES]
    if not hmac.compare_digest(mac, want):
        raise BadSignature("bad signature")
    return payload
