"""Realistic demo and benchmark data, generated column-wise with numpy/polars and loaded by COPY.

Shapes follow domain.md: a few hundred streams per tenant with a Zipf skew of viewers per
stream, sessions spread over months (in time order, so the heap follows the keyset index),
weighted countries/cities/connectors and log-normal durations. No row is built in Python.
"""

from __future__ import annotations

import io
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import numpy as np
import polars as pl

from bulkops.catalog import ENUMS

log = logging.getLogger("bulkops.seed")

CHUNK_ROWS = 250_000
US_PER_S = 1_000_000

# (country, city, lat, lon, edge region, weight); None country = geo lookup failed
_GEO = [
    ("US", "New York", 40.71, -74.01, "us-east", 0.12),
    ("US", "Los Angeles", 34.05, -118.24, "us-west", 0.08),
    ("US", "Chicago", 41.88, -87.63, "us-east", 0.06),
    ("GB", "London", 51.51, -0.13, "eu-west", 0.07),
    ("GB", "Manchester", 53.48, -2.24, "eu-west", 0.02),
    ("DE", "Berlin", 52.52, 13.40, "eu-central", 0.04),
    ("DE", "München", 48.14, 11.58, "eu-central", 0.03),
    ("NL", "Amsterdam", 52.37, 4.90, "eu-west", 0.03),
    ("FR", "Paris", 48.86, 2.35, "eu-west", 0.05),
    ("BR", "São Paulo", -23.55, -46.63, "sa-east", 0.05),
    ("BR", "Rio de Janeiro", -22.91, -43.17, "sa-east", 0.02),
    ("IN", "Mumbai", 19.08, 72.88, "ap-south", 0.05),
    ("IN", "Bengaluru", 12.97, 77.59, "ap-south", 0.03),
    ("JP", "東京", 35.68, 139.69, "ap-northeast", 0.04),
    ("JP", "Ōsaka", 34.69, 135.50, "ap-northeast", 0.02),
    ("KR", "Seoul", 37.57, 126.98, "ap-northeast", 0.03),
    ("AU", "Sydney", -33.87, 151.21, "ap-southeast", 0.03),
    ("CA", "Toronto", 43.65, -79.38, "us-east", 0.03),
    ("CA", "Montréal", 45.50, -73.57, "us-east", 0.02),
    ("MX", "Ciudad de México", 19.43, -99.13, "us-west", 0.03),
    ("ES", "Madrid", 40.42, -3.70, "eu-west", 0.03),
    ("PL", "Kraków", 50.06, 19.94, "eu-central", 0.02),
    ("ZA", "Johannesburg", -26.20, 28.05, "af-south", 0.02),
    (None, None, None, None, "eu-central", 0.04),
]
_CONNECTORS = (("HLS", 0.55), ("WebRTC", 0.25), ("DASH", 0.12), ("RTMP", 0.08))
_EVENTS = (
    ("stream.created", "stream", 0.12),
    ("stream.updated", "stream", 0.25),
    ("stream.deleted", "stream", 0.03),
    ("clip.created", "clip", 0.15),
    ("token.created", "api_token", 0.05),
    ("token.revoked", "api_token", 0.02),
    ("member.invited", "member", 0.03),
    ("login.succeeded", "session", 0.28),
    ("login.failed", "session", 0.05),
    ("bulk_operation.created", "bulk_operation", 0.02),
)
_ADJ = ["Morning", "Late-Night", "Weekly", "Live", "Café", "Gaming", "Studio", "Town Hall",
        "Ñandú", "東京", "Product", "Music", "Sports", "Podcast", "Q&A"]  # fmt: skip
_NOUN = ["Show", "Stream", "Session", "Broadcast", "Hangout", "Launch", "Keynote", "Jam",
         "Match", "Review", "\"Special\" Edition", "Workshop"]  # fmt: skip
_ALNUM = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz0123456789", dtype=np.uint8)
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


@dataclass(frozen=True)
class SeedPlan:
    streams: int
    sessions: int
    clips: int
    audit_events: int
    usage_records: int
    months: int = 6
    seed: int = 42

    def __post_init__(self) -> None:
        for name in ("streams", "sessions", "clips", "audit_events", "usage_records"):
            if getattr(self, name) < 0:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 0")
        if self.streams == 0 and (self.sessions or self.clips):
            raise ValueError("sessions and clips need at least one stream (--streams)")
        if not 1 <= self.months <= 120:
            raise ValueError("--months must be between 1 and 120")


@dataclass
class SeedReport:
    counts: dict[str, int]
    seconds: dict[str, float]


def _tokens(rng: np.random.Generator, n: int, length: int, alphabet: np.ndarray) -> pl.Series:
    """n random strings of ``length`` characters of ``alphabet``, built without Python strs."""
    idx = rng.integers(0, len(alphabet), size=(n, length), dtype=np.uint8)
    raw = np.ascontiguousarray(alphabet[idx]).view(f"S{length}").ravel()
    return pl.Series(raw).cast(pl.Binary).cast(pl.String)


def _weighted(rng: np.random.Generator, n: int, weights: list[float]) -> np.ndarray:
    p = np.asarray(weights, dtype=np.float64)
    return rng.choice(len(p), size=n, p=p / p.sum())


def _ts(us: np.ndarray) -> pl.Series:
    return pl.Series(us.astype(np.int64)).cast(pl.Datetime("us"))


async def _copy(conn: asyncpg.Connection, table: str, df: pl.DataFrame) -> None:
    buf = io.BytesIO()
    df.write_csv(buf, include_header=False, null_value="", datetime_format="%Y-%m-%d %H:%M:%S%.6f")
    buf.seek(0)
    await conn.copy_to_table(table, source=buf, columns=df.columns, format="csv")


async def seed(conn: asyncpg.Connection, tenant_id: int, plan: SeedPlan) -> SeedReport:
    rng = np.random.default_rng([plan.seed, tenant_id])
    now = datetime.now(UTC).replace(microsecond=0)
    end_us = int(now.timestamp()) * US_PER_S
    start_us = int((now - timedelta(days=30 * plan.months)).timestamp()) * US_PER_S
    counts: dict[str, int] = {}
    seconds: dict[str, float] = {}
    await conn.execute("SET timezone = 'UTC'")

    async def timed(name: str, coro: object) -> None:
        t0 = time.perf_counter()
        counts[name] = await coro  # type: ignore[misc]
        seconds[name] = round(time.perf_counter() - t0, 3)
        log.info("seeded %d %s in %.1fs", counts[name], name, seconds[name])

    async with conn.transaction():
        stream_ids, stream_created = await _seed_streams(conn, rng, tenant_id, plan, start_us)
        counts["streams"] = len(stream_ids)
        await timed("viewer_sessions", _seed_sessions(conn, rng, tenant_id, plan, stream_ids,
                                                      start_us, end_us))  # fmt: skip
        await timed("clips", _seed_clips(conn, rng, tenant_id, plan, stream_ids, stream_created,
                                         end_us))  # fmt: skip
        await timed("audit_events", _seed_audit(conn, rng, tenant_id, plan, stream_ids, start_us,
                                                end_us))  # fmt: skip
        await timed("usage_records", _seed_usage(conn, rng, tenant_id, plan, start_us))
        await timed("stream_analytics_daily", _derive_daily(conn, tenant_id))
    return SeedReport(counts, seconds)


async def _seed_streams(
    conn: asyncpg.Connection, rng: np.random.Generator, tenant_id: int, plan: SeedPlan,
    start_us: int,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    n = plan.streams
    if n == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    created = np.sort(start_us - rng.integers(0, 365 * 86400, n) * US_PER_S)
    updated = created + rng.integers(0, 90 * 86400, n) * US_PER_S
    adj = pl.Series(_ADJ).gather(rng.integers(0, len(_ADJ), n))
    noun = pl.Series(_NOUN).gather(rng.integers(0, len(_NOUN), n))
    df = pl.DataFrame(
        {
            "tenant_id": np.full(n, tenant_id),
            "name": adj + " " + noun + " #" + pl.Series(np.arange(1, n + 1)).cast(pl.String),
            "description": pl.Series(
                ["Weekly \\ broadcast\nwith a line break", None, "Ünïcödé ✓"]
            ).gather(rng.integers(0, 3, n)),
            "playback_id": _tokens(rng, n, 16, _ALNUM),
            "record": rng.random(n) < 0.6,
            "ingest_mode": pl.Series(ENUMS["IngestMode"]).gather(
                _weighted(rng, n, [0.6, 0.15, 0.2, 0.05])
            ),
            "created_at": _ts(created),
            "updated_at": _ts(updated),
        }
    )
    first_new = await conn.fetchval("SELECT coalesce(max(id), 0) FROM streams")
    await _copy(conn, "streams", df)
    rows = await conn.fetch(
        "SELECT id FROM streams WHERE tenant_id = $1 AND id > $2 ORDER BY id", tenant_id, first_new
    )
    return np.array([r["id"] for r in rows], dtype=np.int64), created


def _stream_weights(n: int) -> np.ndarray:
    # A Zipf-like skew: a few streams draw most viewers.
    w = 1.0 / np.arange(1, n + 1) ** 1.1
    return w / w.sum()


async def _seed_sessions(
    conn: asyncpg.Connection, rng: np.random.Generator, tenant_id: int, plan: SeedPlan,
    stream_ids: np.ndarray, start_us: int, end_us: int,
) -> int:  # fmt: skip
    total = plan.sessions
    if total == 0:
        return 0
    geo_w = [g[5] for g in _GEO]
    countries = pl.Series([g[0] for g in _GEO], dtype=pl.String)
    cities = pl.Series([g[1] for g in _GEO], dtype=pl.String)
    lats = np.array([np.nan if g[2] is None else g[2] for g in _GEO])
    lons = np.array([np.nan if g[3] is None else g[3] for g in _GEO])
    regions = pl.Series([g[4] for g in _GEO])
    connectors = pl.Series([c[0] for c in _CONNECTORS])
    stream_p = _stream_weights(len(stream_ids))
    shuffled_streams = rng.permutation(stream_ids)  # popularity is not creation order
    # All start times first (8 bytes/row), sorted, so chunks arrive in keyset order.
    connected = np.sort(rng.integers(start_us, end_us, total, dtype=np.int64))
    for lo in range(0, total, CHUNK_ROWS):
        c = connected[lo : lo + CHUNK_ROWS]
        n = len(c)
        geo = _weighted(rng, n, geo_w)
        duration_s = np.clip(rng.lognormal(np.log(300), 1.3, n), 1, 6 * 3600).astype(np.int64)
        live = rng.random(n) < 0.005  # still connected: no end time yet
        bitrate = rng.lognormal(np.log(3e6), 0.5, n) / 8
        has_geo = ~np.isnan(lats[geo])
        jitter = rng.normal(0, 0.05, (2, n))
        df = pl.DataFrame(
            {
                "tenant_id": np.full(n, tenant_id),
                "stream_id": shuffled_streams[rng.choice(len(stream_ids), n, p=stream_p)],
                "node_id": "edge-"
                + regions.gather(geo)
                + "-"
                + pl.Series(rng.integers(1, 13, n)).cast(pl.String).str.zfill(2),
                "connected_at": _ts(c),
                "disconnected_at": _ts(c + duration_s * US_PER_S).set(pl.Series(live), None),
                "connector": connectors.gather(_weighted(rng, n, [x[1] for x in _CONNECTORS])),
                "country_code": countries.gather(geo),
                "city": cities.gather(geo),
                "latitude": np.where(has_geo, np.round(lats[geo] + jitter[0], 4), np.nan),
                "longitude": np.where(has_geo, np.round(lons[geo] + jitter[1], 4), np.nan),
                "duration_seconds": pl.Series(duration_s).set(pl.Series(live), None),
                "bytes_up": (duration_s * rng.integers(200, 2000, n)).astype(np.int64),
                "bytes_down": (duration_s * bitrate).astype(np.int64),
                "connection_quality": np.round(rng.beta(8, 2, n), 4),
                "buffer_health": np.round(rng.beta(5, 1.5, n) * 30, 3),
            },
            nan_to_null=True,
        )
        await _copy(conn, "viewer_sessions", df)
    return total


async def _seed_clips(
    conn: asyncpg.Connection, rng: np.random.Generator, tenant_id: int, plan: SeedPlan,
    stream_ids: np.ndarray, stream_created: np.ndarray, end_us: int,
) -> int:  # fmt: skip
    n = plan.clips
    if n == 0:
        return 0
    which = rng.choice(len(stream_ids), n, p=_stream_weights(len(stream_ids)))
    start = stream_created[which] + (rng.random(n) * (end_us - stream_created[which])).astype(
        np.int64
    )
    created = start + rng.integers(60, 7200, n) * US_PER_S
    order = np.argsort(created, kind="stable")
    duration = np.round(rng.uniform(5, 600, n), 3)
    titles = pl.Series(["Best moment", "Goal! ⚽", "Highlights", "Intro", "Q&A \"part\" 2",
                        "Tab\tseparated", "Finale"])  # fmt: skip
    df = pl.DataFrame(
        {
            "tenant_id": np.full(n, tenant_id),
            "clip_hash": _tokens(rng, n, 16, _HEX),
            "playback_id": _tokens(rng, n, 16, _ALNUM),
            "stream_id": stream_ids[which],
            "title": titles.gather(rng.integers(0, len(titles), n)),
            "description": pl.Series([None, "Clipped by a moderator", "Auto-clip"]).gather(
                rng.integers(0, 3, n)
            ),
            "start_time": _ts(start),
            "duration": duration,
            "size_bytes": pl.Series((duration * rng.uniform(2e5, 8e5, n)).astype(np.int64)),
            "status": pl.Series(ENUMS["ClipStatus"]).gather(_weighted(rng, n, [0.05, 0.9, 0.05])),
            "created_at": _ts(created),
        }
    )[order]
    await _copy(conn, "clips", df)
    return n


async def _seed_audit(
    conn: asyncpg.Connection, rng: np.random.Generator, tenant_id: int, plan: SeedPlan,
    stream_ids: np.ndarray, start_us: int, end_us: int,
) -> int:  # fmt: skip
    total = plan.audit_events
    if total == 0:
        return 0
    kinds = _weighted(rng, total, [e[2] for e in _EVENTS])
    created = np.sort(rng.integers(start_us, end_us, total, dtype=np.int64))
    for lo in range(0, total, CHUNK_ROWS):
        k = kinds[lo : lo + CHUNK_ROWS]
        n = len(k)
        actor_kind = _weighted(rng, n, [0.7, 0.25, 0.05])
        ip4 = rng.integers(1, 255, (4, n))
        ip = (
            pl.Series(ip4[0]).cast(pl.String)
            + "."
            + pl.Series(ip4[1]).cast(pl.String)
            + "."
            + pl.Series(ip4[2]).cast(pl.String)
            + "."
            + pl.Series(ip4[3]).cast(pl.String)
        ).set(pl.Series(actor_kind == 2), None)  # system actors have no ip
        resource_num = (
            stream_ids[rng.integers(0, len(stream_ids), n)] if len(stream_ids)
            else rng.integers(1, 10_000, n)
        )  # fmt: skip
        request_id = _tokens(rng, n, 12, _HEX)
        agents = pl.Series(["curl/8.5.0", "Mozilla/5.0 (X11; Linux x86_64)", "bulkops-cli/0.1",
                            "Terraform/1.9 \\\"provider\\\""])  # fmt: skip
        df = pl.DataFrame(
            {
                "tenant_id": np.full(n, tenant_id),
                "event_type": pl.Series([e[0] for e in _EVENTS]).gather(k),
                "actor_type": pl.Series(["user", "api_token", "system"]).gather(actor_kind),
                "actor_id": "usr_" + _tokens(rng, n, 8, _HEX),
                "resource_type": pl.Series([e[1] for e in _EVENTS]).gather(k),
                "resource_id": pl.Series(resource_num).cast(pl.String),
                "ip": ip,
                "payload": '{"requestId":"'
                + request_id
                + '","userAgent":"'
                + agents.gather(rng.integers(0, len(agents), n))
                + '","changes":{"name":["old","new ✓"]},"attempt":'
                + pl.Series(rng.integers(1, 4, n)).cast(pl.String)
                + "}",
                "created_at": _ts(created[lo : lo + CHUNK_ROWS]),
            }
        )
        await _copy(conn, "audit_events", df)
    return total


async def _seed_usage(
    conn: asyncpg.Connection, rng: np.random.Generator, tenant_id: int, plan: SeedPlan,
    start_us: int,
) -> int:  # fmt: skip
    n = plan.usage_records
    if n == 0:
        return 0
    types = ENUMS["UsageType"]
    i = np.arange(n)
    hour = 3600 * US_PER_S
    period_start = start_us + (i // len(types)) * hour
    scale = np.array([5e10, 2e11, 600.0, 5e4])[i % len(types)]
    df = pl.DataFrame(
        {
            "tenant_id": np.full(n, tenant_id),
            "usage_type": pl.Series(types).gather(i % len(types)),
            "usage_value": np.round(rng.lognormal(0, 0.6, n) * scale, 2),
            "period_start": _ts(period_start),
            "period_end": _ts(period_start + hour),
            "granularity": pl.Series(["HOURLY"] * n),
            "created_at": _ts(period_start + hour + rng.integers(1, 600, n) * US_PER_S),
        }
    )
    await _copy(conn, "usage_records", df)
    return n


async def _derive_daily(conn: asyncpg.Connection, tenant_id: int) -> int:
    """Per-stream daily totals, recomputed from the tenant's sessions (so re-seeding adds up)."""
    await conn.execute("DELETE FROM stream_analytics_daily WHERE tenant_id = $1", tenant_id)
    result = await conn.execute(
        """INSERT INTO stream_analytics_daily
               (tenant_id, stream_id, day, total_views, unique_viewers, unique_countries,
                egress_bytes)
           SELECT tenant_id, stream_id, (connected_at AT TIME ZONE 'UTC')::date AS day, count(*),
                  greatest(1, count(*) * 7 / 10),  -- repeat viewers
                  count(DISTINCT country_code), sum(bytes_down)
             FROM viewer_sessions WHERE tenant_id = $1
            GROUP BY tenant_id, stream_id, day
            ORDER BY day, stream_id""",
        tenant_id,
    )
    return int(result.split()[-1])
