"""Tenants and their API tokens.

A token is ``bko_`` + 40 random base62 characters. Only its SHA-256 is stored, next to its
first 12 characters (the *prefix*) for lookup and display. Verification finds candidate rows by
prefix and compares digests with ``hmac.compare_digest``, so timing does not leak the hash.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from bulkops.catalog import Scope

TOKEN_PREFIX = "bko_"
_ALPHABET = string.ascii_letters + string.digits
_PREFIX_LEN = len(TOKEN_PREFIX) + 8
_TOKEN_SHAPE = re.compile(r"bko_[A-Za-z0-9]{40}")
DEFAULT_SCOPES: tuple[str, ...] = tuple(s.value for s in Scope)


class TenantError(ValueError):
    """A tenant or token operation that cannot be done; the message is safe to show."""


@dataclass(frozen=True)
class Principal:
    """Who a valid token speaks for."""

    tenant_id: int
    tenant_name: str
    token_id: int
    scopes: frozenset[str]
    rate_limit_per_minute: int = 100
    rate_limit_burst: int = 20


def new_token() -> str:
    return TOKEN_PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(40))


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def parse_scopes(raw: str | list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    if raw is None:
        return DEFAULT_SCOPES
    items = raw.replace(",", " ").split() if isinstance(raw, str) else list(raw)
    known = {s.value for s in Scope}
    unknown = [s for s in items if s not in known]
    if unknown:
        raise TenantError(f"unknown scope {unknown[0]!r}; known scopes: {', '.join(sorted(known))}")
    if not items:
        raise TenantError("a token needs at least one scope")
    return tuple(dict.fromkeys(items))


async def create_tenant(
    conn: asyncpg.Connection,
    name: str,
    *,
    scopes: tuple[str, ...] = DEFAULT_SCOPES,
    expires_in: timedelta | None = None,
) -> tuple[int, str]:
    """Create a tenant and its first token; return (tenant id, token shown once)."""
    if not name or len(name) > 100:
        raise TenantError("a tenant name is 1 to 100 characters")
    async with conn.transaction():
        try:
            tenant_id = await conn.fetchval(
                "INSERT INTO tenants (name) VALUES ($1) RETURNING id", name
            )
        except asyncpg.UniqueViolationError:
            raise TenantError(f"tenant {name!r} already exists") from None
        token = await issue_token(conn, tenant_id, scopes=scopes, expires_in=expires_in)
    return tenant_id, token


async def tenant_id_by_name(conn: asyncpg.Connection, name: str) -> int:
    tenant_id = await conn.fetchval("SELECT id FROM tenants WHERE name = $1", name)
    if tenant_id is None:
        raise TenantError(f"no tenant named {name!r}")
    return int(tenant_id)


async def issue_token(
    conn: asyncpg.Connection,
    tenant_id: int,
    *,
    scopes: tuple[str, ...] = DEFAULT_SCOPES,
    expires_in: timedelta | None = None,
) -> str:
    token = new_token()
    expires_at = datetime.now(UTC) + expires_in if expires_in is not None else None
    await conn.execute(
        """INSERT INTO api_tokens (tenant_id, prefix, token_sha256, scopes, expires_at)
           VALUES ($1, $2, $3, $4, $5)""",
        tenant_id,
        token[:_PREFIX_LEN],
        token_digest(token),
        list(scopes),
        expires_at,
    )
    return token


async def revoke_token(conn: asyncpg.Connection, token_or_prefix: str) -> int:
    """Revoke by full token or by its 12-character prefix; return how many were revoked."""
    result = await conn.execute(
        "UPDATE api_tokens SET revoked_at = now() WHERE prefix = $1 AND revoked_at IS NULL",
        token_or_prefix[:_PREFIX_LEN],
    )
    return int(result.split()[-1])


async def authenticate(conn: asyncpg.Connection, token: str) -> Principal | None:
    """The principal of a valid token, or None if it is malformed, unknown, expired or revoked."""
    if not _TOKEN_SHAPE.fullmatch(token):  # malformed: never reaches the database
        return None
    digest = token_digest(token)
    rows = await conn.fetch(
        """SELECT k.id, k.tenant_id, t.name, k.token_sha256, k.scopes,
                  t.rate_limit_per_minute, t.rate_limit_burst,
                  k.expires_at IS NOT NULL AND k.expires_at <= now() AS expired,
                  k.revoked_at IS NOT NULL AS revoked
             FROM api_tokens k JOIN tenants t ON t.id = k.tenant_id
            WHERE k.prefix = $1""",
        token[:_PREFIX_LEN],
    )
    match = None
    for row in rows:  # compare every candidate, so the loop's timing does not depend on which
        if hmac.compare_digest(bytes(row["token_sha256"]), digest):
            match = row
    if match is None or match["expired"] or match["revoked"]:
        return None
    return Principal(
        tenant_id=match["tenant_id"],
        tenant_name=match["name"],
        token_id=match["id"],
        scopes=frozenset(match["scopes"]),
        rate_limit_per_minute=match["rate_limit_per_minute"],
        rate_limit_burst=match["rate_limit_burst"],
    )
