"""The end-to-end baseline: ``run_export`` of 1M sessions against Postgres' own ``COPY``.

Three contenders, run alternately (export, COPY binary, COPY row_to_json, export, ...) and
best of ``ROUNDS`` each, on the very SQL the planner produces:

* ``run_export`` in-process: fetch (ADBC binary COPY) -> Rust JSONL -> file:// store, sha256;
* ``COPY (sql) TO STDOUT (FORMAT binary)`` through psql to /dev/null: the physical floor;
* ``COPY (SELECT row_to_json(t) FROM (sql) t) TO STDOUT``: Postgres writing the JSONL itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.support import QUERIES, best_of_alternating, psql_copy_to_devnull
from bulkops.bulkquery import parse_bulk_query
from bulkops.config import Settings
from bulkops.engine import ExportResult, run_export
from bulkops.planner import Plan, plan
from bulkops.storage import locate

ROUNDS = 3


def viewer_sessions_plan(tenant_id: int, query: str = "viewer_sessions.graphql") -> Plan:
    return plan(parse_bulk_query((QUERIES / query).read_text()), tenant_id)


def copy_binary_sql(sql: str) -> str:
    return f"COPY ({sql}) TO STDOUT (FORMAT binary)"


def copy_row_to_json_sql(sql: str) -> str:
    return f"COPY (SELECT row_to_json(t) FROM ({sql}) t) TO STDOUT"


@dataclass(frozen=True)
class ExportBaseline:
    sql: str
    export_s: float
    copy_binary_s: float
    row_to_json_s: float
    result: ExportResult  #: of the last export run
    out_path: Path

    @property
    def export_over_copy(self) -> float:
        return self.export_s / self.copy_binary_s

    @property
    def row_to_json_over_export(self) -> float:
        return self.row_to_json_s / self.export_s


def measure_export_baseline(tenant_id: int, settings: Settings, out_path: Path) -> ExportBaseline:
    the_plan = viewer_sessions_plan(tenant_id)
    assert len(the_plan.connections) == 1
    sql = the_plan.connections[0].sql
    location = locate(out_path.as_uri(), settings)
    results: list[ExportResult] = []

    def export() -> None:
        results.append(run_export(the_plan, settings.database_url, location))

    best = best_of_alternating(
        {
            "export": export,
            "copy_binary": lambda: psql_copy_to_devnull(
                settings.database_url, copy_binary_sql(sql)
            ),
            "row_to_json": lambda: psql_copy_to_devnull(
                settings.database_url, copy_row_to_json_sql(sql)
            ),
        },
        ROUNDS,
        setup={"export": lambda: out_path.unlink(missing_ok=True)},
    )
    return ExportBaseline(
        sql=sql,
        export_s=best["export"],
        copy_binary_s=best["copy_binary"],
        row_to_json_s=best["row_to_json"],
        result=results[-1],
        out_path=out_path,
    )
