"""``bulkops export``: the client a tenant runs. Submit, watch, download, verify.

Three requests beyond polling: run, poll, download. Progress shows lines, rate, percent and
ETA on stderr; the download streams to disk (resuming with Range if the connection drops)
and is checked against the operation's fileSize and sha256.
"""

from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path
from typing import Any

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
            time.sleep(delay)
            delay = min(poll_s, delay * 1.5)

    def cancel(self, op_id: str) -> None:
        self.graphql(CANCEL, id=op_id)

    def download(self, url: str, out: Path, size: int, sha256: str) -> None:
        """Stream to ``out``; resume with Range after a dropped connection; verify."""
        digest = hashlib.sha256()
        written = 0
        with out.open("wb") as fh:
            for _attempt in range(5):
                headers = {"Range": f"bytes={written}-"} if written else {}
                try:
                    with httpx.stream("GET", url, headers=headers, timeout=60) as resp:
                        if resp.status_code not in (200, 206):
                            raise ExportFailed(
                                f"download failed: HTTP {resp.status_code} {resp.read()[:200]!r}"
                            )
                        for chunk in resp.iter_bytes(1 << 20):
                            fh.write(chunk)
                            digest.update(chunk)
                            written += len(chunk)
                    break
                except httpx.TransportError:
                    continue
        if written != size:
            raise ExportFailed(f"downloaded {written} bytes but the operation reports {size}")
        if digest.hexdigest() != sha256:
            raise ExportFailed("the downloaded file's sha256 does not match the operation's")


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
