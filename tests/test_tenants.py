from __future__ import annotations

import hashlib
from datetime import timedelta

import asyncpg

from bulkops.tenants import authenticate, issue_token, revoke_token, token_digest
from tests.conftest import TenantFactory


async def test_token_is_stored_only_as_its_hash(
    db: asyncpg.Connection, make_tenant: TenantFactory
) -> None:
    t = await make_tenant()
    row = await db.fetchrow("SELECT * FROM api_tokens WHERE tenant_id = $1", t.id)
    assert bytes(row["token_sha256"]) == hashlib.sha256(t.token.encode()).digest()
    assert row["prefix"] == t.token[:12]
    stored = " ".join(str(v) for v in row.values())
    assert t.token not in stored and t.token[12:] not in stored


async def test_valid_token_resolves_tenant_and_scopes(
    db: asyncpg.Connection, make_tenant: TenantFactory
) -> None:
    t = await make_tenant(scopes=("streams:read", "bulk:write"))
    principal = await authenticate(db, t.token)
    assert principal is not None
    assert principal.tenant_id == t.id
    assert principal.scopes == {"streams:read", "bulk:write"}


async def test_bad_tokens_are_rejected(db: asyncpg.Connection, make_tenant: TenantFactory) -> None:
    t = await make_tenant()
    same_prefix_wrong_rest = t.token[:12] + "x" * (len(t.token) - 12)
    for bad in ("", "Bearer", "bko_", t.token + "x", t.token[:-1], same_prefix_wrong_rest,
                "ghp_" + t.token[4:], "bko_" + "\x00" * 40, "bko_" + "é" * 300):  # fmt: skip
        assert await authenticate(db, bad) is None, bad


async def test_expired_token_is_rejected(
    db: asyncpg.Connection, make_tenant: TenantFactory
) -> None:
    t = await make_tenant()
    token = await issue_token(db, t.id, expires_in=timedelta(seconds=-1))
    assert await authenticate(db, token) is None
    fresh = await issue_token(db, t.id, expires_in=timedelta(hours=1))
    assert await authenticate(db, fresh) is not None


async def test_revoked_token_is_rejected(
    db: asyncpg.Connection, make_tenant: TenantFactory
) -> None:
    t = await make_tenant()
    other = await issue_token(db, t.id)
    assert await revoke_token(db, t.token[:12]) == 1
    assert await authenticate(db, t.token) is None
    assert await authenticate(db, other) is not None  # revocation is per token


def test_digest_is_sha256() -> None:
    assert token_digest("bko_abc") == hashlib.sha256(b"bko_abc").digest()
