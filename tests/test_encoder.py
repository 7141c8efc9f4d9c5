"""Properties of the native JSONL encoder (``bulkops._native``), checked against plain Python.

Every line must parse with ``json.loads`` and equal what a straightforward Python encoder builds
from the same values; strings and keys must also match ``json.dumps`` byte for byte.
"""

from __future__ import annotations

import base64
import json
import math
import threading
from datetime import date, datetime, timedelta
from typing import Any, Literal

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bulkops._native import JsonlEncoder, global_id, version

EPOCH = datetime(1970, 1, 1)
EPOCH_DATE = date(1970, 1, 1)
MIN_MICROS = (datetime(1, 1, 1) - EPOCH) // timedelta(microseconds=1)
MAX_MICROS = (datetime(9999, 12, 31, 23, 59, 59, 999999) - EPOCH) // timedelta(microseconds=1)
MICROS_PER_UNIT = {"s": 1_000_000, "ms": 1_000, "us": 1}
MIN_DAYS = (date(1, 1, 1) - EPOCH_DATE).days
MAX_DAYS = (date(9999, 12, 31) - EPOCH_DATE).days

INT_TYPES = {
    "int8": (pa.int8(), -(2**7), 2**7 - 1),
    "int16": (pa.int16(), -(2**15), 2**15 - 1),
    "int32": (pa.int32(), -(2**31), 2**31 - 1),
    "int64": (pa.int64(), -(2**63), 2**63 - 1),
    "uint8": (pa.uint8(), 0, 2**8 - 1),
    "uint16": (pa.uint16(), 0, 2**16 - 1),
    "uint32": (pa.uint32(), 0, 2**32 - 1),
    "uint64": (pa.uint64(), 0, 2**64 - 1),
}
TRICKY_CHARS = '"\\/\x00\x01\x08\t\n\x0b\x0c\r\x1f\x7f\x80\x85\xa0é\u2028\u2029\ufeff☃😀𝄞\U0010ffff'


# --- reference encoder ------------------------------------------------------------------------


def ref_global_id(type_name: str, n: int) -> str:
    return base64.b64encode(f"{type_name}:{n}".encode()).decode()


def ref_time(raw: int, unit: str) -> str:
    micros = raw // 1000 if unit == "ns" else raw * MICROS_PER_UNIT[unit]
    return (EPOCH + timedelta(microseconds=micros)).isoformat(timespec="microseconds") + "Z"


def ref_date(days: int) -> str:
    return (EPOCH_DATE + timedelta(days=days)).isoformat()


def ref_float(value: float) -> float | None:
    return value if math.isfinite(value) else None


# --- batch generation -------------------------------------------------------------------------

# A generated column: (kind, extra, arrow array, expected python values, compare as float32)
Column = tuple[str, str | None, pa.Array, list[Any], bool]


def with_nulls(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), values)


@st.composite
def columns(draw: st.DrawFn, kind: str, num_rows: int) -> Column:
    def draw_values(values: st.SearchStrategy[Any]) -> list[Any]:
        return draw(st.lists(with_nulls(values), min_size=num_rows, max_size=num_rows))

    expected: list[Any]

    if kind in ("global_id", "int"):
        names = ["int16", "int32", "int64"] if kind == "global_id" else list(INT_TYPES)
        arrow_type, lo, hi = INT_TYPES[draw(st.sampled_from(names))]
        ints = st.one_of(st.integers(lo, hi), st.sampled_from([lo, hi, 0, -1 if lo else 1]))
        raw = draw_values(ints)
        if kind == "int":
            return kind, None, pa.array(raw, arrow_type), raw, False
        type_name = draw(st.sampled_from(["ViewerSession", "Stream", "A", "Ab", "Abc", "Ünï"]))
        expected = [None if v is None else ref_global_id(type_name, v) for v in raw]
        return kind, type_name, pa.array(raw, arrow_type), expected, False

    if kind == "float":
        layout = draw(st.sampled_from(["float64", "float32", "int32"]))
        if layout == "int32":
            raw = draw_values(st.integers(-(2**31), 2**31 - 1))
            return kind, None, pa.array(raw, pa.int32()), raw, False
        width: Literal[32, 64] = 32 if layout == "float32" else 64
        special = st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -0.0, 5e-324, 1e300])
        raw = draw_values(st.one_of(st.floats(width=width), special))
        arr = pa.array(raw, pa.float32() if width == 32 else pa.float64())
        expected = [None if v is None else ref_float(v) for v in arr.to_pylist()]
        return kind, None, arr, expected, width == 32

    if kind == "bool":
        raw = draw_values(st.booleans())
        return kind, None, pa.array(raw, pa.bool_()), raw, False

    if kind == "string":
        text = st.text(st.one_of(st.characters(codec="utf-8"), st.sampled_from(TRICKY_CHARS)))
        raw = draw_values(text)
        arrow_type = draw(st.sampled_from([pa.utf8(), pa.large_utf8(), pa.string_view()]))
        return kind, None, pa.array(raw, arrow_type), raw, False

    if kind == "time":
        unit = draw(st.sampled_from(["s", "ms", "us", "ns"]))
        if unit == "ns":
            bounds = (-(2**63), 2**63 - 1)
        else:
            per = MICROS_PER_UNIT[unit]
            bounds = (MIN_MICROS // per, MAX_MICROS // per)
        raw = draw_values(st.one_of(st.integers(*bounds), st.sampled_from([*bounds, 0, -1])))
        tz = draw(st.sampled_from([None, "UTC"]))
        expected = [None if v is None else ref_time(v, unit) for v in raw]
        return kind, None, pa.array(raw, pa.timestamp(unit, tz)), expected, False

    if kind == "date":
        raw = draw_values(st.integers(MIN_DAYS, MAX_DAYS))
        expected = [None if v is None else ref_date(v) for v in raw]
        return kind, None, pa.array(raw, pa.date32()), expected, False

    assert kind == "json"
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**63), 2**63 - 1),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(),
    )
    documents = st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3), st.dictionaries(st.text(), inner, max_size=3)
        ),
        max_leaves=8,
    )
    values = draw(
        st.lists(
            with_nulls(documents.map(lambda d: ("doc", d))), min_size=num_rows, max_size=num_rows
        )
    )
    texts = [
        None if v is None else json.dumps(v[1], ensure_ascii=draw(st.booleans())) for v in values
    ]
    expected = [None if v is None else v[1] for v in values]
    storage = pa.array(texts, draw(st.sampled_from([pa.utf8(), pa.large_utf8()])))
    if draw(st.booleans()) and storage.type == pa.utf8():
        return kind, None, pa.ExtensionArray.from_storage(pa.json_(), storage), expected, False
    return kind, None, storage, expected, False


KINDS = ["global_id", "int", "float", "bool", "string", "time", "date", "json"]


@st.composite
def batches(
    draw: st.DrawFn,
) -> tuple[list[tuple[str, str, str | None]], pa.RecordBatch, list[Column]]:
    num_rows = draw(st.integers(0, 12))
    kinds = draw(st.lists(st.sampled_from(KINDS), min_size=1, max_size=9))
    cols = [draw(columns(kind, num_rows)) for kind in kinds]
    names = draw(st.lists(st.text(max_size=8), min_size=len(cols), max_size=len(cols), unique=True))
    fields = [(name, kind, extra) for name, (kind, extra, *_) in zip(names, cols, strict=True)]
    batch = pa.RecordBatch.from_arrays(
        [c[2] for c in cols], names=[f"c{i}" for i in range(len(cols))]
    )
    return fields, batch, cols


def normalise_f32(value: Any) -> Any:
    """The float32 a JSON number denotes: shortest float32 text is not the float64 value."""
    return value if value is None else float(pa.scalar(value, pa.float32()).as_py())


# --- properties -------------------------------------------------------------------------------


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches())
def test_every_line_matches_the_python_reference(
    case: tuple[list[tuple[str, str, str | None]], pa.RecordBatch, list[Column]],
) -> None:
    fields, batch, cols = case
    encoder = JsonlEncoder(fields)
    out = encoder.encode(batch)
    assert isinstance(out, bytes)
    assert bytes(memoryview(encoder.encode_buffer(batch))) == out  # the export's zero-copy path
    if batch.num_rows == 0:
        assert out == b""
        return
    assert out.endswith(b"\n")
    lines = out.decode("utf-8").split("\n")[:-1]
    assert len(lines) == batch.num_rows
    names = [name for name, _, _ in fields]
    for row, line in enumerate(lines):
        assert "\n" not in line
        parsed = json.loads(line)
        assert list(parsed) == names
        for (name, kind, _), (_, _, _, expected, is_f32) in zip(fields, cols, strict=True):
            got, want = parsed[name], expected[row]
            if is_f32:
                got = normalise_f32(got)
            assert got == want, (name, kind, row, line)
            if kind == "float" and want is not None:
                assert math.copysign(1, got) == math.copysign(1, want), (name, row, line)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            # short decimals (the encoder's fast path) at every scale, and any float
            st.builds(
                lambda n, digits, sign: sign * n / 10**digits,
                st.integers(0, 10**15),
                st.integers(0, 8),
                st.sampled_from([1, -1]),
            ),
            st.floats(allow_nan=False, allow_infinity=False),
        ),
        min_size=1,
        max_size=20,
    )
)
def test_floats_are_written_as_python_writes_them(values: list[float]) -> None:
    """The sync API's JSON is Python's: every float must be the same text (``repr``)."""
    out = JsonlEncoder([("v", "float", None)]).encode(pa.record_batch({"v": pa.array(values)}))
    assert out.decode().splitlines() == [
        json.dumps({"v": v}, separators=(",", ":")) for v in values
    ]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        with_nulls(st.text(st.one_of(st.characters(codec="utf-8"), st.sampled_from(TRICKY_CHARS)))),
        max_size=10,
    )
)
def test_strings_match_json_dumps_byte_for_byte(values: list[str | None]) -> None:
    batch = pa.record_batch({"s": pa.array(values, pa.utf8())})
    out = JsonlEncoder([('k"ey\x7f', "string", None)]).encode(batch).decode("utf-8")
    key = json.dumps('k"ey\x7f', ensure_ascii=False).replace("\x7f", "\\u007f")

    def dumps(v: str | None) -> str:
        # json.dumps escapes exactly the same set, except DEL, which we escape too.
        return "null" if v is None else json.dumps(v, ensure_ascii=False).replace("\x7f", "\\u007f")

    assert out == "".join(f"{{{key}:{dumps(v)}}}\n" for v in values)


# --- explicit cases ---------------------------------------------------------------------------

VIEWER_SESSION_FIELDS = [
    ("id", "global_id", "ViewerSession"),
    ("sessionId", "string", None),
    ("durationSeconds", "int", None),
    ("latitude", "float", None),
    ("record", "bool", None),
    ("connectedAt", "time", None),
    ("day", "date", None),
    ("payload", "json", None),
    ("__parentId", "global_id", "Stream"),
]


def viewer_session_batch() -> pa.RecordBatch:
    return pa.record_batch(
        [
            pa.array([42, 43], pa.int64()),
            pa.array(["a-b", None]),
            pa.array([None, 7], pa.int32()),
            pa.array([1.5, float("nan")]),
            pa.array([True, False]),
            pa.array(
                [datetime(2026, 1, 2, 3, 4, 5), datetime(1969, 12, 31, 23, 59, 59, 1)],
                pa.timestamp("us", "UTC"),
            ),
            pa.array([date(2024, 2, 29), None], pa.date32()),
            pa.array(['{"tags":["x"],"n":1}', None]),
            pa.array([9, 10], pa.int32()),
        ],
        names=[name for name, _, _ in VIEWER_SESSION_FIELDS],
    )


def test_exact_output_key_order_and_nulls() -> None:
    out = JsonlEncoder(VIEWER_SESSION_FIELDS).encode(viewer_session_batch())
    assert out == (
        b'{"id":"Vmlld2VyU2Vzc2lvbjo0Mg==","sessionId":"a-b","durationSeconds":null,"latitude":1.5,'
        b'"record":true,"connectedAt":"2026-01-02T03:04:05.000000Z","day":"2024-02-29",'
        b'"payload":{"tags":["x"],"n":1},"__parentId":"U3RyZWFtOjk="}\n'
        b'{"id":"Vmlld2VyU2Vzc2lvbjo0Mw==","sessionId":null,"durationSeconds":7,"latitude":null,'
        b'"record":false,"connectedAt":"1969-12-31T23:59:59.000001Z","day":null,'
        b'"payload":null,"__parentId":"U3RyZWFtOjEw"}\n'
    )


def test_line_count_equals_rows_and_slices_respect_offsets() -> None:
    n = 5000
    batch = pa.record_batch(
        {"i": pa.array(range(n), pa.int64()), "s": pa.array([f"v{i}" for i in range(n)])}
    )
    enc = JsonlEncoder([("i", "int", None), ("s", "string", None)])
    assert enc.encode(batch).count(b"\n") == n
    lines = enc.encode(batch.slice(1234, 3)).splitlines()
    assert [json.loads(line) for line in lines] == [
        {"i": i, "s": f"v{i}"} for i in (1234, 1235, 1236)
    ]


def test_empty_batch_returns_empty_bytes() -> None:
    empty = viewer_session_batch().slice(0, 0)
    assert JsonlEncoder(VIEWER_SESSION_FIELDS).encode(empty) == b""


def test_all_null_columns() -> None:
    batch = pa.record_batch(
        {"a": pa.nulls(2, pa.int64()), "b": pa.nulls(2), "c": pa.nulls(2, pa.utf8())}
    )
    out = JsonlEncoder([("a", "int", None), ("b", "time", None), ("c", "json", None)]).encode(batch)
    assert out == b'{"a":null,"b":null,"c":null}\n' * 2


def test_wrong_column_count_is_a_value_error() -> None:
    enc = JsonlEncoder(VIEWER_SESSION_FIELDS)
    with pytest.raises(ValueError, match=r"batch has 1 columns but the encoder has 9 fields"):
        enc.encode(pa.record_batch({"id": pa.array([1])}))


@pytest.mark.parametrize(
    ("kind", "array", "type_text"),
    [
        ("int", pa.array(["1"]), "Utf8"),
        ("float", pa.array([True]), "Boolean"),
        ("bool", pa.array([1]), "Int64"),
        ("string", pa.array([1.0]), "Float64"),
        ("time", pa.array([date(2020, 1, 1)]), "Date32"),
        ("date", pa.array([datetime(2020, 1, 1)]), "Timestamp"),
        ("json", pa.array([1]), "Int64"),
    ],
)
def test_wrong_column_type_names_the_field(kind: str, array: pa.Array, type_text: str) -> None:
    enc = JsonlEncoder([("myField", kind, None)])
    with pytest.raises(ValueError, match=rf'field "myField" of kind "{kind}" .*{type_text}'):
        enc.encode(pa.record_batch({"x": array}))


def test_global_id_needs_an_integer_column_and_a_type_name() -> None:
    with pytest.raises(ValueError, match=r'field "id" of kind "global_id"'):
        JsonlEncoder([("id", "global_id", "T")]).encode(pa.record_batch({"x": pa.array([1.0])}))
    with pytest.raises(
        ValueError, match=r'field "id" of kind "global_id" needs a GraphQL type name'
    ):
        JsonlEncoder([("id", "global_id", None)])


def test_unknown_kind_is_a_value_error_naming_it() -> None:
    with pytest.raises(ValueError, match=r'field "price" has unknown kind "decimal_string"'):
        JsonlEncoder([("price", "decimal_string", None)])


def test_timestamps_outside_years_1_to_9999_are_rejected() -> None:
    enc = JsonlEncoder([("at", "time", None)])
    too_late = (MAX_MICROS // 1_000_000) + 1
    with pytest.raises(ValueError, match=r'field "at" row 1: .*outside years 0001-9999'):
        enc.encode(pa.record_batch({"t": pa.array([0, too_late], pa.timestamp("s"))}))


def test_nanoseconds_are_floored_to_microseconds() -> None:
    batch = pa.record_batch({"t": pa.array([-1, -1000, -1001, 1999], pa.timestamp("ns"))})
    out = JsonlEncoder([("t", "time", None)]).encode(batch).decode()
    assert [json.loads(line)["t"] for line in out.splitlines()] == [
        "1969-12-31T23:59:59.999999Z",
        "1969-12-31T23:59:59.999999Z",
        "1969-12-31T23:59:59.999998Z",
        "1970-01-01T00:00:00.000001Z",
    ]


def test_batch_must_expose_the_arrow_array_interface() -> None:
    with pytest.raises(ValueError, match="__arrow_c_array__"):
        not_a_batch: Any = [1, 2]
        JsonlEncoder([("a", "int", None)]).encode(not_a_batch)


def test_fields_and_repr() -> None:
    enc = JsonlEncoder([("id", "global_id", "T"), ("n", "int", "ignored")])
    assert enc.fields == [("id", "global_id", "T"), ("n", "int", "ignored")]
    assert repr(enc) == 'JsonlEncoder(["id", "n"])'


@pytest.mark.parametrize("n", [0, 1, -1, 42, 2**63 - 1, -(2**63)])
@pytest.mark.parametrize("type_name", ["ViewerSession", "Stream", "A", "Ab", "Ünïcode"])
def test_global_id_function_matches_base64(type_name: str, n: int) -> None:
    assert global_id(type_name, n) == ref_global_id(type_name, n)


def test_version_is_the_package_version() -> None:
    assert version() == "0.1.0"


def test_concurrent_encodes_share_one_encoder() -> None:
    """`encode` releases the GIL; results must not depend on interleaving."""
    enc = JsonlEncoder(VIEWER_SESSION_FIELDS)
    batch = pa.concat_batches([viewer_session_batch()] * 2000)
    expected = enc.encode(batch)
    results: list[bytes] = []

    def work() -> None:
        results.extend(enc.encode(batch) for _ in range(5))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [expected] * 20
