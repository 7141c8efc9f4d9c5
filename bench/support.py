"""Helpers shared by the benchmarks: the results table, psql, the CLI and timing.

Every figure a benchmark wants in the closing summary goes through ``RESULTS.add``. Ratios
(unit ``x``) are printed first, since only ratios measured in one run mean anything on a
shared, noisy 2-core machine; absolute seconds are printed for context.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
QUERIES = Path(__file__).resolve().parent / "queries"
MB = 1_000_000  # throughput in MB/s means 10^6 bytes per second


# -- results --------------------------------------------------------------------------


@dataclass
class Figure:
    section: str
    name: str
    value: float
    unit: str
    target: str = ""  #: e.g. "<= 1.3"
    ok: bool | None = None  #: None when there is no target
    note: str = ""


@dataclass
class Results:
    figures: list[Figure] = field(default_factory=list)
    values: dict[str, float] = field(default_factory=dict)  #: raw numbers shared by tests

    def add(self, section: str, name: str, value: float, unit: str, *, target: str = "",
            note: str = "") -> Figure:  # fmt: skip
        ok = _meets(value, target) if target else None
        fig = Figure(section, name, value, unit, target, ok, note)
        self.figures = [f for f in self.figures if (f.section, f.name) != (section, name)]
        self.figures.append(fig)
        mark = "" if ok is None else (" [meets target]" if ok else " [MISSES target]")
        tgt = f" (target {target})" if target else ""
        print(f"\n  bench {section}: {name} = {_fmt(value, unit)}{tgt}{mark} {note}".rstrip())
        return fig

    def render(self) -> list[str]:
        if not self.figures:
            return []
        ratios = [f for f in self.figures if f.unit == "x"]
        others = [f for f in self.figures if f.unit != "x"]
        lines: list[str] = []
        width = max(len(f"{f.section}: {f.name}") for f in self.figures)
        for title, figs in (("ratios (same run)", ratios), ("measurements", others)):
            if not figs:
                continue
            lines.append(f"-- {title} " + "-" * max(0, width + 40 - len(title)))
            for f in figs:
                label = f"{f.section}: {f.name}".ljust(width)
                value, unit = _fmt(f.value, f.unit).rsplit(" ", 1) if f.unit != "x" else (
                    f"{f.value:.2f}", "x")  # fmt: skip
                status = "" if f.ok is None else ("ok" if f.ok else "MISS")
                tgt = f"(target {f.target})" if f.target else ""
                line = f"{label}  {value:>12} {unit:<6} {status:4} {tgt:14} {f.note}"
                lines.append(line.rstrip())
        return lines


def _meets(value: float, target: str) -> bool:
    op, _, bound = target.partition(" ")
    limit = float(bound)
    return {"<=": value <= limit, ">=": value >= limit, "<": value < limit, ">": value > limit}[op]


def _fmt(value: float, unit: str) -> str:
    if unit == "x":
        return f"{value:.2f}x"
    if unit == "s":
        return f"{value:.3f} s"
    if unit == "ms":
        return f"{value:.1f} ms"
    if abs(value) >= 100:
        return f"{value:,.0f} {unit}"
    return f"{value:.2f} {unit}"


RESULTS = Results()


# -- timing ----------------------------------------------------------------------------


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def best_of_alternating(runs: dict[str, Callable[[], Any]], rounds: int,
                        setup: dict[str, Callable[[], Any]] | None = None) -> dict[str, float]:  # fmt: skip
    """Run each callable ``rounds`` times, interleaved (a, b, c, a, b, c, ...); best time each.

    Interleaving spreads the machine's background noise over every contender alike.
    ``setup[name]``, if given, runs untimed before each of that contender's runs (e.g. removing
    the previous output, whose unlink would otherwise be charged to the next run)."""
    best = {name: float("inf") for name in runs}
    for _ in range(rounds):
        for name, fn in runs.items():
            if setup and name in setup:
                setup[name]()
            seconds, _ = timed(fn)
            best[name] = min(best[name], seconds)
    return best


# -- processes -------------------------------------------------------------------------


def bulkops_cli(*args: str, timeout: float = 1800, check: bool = True) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """The real CLI in a subprocess, with the bench environment."""
    result = subprocess.run(
        [sys.executable, "-m", "bulkops.cli", *args],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=timeout,
        cwd=ROOT,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"bulkops {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


@dataclass(frozen=True)
class ChildRun:
    returncode: int
    seconds: float
    max_rss_bytes: int
    stdout: str
    stderr: str


# Runs argv[2:], waits for it with wait4 and writes {"rc", "seconds", "maxrss_kb"} to argv[1].
_LAUNCHER = """
import json, os, subprocess, sys, time
t0 = time.perf_counter()
proc = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(proc.pid, 0)
seconds = time.perf_counter() - t0
with open(sys.argv[1], "w") as fh:
    json.dump({"rc": os.waitstatus_to_exitcode(status), "seconds": seconds,
               "maxrss_kb": usage.ru_maxrss}, fh)
"""


def run_measured(argv: Sequence[str], timeout: float = 1800) -> ChildRun:
    """Run one child and read *its own* peak RSS.

    Not straight from this process: Linux's ru_maxrss of a child counts the high-water RSS of
    the memory it had before exec, i.e. a copy of this (large) pytest process. So a small
    launcher starts the child and reports the child's ``wait4`` rusage; the launcher is the
    one whose figure is inflated. (RUSAGE_CHILDREN would also report the largest child ever,
    e.g. an earlier seed.)"""
    work = ROOT / ".local" / "bench"
    work.mkdir(parents=True, exist_ok=True)
    report = work / f"child-{os.getpid()}.json"
    report.unlink(missing_ok=True)
    proc = subprocess.run(
        [sys.executable, "-c", _LAUNCHER, str(report), *argv],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=os.environ.copy(),
        timeout=timeout,
        check=False,
    )
    if not report.exists():
        raise AssertionError(f"launcher failed ({proc.returncode}):\n{proc.stderr}")
    measured = json.loads(report.read_text())
    report.unlink()
    return ChildRun(measured["rc"], measured["seconds"], measured["maxrss_kb"] * 1024,
                    proc.stdout, proc.stderr)  # fmt: skip


def run_query(tenant: str, out_path: Path, query: str = "viewer_sessions.graphql") -> tuple[ChildRun, dict[str, Any]]:  # fmt: skip
    run = run_measured(
        [sys.executable, "-m", "bulkops.cli", "run-query", "--tenant", tenant,
         "--query", str(QUERIES / query), "--out", out_path.as_uri()]
    )  # fmt: skip
    if run.returncode != 0:
        raise AssertionError(f"run-query failed ({run.returncode}):\n{run.stdout}\n{run.stderr}")
    return run, json.loads(run.stdout)


# -- psql ------------------------------------------------------------------------------


def psql_binary() -> str:
    found = shutil.which("psql")
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/psql"))
    if not candidates:
        raise RuntimeError("psql not found (it comes with the postgresql package)")
    return str(candidates[-1])


def psql_args(database_url: str) -> list[str]:
    """psql with the connection of a postgresql://user@host:port/db URL, no psqlrc."""
    return [psql_binary(), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", database_url]


def psql(database_url: str, sql: str) -> str:
    """Run one statement; return its unaligned, tuples-only output."""
    result = subprocess.run(
        [*psql_args(database_url), "-At", "-c", sql], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise AssertionError(f"psql failed: {sql[:200]}\n{result.stderr}")
    return result.stdout.strip()


def psql_copy_to_devnull(database_url: str, sql: str) -> None:
    """``COPY (...) TO STDOUT`` through psql, output thrown away: Postgres' own floor."""
    result = subprocess.run(
        [*psql_args(database_url), "-c", sql],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(f"psql failed: {sql[:200]}\n{result.stderr.decode()}")


# -- files -----------------------------------------------------------------------------


def count_lines(path: Path, chunk: int = 16 * 1024 * 1024) -> int:
    n = 0
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            n += block.count(b"\n")
    return n
