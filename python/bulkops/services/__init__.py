"""Local services for development and tests: ``bulkops services up|down|status``.

They start in dependency order and stop in reverse. Kafka and s3proxy are Java processes whose
jars come from Maven Central; PostgreSQL and Redis come from Debian's packages.
"""

from __future__ import annotations

from bulkops.config import Settings
from bulkops.services.app import Bridge, Dispatcher, Worker
from bulkops.services.base import Service, ServiceError
from bulkops.services.kafka import Kafka
from bulkops.services.postgres import Postgres
from bulkops.services.redis import Redis
from bulkops.services.s3proxy import S3Proxy

__all__ = ["Service", "ServiceError", "all_services", "by_name"]

ORDER: tuple[type[Service], ...] = (Postgres, Redis, Kafka, S3Proxy)
#: bulkops' own processes, started only when named (after migrations)
APPS: tuple[type[Service], ...] = (Bridge, Dispatcher, Worker)


def all_services(settings: Settings) -> list[Service]:
    return [cls(settings) for cls in ORDER]


def by_name(
    settings: Settings, names: tuple[str, ...], *, with_apps: bool = False
) -> list[Service]:
    services = all_services(settings)
    apps = [cls(settings) for cls in APPS]
    if not names:
        return services + apps if with_apps else services
    known = {s.name: s for s in services + apps}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ServiceError(f"unknown service {unknown[0]!r}; choose from {', '.join(known)}")
    return [known[n] for n in names]
