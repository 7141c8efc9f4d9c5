"""GraphQL errors with a machine-readable ``extensions.code``, and their HTTP form."""

from __future__ import annotations

from typing import Any

from graphql import GraphQLError
from sanic import response
from sanic.response import HTTPResponse

UNAUTHENTICATED = "UNAUTHENTICATED"
FORBIDDEN = "FORBIDDEN"
BAD_USER_INPUT = "BAD_USER_INPUT"
BAD_REQUEST = "BAD_REQUEST"
PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
RATE_LIMITED = "RATE_LIMITED"
QUERY_TOO_COMPLEX = "QUERY_TOO_COMPLEX"
INTERNAL = "INTERNAL_SERVER_ERROR"
NOT_FOUND = "NOT_FOUND"
GONE = "GONE"
SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"

DATABASE_DOWN_MESSAGE = "the database is briefly unavailable (a restart or failover); retry shortly"


def coded(message: str, code: str, **extra: Any) -> GraphQLError:
    return GraphQLError(message, extensions={"code": code, **extra})


def http_error(status: int, message: str, code: str, headers: dict[str, str] | None = None,
               **extra: Any) -> HTTPResponse:  # fmt: skip
    """A GraphQL-shaped error body, for failures that happen before GraphQL runs."""
    body = {"errors": [{"message": message, "extensions": {"code": code, **extra}}]}
    return response.json(body, status=status, headers=headers)
