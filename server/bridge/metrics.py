"""Prometheus text-format metrics of one Bridge process (scrapes carry a ``pid`` label)."""

from __future__ import annotations

import os
from collections import Counter

_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    def __init__(self) -> None:
        self.requests: Counter[tuple[str, int]] = Counter()
        self.errors: Counter[str] = Counter()
        self.rate_limited = 0
        self._latency_counts = [0] * len(_BUCKETS_S)
        self._latency_sum = 0.0
        self._latency_n = 0

    def observe(self, route: str, status: int, seconds: float) -> None:
        self.requests[(route, status)] += 1
        self._latency_sum += seconds
        self._latency_n += 1
        for i, bound in enumerate(_BUCKETS_S):
            if seconds <= bound:
                self._latency_counts[i] += 1

    def render(self) -> str:
        pid = os.getpid()
        out = [
            "# HELP bulkops_http_requests_total HTTP requests by route and status.",
            "# TYPE bulkops_http_requests_total counter",
        ]
        for (route, status), n in sorted(self.requests.items()):
            out.append(
                f'bulkops_http_requests_total{{pid="{pid}",route="{route}",status="{status}"}} {n}'
            )
        out += ["# HELP bulkops_graphql_errors_total GraphQL errors by code.",
                "# TYPE bulkops_graphql_errors_total counter"]  # fmt: skip
        for code, n in sorted(self.errors.items()):
            out.append(f'bulkops_graphql_errors_total{{pid="{pid}",code="{code}"}} {n}')
        out += ["# TYPE bulkops_rate_limited_total counter",
                f'bulkops_rate_limited_total{{pid="{pid}"}} {self.rate_limited}',
                "# TYPE bulkops_http_request_seconds histogram"]  # fmt: skip
        for bound, n in zip(_BUCKETS_S, self._latency_counts, strict=True):
            out.append(f'bulkops_http_request_seconds_bucket{{pid="{pid}",le="{bound}"}} {n}')
        out.append(
            f'bulkops_http_request_seconds_bucket{{pid="{pid}",le="+Inf"}} {self._latency_n}'
        )
        out.append(f'bulkops_http_request_seconds_sum{{pid="{pid}"}} {self._latency_sum:.6f}')
        out.append(f'bulkops_http_request_seconds_count{{pid="{pid}"}} {self._latency_n}')
        return "\n".join(out) + "\n"
