"""An outage is told apart from a mistake using the errors the real drivers raise."""

from __future__ import annotations

import asyncio
import socket

import adbc_driver_postgresql.dbapi as pg
import asyncpg
import pytest

from bulkops.config import Settings
from bulkops.outages import database_unavailable


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_unreachable_database_is_an_outage(settings: Settings) -> None:
    url = f"postgresql://bulkops@127.0.0.1:{_closed_port()}/none"
    with pytest.raises(Exception) as asyncpg_err:
        await asyncpg.connect(url, timeout=5)
    assert database_unavailable(asyncpg_err.value)
    with pytest.raises(Exception) as adbc_err:
        pg.connect(url)
    assert database_unavailable(adbc_err.value)


async def test_a_terminated_session_is_an_outage(settings: Settings) -> None:
    victim = await asyncpg.connect(settings.database_url)
    killer = await asyncpg.connect(settings.database_url)
    try:
        await killer.execute("SELECT pg_terminate_backend($1)", victim.get_server_pid())
        await asyncio.sleep(0.2)  # the server's goodbye reaches the idle connection
        with pytest.raises(Exception) as err:
            await victim.fetchval("SELECT 1")
        assert database_unavailable(err.value)
    finally:
        await killer.close()
        await victim.close()


async def test_mistakes_are_not_outages(settings: Settings) -> None:
    conn = await asyncpg.connect(settings.database_url)
    try:
        for sql in ("SELEC 1", "SELECT 1/0", "SELECT * FROM no_such_table"):
            with pytest.raises(asyncpg.PostgresError) as err:
                await conn.fetchval(sql)
            assert not database_unavailable(err.value), sql
    finally:
        await conn.close()
    with pg.connect(settings.database_url) as adbc, adbc.cursor() as cur:
        with pytest.raises(Exception) as adbc_err:
            cur.execute("SELECT * FROM no_such_table")
        assert not database_unavailable(adbc_err.value)
    assert not database_unavailable(FileNotFoundError(2, "no such file"))
    assert not database_unavailable(ValueError("bad input"))


async def test_a_dispatcher_component_is_restarted_after_an_unexpected_error(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """The error that once ended the dispatcher: asyncpg's InternalClientError from a pooled
    connection left mid-operation by a database restart. The component runs again."""
    from bulkops.intake import supervise

    stop = asyncio.Event()
    runs: list[int] = []

    async def component(_: Settings, stop_: asyncio.Event) -> None:
        runs.append(len(runs))
        if len(runs) == 1:
            raise asyncpg.exceptions.InternalClientError(
                "cannot switch to state 12; another operation (2) is in progress"
            )
        stop_.set()

    await asyncio.wait_for(supervise("webhooks", component, settings, stop), timeout=10)
    assert runs == [0, 1] and stop.is_set()
    assert "webhooks stopped on an unexpected error" in caplog.text
