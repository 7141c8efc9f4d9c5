"""Custom scalars. ``Time`` is formatted exactly as the Rust encoder writes it."""

from datetime import UTC, date, datetime
from typing import Any, NewType

import strawberry
from graphql import GraphQLError

from bulkops.bulkquery import parse_time


def format_time(value: datetime) -> str:
    v = value.astimezone(UTC)
    return (
        f"{v.year:04d}-{v.month:02d}-{v.day:02d}T{v.hour:02d}:{v.minute:02d}:{v.second:02d}"
        f".{v.microsecond:06d}Z"
    )


def _parse_time(value: Any) -> datetime:
    if not isinstance(value, str):
        raise GraphQLError("Time must be an RFC 3339 string such as 2026-01-02T03:04:05Z")
    try:
        return parse_time(value, "Time")
    except ValueError as exc:
        raise GraphQLError(str(exc)) from None


def _parse_date(value: Any) -> date:
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        raise GraphQLError("Date must be YYYY-MM-DD") from None


def _parse_bigint(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise GraphQLError("BigInt must be an integer")
    return value


Time = strawberry.scalar(
    NewType("Time", datetime),
    serialize=format_time,
    parse_value=_parse_time,
    description="RFC 3339 time in UTC with microseconds: 2026-01-02T03:04:05.000000Z",
)
Date = strawberry.scalar(
    NewType("Date", date),
    serialize=lambda v: v.isoformat(),
    parse_value=_parse_date,
    description="A calendar day: YYYY-MM-DD",
)
BigInt = strawberry.scalar(
    NewType("BigInt", int),
    serialize=int,
    parse_value=_parse_bigint,
    description="A 64-bit integer, serialised as a JSON number",
)
JSON = strawberry.scalar(
    NewType("JSON", object),
    serialize=lambda v: v,
    parse_value=lambda v: v,
    description="Any JSON value",
)
