"""Tools for hostile-input tests: the root app on the local host, raw HTTP, leak checks, state snapshots."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import re
import socket
import sqlite3
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# What the root app's agents are told (function_app.py): none of it may reach a caller.
INSTRUCTIONS = (
    "You are a concise, helpful assistant",
    "Use the utc_now tool when asked about the time",
    "Write a short, clear draft of what you are asked for",
)

# Signs of internal text in an answer.
LEAK_PATTERNS = (
    re.compile(r"Traceback"),
    re.compile(r'File "'),
    re.compile(r"\.py\b"),
    re.compile(r"\b\w+(?:Error|Exception)\b"),
    *(re.compile(re.escape(text)) for text in INSTRUCTIONS),
)

# The root app's HTTP functions: a request ran library code when the host logged one of them executing.
LIBRARY_FUNCTION = re.compile(
    r"Executing 'Functions\.(agent-assistant-[a-z-]+|agents-[a-z-]+|workflows-[a-z]+|health)'"
)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


def send(
    port: int,
    method: str,
    target: str,
    body: bytes | None = None,
    headers: Mapping[str, str | bytes] | None = None,
    timeout: float = 60.0,
) -> Answer:
    """One request with ``http.client``, the target sent as given (already percent-encoded)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.putrequest(method, target, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            conn.putheader(name, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        return Answer(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


def send_raw(port: int, data: bytes, timeout: float = 30.0) -> Answer:
    """Bytes on a socket, for requests ``http.client`` refuses to write (control characters in the line)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        with contextlib.suppress(TimeoutError, ConnectionResetError, socket.timeout):
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
    raw = b"".join(chunks)
    head, _, rest = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines and len(lines[0].split()) > 1 else 0
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Answer(status, headers, rest)


def leaks(text: str) -> list[str]:
    """The leak patterns ``text`` matches."""
    return [p.pattern for p in LEAK_PATTERNS if p.search(text)]


def error_shape_problem(answer: Answer) -> str | None:
    """Why a 4xx answer is not ``{"error": {"code": str, "message": str}}`` as JSON (``None``: it is)."""
    if not answer.body:
        return "empty body"
    try:
        body = answer.json()
    except ValueError:
        return "not JSON"
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict) or not isinstance(error.get("code"), str) or not error["code"]:
        return "no error.code"
    if not isinstance(error.get("message"), str):
        return "no error.message"
    return None


@dataclass
class StateProbe:
    """What callers can change: the task hub's SQLite rows and the blobs in Azurite."""

    database: Path
    connection_string: str
    _blobs: Any = field(default=None, init=False)

    def snapshot(self) -> str:
        digest = hashlib.sha256()
        with contextlib.closing(sqlite3.connect(f"file:{self.database}?mode=ro", uri=True, timeout=10)) as db:
            for query in (
                "SELECT instance_id, name, status, input, output, custom_status FROM instances ORDER BY instance_id",
                "SELECT instance_id, count(*), max(seq) FROM history GROUP BY instance_id ORDER BY instance_id",
                "SELECT id, kind, target, body FROM messages ORDER BY id",
                "SELECT entity_id, exists_, state FROM entities ORDER BY entity_id",
                "SELECT name, seq FROM sqlite_sequence ORDER BY name",
            ):
                for row in db.execute(query):
                    digest.update(repr(row).encode())
                digest.update(b"|")
        for item in self._blob_listing():
            digest.update(repr(item).encode())
        return digest.hexdigest()

    def _blob_listing(self) -> list[tuple[str, str, str]]:
        from azure.storage.blob import BlobServiceClient

        if self._blobs is None:
            self._blobs = BlobServiceClient.from_connection_string(self.connection_string)
        found = []
        for container in self._blobs.list_containers():
            client = self._blobs.get_container_client(container.name)
            for blob in client.list_blobs():
                found.append((container.name, blob.name, str(blob.etag)))
        return sorted(found)

    def settled(self, timeout: float = 20.0, quiet: float = 0.3) -> str:
        """A snapshot once nothing has changed for ``quiet`` seconds (work started by a 2xx has finished)."""
        deadline = time.monotonic() + timeout
        last = self.snapshot()
        stable_since = time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.05)
            now = self.snapshot()
            if now != last:
                last, stable_since = now, time.monotonic()
            elif time.monotonic() - stable_since >= quiet:
                return now
        return last


def task_hub_database(app_dir: Path) -> Path:
    [database] = sorted((app_dir / ".durableagent").glob("taskhub-*.sqlite"))
    return database
