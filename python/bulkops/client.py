"""``bulkops export``: the client a tenant runs. Submit, watch, download, verify.

Three requests beyond polling: run, poll, download. Progress shows lines, rate, percent and
ETA on stderr; the download streams to disk (resuming with Range if the connection drops)
and is checked against the operation's fileSize and sha256.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import os
import stat
import sys
import time
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

import httpx

OP_FIELDS = """id status errorCode errorMessage objectCount rootObjectCount expectedObjectCount
               percentComplete estimatedSecondsRemaining fileSize sha256 url partialDataUrl
               connections { path type objectCount }"""
RUN = f"""mutation($q: String!) {{ bulkOperationRunQuery(query: $q) {{
            bulkOperation {{ {OP_FIELDS} }} userErrors {{ field message code }} }} }}"""
POLL = f"query($id: ID!) {{ bulkOperation(id: $id) {{ {OP_FIELDS} }} }}"
CANCEL = "mutation($id: ID!) { bulkOperationCancel(id: $id) { userErrors { message } } }"
TERMINAL = {"COMPLETED", "FAILED", "CANCELED", "EXPIRED"}


class ExportFailed(RuntimeError):
    pass


class NoFreeSlot(ExportFailed):
    """Every userError was LIMIT_REACHED: the tenant's concurrent operations are all taken."""


class Client:
    def __init__(self, url: str, token: str, timeout_s: float = 60) -> None:
        self.http = httpx.Client(base_url=url.rstrip("/"), timeout=timeout_s,
                                 headers={"Authorization": f"Bearer {token}"})  # fmt: skip

    def graphql(self, query: str, **variables: Any) -> Any:
        for _attempt in range(6):
            resp = self.http.post("/graphql", json={"query": query, "variables": variables})
            if resp.status_code == 429:  # polling is charged: honour Retry-After
                time.sleep(min(30, int(resp.headers.get("Retry-After", "1"))))
                continue
            break
        try:
            body = resp.json()
        except ValueError:
            raise ExportFailed(f"HTTP {resp.status_code} from the API: {resp.text[:200]}") from None
        if body.get("errors"):
            e = body["errors"][0]
            raise ExportFailed(f"{e.get('extensions', {}).get('code', 'ERROR')}: {e['message']}")
        return body["data"]

    def submit(self, query: str) -> Any:
        payload = self.graphql(RUN, q=query)["bulkOperationRunQuery"]
        errors = payload["userErrors"]
        if errors:
            message = "; ".join(f"{e['code']}: {e['message']}" for e in errors)
            if all(e["code"] == "LIMIT_REACHED" for e in errors):
                raise NoFreeSlot(message)
            raise ExportFailed(message)
        return payload["bulkOperation"]

    def submit_when_free(self, query: str, wait_s: float, progress: bool = True) -> Any:
        """Submit; while every slot is taken (LIMIT_REACHED), try again for up to ``wait_s``.

        Shopify leaves "wait or cancel the previous one" to every client; this is that loop,
        once. Retries start at 1 s and ease to 5 s: each is one charged API request."""
        deadline = time.monotonic() + wait_s
        delay = 1.0
        while True:
            try:
                return self.submit(query)
            except NoFreeSlot as exc:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise
                if progress:
                    sys.stderr.write(f"\rwaiting for a free slot ({remaining:.0f} s left): {exc}")
                    sys.stderr.flush()
                time.sleep(min(delay, remaining))
                delay = min(5.0, delay * 1.5)

    def wait(self, op_id: str, progress: bool = True, poll_s: float = 0.5) -> Any:
        """Poll until the operation ends: every 0.1 s at first, easing to ``poll_s``, so a
        short export is not kept waiting by the poll interval."""
        started = time.monotonic()
        delay = 0.1
        while True:
            op = self.graphql(POLL, id=op_id)["bulkOperation"]
            if progress:
                _show(op, time.monotonic() - started)
            if op["status"] in TERMINAL:
                if progress:
                    sys.stderr.write("\n")
                return op
            eta = op.get("estimatedSecondsRemaining")
            # near the end, poll when the server expects it to be done, not a full step later
            time.sleep(delay if eta is None else min(delay, max(0.05, eta)))
            delay = min(poll_s, delay * 1.5)

    def cancel(self, op_id: str) -> None:
        self.graphql(CANCEL, id=op_id)

    def download(self, url: str, out: Path, size: int, sha256: str) -> None:
        """Stream to ``out``; resume with Range after a dropped connection; verify.

        Plain http.client reading into one reused 8 MiB buffer: httpx's iterators cost about
        1.5x the CPU for a 442 MB file, and this CPU is the client's share of an export."""
        with out.open("wb") as fh:
            regular = stat.S_ISREG(os.fstat(fh.fileno()).st_mode)  # not /dev/stdout, a pipe...
            if regular:
                _reserve(fh, size, out)
            dl = _Download(url, fh)
            for _attempt in range(5):
                try:
                    dl.fetch()
                    break
                except (OSError, http.client.HTTPException):  # dropped: resume where it broke
                    continue
            if regular:
                fh.truncate(dl.offset)  # a short download leaves no reserved zeros behind
        if dl.offset != size:
            raise ExportFailed(f"downloaded {dl.offset} bytes but the operation reports {size}")
        if dl.digest.hexdigest() != sha256:
            raise ExportFailed("the downloaded file's sha256 does not match the operation's")


def _reserve(fh: BinaryIO, size: int, out: Path) -> None:
    """Claim the file's space up front: a full disk fails now, not 400 MB in (and the file
    system allocates once)."""
    if size == 0:
        return
    try:
        os.posix_fallocate(fh.fileno(), 0, size)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
            raise ExportFailed(f"no room for {size} bytes at {out}: {exc.strerror}") from None
        # EOPNOTSUPP and the like: the file system cannot reserve; just write


class _Download:
    """One file's download: what has arrived (``offset``) and its running sha256."""

    BUFFER_BYTES = 8 << 20

    def __init__(self, url: str, fh: BinaryIO) -> None:
        self.url, self.fh = urlsplit(url), fh
        self.offset = 0
        self.digest = hashlib.sha256()
        self._buf = memoryview(bytearray(self.BUFFER_BYTES))

    def fetch(self) -> None:
        """GET the rest (from ``offset``), appending to the file and the digest."""
        u = self.url
        conn_type = (
            http.client.HTTPSConnection if u.scheme == "https" else http.client.HTTPConnection
        )
        conn = conn_type(u.hostname or "", u.port, timeout=60)
        try:
            target = u.path + (f"?{u.query}" if u.query else "")
            headers = {"Range": f"bytes={self.offset}-"} if self.offset else {}
            conn.request("GET", target, headers=headers)
            resp = conn.getresponse()
            if resp.status not in (200, 206) or (self.offset and resp.status != 206):
                raise ExportFailed(f"download failed: HTTP {resp.status} {resp.read(200)!r}")
            while n := resp.readinto(self._buf):
                chunk = self._buf[:n]
                self.fh.write(chunk)
                self.digest.update(chunk)
                self.offset += n
        finally:
            conn.close()


def _show(op: dict[str, Any], elapsed_s: float) -> None:
    lines = int(op["objectCount"] or 0)
    pct = op.get("percentComplete")
    eta = op.get("estimatedSecondsRemaining")
    rate = lines / elapsed_s if elapsed_s > 0 else 0
    bar = ""
    if pct is not None:
        filled = int(pct / 5)
        bar = f"[{'#' * filled}{'.' * (20 - filled)}] {pct:5.1f}% "
    tail = f" eta {eta:.0f}s" if eta is not None else ""
    sys.stderr.write(f"\r{op['status']:<10} {bar}{lines:>12,} lines {rate:>10,.0f}/s{tail}   ")
    sys.stderr.flush()
