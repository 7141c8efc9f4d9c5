"""The local secret key: one per BULKOPS_HOME, whatever the processes' working directories and
however many of them start at once."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bulkops import config
from bulkops.services.app import Bridge, Dispatcher, Worker

# Each child waits for the same instant, then reads (or creates) the key.
_CHILD = """
import sys, time
from bulkops import config
from bulkops.signing import secret_key
start = float(sys.argv[1])
while time.time() < start:
    pass
print(secret_key(config.load()).decode())
"""


def test_processes_starting_together_agree_on_one_key(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "BULKOPS_SECRET_KEY"}
    env["BULKOPS_HOME"] = str(tmp_path / "home")
    start = time.time() + 2.0  # every child is up and spinning by then
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(start)], env=env, stdout=subprocess.PIPE, text=True
        )
        for _ in range(6)
    ]
    keys = {child.communicate(timeout=60)[0].strip() for child in children}
    assert all(child.returncode == 0 for child in children)
    assert len(keys) == 1 and len(next(iter(keys))) == 64
    assert (tmp_path / "home" / "secret_key").read_text() == next(iter(keys))
    assert [p.name for p in (tmp_path / "home").iterdir()] == ["secret_key"]  # no temp files


def test_bulkops_processes_get_the_absolute_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """They run in their own directories: a relative BULKOPS_HOME must not follow them there."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BULKOPS_HOME", ".relative-home")
    settings = config.load()
    for service in (Bridge(settings), Dispatcher(settings), Worker(settings)):
        assert service.env() == {"BULKOPS_HOME": str(tmp_path / ".relative-home")}
