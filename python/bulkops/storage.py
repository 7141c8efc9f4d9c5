"""Object storage through obstore: where exports go, how they are written, signed and deleted.

A *storage URL* names one object: ``file:///abs/dir/key.jsonl`` (the embedded default) or
``s3://bucket/prefix/key.jsonl`` (S3 or a compatible server at ``BULKOPS_S3_ENDPOINT``).
S3 writes stream through ``obstore.open_writer`` (multipart above the buffer size); local
exports are appended to a file per attempt (see SegmentedSink for why). Either way an export is
never held in memory whole; reads, listing, deletes and signing go through obstore.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

import obstore
from obstore.exceptions import NotFoundError
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


#: what obstore raises for a missing object: FileNotFoundError or NotFoundError, by store
MISSING = (FileNotFoundError, NotFoundError)


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
    """Writes an export as parts, then makes them one object.

    A part is closed at a batch boundary once it holds ``segment_bytes``; a closed part is
    durable, so a crashed export resumes after its last part instead of from zero (the engine
    records the keyset position with each part). ``tag`` (the attempt) names what an attempt
    writes, so a presumed-dead worker can never overwrite its successor's parts. With no data
    at all, nothing is written.

    * S3: each part is an object ``<prefix><tag>-<n>``, uploaded with obstore's multipart
      writer; finishing renames a lone part or streams the parts into the object.
    * Local files: an attempt appends all its parts to one file ``<prefix><tag>``, and a part
      is a range of it (parts of one key are consecutive ranges from offset 0). Finishing an
      attempt that did not resume renames that file: obstore's LocalStore can neither append
      nor compose, and assembling N part files copied the whole export again (20-30% of a
      5M-row export). Only a resumed export copies: its earlier attempts' ranges.
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
        self._file: Any = None  #: the attempt's file (local stores)
        self._part_key = ""
        self._part_size = 0

    @property
    def _root(self) -> Path:
        return Path(unquote(urlparse(self.location.url).path)).parent

    def write(self, data: bytes | Buffer) -> None:
        if not data:
            return
        if self.location.is_local:
            if self._file is None:
                self._part_key = f"{self.parts_prefix}{self.tag}"
                path = self._root / self._part_key
                path.parent.mkdir(parents=True, exist_ok=True)
                self._file = open(path, "wb", buffering=0)  # noqa: SIM115 (closed by roll/finish)
                self._part_size = 0
            self._file.write(data)
        else:
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
        if self._part_size == 0 and self._writer is None:
            return None
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        part = Part(self._part_key, self._part_size)
        self.parts.append(part)
        self._part_size = 0
        return part

    def finish(self, *, delete_parts: bool = True) -> str | None:
        """Assemble the parts into the object; return its sha256, or None if there is none.
        After a failure the parts are kept (``delete_parts=False``): whether this attempt
        still owns the operation is for the worker to find out, and it sweeps them then."""
        self.roll()
        self._close_file()
        if not self.parts:
            return None
        if self.location.is_local:
            sha = self._assemble_local(move=delete_parts)
        else:
            sha = self._assemble_remote()
        if delete_parts:
            self._delete(self._keys())
        return sha

    def discard(self) -> None:
        """Drop everything written, parts of earlier attempts included (a cancel)."""
        self.roll()
        self._close_file()
        self._delete(self._keys())

    def abandon(self) -> None:
        """Stop without touching closed parts: a newer attempt may have resumed from a
        checkpoint that lists them. Only what no checkpoint can list goes: the open part, or
        (local) the attempt's file if none of it was closed; its unclosed tail is never read.
        Closed parts past the last saved checkpoint are orphans for the winner's sweep."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
            self._delete([self._part_key])
        if self._file is not None:
            self._close_file()
            if self._part_key not in self._keys():
                self._delete([self._part_key])

    def sweep(self) -> None:
        """Remove every part under the prefix, orphans of crashed attempts included. Only the
        attempt that owns the operation's final state may call this."""
        if self.location.is_local:
            shutil.rmtree(self._root / self.parts_prefix, ignore_errors=True)
            return
        keys = [m["path"] for batch in obstore.list(self.location.store, prefix=self.parts_prefix)
                for m in batch]  # fmt: skip
        self._delete(keys)

    def _close_file(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _keys(self) -> list[str]:
        """Every object the parts live in, in order, each once."""
        return list(dict.fromkeys(p.key for p in self.parts))

    def _delete(self, keys: list[str]) -> None:
        for key in keys:
            delete(Location(self.location.store, key, self.location.url))

    def _assemble_local(self, *, move: bool) -> str:
        final = self._root / self.location.key
        spans = extents(self.parts)
        own = f"{self.parts_prefix}{self.tag}"
        if move and spans == [(own, self.size)]:  # this attempt wrote it all: it is the object
            key, length = spans[0]
            os.truncate(self._root / key, length)  # an unclosed tail cannot exist here, but
            os.replace(self._root / key, final)  # the object must be exactly the parts
        else:  # resumed, or partial data whose parts must stay valid for a successor
            with open(final, "wb") as out:
                for key, length in spans:
                    with open(self._root / key, "rb") as src:
                        remaining, offset = length, 0
                        while remaining:  # copied in the kernel, not through Python
                            copied = os.copy_file_range(src.fileno(), out.fileno(), remaining,
                                                        offset)  # fmt: skip
                            if copied == 0:
                                raise StorageError(f"part file {key} is shorter than recorded")
                            remaining -= copied
                            offset += copied
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
        # Read here and write through a writer: handing obstore.put a generator that itself
        # reads from obstore nests obstore's runtime inside its own and panics.
        writer = obstore.open_writer(store, self.location.key, buffer_size=PART_BYTES,
                                     max_concurrency=WRITER_CONCURRENCY)  # fmt: skip
        for part in self.parts:  # on an error the upload is never completed: no object
            for chunk in obstore.get(store, part.key).stream(min_chunk_size=8 << 20):
                sha.update(chunk)
                writer.write(chunk)
        writer.close()
        return sha.hexdigest()


def extents(parts: list[Part]) -> list[tuple[str, int]]:
    """(object, bytes used from its start) for each object the parts live in, in order: a
    key's parts are consecutive ranges from offset 0 (one part per key on S3)."""
    out: list[tuple[str, int]] = []
    for part in parts:
        if out and out[-1][0] == part.key:
            out[-1] = (part.key, out[-1][1] + part.size)
        else:
            out.append((part.key, part.size))
    return out


def parts_intact(location: Location, parts: list[Part]) -> bool:
    """Whether every object the parts live in still holds them: exactly (S3 part objects)
    or at least (a local attempt file may carry an unclosed tail past its last part)."""
    for key, length in extents(parts):
        try:
            size = obstore.head(location.store, key)["size"]
        except MISSING:
            return False
        if size < length or (size != length and not location.is_local):
            return False
    return True


def delete(location: Location) -> None:
    with contextlib.suppress(*MISSING):
        obstore.delete(location.store, location.key)


def sign_get(location: Location, expires_in: timedelta) -> str:
    """A presigned GET URL (S3 stores only; the local store is served by the Bridge)."""
    return str(obstore.sign(location.store, "GET", location.key, expires_in))
