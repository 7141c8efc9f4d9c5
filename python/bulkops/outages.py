"""Which failures mean "PostgreSQL is briefly away" rather than "this request or export is wrong".

A restart, failover or connection reset must not fail an operation or show a user a 500: the
worker retries the attempt from its checkpoint and the Bridge answers 503 SERVICE_UNAVAILABLE
with ``Retry-After``. Everything else keeps its own error.
"""

from __future__ import annotations

import errno

import asyncpg

#: seconds the Bridge tells clients to wait (Retry-After) while the database is unavailable
RETRY_AFTER_S = 2

# libpq's own wording (ADBC passes it through as OSError / OperationalError text).
_LIBPQ_MARKERS = (
    "terminating connection due to",  # 57P01 admin shutdown, 57P02 crash shutdown
    "the database system is",  # ... starting up / shutting down / in recovery (57P03)
    "server closed the connection",
    "no connection to the server",
    "connection to server at",  # "... failed: Connection refused"
    "could not connect to server",
    "could not receive data from server",
    "could not send data to server",
    "ssl syscall error",
)
_NETWORK_ERRNOS = {
    errno.ECONNREFUSED, errno.ECONNRESET, errno.ECONNABORTED, errno.EPIPE, errno.ETIMEDOUT,
    errno.EHOSTUNREACH, errno.ENETUNREACH,
}  # fmt: skip


def database_unavailable(exc: BaseException | None) -> bool:
    """True if ``exc`` (or what caused it) says the database cannot be reached right now."""
    seen = 0
    while exc is not None and seen < 5:
        if _is_outage(exc):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def _is_outage(exc: BaseException) -> bool:
    if isinstance(
        exc,
        asyncpg.PostgresConnectionError  # class 08, including a connection that is gone
        | asyncpg.CannotConnectNowError  # starting up, shutting down, in recovery
        | asyncpg.AdminShutdownError
        | asyncpg.CrashShutdownError
        | asyncpg.TooManyConnectionsError
        | ConnectionError,  # refused, reset, aborted, broken pipe
    ):
        return True
    if isinstance(exc, asyncpg.InterfaceError):  # asyncpg's "connection is closed" and kin
        return "connection" in str(exc) and "closed" in str(exc)
    if isinstance(exc, TimeoutError):  # asyncpg.connect's timeout
        return True
    if isinstance(exc, OSError) and exc.errno in _NETWORK_ERRNOS:
        return True
    text = str(exc).lower()
    return ("libpq" in text or "postgres" in text) and any(m in text for m in _LIBPQ_MARKERS)
