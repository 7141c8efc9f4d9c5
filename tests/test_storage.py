"""SegmentedSink on both stores: parts, checkpoints' view of them, resume and assembly."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import obstore
import pytest

from bulkops.config import Settings
from bulkops.storage import Location, SegmentedSink, locate, parts_intact


@pytest.fixture(params=["file", "s3"])
def location(request: pytest.FixtureRequest, settings: Settings, tmp_path: Path) -> Location:
    name = f"{uuid.uuid4().hex}.jsonl"
    if request.param == "file":
        return locate((tmp_path / name).as_uri(), settings)
    return locate(f"s3://{settings.s3_bucket}/sink/{name}", settings)


def read(location: Location) -> bytes:
    return obstore.get(location.store, location.key).bytes().to_bytes()


def test_one_attempt_becomes_the_object(location: Location) -> None:
    sink = SegmentedSink(location, tag="1", segment_bytes=8)
    chunks = [b'{"a":1}\n', b'{"b":22}\n', b'{"c":333}\n']
    for chunk in chunks:
        sink.write(chunk)
        if sink.segment_full():
            sink.roll()
    assert len(sink.parts) == 3 and parts_intact(location, sink.parts)
    sha = sink.finish()
    assert read(location) == b"".join(chunks)
    assert sha == hashlib.sha256(b"".join(chunks)).hexdigest()
    assert not parts_intact(location, sink.parts)  # the parts are gone: they became the object


def test_a_resumed_attempt_continues_after_the_checkpoint(location: Location) -> None:
    first = SegmentedSink(location, tag="1", segment_bytes=4)
    first.write(b"line1\n")
    first.roll()
    first.write(b"line2\n")
    first.roll()
    checkpoint = list(first.parts)
    first.write(b"unclosed tail, never in a checkpoint\n")
    first.abandon()  # a crash after the checkpoint: the closed parts stay
    assert parts_intact(location, checkpoint)

    second = SegmentedSink(location, tag="2", segment_bytes=4, prior=checkpoint)
    assert second.size == 12
    second.write(b"line3\n")
    sha = second.finish()
    want = b"line1\nline2\nline3\n"
    assert read(location) == want and sha == hashlib.sha256(want).hexdigest()
    second.sweep()


def test_partial_data_keeps_the_parts_valid(location: Location) -> None:
    sink = SegmentedSink(location, tag="1", segment_bytes=4)
    sink.write(b"line1\n")
    sink.roll()
    sink.write(b"line2\n")
    sink.finish(delete_parts=False)  # a failure: partial data, parts kept for a successor
    assert read(location) == b"line1\nline2\n"
    assert parts_intact(location, sink.parts)
    sink.sweep()
    assert not parts_intact(location, sink.parts)


def test_nothing_written_means_no_object(location: Location) -> None:
    sink = SegmentedSink(location, tag="1", segment_bytes=4)
    assert sink.finish() is None
    with pytest.raises(Exception, match=r"(?i)not ?found|no such"):
        read(location)
