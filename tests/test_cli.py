"""Bad CLI input ends with one line on stderr and a non-zero status, never a traceback."""

from __future__ import annotations

import pytest

from tests.conftest import bulkops_cli


def _assert_one_line_error(result, fragment: str) -> None:  # type: ignore[no-untyped-def]
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert fragment in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("seed", "--tenant", "no-such-tenant-xyz", "--sessions", "1"), "no tenant named"),
        (("seed", "--tenant", "x", "--sessions", "-5"), "Invalid value"),
        (("seed", "--tenant", "x", "--sessions", "lots"), "Invalid value"),
        (("seed",), "Missing option"),
        (("tenants", "create", "x", "--scopes", "root:all"), "unknown scope"),
        (("tenants", "revoke", "bko_nothing"), "no active token"),
        (("services", "up", "mysql"), "unknown service"),
        (("frobnicate",), "No such command"),
    ],
)
def test_bad_arguments(args: tuple[str, ...], fragment: str) -> None:
    _assert_one_line_error(bulkops_cli(*args, check=False), fragment)


def test_unreachable_database() -> None:
    result = bulkops_cli(
        "migrate",
        env={"BULKOPS_DATABASE_URL": "postgresql://bulkops@127.0.0.1:9/nope"},
        check=False,
    )
    _assert_one_line_error(result, "cannot reach PostgreSQL")
    assert len(result.stderr.strip().splitlines()) == 1


def test_tenant_create_prints_token_once() -> None:
    import json
    import uuid

    name = f"cli-{uuid.uuid4().hex[:8]}"
    created = json.loads(bulkops_cli("tenants", "create", name, "--scopes", "streams:read").stdout)
    assert created["token"].startswith("bko_") and created["tenant_id"] > 0
    assert created["scopes"] == ["streams:read"]
    again = bulkops_cli("tenants", "create", name, check=False)
    _assert_one_line_error(again, "already exists")
