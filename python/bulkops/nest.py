"""Rebuild the tree from a bulk operation's flat JSONL: each root line with its children.

Shopify leaves this to every client ("rebuilding trees" in anchors.md), and their files
interleave connections, so a client must hold the whole file's ids in memory. bulkops' order
(README, "Output guarantees") makes it a streaming merge instead: the file is the root
connection's lines, then each nested connection's lines in query order, each grouped by parent
in the parents' order. With the line count of every connection (the operation's
``connections``), one cursor per section walks the file once, and only one root's children are
held at a time.

Each output line is the root's object with one key per nested connection (the connection's
field name) holding the list of its children, without their ``__parentId``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from bulkops.bulkquery import BulkQuery


class NestError(ValueError):
    """The query or the file cannot be nested; ``str()`` says why, for users."""


@dataclass(frozen=True)
class Section:
    key: str  #: where the children go in their parent's object (the connection field name)
    lines: int


def check_nestable(query: BulkQuery) -> None:
    """Raise NestError unless ``query``'s output can be nested (checked before submitting)."""
    children = query.root.children
    if any(child.children for _, child in children):
        raise NestError("--nest rebuilds one level of nesting; this query nests deeper")
    keys = [name for name, _ in children]
    if len(set(keys)) != len(keys):
        raise NestError("--nest needs each nested connection to appear once in the query")
    if not any(f.key == "id" and f.field is not None for f in query.root.fields):
        raise NestError(f"--nest matches children to parents by id: select id in {query.root.path}")


def sections(query: BulkQuery, counts: Sequence[int]) -> list[Section]:
    """The file's child sections in file order (the planner's order), with their line counts.
    ``counts`` has one entry per connection, root first."""
    check_nestable(query)
    children = query.root.children
    if len(counts) != 1 + len(children):
        raise NestError(
            f"the operation reports {len(counts)} connection count(s) but its query has "
            f"{1 + len(children)} connection(s)"
        )
    return [Section(name, int(n)) for (name, _), n in zip(children, counts[1:], strict=True)]


def _lines(fh: BinaryIO, count: int) -> Iterator[bytes]:
    for _ in range(count):
        line = fh.readline()
        if not line:
            raise NestError("the file has fewer lines than the operation reports")
        yield line


def _skip(fh: BinaryIO, count: int) -> None:
    for _ in _lines(fh, count):
        pass


def nest_file(query: BulkQuery, counts: Sequence[int], src: Path, dst: Path) -> int:
    """Write ``src`` (an export of ``query``) to ``dst`` as one nested line per root; return
    how many roots were written."""
    child_sections = sections(query, counts)
    roots_total = int(counts[0])
    handles: list[BinaryIO] = []
    try:
        with src.open("rb") as roots_fh, dst.open("w", encoding="utf-8") as out:
            cursors: list[tuple[Section, Iterator[bytes], list[Any]]] = []
            skipped = roots_total
            for section in child_sections:
                fh = src.open("rb")
                handles.append(fh)
                _skip(fh, skipped)
                skipped += section.lines
                lines = _lines(fh, section.lines)
                cursors.append((section, lines, [_next_child(lines)]))
            written = 0
            for raw in _lines(roots_fh, roots_total):
                node = json.loads(raw)
                for section, lines, peeked in cursors:
                    children = []
                    while peeked[0] is not None and peeked[0].get("__parentId") == node["id"]:
                        child = peeked[0]
                        del child["__parentId"]
                        children.append(child)
                        peeked[0] = _next_child(lines)
                    node[section.key] = children
                out.write(json.dumps(node, ensure_ascii=False, separators=(",", ":")) + "\n")
                written += 1
            for section, _, peeked in cursors:
                if peeked[0] is not None:
                    raise NestError(
                        f"a {section.key} line's __parentId {peeked[0].get('__parentId')!r} "
                        "does not follow its parent's order: not a bulkops export of this query"
                    )
            return written
    finally:
        for handle in handles:
            handle.close()


def _next_child(lines: Iterator[bytes]) -> dict[str, Any] | None:
    raw = next(lines, None)
    if raw is None:
        return None
    child = json.loads(raw)
    if not isinstance(child, dict) or "__parentId" not in child:
        raise NestError("a nested connection's line has no __parentId")
    return child
