from __future__ import annotations

import asyncpg
import pytest

from bulkops.catalog import TENANT_TABLES, TYPES
from bulkops.config import Settings
from bulkops.db.migrate import MigrationError, available, migrate


@pytest.fixture
async def scratch_db(settings: Settings):
    """A throwaway database, so migrations run from zero."""
    admin_url = settings.database_url.rsplit("/", 1)[0] + "/postgres"
    admin = await asyncpg.connect(admin_url)
    await admin.execute("DROP DATABASE IF EXISTS bulkops_migrations_test")
    await admin.execute("CREATE DATABASE bulkops_migrations_test")
    conn = await asyncpg.connect(admin_url.rsplit("/", 1)[0] + "/bulkops_migrations_test")
    try:
        yield conn
    finally:
        await conn.close()
        await admin.execute("DROP DATABASE bulkops_migrations_test")
        await admin.close()


async def test_migrate_is_idempotent(scratch_db: asyncpg.Connection) -> None:
    first = await migrate(scratch_db)
    assert [m.version for m in first] == [m.version for m in available()]
    assert await migrate(scratch_db) == []
    rows = await scratch_db.fetch("SELECT version FROM schema_migrations ORDER BY version")
    assert [r["version"] for r in rows] == [m.version for m in available()]


async def test_edited_migration_is_refused(scratch_db: asyncpg.Connection) -> None:
    await migrate(scratch_db)
    await scratch_db.execute("UPDATE schema_migrations SET checksum = 'x' WHERE version = 1")
    with pytest.raises(MigrationError, match="forward-only"):
        await migrate(scratch_db)


async def test_every_tenant_table_requires_a_tenant(db: asyncpg.Connection) -> None:
    rows = await db.fetch(
        """SELECT table_name, is_nullable FROM information_schema.columns
            WHERE column_name = 'tenant_id' AND table_schema = 'public'"""
    )
    nullable = {r["table_name"]: r["is_nullable"] for r in rows}
    for table in (*TENANT_TABLES, "api_tokens"):
        assert nullable[table] == "NO", table


async def test_keyset_index_exists_for_every_type(db: asyncpg.Connection) -> None:
    for t in TYPES.values():
        expected = ["tenant_id", *t.order]
        rows = await db.fetch(
            """SELECT array_agg(a.attname ORDER BY k.ord) AS cols
                 FROM pg_index i
                 JOIN pg_class c ON c.oid = i.indrelid
                 CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
                 JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
                WHERE c.relname = $1
                GROUP BY i.indexrelid""",
            t.table,
        )
        assert expected in [list(r["cols"]) for r in rows], (t.name, expected)


async def test_catalog_sql_matches_the_schema(db: asyncpg.Connection) -> None:
    """Every field expression of the catalog is valid SQL over its table."""
    for t in TYPES.values():
        select = ", ".join(f'{f.sql} AS "{f.name}"' for f in t.fields)
        await db.fetch(f"SELECT {select} FROM {t.table} t LIMIT 0")
        for n in t.nested:
            child = TYPES[n.child]
            await db.fetch(
                f"SELECT c.{n.child_key} FROM {child.table} c JOIN {t.table} t "
                f"ON c.{n.child_key} = t.{n.parent_key} AND c.tenant_id = t.tenant_id LIMIT 0"
            )
