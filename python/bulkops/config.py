"""The one configuration of bulkops: every knob is a ``BULKOPS_*`` environment variable.

Each value is read and converted here, once; the rest of the code takes a ``Settings``.
Service URLs default to the local services that ``bulkops services up`` starts, so a
different port (``BULKOPS_PG_PORT``...) moves both the service and its clients.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


def _env(name: str, default: str) -> str:
    return os.environ.get(f"BULKOPS_{name}", default)


def _env_int(name: str, default: int) -> int:
    raw = _env(name, str(default))
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"BULKOPS_{name} must be an integer, got {raw!r}") from None


@dataclass(frozen=True)
class Settings:
    home: Path
    pg_port: int
    redis_port: int
    kafka_port: int
    kafka_controller_port: int
    s3_port: int
    bridge_port: int
    database_url: str
    redis_url: str
    kafka_bootstrap: str
    storage_url: str
    s3_endpoint: str
    s3_access_key: str
    s3_secret_key: str
    s3_region: str
    s3_bucket: str
    url_ttl_s: int
    max_concurrent_per_tenant: int
    max_file_bytes: int
    max_body_bytes: int
    max_run_s: int
    expire_every_s: int
    worker_concurrency: int
    stale_after_s: int
    segment_bytes: int
    slice_s: int
    max_attempts: int
    public_url: str
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def database_name(self) -> str:
        return self.database_url.rsplit("/", 1)[-1].split("?", 1)[0]


def load() -> Settings:
    home = Path(_env("HOME", ".local")).resolve()
    pg_port = _env_int("PG_PORT", 54320)
    redis_port = _env_int("REDIS_PORT", 63790)
    kafka_port = _env_int("KAFKA_PORT", 19092)
    kafka_controller_port = _env_int("KAFKA_CONTROLLER_PORT", kafka_port + 1)
    s3_port = _env_int("S3_PORT", 18080)
    bridge_port = _env_int("BRIDGE_PORT", 8000)
    return Settings(
        home=home,
        pg_port=pg_port,
        redis_port=redis_port,
        kafka_port=kafka_port,
        kafka_controller_port=kafka_controller_port,
        s3_port=s3_port,
        bridge_port=bridge_port,
        database_url=_env("DATABASE_URL", f"postgresql://bulkops@127.0.0.1:{pg_port}/bulkops"),
        redis_url=_env("REDIS_URL", f"redis://127.0.0.1:{redis_port}/0"),
        kafka_bootstrap=_env("KAFKA_BOOTSTRAP", f"127.0.0.1:{kafka_port}"),
        storage_url=_env("STORAGE_URL", (home / "exports").as_uri()),
        s3_endpoint=_env("S3_ENDPOINT", f"http://127.0.0.1:{s3_port}"),
        s3_access_key=_env("S3_ACCESS_KEY", "bulkops"),
        s3_secret_key=_env("S3_SECRET_KEY", "bulkops-local-secret"),
        s3_region=_env("S3_REGION", "us-east-1"),
        s3_bucket=_env("S3_BUCKET", "bulkops"),
        url_ttl_s=_env_int("URL_TTL_S", 7 * 24 * 3600),
        max_concurrent_per_tenant=_env_int("MAX_CONCURRENT_PER_TENANT", 3),
        max_file_bytes=_env_int("MAX_FILE_BYTES", 10 * 1024**3),
        max_body_bytes=_env_int("MAX_BODY_BYTES", 256 * 1024),
        max_run_s=_env_int("MAX_RUN_S", 24 * 3600),
        expire_every_s=_env_int("EXPIRE_EVERY_S", 60),
        worker_concurrency=_env_int("WORKER_CONCURRENCY", 2),
        stale_after_s=_env_int("STALE_AFTER_S", 30),
        segment_bytes=_env_int("SEGMENT_BYTES", 256 * 1024 * 1024),
        slice_s=_env_int("SLICE_S", 60),
        max_attempts=_env_int("MAX_ATTEMPTS", 3),
        public_url=_env("PUBLIC_URL", f"http://127.0.0.1:{bridge_port}"),
    )
