"""The one CLI: ``bulkops <command>``. Each command is a thin shell over a domain module.

Errors a user can cause (bad arguments, an unknown tenant, a service that is down) end the
process with a one-line ``bulkops: error: ...`` and a non-zero status, never a traceback.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

import asyncpg
import click

from bulkops import config

T = TypeVar("T")


class CliError(click.ClickException):
    def format_message(self) -> str:
        return self.message

    def show(self, file: Any = None) -> None:
        click.echo(f"bulkops: error: {self.format_message()}", err=True)


def _run(coro_fn: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine, turning the failures a user can cause into one-line errors."""
    from bulkops.db.migrate import MigrationError
    from bulkops.services.base import ServiceError
    from bulkops.tenants import TenantError

    settings = config.load()
    try:
        return asyncio.run(coro_fn())  # type: ignore[arg-type]
    except (TenantError, MigrationError, ServiceError, ValueError) as exc:
        raise CliError(str(exc)) from None
    except (OSError, asyncpg.CannotConnectNowError) as exc:
        raise CliError(
            f"cannot reach PostgreSQL at {settings.database_url} ({exc.__class__.__name__}: "
            f"{exc}); is it running? try `bulkops services up`"
        ) from None
    except asyncpg.InvalidCatalogNameError as exc:
        raise CliError(f"{exc}; run `bulkops services up` to create it") from None
    except asyncpg.UndefinedTableError as exc:
        raise CliError(f"{exc}; run `bulkops migrate` first") from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log progress to stderr.")
def cli(verbose: bool) -> None:
    """bulkops: asynchronous bulk exports for the platform's GraphQL API."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )


# -- services ---------------------------------------------------------------------------


@cli.group()
def services() -> None:
    """Local PostgreSQL, Redis, Kafka and s3proxy, kept under $BULKOPS_HOME (.local/)."""


_INFRA = ("postgres", "redis", "kafka", "s3proxy")


def _service_action(action: str, names: tuple[str, ...]) -> None:
    from bulkops.services import ServiceError, by_name

    settings = config.load()
    try:
        targets = by_name(settings, names, with_apps=action != "up")
        if action == "status":
            targets = [t for t in targets if names or t.name in _INFRA or t.pid() is not None]
        if action == "down":
            targets = list(reversed(targets))
        for svc in targets:
            if action == "status":
                click.echo(svc.status())
            else:
                result = svc.up() if action == "up" else svc.down()
                click.echo(f"{svc.name:<10} port {svc.port:<6} {result}")
    except ServiceError as exc:
        raise CliError(str(exc)) from None


@services.command("up")
@click.argument("names", nargs=-1)
def services_up(names: tuple[str, ...]) -> None:
    """Install if missing, start, and wait until each service answers. Idempotent.

    Without NAMES: postgres, redis, kafka, s3proxy. bulkops' own processes start when named:
    bridge, dispatcher, worker."""
    _service_action("up", names)


@services.command("down")
@click.argument("names", nargs=-1)
def services_down(names: tuple[str, ...]) -> None:
    """Stop the services this command started (by pid); all of them without NAMES."""
    _service_action("down", names)


@services.command("status")
@click.argument("names", nargs=-1)
def services_status(names: tuple[str, ...]) -> None:
    """One line per service."""
    _service_action("status", names)


# -- database ---------------------------------------------------------------------------


@cli.command()
def migrate() -> None:
    """Apply pending schema migrations (idempotent)."""
    from bulkops import db
    from bulkops.db.migrate import migrate as run_migrations

    async def go() -> list[str]:
        conn = await db.connect(config.load())
        try:
            return [f"{m.version:04d}_{m.name}" for m in await run_migrations(conn)]
        finally:
            await conn.close()

    applied = _run(go)
    click.echo(f"applied {', '.join(applied)}" if applied else "schema is up to date")


# -- tenants ----------------------------------------------------------------------------


@cli.group()
def tenants() -> None:
    """Create tenants and manage their API tokens."""


_scopes_option = click.option(
    "--scopes",
    default=None,
    help="Comma- or space-separated scopes (default: all of streams:read analytics:read "
    "billing:read audit:read bulk:write).",
)
_expires_option = click.option(
    "--expires-in-days", type=click.IntRange(min=1), default=None, help="Token lifetime."
)


@tenants.command("create")
@click.argument("name")
@_scopes_option
@_expires_option
@click.option(
    "--exists-ok", is_flag=True, help="If NAME exists, issue it a new token instead of failing."
)
def tenants_create(
    name: str, scopes: str | None, expires_in_days: int | None, exists_ok: bool
) -> None:
    """Create tenant NAME; print {"tenant_id", "token"}. The token is shown only once."""
    from bulkops import db
    from bulkops.tenants import create_tenant, issue_token, parse_scopes, tenant_id_by_name

    async def go() -> dict[str, Any]:
        scope_list = parse_scopes(scopes)
        expires_in = _days(expires_in_days)
        conn = await db.connect(config.load())
        try:
            created = True
            if exists_ok and await conn.fetchval("SELECT 1 FROM tenants WHERE name = $1", name):
                created = False
                tenant_id = await tenant_id_by_name(conn, name)
                token = await issue_token(conn, tenant_id, scopes=scope_list, expires_in=expires_in)
            else:
                tenant_id, token = await create_tenant(
                    conn, name, scopes=scope_list, expires_in=expires_in
                )
        finally:
            await conn.close()
        return {"tenant_id": tenant_id, "token": token, "scopes": list(scope_list),
                "created": created}  # fmt: skip

    click.echo(json.dumps(_run(go)))


@tenants.command("token")
@click.argument("name")
@_scopes_option
@_expires_option
def tenants_token(name: str, scopes: str | None, expires_in_days: int | None) -> None:
    """Issue another token for tenant NAME; print {"tenant_id", "token"}."""
    from bulkops import db
    from bulkops.tenants import issue_token, parse_scopes, tenant_id_by_name

    async def go() -> dict[str, Any]:
        scope_list = parse_scopes(scopes)
        conn = await db.connect(config.load())
        try:
            tenant_id = await tenant_id_by_name(conn, name)
            token = await issue_token(
                conn, tenant_id, scopes=scope_list, expires_in=_days(expires_in_days)
            )
        finally:
            await conn.close()
        return {"tenant_id": tenant_id, "token": token, "scopes": list(scope_list)}

    click.echo(json.dumps(_run(go)))


@tenants.command("revoke")
@click.argument("token_or_prefix")
def tenants_revoke(token_or_prefix: str) -> None:
    """Revoke a token, given in full or by its first 12 characters."""
    from bulkops import db
    from bulkops.tenants import revoke_token

    async def go() -> int:
        conn = await db.connect(config.load())
        try:
            return await revoke_token(conn, token_or_prefix)
        finally:
            await conn.close()

    count = _run(go)
    if count == 0:
        raise CliError("no active token with that prefix")
    click.echo(f"revoked {count} token(s)")


@tenants.command("webhook")
@click.argument("name")
@click.argument("url", required=False)
@click.option("--clear", is_flag=True, help="Remove the webhook (and its secret).")
def tenants_webhook(name: str, url: str | None, clear: bool) -> None:
    """POST tenant NAME's bulk_operations/finish events to URL; print {"tenant", "webhook_url",
    "secret"}. The secret (HMAC key of X-Bulkops-Signature) is made once and kept."""
    from bulkops import db
    from bulkops.webhooks import configure, validate_url

    if clear == (url is not None):
        raise CliError("give either a URL or --clear")

    async def go() -> dict[str, Any]:
        if url is not None:
            validate_url(url)  # before connecting: bad input is named even if Postgres is down
        conn = await db.connect(config.load())
        try:
            return await configure(conn, name, None if clear else url)
        finally:
            await conn.close()

    click.echo(json.dumps(_run(go)))


def _days(days: int | None) -> timedelta | None:
    return timedelta(days=days) if days is not None else None


# -- seed -------------------------------------------------------------------------------


@cli.command()
@click.option("--tenant", required=True, help="Name of an existing tenant.")
@click.option("--streams", type=click.IntRange(min=0), default=200, show_default=True)
@click.option("--sessions", type=click.IntRange(min=0), default=10_000, show_default=True)
@click.option("--clips", type=click.IntRange(min=0), default=None, help="Default: 3 per stream.")
@click.option("--audit-events", type=click.IntRange(min=0), default=1_000, show_default=True)
@click.option("--usage-records", type=click.IntRange(min=0), default=1_000, show_default=True)
@click.option("--months", type=click.IntRange(1, 120), default=6, show_default=True)
@click.option("--seed", "rng_seed", type=int, default=42, show_default=True)
def seed(
    tenant: str,
    streams: int,
    sessions: int,
    clips: int | None,
    audit_events: int,
    usage_records: int,
    months: int,
    rng_seed: int,
) -> None:
    """Generate realistic data for TENANT through COPY (adds to what is there)."""
    from bulkops import db
    from bulkops.seed import SeedPlan
    from bulkops.seed import seed as run_seed
    from bulkops.tenants import tenant_id_by_name

    plan = SeedPlan(
        streams=streams,
        sessions=sessions,
        clips=3 * streams if clips is None else clips,
        audit_events=audit_events,
        usage_records=usage_records,
        months=months,
        seed=rng_seed,
    )

    async def go() -> dict[str, Any]:
        conn = await db.connect(config.load())
        try:
            tenant_id = await tenant_id_by_name(conn, tenant)
            report = await run_seed(conn, tenant_id, plan)
        finally:
            await conn.close()
        return {"tenant": tenant, "rows": report.counts, "seconds": report.seconds}

    click.echo(json.dumps(_run(go)))


# -- the Bridge -------------------------------------------------------------------------


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="Default: $BULKOPS_BRIDGE_PORT (8000).")  # fmt: skip
@click.option("--workers", type=click.IntRange(1, 64), default=2, show_default=True)
def serve(host: str, port: int | None, workers: int) -> None:
    """Run the Bridge (GraphQL API) on WORKERS processes."""
    try:
        from bridge.app import serve as run_bridge
    except ImportError as exc:
        raise CliError(
            f"the Bridge (server/) is not importable: {exc}; run `make install`"
        ) from None
    settings = config.load()
    run_bridge(settings, host, port or settings.bridge_port, workers)


# -- bulk operations: workers, dispatcher, client -----------------------------------------


@cli.command()
@click.option("--processes", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Worker processes; each runs BULKOPS_WORKER_CONCURRENCY jobs at once.")  # fmt: skip
def worker(processes: int) -> None:
    """Run arq workers that execute bulk operations (any number, on any machine)."""
    from bulkops.worker import run_workers

    run_workers(config.load(), processes)


@cli.command()
def dispatcher() -> None:
    """Relay the outbox to Kafka, hand Kafka's operations to arq and deliver webhooks."""
    from bulkops.intake import run_dispatcher

    asyncio.run(run_dispatcher(config.load()))


@cli.command()
@click.option("--query", "query_file", required=True, type=click.File("r"),
              help="File with the bulk GraphQL query ('-' for stdin).")  # fmt: skip
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, writable=True),
              help="Where to write the JSONL.")  # fmt: skip
@click.option("--url", "api_url", default=None, help="Bridge URL (default $BULKOPS_PUBLIC_URL).")
@click.option("--token", envvar="BULKOPS_TOKEN", required=True,
              help="API token (or $BULKOPS_TOKEN).")  # fmt: skip
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--nest", is_flag=True,
              help="Write one line per root node with its children nested under each "
                   "connection's field name, instead of flat lines with __parentId.")  # fmt: skip
@click.option("--wait-for-slot", "slot_wait_s", type=click.FloatRange(0), default=600,
              show_default=True,
              help="Seconds to keep retrying while the tenant's concurrent operations are all "
                   "taken (LIMIT_REACHED); 0 fails at once.")  # fmt: skip
def export(query_file: Any, out_path: str, api_url: str | None, token: str, quiet: bool,
           nest: bool, slot_wait_s: float) -> None:  # fmt: skip
    """Run a bulk operation through the API, show progress, download and verify the result."""
    from pathlib import Path

    import httpx

    from bulkops.bulkquery import BulkQueryError, parse_bulk_query
    from bulkops.client import Client, ExportFailed
    from bulkops.nest import NestError, check_nestable, nest_file

    text = query_file.read()
    if nest:  # refuse before submitting, not after a long export
        try:
            check_nestable(parse_bulk_query(text))
        except (BulkQueryError, NestError) as exc:
            raise CliError(str(exc)) from None
    client = Client(api_url or config.load().public_url, token)
    op_id = None
    try:
        op = client.submit_when_free(text, slot_wait_s, progress=not quiet)
        op_id = op["id"]
        op = client.wait(op_id, progress=not quiet)
        if op["status"] != "COMPLETED":
            detail = f"{op['errorCode'] or op['status']}: {op['errorMessage'] or 'no details'}"
            if op.get("partialDataUrl"):
                detail += f" (partial data: {op['partialDataUrl']})"
            raise CliError(f"bulk operation {op_id} ended {op['status']}: {detail}")
        out = Path(out_path)
        if op["url"] is None:
            out.write_bytes(b"")
            click.echo(json.dumps({"id": op_id, "objectCount": 0, "file": str(out), "url": None}))
            return
        if nest:
            flat = out.with_name(out.name + ".flat")
            client.download(op["url"], flat, int(op["fileSize"]), op["sha256"])
            counts = [int(c["objectCount"]) for c in op.get("connections") or []]
            try:
                nest_file(parse_bulk_query(text), counts, flat, out)
            finally:
                flat.unlink(missing_ok=True)
        else:
            client.download(op["url"], out, int(op["fileSize"]), op["sha256"])
    except (ExportFailed, NestError) as exc:
        raise CliError(str(exc)) from None
    except httpx.HTTPError as exc:
        raise CliError(f"cannot reach the API: {exc}") from None
    except KeyboardInterrupt:
        if op_id is not None:
            client.cancel(op_id)
            raise CliError(f"interrupted: bulk operation {op_id} canceled") from None
        raise
    click.echo(json.dumps({"id": op_id, "objectCount": int(op["objectCount"]),
                           "fileSize": int(op["fileSize"]), "sha256": op["sha256"],
                           "file": str(out)}))  # fmt: skip


# -- the engine, without the API ---------------------------------------------------------


@cli.command("run-query")
@click.option("--tenant", required=True, help="Name of an existing tenant.")
@click.option("--query", "query_file", required=True, type=click.File("r"),
              help="File with the bulk GraphQL query ('-' for stdin).")  # fmt: skip
@click.option("--out", "out_url", required=True,
              help="Storage URL of the output object: file:///abs/path.jsonl or s3://bucket/key.")  # fmt: skip
def run_query(tenant: str, query_file: Any, out_url: str) -> None:
    """Run a bulk query straight through the engine (operators, benchmarks, debugging)."""
    import time

    from bulkops import db
    from bulkops.bulkquery import BulkQueryError, parse_bulk_query
    from bulkops.engine import connection_counts, run_export
    from bulkops.planner import plan
    from bulkops.storage import StorageError, locate
    from bulkops.tenants import tenant_id_by_name

    settings = config.load()
    try:
        query = parse_bulk_query(query_file.read())
        location = locate(out_url, settings)
    except (BulkQueryError, StorageError) as exc:
        raise CliError(str(exc)) from None

    async def tenant_id() -> int:
        conn = await db.connect(settings)
        try:
            return await tenant_id_by_name(conn, tenant)
        finally:
            await conn.close()

    the_plan = plan(query, _run(tenant_id))
    started = time.perf_counter()
    result = run_export(the_plan, settings.database_url, location)
    click.echo(
        json.dumps(
            {
                "objectCount": result.object_count,
                "rootObjectCount": result.root_object_count,
                "fileSize": result.file_size,
                "sha256": result.sha256,
                "url": out_url if result.location is not None else None,
                "snapshotAt": result.snapshot_at.isoformat(),
                "connections": connection_counts(the_plan, result.connection_counts),
                "seconds": round(time.perf_counter() - started, 3),
            }
        )
    )


def main() -> None:
    try:
        cli(prog_name="bulkops")
    except KeyboardInterrupt:
        click.echo("bulkops: interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
