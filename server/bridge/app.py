"""The Sanic application: authentication, cost and rate limits in front of Strawberry.

Order of a ``POST /graphql``: body size and JSON shape -> bearer token -> parse and cost
(depth and complexity caps) -> the tenant's Redis token bucket -> Strawberry. Every failure is
a GraphQL-shaped body with ``extensions.code``; nothing returns a traceback.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import asyncpg
from graphql import GraphQLError, parse
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sanic import Request, Sanic, response
from sanic.exceptions import NotFound, PayloadTooLarge, RangeNotSatisfiable, SanicException
from sanic.handlers import ContentRangeHandler
from sanic.response import HTTPResponse, ResponseStream
from strawberry.http import GraphQLHTTPResponse
from strawberry.sanic.views import GraphQLView
from strawberry.types import ExecutionResult

from bridge import cost as query_cost
from bridge.errors import (
    BAD_REQUEST,
    BAD_USER_INPUT,
    DATABASE_DOWN_MESSAGE,
    FORBIDDEN,
    GONE,
    INTERNAL,
    NOT_FOUND,
    PAYLOAD_TOO_LARGE,
    QUERY_TOO_COMPLEX,
    RATE_LIMITED,
    SERVICE_UNAVAILABLE,
    UNAUTHENTICATED,
    http_error,
)
from bridge.metrics import Metrics
from bridge.ratelimit import RateLimiter
from bridge.schema import schema
from bridge.schema.context import Context
from bulkops import config, operations
from bulkops.config import Settings
from bulkops.links import LinkError, verify_download
from bulkops.outages import RETRY_AFTER_S, database_unavailable
from bulkops.signing import secret_key
from bulkops.tenants import authenticate

log = logging.getLogger("bulkops.bridge")


def _code_for(error: dict[str, Any], original: GraphQLError | None) -> str:
    message = error.get("message", "")
    if message.startswith("Syntax Error"):
        return "GRAPHQL_PARSE_FAILED"
    if message.startswith("Variable "):
        return BAD_USER_INPUT
    if not error.get("path"):
        return "GRAPHQL_VALIDATION_FAILED"
    return INTERNAL


class BridgeView(GraphQLView[Context, None]):
    async def get_context(self, request: Request, response: Any) -> Context:
        app = request.app
        return Context(
            settings=app.ctx.settings,
            pool=app.ctx.pool,
            principal=getattr(request.ctx, "principal", None),  # type: ignore[arg-type]  # absent only for the IDE page
            secret=app.ctx.secret,
            request=request,
            response=response,
        )

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        data: GraphQLHTTPResponse = {"data": result.data}
        if result.errors:
            formatted = []
            for err in result.errors:
                out = err.formatted
                ext = dict(out.get("extensions") or {})
                if "code" not in ext and database_unavailable(err.original_error):
                    ext["code"] = SERVICE_UNAVAILABLE
                    out = {**out, "message": DATABASE_DOWN_MESSAGE}
                if "code" not in ext:
                    ext["code"] = _code_for(dict(out), err)
                    if ext["code"] == INTERNAL:  # an unexpected failure: never leak internals
                        log.error("resolver error", exc_info=err.original_error or err)
                        out = {**out, "message": "Internal error; it has been logged."}
                out = {**out, "extensions": ext}
                request.app.ctx.metrics.errors[ext["code"]] += 1
                formatted.append(out)
            data["errors"] = formatted  # type: ignore[typeddict-item]
        return data


async def graphql_gate(request: Request) -> HTTPResponse | None:
    """Authenticate, cost and rate-limit a GraphQL POST before Strawberry sees it."""
    if request.path != "/graphql" or request.method != "POST":
        return None
    app = request.app
    limit = app.ctx.settings.max_body_bytes
    declared = request.headers.get("content-length", "0")
    if len(request.body or b"") > limit or (declared.isdigit() and int(declared) > limit):
        return http_error(413, f"the request body is larger than {limit} bytes", PAYLOAD_TOO_LARGE)
    try:
        body = json.loads(request.body or b"")
    except (ValueError, UnicodeDecodeError, RecursionError):
        return http_error(
            400, "the request body is not valid JSON (or nested too deeply)", BAD_REQUEST
        )
    if not isinstance(body, dict) or not isinstance(body.get("query"), str):
        return http_error(400, 'the body must be a JSON object with a "query" string', BAD_REQUEST)
    variables = body.get("variables") or {}
    if not isinstance(variables, dict):
        return http_error(400, '"variables" must be a JSON object', BAD_REQUEST)

    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return http_error(401, "missing bearer token: send Authorization: Bearer <token>",
                          UNAUTHENTICATED)  # fmt: skip
    async with app.ctx.pool.acquire() as conn:
        principal = await authenticate(conn, token.strip())
    if principal is None:
        return http_error(401, "the token is invalid, expired or revoked", UNAUTHENTICATED)
    request.ctx.principal = principal

    try:
        document = parse(body["query"], max_tokens=20_000)
    except GraphQLError:
        units = 1  # Strawberry reports the syntax error itself
    else:
        cost = query_cost.estimate(document, body.get("operationName"), variables)
        if cost.depth > query_cost.MAX_DEPTH:
            return http_error(400, f"the query is {cost.depth} levels deep; the maximum is "
                                   f"{query_cost.MAX_DEPTH}", QUERY_TOO_COMPLEX)  # fmt: skip
        if cost.nodes > query_cost.MAX_NODES:
            return http_error(
                400,
                f"the query may return {cost.nodes} nodes; the maximum is "
                f"{query_cost.MAX_NODES} (page size x nested page sizes)",
                QUERY_TOO_COMPLEX,
            )
        units = cost.units
    try:
        decision = await app.ctx.limiter.charge(
            principal.tenant_id, principal.rate_limit_per_minute, principal.rate_limit_burst, units
        )
    except (RedisError, OSError) as exc:
        # Fail open: an outage of the limiter's store must not take the API down with it.
        log.warning("rate limiter unavailable (%s); allowing the request", exc.__class__.__name__)
        request.ctx.rate_headers = {"X-RateLimit-Status": "unavailable"}
        return None
    request.ctx.rate_headers = decision.headers()
    if not decision.allowed:
        app.ctx.metrics.rate_limited += 1
        return http_error(
            429,
            f"rate limit exceeded: this query costs {units}, the bucket holds "
            f"{decision.remaining}; retry in {decision.retry_after_s}s",
            RATE_LIMITED,
            headers=decision.headers(),
            cost=units,
        )
    return None


async def serve_download(request: Request, token: str) -> HTTPResponse | ResponseStream:
    """A local-store result, behind an HMAC-signed expiring link; supports Range requests so
    large downloads can resume."""
    app = request.app
    try:
        op_id, tenant_id = verify_download(token, app.ctx.secret)
    except LinkError as exc:
        return http_error(403, str(exc), FORBIDDEN)
    async with app.ctx.pool.acquire() as conn:
        op = await operations.get(conn, tenant_id, op_id)
    url = op.storage_url if op is not None else None
    path = Path(unquote(urlparse(url).path)) if url and url.startswith("file://") else None
    if op is None or path is None or not path.is_file():
        return http_error(410, "this result is no longer available (expired or deleted)", GONE)
    headers = {"X-Checksum-SHA256": op.sha256 or "", "Accept-Ranges": "bytes"}
    stats = await asyncio.to_thread(os.stat, path)
    byte_range = None
    if "range" in request.headers:
        try:
            byte_range = ContentRangeHandler(request, stats)
        except RangeNotSatisfiable:
            return http_error(416, "the requested range is outside the file", BAD_REQUEST)
    if request.method == "HEAD":  # 200 with the size, as GET would answer (not 204)
        return HTTPResponse(status=200, headers={**headers, "Content-Length": str(stats.st_size)},
                            content_type="application/jsonl")  # fmt: skip
    start, length, status = 0, stats.st_size, 200
    if byte_range is not None:
        start, length, status = int(byte_range.start or 0), int(byte_range.size or 0), 206
        headers["Content-Range"] = f"bytes {byte_range.start}-{byte_range.end}/{byte_range.total}"
    headers["Content-Length"] = str(length)
    headers["Content-Disposition"] = f'attachment; filename="bulk-operation-{op_id}.jsonl"'
    return ResponseStream(
        partial(_send_file, path, start, length), status=status, headers=headers,
        content_type="application/jsonl",
    )  # fmt: skip


#: read size of downloads: 1 MiB reads cost twice the CPU of curl's download for 442 MB
DOWNLOAD_CHUNK_BYTES = 8 << 20


async def _send_file(path: Path, start: int, length: int, resp: Any) -> None:
    """Stream ``length`` bytes of ``path`` from ``start``. With Content-Length set there is
    no chunked framing (Sanic's file_stream sends none), and the client sees the size."""
    fd = await asyncio.to_thread(os.open, path, os.O_RDONLY)
    try:
        while length > 0:
            data = await asyncio.to_thread(os.pread, fd, min(length, DOWNLOAD_CHUNK_BYTES), start)
            if not data:  # the file shrank under us: end short, the client sees the size
                break
            await resp.write(data)
            start += len(data)
            length -= len(data)
    finally:
        os.close(fd)


def create_app(settings: Settings | None = None) -> Sanic:
    settings = settings or config.load()
    app = Sanic("bulkops_bridge", configure_logging=False)
    app.config.REQUEST_MAX_SIZE = settings.max_body_bytes
    app.config.FALLBACK_ERROR_FORMAT = "json"
    app.ctx.settings = settings
    app.ctx.metrics = Metrics()

    @app.before_server_start
    async def start(app: Sanic) -> None:
        app.ctx.pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=10)
        app.ctx.redis = Redis.from_url(settings.redis_url)
        app.ctx.limiter = RateLimiter(app.ctx.redis)
        app.ctx.secret = secret_key(settings)

    @app.after_server_stop
    async def stop(app: Sanic) -> None:
        await app.ctx.pool.close()
        await app.ctx.redis.aclose()

    @app.on_request
    async def timing(request: Request) -> HTTPResponse | None:
        request.ctx.started = time.perf_counter()
        request.ctx.rate_headers = {}
        return await graphql_gate(request)

    @app.on_response
    async def finish(request: Request, resp: HTTPResponse) -> HTTPResponse | None:
        if (
            request.path == "/graphql"
            and resp.status >= 400
            and (resp.content_type or "").startswith("text/plain")
        ):  # Strawberry answers some bad requests in plain text: give them the coded shape
            message = (resp.body or b"bad request").decode("utf-8", "replace")
            resp = http_error(resp.status, message, BAD_REQUEST)
        for k, v in getattr(request.ctx, "rate_headers", {}).items():
            resp.headers.setdefault(k, v)
        started = getattr(request.ctx, "started", None)
        if started is not None:
            route = (
                request.path if request.path in ("/graphql", "/healthz", "/metrics") else "other"
            )
            app.ctx.metrics.observe(route, resp.status, time.perf_counter() - started)
        return resp

    app.add_route(
        BridgeView.as_view(schema=schema, graphql_ide="graphiql", allow_queries_via_get=False),
        "/graphql",
        methods=["GET", "POST"],
    )

    @app.get("/healthz")
    async def healthz(request: Request) -> HTTPResponse:
        checks: dict[str, str] = {}
        try:
            async with app.ctx.pool.acquire() as conn:
                await conn.fetchval("SELECT 1")
            checks["postgres"] = "ok"
        except Exception as exc:
            checks["postgres"] = f"down: {exc.__class__.__name__}"
        try:
            await app.ctx.redis.ping()
            checks["redis"] = "ok"
        except Exception as exc:
            checks["redis"] = f"down: {exc.__class__.__name__}"
        healthy = all(v == "ok" for v in checks.values())
        return response.json({"status": "ok" if healthy else "unhealthy", "checks": checks},
                             status=200 if healthy else 503)  # fmt: skip

    @app.route("/downloads/<token:str>", methods=["GET", "HEAD"])  # type: ignore[arg-type]
    async def download(request: Request, token: str) -> HTTPResponse | ResponseStream:
        return await serve_download(request, token)

    @app.get("/metrics")
    async def metrics(request: Request) -> HTTPResponse:
        return response.text(app.ctx.metrics.render(), content_type="text/plain; version=0.0.4")

    @app.exception(PayloadTooLarge)
    async def too_large(request: Request, exc: Exception) -> HTTPResponse:
        return http_error(413, f"the request body is larger than {settings.max_body_bytes} bytes",
                          PAYLOAD_TOO_LARGE)  # fmt: skip

    @app.exception(NotFound)
    async def not_found(request: Request, exc: Exception) -> HTTPResponse:
        return http_error(404, f"no route {request.path}", NOT_FOUND)

    @app.exception(SanicException)
    async def sanic_error(request: Request, exc: SanicException) -> HTTPResponse:
        status = getattr(exc, "status_code", 400) or 400
        return http_error(
            status, str(exc) or "bad request", BAD_REQUEST if status < 500 else INTERNAL
        )

    @app.exception(Exception)
    async def unexpected(request: Request, exc: Exception) -> HTTPResponse:
        if database_unavailable(exc):
            log.warning("database unavailable on %s: %s", request.path, str(exc).strip()[:200])
            return http_error(503, DATABASE_DOWN_MESSAGE, SERVICE_UNAVAILABLE,
                              headers={"Retry-After": str(RETRY_AFTER_S)})  # fmt: skip
        log.exception("unhandled error on %s", request.path)
        return http_error(500, "Internal error; it has been logged.", INTERNAL)

    return app


def serve(settings: Settings, host: str, port: int, workers: int) -> None:
    from sanic.worker.loader import AppLoader

    loader = AppLoader(factory=partial(create_app, settings))
    app = loader.load()
    app.prepare(host=host, port=port, workers=workers, access_log=False, motd=False)
    Sanic.serve(primary=app, app_loader=loader)
