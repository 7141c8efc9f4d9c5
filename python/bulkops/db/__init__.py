"""PostgreSQL access for the domain layer: connections and the migration runner."""

from __future__ import annotations

import asyncpg

from bulkops.config import Settings


async def connect(settings: Settings) -> asyncpg.Connection:
    return await asyncpg.connect(settings.database_url)


async def create_pool(settings: Settings, **kwargs: object) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(settings.database_url, **kwargs)
    assert pool is not None
    return pool
