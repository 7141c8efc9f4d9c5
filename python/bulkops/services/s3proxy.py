"""A local S3 endpoint: gaul/s3proxy on its filesystem backend, with real signature checks.

``s3proxy.authorization=aws-v2-or-v4`` makes it verify SigV2/SigV4 signatures and the expiry
of presigned URLs, which is what the export download links are tested against. Objects live
under ``<BULKOPS_HOME>/s3proxy/data/<bucket>/`` and survive restarts. The jars come from
Maven Central (``maven/s3proxy/pom.xml``) into the shared cache under ``~/.cache/bulkops``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import http.client
import urllib.parse
from pathlib import Path

from bulkops.services.base import Service, ServiceError
from bulkops.services.kafka import ensure_java, fetch_locked, maven_cache_dir

POM = Path(__file__).parent / "maven" / "s3proxy" / "pom.xml"
HOST = "127.0.0.1"
MAIN_CLASS = "org.gaul.s3proxy.Main"
JVM_OPTS = [
    "-Xms64m",
    "-Xmx512m",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
]

LOGBACK_XML = """\
<?xml version="1.0" encoding="UTF-8"?>
<!-- written by bulkops on every start; edits are overwritten -->
<configuration>
  <appender name="stdout" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>[%d{ISO8601}] %-5level [%logger{0}] %msg%n</pattern></encoder>
  </appender>
  <logger name="org.gaul.s3proxy" level="INFO"/>
  <logger name="org.gaul.s3proxy.CrossOriginResourceSharing" level="WARN"/>
  <root level="WARN"><appender-ref ref="stdout"/></root>
</configuration>
"""


class S3Proxy(Service):
    name = "s3proxy"
    start_timeout_s = 60.0

    @property
    def port(self) -> int:
        return self.settings.s3_port

    @property
    def endpoint(self) -> str:
        """Where this process listens (``settings.s3_endpoint`` points here by default)."""
        return f"http://{HOST}:{self.port}"

    @property
    def lib_dir(self) -> Path:
        return maven_cache_dir(self.name, POM)

    @property
    def data_dir(self) -> Path:
        return self.dir / "data"

    @property
    def config_file(self) -> Path:
        return self.dir / "s3proxy.properties"

    @property
    def logback_file(self) -> Path:
        return self.dir / "logback.xml"

    # -- Service ---------------------------------------------------------------------------
    def ensure_installed(self) -> None:
        ensure_java()
        fetch_locked(POM, self.lib_dir)

    def prepare(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(self.properties())
        self.logback_file.write_text(LOGBACK_XML)

    def command(self) -> list[str]:
        return [
            "java",
            *JVM_OPTS,
            f"-Dlogback.configurationFile={self.logback_file}",
            "-cp",
            str(self.lib_dir / "*"),
            MAIN_CLASS,
            "--properties",
            str(self.config_file),
        ]

    def probe(self) -> bool:
        """An anonymous ``GET /`` is refused with S3's XML error once s3proxy serves requests."""
        try:
            status, body = self._request("GET", "/", sign=False, timeout=2.0)
        except (OSError, http.client.HTTPException):
            return False
        return status == 403 and b"<Error>" in body

    # -- buckets ---------------------------------------------------------------------------
    def after_ready(self) -> None:
        self.ensure_bucket(self.settings.s3_bucket)

    def ensure_bucket(self, name: str) -> None:
        """Create bucket ``name`` (signed SigV4 ``PUT /name``) unless it already exists."""
        try:
            status, body = self._request("PUT", f"/{name}", timeout=10.0)
        except (OSError, http.client.HTTPException) as exc:
            raise ServiceError(f"s3proxy: cannot create bucket {name!r}: {exc}") from None
        if status == 200:
            return
        if status == 409 and (b"BucketAlreadyOwnedByYou" in body or b"BucketAlreadyExists" in body):
            return
        raise ServiceError(
            f"s3proxy: creating bucket {name!r} failed with HTTP {status}: {body[:500]!r}"
        )

    def _request(
        self, method: str, path: str, *, sign: bool = True, timeout: float
    ) -> tuple[int, bytes]:
        headers: dict[str, str] = {}
        if sign:
            headers = sigv4_headers(
                method,
                self.endpoint + path,
                access_key=self.settings.s3_access_key,
                secret_key=self.settings.s3_secret_key,
                region=self.settings.s3_region,
            )
        conn = http.client.HTTPConnection(HOST, self.port, timeout=timeout)
        try:
            conn.request(method, path, headers=headers)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    # -- config ----------------------------------------------------------------------------
    def properties(self) -> str:
        s = self.settings
        props = {
            "s3proxy.endpoint": self.endpoint,
            "s3proxy.authorization": "aws-v2-or-v4",
            "s3proxy.identity": s.s3_access_key,
            "s3proxy.credential": s.s3_secret_key,
            # s3proxy 3+ maps "filesystem" to its own NIO.2 store (jclouds is gone)
            "jclouds.provider": "filesystem",
            "jclouds.filesystem.basedir": str(self.data_dir),
            "jclouds.identity": s.s3_access_key,
            "jclouds.credential": s.s3_secret_key,
        }
        lines = ["# written by bulkops from its settings on every start; edits are overwritten"]
        lines += [f"{key}={_escape(str(value))}" for key, value in props.items()]
        return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    """A java.util.Properties value: backslashes and line breaks escaped."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")


# -- a minimal AWS SigV4 header signer (stdlib only) ------------------------------------


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def sigv4_headers(
    method: str,
    url: str,
    *,
    access_key: str,
    secret_key: str,
    region: str,
    body: bytes = b"",
    service: str = "s3",
    now: dt.datetime | None = None,
) -> dict[str, str]:
    """Headers (``x-amz-date``, ``x-amz-content-sha256``, ``Authorization``) for one request.

    ``url``'s path must already be percent-encoded as it goes on the wire.
    """
    parts = urllib.parse.urlsplit(url)
    amz_date = (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%dT%H%M%SZ")
    date = amz_date[:8]
    payload_hash = hashlib.sha256(body).hexdigest()
    query = sorted(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
    canonical_query = "&".join(
        f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(v, safe='-_.~')}"
        for k, v in query
    )
    headers = {"host": parts.netloc, "x-amz-content-sha256": payload_hash, "x-amz-date": amz_date}
    signed_headers = ";".join(sorted(headers))
    canonical_request = "\n".join(
        [
            method,
            parts.path or "/",
            canonical_query,
            "".join(f"{k}:{headers[k]}\n" for k in sorted(headers)),
            signed_headers,
            payload_hash,
        ]
    )
    scope = f"{date}/{region}/{service}/aws4_request"
    string_to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256",
            amz_date,
            scope,
            hashlib.sha256(canonical_request.encode()).hexdigest(),
        ]
    )
    key = _hmac(f"AWS4{secret_key}".encode(), date)
    for part in (region, service, "aws4_request"):
        key = _hmac(key, part)
    signature = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    return {
        "x-amz-date": amz_date,
        "x-amz-content-sha256": payload_hash,
        "Authorization": (
            f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, "
            f"SignedHeaders={signed_headers}, Signature={signature}"
        ),
    }
