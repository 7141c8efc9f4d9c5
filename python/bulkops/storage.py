"""Object storage through obstore: where exports go, how they are written, signed and deleted.

A *storage URL* names one object: ``file:///abs/dir/key.jsonl`` (the embedded default) or
``s3://bucket/prefix/key.jsonl`` (S3 or a compatible server at ``BULKOPS_S3_ENDPOINT``).
Writes stream through ``obstore.open_writer``: multipart above the buffer size, so an export is
never held in memory whole.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import obstore
from obstore.store import LocalStore, S3Store

from bulkops.config import Settings

#: buffer per multipart part; bounded memory, and above S3's 5 MiB minimum part size
PART_BYTES = 16 * 1024 * 1024


class StorageError(ValueError):
    pass


@dataclass(frozen=True)
class Location:
    """One object: a store plus a key inside it."""

    store: Any
    key: str
    url: str

    @property
    def is_local(self) -> bool:
        return isinstance(self.store, LocalStore)


def s3_store(settings: Settings, bucket: str) -> S3Store:
    return S3Store(
        bucket,
        config={
            "endpoint": settings.s3_endpoint,
            "access_key_id": settings.s3_access_key,
            "secret_access_key": settings.s3_secret_key,
            "region": settings.s3_region,
            "virtual_hosted_style_request": False,
        },
        client_options={"allow_http": settings.s3_endpoint.startswith("http://")},
    )


def locate(url: str, settings: Settings) -> Location:
    parsed = urlparse(url)
    if parsed.scheme == "file":
        path = Path(unquote(parsed.path))
        if not path.is_absolute() or not path.name:
            raise StorageError(f"{url!r}: a file URL needs an absolute path to a file")
        path.parent.mkdir(parents=True, exist_ok=True)
        return Location(LocalStore(str(path.parent)), path.name, url)
    if parsed.scheme == "s3":
        key = parsed.path.lstrip("/")
        if not parsed.netloc or not key:
            raise StorageError(f"{url!r}: an S3 URL is s3://bucket/key")
        return Location(s3_store(settings, parsed.netloc), key, url)
    raise StorageError(f"{url!r}: storage URLs start with file:// or s3://")


def join(base_url: str, key: str) -> str:
    return base_url.rstrip("/") + "/" + key.lstrip("/")


class ObjectSink:
    """Streams bytes into one object. It is created lazily on the first write, so an export
    with no rows leaves no object; size and sha256 are computed on the way through."""

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

    @property
    def written(self) -> bool:
        return self._writer is not None

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()

    def discard(self) -> None:
        """Drop what was written (a cancel): finish the upload, then delete the object."""
        if self._writer is None:
            return
        try:
            self._writer.close()
        finally:
            delete(self.location)


def delete(location: Location) -> None:
    try:
        obstore.delete(location.store, location.key)
    except FileNotFoundError:
        pass
    except Exception as exc:  # obstore raises NotFoundError for local stores
        if type(exc).__name__ != "NotFoundError":
            raise


def sign_get(location: Location, expires_in: timedelta) -> str:
    """A presigned GET URL (S3 stores only; the local store is served by the Bridge)."""
    return str(obstore.sign(location.store, "GET", location.key, expires_in))
