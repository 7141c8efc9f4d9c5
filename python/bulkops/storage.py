"""Object storage through obstore: where exports go, how they are written, signed and deleted.

A *storage URL* names one object: ``file:///abs/dir/key.jsonl`` (the embedded default) or
``s3://bucket/prefix/key.jsonl`` (S3 or a compatible server at ``BULKOPS_S3_ENDPOINT``).
Writes stream through ``obstore.open_writer``: multipart above the buffer size, so an export is
never held in memory whole.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

import obstore
from obstore.store import LocalStore, S3Store

from bulkops.config import Settings

if TYPE_CHECKING:
    from bulkops.encoder import Buffer

#: buffer per multipart part; bounded memory, and above S3's 5 MiB minimum part size
PART_BYTES = 8 * 1024 * 1024
#: parts in flight per writer. obstore's default (12) lets up to 12 x PART_BYTES queue in memory
#: whenever the store is slower than the encoder (a busy disk): peak RSS then depends on the
#: disk, not on the batch size. Two keep the store busy while the next part fills.
WRITER_CONCURRENCY = 2


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
        return Location(LocalStore(str(path.parent), mkdir=True), path.name, url)
    if parsed.scheme == "s3":
        key = parsed.path.lstrip("/")
        if not parsed.netloc or not key:
            raise StorageError(f"{url!r}: an S3 URL is s3://bucket/key")
        return Location(s3_store(settings, parsed.netloc), key, url)
    raise StorageError(f"{url!r}: storage URLs start with file:// or s3://")


def join(base_url: str, key: str) -> str:
    return base_url.rstrip("/") + "/" + key.lstrip("/")


@dataclass(frozen=True)
class Part:
    key: str
    size: int


class SegmentedSink:
    """Writes an export as numbered part objects, then assembles them into one object.

    A part is closed at a batch boundary once it holds ``segment_bytes``; a closed part is
    durable, so a crashed export resumes after its last part instead of from zero (the engine
    records the keyset position with each part). Parts are named
    ``<key>.parts/<tag>-<n>``; ``tag`` (the attempt) keeps a presumed-dead worker from ever
    overwriting its successor's parts. With no data at all, nothing is written.
    """

    def __init__(self, location: Location, *, tag: str, segment_bytes: int,
                 prior: list[Part] | None = None, parts_prefix: str | None = None) -> None:  # fmt: skip
        self.location = location
        self.parts_prefix = parts_prefix or f"{location.key}.parts/"
        self.tag = tag
        self.segment_bytes = segment_bytes
        self.parts: list[Part] = list(prior or [])
        self.size = sum(p.size for p in self.parts)
        # hashed on the way through, unless resumed: then at assembly, in one pass
        self._sha = None if self.parts else hashlib.sha256()
        self._writer: Any = None
        self._part_key = ""
        self._part_size = 0

    def write(self, data: bytes | Buffer) -> None:
        if not data:
            return
        if self._writer is None:
            self._part_key = f"{self.parts_prefix}{self.tag}-{len(self.parts):05d}"
            self._writer = obstore.open_writer(
                self.location.store,
                self._part_key,
                buffer_size=PART_BYTES,
                max_concurrency=WRITER_CONCURRENCY,
            )
            self._part_size = 0
        self._writer.write(data)
        if self._sha is not None:
            self._sha.update(data)
        self._part_size += len(data)
        self.size += len(data)

    def segment_full(self) -> bool:
        return self._part_size >= self.segment_bytes

    def roll(self) -> Part | None:
        """Close the current part (durably); the next write starts a new one."""
        if self._writer is None:
            return None
        self._writer.close()
        self._writer = None
        part = Part(self._part_key, self._part_size)
        self.parts.append(part)
        return part

    def finish(self, *, delete_parts: bool = True) -> str | None:
        """Assemble the parts into the object; return its sha256, or None if there is none.
        After a failure the parts are kept (``delete_parts=False``): whether this attempt
        still owns the operation is for the worker to find out, and it sweeps them then."""
        self.roll()
        if not self.parts:
            return None
        if self.location.is_local:
            sha = self._assemble_local(move_first=delete_parts)
        else:
            sha = self._assemble_remote()
        if delete_parts:
            self._delete([p.key for p in self.parts])
        return sha

    def discard(self) -> None:
        """Drop everything written, parts of earlier attempts included (a cancel)."""
        self.roll()
        self._delete([p.key for p in self.parts])

    def abandon(self) -> None:
        """Stop without touching closed parts: a newer attempt may have resumed from a
        checkpoint that lists them. Only the part still open (never in a checkpoint) goes;
        closed parts past the last saved checkpoint are orphans for the winner's sweep."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
            self._delete([self._part_key])

    def sweep(self) -> None:
        """Remove every part under the prefix, orphans of crashed attempts included. Only the
        attempt that owns the operation's final state may call this."""
        if self.location.is_local:
            root = Path(unquote(urlparse(self.location.url).path)).parent
            shutil.rmtree(root / self.parts_prefix, ignore_errors=True)
            return
        keys = [m["path"] for batch in obstore.list(self.location.store, prefix=self.parts_prefix)
                for m in batch]  # fmt: skip
        self._delete(keys)

    def _delete(self, keys: list[str]) -> None:
        for key in keys:
            delete(Location(self.location.store, key, self.location.url))

    def _assemble_local(self, *, move_first: bool) -> str:
        root = Path(unquote(urlparse(self.location.url).path)).parent
        final = root / self.location.key
        if move_first:  # the first part becomes the file
            os.replace(root / self.parts[0].key, final)
        else:  # parts must stay valid for a successor
            shutil.copyfile(root / self.parts[0].key, final)
        with open(final, "r+b") as out:  # not "ab": copy_file_range refuses O_APPEND
            out.seek(0, os.SEEK_END)
            for part in self.parts[1:]:
                with open(root / part.key, "rb") as src:
                    remaining = part.size
                    while remaining:  # copied in the kernel, not through Python
                        copied = os.copy_file_range(src.fileno(), out.fileno(), remaining)
                        if copied == 0:
                            raise StorageError(f"part {part.key} is shorter than recorded")
                        remaining -= copied
        if self._sha is not None:
            return self._sha.hexdigest()
        sha = hashlib.sha256()
        with open(final, "rb") as f:
            while chunk := f.read(8 << 20):
                sha.update(chunk)
        return sha.hexdigest()

    def _assemble_remote(self) -> str:
        store = self.location.store
        if len(self.parts) == 1 and self._sha is not None:
            obstore.rename(store, self.parts[0].key, self.location.key)
            return self._sha.hexdigest()
        sha = hashlib.sha256()

        def chunks() -> Any:
            for part in self.parts:
                for chunk in obstore.get(store, part.key).stream(min_chunk_size=8 << 20):
                    data = bytes(chunk)
                    sha.update(data)
                    yield data

        obstore.put(store, self.location.key, chunks(), chunk_size=PART_BYTES)
        return sha.hexdigest()


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
