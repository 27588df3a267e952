"""End to end: blob triggers and blob input/output bindings in the host subprocess, with Azurite, through both workers.

Each blob version fires once (receipts in ``azure-webjobs-hosts``), an update fires again, a restarted
host does not fire old versions again, ``{name}`` binds into other bindings, a failing blob ends in
``webjobs-blobtrigger-poison`` after 5 attempts, and HTTP functions read blobs by route and query.
"""

from __future__ import annotations

import base64
import contextlib
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobServiceClient, ContentSettings
from azure.storage.queue import QueueClient
from conftest import AzuriteInstance
from hosttools.host_process import HostProcess, assert_eventually, copy_app

from durableagent.devhost._runtime_worker import runtime_available

pytestmark = pytest.mark.e2e

APP = Path(__file__).parent / "apps" / "blobs"
# The real worker library where it runs (3.13+), and our own invoker everywhere.
WORKERS = ["runtime", "builtin"] if runtime_available() else ["builtin"]
POLL_SECONDS = 0.5
ROLES = ("uploads", "texts", "inbox", "outbox", "settings", "failing", "docs")


@dataclass
class BlobApp:
    """One app directory with its own containers, and the host serving it (when started)."""

    app_dir: Path
    env: dict[str, str]
    service: BlobServiceClient
    log_dir: Path
    worker: str
    host: HostProcess | None = None

    def container(self, role: str) -> str:
        return self.env[role.upper()]

    def upload(self, role: str, name: str, data: bytes | str, **kwargs: Any) -> None:
        blob = self.service.get_blob_client(self.container(role), name)
        blob.upload_blob(data, overwrite=True, **kwargs)

    def download(self, role: str, name: str) -> bytes | None:
        try:
            return self.service.get_blob_client(self.container(role), name).download_blob().readall()
        except ResourceNotFoundError:
            return None

    def records(self, function: str) -> list[dict[str, Any]]:
        path = self.log_dir / f"{function}.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]

    def start(self) -> HostProcess:
        self.host = HostProcess(self.app_dir, env=self.env, extra_args=["--worker", self.worker]).start()
        return self.host

    def stop(self) -> None:
        if self.host is not None:
            self.host.stop()

    def wait_for(self, function: str, count: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        assert_eventually(
            lambda: len(self.records(function)) >= count,
            timeout=timeout,
            message=f"{function}: {self.records(function)}\n{self.host.log()[-4000:] if self.host else ''}",
        )
        return self.records(function)

    def settle(self) -> None:
        """Let the scanner see everything uploaded so far: a later blob fires, then two more polls pass."""
        sentinel = f"zz-settle-{uuid.uuid4().hex[:8]}"
        seen = len(self.records("on_upload"))
        self.upload("uploads", f"{sentinel}.txt", b"settle")
        records = self.wait_for("on_upload", seen + 1)
        assert any(r["name"].endswith(f"/{sentinel}.txt") for r in records)
        time.sleep(2 * POLL_SECONDS)


def make_app(azurite: AzuriteInstance, root: Path, worker: str) -> BlobApp:
    suffix = uuid.uuid4().hex[:10]
    log_dir = root / "log"
    log_dir.mkdir()
    env = {
        "AzureWebJobsStorage": azurite.connection_string,
        "TASKHUB_NAME": "E2eBlobs",
        "BLOB_LOG_DIR": str(log_dir),
        "DURABLEAGENT_BLOB_POLLING_SECONDS": str(POLL_SECONDS),
        **{role.upper(): f"{role}-{suffix}" for role in ROLES},
    }
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    # The watched containers exist before the host starts, as they would in Azure.
    for role in ROLES:
        with contextlib.suppress(ResourceExistsError):
            service.create_container(env[role.upper()])
    return BlobApp(copy_app(APP, root / "app"), env, service, log_dir, worker)


@pytest.fixture(scope="module", params=WORKERS)
def blobs(
    request: pytest.FixtureRequest, azurite: AzuriteInstance, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BlobApp]:
    app = make_app(azurite, tmp_path_factory.mktemp(f"blobs-{request.param}"), request.param)
    app.start()
    try:
        yield app
    finally:
        app.stop()


def poison_messages(azurite: AzuriteInstance, container: str) -> list[dict[str, Any]]:
    """Decoded ``webjobs-blobtrigger-poison`` messages about blobs of ``container`` (left in the queue)."""
    with QueueClient.from_connection_string(azurite.connection_string, "webjobs-blobtrigger-poison") as queue:
        try:
            messages = list(queue.peek_messages(max_messages=32))
        except ResourceNotFoundError:
            return []
    decoded = [json.loads(base64.b64decode(m.content)) for m in messages]
    return [d for d in decoded if d.get("ContainerName") == container]


def test_a_new_blob_fires_once_with_its_name_uri_length_and_metadata(blobs: BlobApp) -> None:
    container = blobs.container("uploads")
    blobs.upload("uploads", "report.txt", b"first version", metadata={"owner": "ada"})
    blobs.upload("uploads", "report.json", b"{}")  # not {name}.txt: never fires

    (record,) = blobs.wait_for("on_upload", 1)
    assert record["name"] == f"{container}/report.txt"
    assert record["uri"].endswith(f"/devstoreaccount1/{container}/report.txt")
    assert (record["length"], record["properties_length"]) == (13, 13)
    assert record["content"] == "first version"
    assert record["metadata"] == {"owner": "ada"}

    blobs.settle()
    names = [r["name"] for r in blobs.records("on_upload")]
    assert names.count(f"{container}/report.txt") == 1
    assert f"{container}/report.json" not in names


def test_an_updated_blob_fires_again_and_only_once_more(blobs: BlobApp) -> None:
    container = blobs.container("uploads")

    def versions() -> list[str]:
        return [r["content"] for r in blobs.records("on_upload") if r["name"] == f"{container}/notes.txt"]

    blobs.upload("uploads", "notes.txt", b"v1")
    assert_eventually(lambda: versions() == ["v1"], message=str(blobs.records("on_upload")))
    blobs.upload("uploads", "notes.txt", b"v2")
    assert_eventually(lambda: versions() == ["v1", "v2"], message=str(blobs.records("on_upload")))
    blobs.settle()
    assert versions() == ["v1", "v2"]


def test_each_version_has_a_completed_receipt_in_the_hosts_container(blobs: BlobApp) -> None:
    container = blobs.container("uploads")
    blobs.upload("uploads", "receipt.txt", b"r")
    blobs.wait_for("on_upload", 1)
    assert_eventually(lambda: any(r["name"] == f"{container}/receipt.txt" for r in blobs.records("on_upload")))
    etag = blobs.service.get_blob_client(container, "receipt.txt").get_blob_properties().etag
    hosts = blobs.service.get_container_client("azure-webjobs-hosts")
    suffix = f"/Host.Functions.on_upload/{etag}/{container}/receipt.txt"
    receipts = [
        b for b in hosts.list_blobs(name_starts_with="blobreceipts/", include=["metadata"]) if b.name.endswith(suffix)
    ]
    assert len(receipts) == 1
    assert "Incomplete" not in (receipts[0].metadata or {})


def test_a_str_annotated_trigger_gets_the_bytes_the_host_sends(blobs: BlobApp) -> None:
    blobs.upload("texts", "greeting", "héllo".encode())
    (record,) = blobs.wait_for("as_text", 1)
    assert record == {"type": "bytes", "value": "héllo"}


def test_a_blob_triggered_pipeline_reads_an_input_blob_and_writes_an_output_blob(blobs: BlobApp) -> None:
    # A byte-order mark is dropped, as .NET's StreamReader drops it, when the host reads text.
    blobs.upload("settings", "prefix.txt", b"\xef\xbb\xbfpre: ")
    blobs.upload("inbox", "note", b"hello")
    assert_eventually(lambda: blobs.download("outbox", "note.out") is not None, message=blobs.host.log()[-3000:])
    assert blobs.download("outbox", "note.out") == b"pre: HELLO"
    assert blobs.records("pipeline")[0] == {"content": "hello", "prefix": "pre: "}


def test_a_blob_written_by_an_output_binding_triggers_the_pipeline(blobs: BlobApp) -> None:
    assert blobs.host is not None
    blobs.upload("settings", "prefix.txt", b"> ")
    code, _, body = blobs.host.request("PUT", "/api/inbox/from-http", body=b"via http")
    assert (code, body) == (201, b"stored")
    assert blobs.download("inbox", "from-http") == b"via http"
    assert_eventually(
        lambda: blobs.download("outbox", "from-http.out") == b"> VIA HTTP", message=blobs.host.log()[-3000:]
    )


def test_http_functions_read_a_blob_by_route_parameter_and_query(blobs: BlobApp) -> None:
    assert blobs.host is not None
    blobs.upload("docs", "readme.txt", "déjà vu".encode(), content_settings=ContentSettings(content_type="text/plain"))
    blobs.upload("docs", "readme-2.txt", b"second edition")

    code, _, body = blobs.host.request("GET", "/api/docs/readme")
    assert (code, json.loads(body)) == (200, {"type": "str", "text": "déjà vu"})
    assert blobs.host.request("GET", "/api/docs/missing")[:3:2] == (404, b"no such document")
    assert blobs.host.request("GET", "/api/docs-bytes/readme")[:3:2] == (200, "déjà vu".encode())
    code, _, body = blobs.host.request("GET", "/api/docs-stream/readme")
    # An input binding's InputStream has no trigger metadata, so no name.
    assert (code, json.loads(body)) == (200, {"name": None, "content": "déjà vu"})
    assert blobs.host.request("GET", "/api/versions/readme?v=2")[:3:2] == (200, b"second edition")


def test_an_unbound_parameter_in_an_input_path_fails_the_invocation(blobs: BlobApp) -> None:
    assert blobs.host is not None
    code, _, _ = blobs.host.request("GET", "/api/versions/readme")
    assert code == 500
    assert "No value for named parameter 'Query.v'." in blobs.host.log()


def test_a_failing_blob_goes_to_the_poison_queue_after_five_attempts(blobs: BlobApp, azurite: AzuriteInstance) -> None:
    container = blobs.container("failing")
    blobs.upload("failing", "bad-input", b"boom")
    assert_eventually(
        lambda: len(poison_messages(azurite, container)) == 1,
        timeout=60,
        message=blobs.host.log()[-4000:] if blobs.host else "",
    )
    (message,) = poison_messages(azurite, container)
    etag = blobs.service.get_blob_client(container, "bad-input").get_blob_properties().etag
    assert message == {
        "Type": "BlobTrigger",
        "FunctionId": "Host.Functions.always_fails",
        "BlobType": "BlockBlob",
        "ContainerName": container,
        "BlobName": "bad-input",
        "ETag": etag,
    }
    blobs.settle()
    assert [r["name"] for r in blobs.records("always_fails")] == [f"{container}/bad-input"] * 5


@pytest.mark.parametrize("worker", WORKERS)
def test_a_restarted_host_fires_new_blobs_but_never_old_versions_again(
    worker: str, azurite: AzuriteInstance, tmp_path: Path
) -> None:
    app = make_app(azurite, tmp_path, worker)
    container = app.container("uploads")

    def fired(name: str) -> int:
        return [r["name"] for r in app.records("on_upload")].count(f"{container}/{name}")

    app.start()
    try:
        app.upload("uploads", "before.txt", b"old")
        assert_eventually(lambda: fired("before.txt") == 1, message=app.host.log()[-3000:] if app.host else "")
    finally:
        app.stop()
    app.upload("uploads", "while-down.txt", b"new")
    app.start()
    try:
        assert_eventually(lambda: fired("while-down.txt") == 1, message=app.host.log()[-3000:] if app.host else "")
        app.settle()
        assert (fired("before.txt"), fired("while-down.txt")) == (1, 1)
    finally:
        app.stop()
