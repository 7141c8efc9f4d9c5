"""``bulkops.nest`` on hand-made files: what it refuses, and how it names the problem."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bulkops.bulkquery import parse_bulk_query
from bulkops.nest import NestError, nest_file

QUERY = parse_bulk_query("{ streamsConnection { nodes { id clipsConnection { nodes { id } } } } }")


def _write(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_children_follow_their_parents(tmp_path: Path) -> None:
    src = _write(tmp_path / "in", [{"id": "s1"}, {"id": "s2"}, {"id": "s3"},
                                   {"id": "c1", "__parentId": "s1"},
                                   {"id": "c2", "__parentId": "s3"},
                                   {"id": "c3", "__parentId": "s3"}])  # fmt: skip
    out = tmp_path / "out"
    assert nest_file(QUERY, [3, 3], src, out) == 3
    assert [json.loads(x) for x in out.read_text().splitlines()] == [
        {"id": "s1", "clipsConnection": [{"id": "c1"}]},
        {"id": "s2", "clipsConnection": []},
        {"id": "s3", "clipsConnection": [{"id": "c2"}, {"id": "c3"}]},
    ]


@pytest.mark.parametrize(
    ("rows", "counts", "message"),
    [
        ([{"id": "s1"}], [1, 1], "fewer lines than the operation reports"),
        (
            [
                {"id": "s1"},
                {"id": "s2"},
                {"id": "c", "__parentId": "s1"},
                {"id": "d", "__parentId": "s2"},
                {"id": "e", "__parentId": "s1"},
            ],
            [2, 3],
            "does not follow its parent's order",
        ),
        ([{"id": "s1"}, {"id": "c"}], [1, 1], "has no __parentId"),
        ([{"id": "s1"}], [1], "connection count"),
    ],
)
def test_files_that_do_not_fit_are_refused(tmp_path: Path, rows: list[dict[str, object]],
                                           counts: list[int], message: str) -> None:  # fmt: skip
    with pytest.raises(NestError, match=message):
        nest_file(QUERY, counts, _write(tmp_path / "in", rows), tmp_path / "out")


def test_queries_that_cannot_be_nested_are_refused(tmp_path: Path) -> None:
    src = _write(tmp_path / "in", [])
    twice = parse_bulk_query(
        "{ streamsConnection { nodes { id clipsConnection { nodes { id } } "
        "c2: clipsConnection { nodes { title } } } } }"
    )
    with pytest.raises(NestError, match="appear once"):
        nest_file(twice, [0, 0, 0], src, tmp_path / "out")
