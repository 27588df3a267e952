"""Blob triggers: path patterns, host id, receipts, scan cursors and the listener against a real Azurite."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

import azure.functions as func
import pytest
from azure.functions.blob import BlobConverter
from azure.functions.meta import Datum
from azure.storage.blob import BlobServiceClient
from azure.storage.blob.aio import BlobServiceClient as AsyncBlobServiceClient
from conftest import AzuriteInstance

from durableagent.devhost._blob_bindings import BlobBindings, BlobPathError
from durableagent.devhost._blob_store import (
    BlobReceipts,
    BlobTriggerMessage,
    ScanInfo,
    _parse_time,
    _stable_hash,
    default_host_id,
    host_id,
    receipt_name,
    trigger_queue_name,
)
from durableagent.devhost._blob_trigger import BlobTriggerListener, BlobTriggerPath
from durableagent.devhost._functions import IndexedFunction
from durableagent.devhost._invoker import _metadata_datum
from durableagent.devhost._settings import BlobOptions
from durableagent.devhost._trigger_input import TriggerInput

T = TypeVar("T")


def run(factory: Callable[[], Awaitable[T]]) -> T:
    async def main() -> T:
        return await factory()

    return asyncio.run(main())


# ---------------------------------------------------------------------------------------------
# Path patterns
# ---------------------------------------------------------------------------------------------


def test_a_trigger_path_is_a_container_and_a_blob_name_pattern() -> None:
    path = BlobTriggerPath.parse("samples/{name}.txt")
    assert (path.container, path.blob_pattern, str(path)) == ("samples", "{name}.txt", "samples/{name}.txt")
    assert path.match("samples", "report.txt") == {"name": "report"}
    # The container compares case-insensitively, the blob name exactly (ParameterizedBlobPathSource).
    assert path.match("SAMPLES", "report.txt") == {"name": "report"}
    assert path.match("samples", "report.TXT") is None
    assert path.match("other", "report.txt") is None
    assert BlobTriggerPath.parse("samples/{folder}/{name}").match("samples", "a/b/c") == {"folder": "a/b", "name": "c"}
    # A container alone matches every blob in it; a fixed name matches only itself.
    assert BlobTriggerPath.parse("samples").match("samples", "any/thing") == {}
    assert BlobTriggerPath.parse("samples/fixed.txt").match("samples", "fixed.txt") == {}
    assert BlobTriggerPath.parse("samples/fixed.txt").match("samples", "other.txt") is None


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("{c}/x", "Invalid blob trigger path '{c}/x'. Container paths cannot contain {resolve} tokens."),
        ("samples/", "Invalid blob trigger path 'samples/'. Paths must be in the format 'container/blob'."),
        ("/x", "Invalid blob trigger path '/x'. Paths must be in the format 'container/blob'."),
        ("Samples/{name}", "Invalid container name: Samples"),
        ("samples/{name", "Invalid template 'samples/{name'."),
    ],
)
def test_invalid_trigger_paths_are_refused_with_the_extensions_messages(pattern: str, message: str) -> None:
    with pytest.raises(BlobPathError) as info:
        BlobTriggerPath.parse(pattern)
    assert str(info.value).startswith(message)


# ---------------------------------------------------------------------------------------------
# Names and messages
# ---------------------------------------------------------------------------------------------


def test_the_stable_hash_is_the_hosts_32_bit_one() -> None:
    assert _stable_hash("") == 23
    assert _stable_hash("ab") == (23 * 31 + ord("a")) * 31 + ord("b")

    def reference(text: str) -> int:
        value = 23
        for unit in range(0, len(text.encode("utf-16-le")), 2):
            code = int.from_bytes(text.encode("utf-16-le")[unit : unit + 2], "little")
            value = (value * 31 + code + 2**31) % 2**32 - 2**31
        return value

    for text in ("/home/ada/apps/orders", "C:\\apps\\x", "ünïcode/😀"):
        assert _stable_hash(text) == reference(text)


def test_the_local_host_id_is_machine_dash_hash_of_the_app_path() -> None:
    assert default_host_id("/apps/orders", "Dev-Box.1") == f"devbox1-{abs(_stable_hash('/apps/orders'))}"
    long_id = default_host_id("/apps/orders", "M" * 40)
    assert long_id == "m" * 32
    # Truncation can leave a trailing dash, which the host trims (queue names must not end with one).
    assert default_host_id("/x", "a" * 31) == "a" * 31
    assert host_id.__doc__ and "AzureFunctionsWebHost__hostid" in host_id.__doc__


def test_a_configured_host_id_wins(tmp_path: Any) -> None:
    assert host_id(tmp_path, {"AzureFunctionsWebHost__hostid": "My-Host"}) == "my-host"
    assert host_id(tmp_path, {}) == default_host_id(str(tmp_path.resolve()))


def test_scan_cursors_written_by_dotnet_are_read() -> None:
    utc = timezone.utc
    assert _parse_time("2026-12-03T10:00:00.9990001+00:00") == datetime(2026, 12, 3, 10, 0, 0, 999000, tzinfo=utc)
    assert _parse_time("2026-12-03T10:00:00Z") == datetime(2026, 12, 3, 10, 0, 0, tzinfo=utc)
    assert _parse_time("2026-12-03T12:00:00.5+02:00") == datetime(2026, 12, 3, 10, 0, 0, 500000, tzinfo=utc)
    assert _parse_time("not a time") is None


def test_names_in_the_hosts_storage() -> None:
    assert trigger_queue_name("box-1") == "azure-webjobs-blobtrigger-box-1"
    assert receipt_name("box-1", "Host.Functions.f", "c", "a/b.txt", '"0x8D"') == (
        'blobreceipts/box-1/Host.Functions.f/"0x8D"/c/a/b.txt'
    )


def test_the_trigger_message_is_the_extensions_json() -> None:
    message = BlobTriggerMessage("Host.Functions.f", "c", "a.txt", '"0x1"')
    text = message.to_json()
    assert list(json.loads(text)) == ["Type", "FunctionId", "BlobType", "ContainerName", "BlobName", "ETag"]
    assert json.loads(text)["Type"] == "BlobTrigger" and json.loads(text)["BlobType"] == "BlockBlob"
    assert BlobTriggerMessage.from_json(text) == message
    with pytest.raises(ValueError, match="Invalid function ID"):
        BlobTriggerMessage.from_json('{"Type": "BlobTrigger"}')
    with pytest.raises(ValueError):
        BlobTriggerMessage.from_json("[]")


# ---------------------------------------------------------------------------------------------
# Receipts and scan info against Azurite
# ---------------------------------------------------------------------------------------------


def test_a_receipt_is_created_once_leased_by_one_and_completed(azurite: AzuriteInstance) -> None:
    name = receipt_name(f"h-{uuid.uuid4().hex[:8]}", "Host.Functions.f", "c", "a.txt", '"0x1"')

    async def lifecycle() -> list[Any]:
        async with AsyncBlobServiceClient.from_connection_string(azurite.connection_string) as service:
            receipts = BlobReceipts(service.get_container_client("azure-webjobs-hosts"))
            seen: list[Any] = [
                await receipts.read(name),
                await receipts.try_create(name),
                await receipts.try_create(name),
            ]
            seen.append(await receipts.read(name))
            lease = await receipts.try_lease(name)
            seen += [lease is not None, await receipts.try_lease(name)]
            assert lease is not None
            await receipts.mark_completed(name, lease)
            await receipts.release(name, lease)
            seen.append(await receipts.read(name))
            second = await receipts.try_lease(name)  # released: leasable again
            seen.append(second is not None)
            return seen

    assert run(lifecycle) == [None, True, False, False, True, None, True, True]


def test_the_scan_cursor_is_kept_per_account_and_container(azurite: AzuriteInstance) -> None:
    host = f"h-{uuid.uuid4().hex[:8]}"

    async def roundtrip() -> tuple[Any, Any]:
        async with AsyncBlobServiceClient.from_connection_string(azurite.connection_string) as service:
            info = ScanInfo(service.get_container_client("azure-webjobs-hosts"), host)
            missing = await info.load("devstoreaccount1", "c")
            moment = datetime(2026, 12, 3, 10, 0, 0, 999000, tzinfo=timezone.utc)
            await info.save("devstoreaccount1", "c", moment)
            return missing, await info.load("devstoreaccount1", "c") == moment

    assert run(roundtrip) == (None, True)
    blob = f"blobscaninfo/{host}/devstoreaccount1/c/scanInfo"
    text = BlobServiceClient.from_connection_string(azurite.connection_string).get_blob_client(
        "azure-webjobs-hosts", blob
    )
    assert list(json.loads(text.download_blob().readall())) == ["LatestScan"]


# ---------------------------------------------------------------------------------------------
# The listener
# ---------------------------------------------------------------------------------------------


def blob_function(path: str, name: str = "on_blob", source: str | None = None) -> IndexedFunction:
    trigger: dict[str, Any] = {
        "direction": "IN",
        "type": "blobTrigger",
        "name": "blob",
        "path": path,
        "connection": "AzureWebJobsStorage",
    }
    if source:
        trigger["source"] = source
    return IndexedFunction(name=name, trigger=trigger, bindings=(trigger,), user_function=lambda blob: None)


class Calls:
    def __init__(self) -> None:
        self.inputs: list[tuple[str, TriggerInput]] = []

    async def __call__(self, function: IndexedFunction, trigger: TriggerInput) -> None:
        self.inputs.append((function.name, trigger))


async def eventually(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


class Scene:
    """A container, an app's blob functions and a listener that polls only when told (after its first scan)."""

    def __init__(self, azurite: AzuriteInstance, *functions: IndexedFunction, host: str | None = None) -> None:
        self.env = {"AzureWebJobsStorage": azurite.connection_string, "WATCHED": "ignored"}
        self.service = BlobServiceClient.from_connection_string(azurite.connection_string)
        self.host = host or f"t-{uuid.uuid4().hex[:10]}"
        self.functions = functions
        self.calls = Calls()

    def listener(self) -> tuple[BlobTriggerListener, BlobBindings]:
        blobs = BlobBindings(self.env)
        listener = BlobTriggerListener(
            self.functions,
            self.calls,
            blobs,
            host_connection=self.env["AzureWebJobsStorage"],
            host=self.host,
            options=BlobOptions(max_degree_of_parallelism=2),
            env=self.env,
            polling_interval=3600,
        )
        return listener, blobs


def new_container(azurite: AzuriteInstance) -> str:
    name = f"watch-{uuid.uuid4().hex[:12]}"
    BlobServiceClient.from_connection_string(azurite.connection_string).create_container(name)
    return name


def test_each_matching_blob_version_runs_once_with_the_hosts_metadata(azurite: AzuriteInstance) -> None:
    container = new_container(azurite)
    scene = Scene(azurite, blob_function(f"{container}/{{name}}.txt"))
    uploads = scene.service.get_container_client(container)
    uploads.upload_blob("report.txt", b"first", metadata={"owner": "ada"})
    uploads.upload_blob("report.json", b"{}")

    async def scenario() -> None:
        listener, blobs = scene.listener()
        await listener.start()
        try:
            await eventually(lambda: len(scene.calls.inputs) == 1)
            await listener.poll()
            await listener.poll()
            await asyncio.sleep(0.3)
            assert len(scene.calls.inputs) == 1
            uploads.upload_blob("report.txt", b"second", overwrite=True)
            await listener.poll()
            await eventually(lambda: len(scene.calls.inputs) == 2)
        finally:
            await listener.stop()
            await blobs.close()

    run(scenario)
    (name1, first), (_, second) = scene.calls.inputs
    assert name1 == "on_blob"
    assert (first.data, first.data_type, second.data) == (b"first", "bytes", b"second")
    assert first.reason == f"New blob detected(LogsAndContainerScan): {container}/report.txt"
    metadata = first.metadata
    assert metadata["BlobTrigger"] == f"{container}/report.txt"
    assert metadata["name"] == "report"
    assert metadata["Metadata"] == {"owner": "ada"}
    assert metadata["Properties"]["ContentLength"] == 5
    assert metadata["Uri"] == Datum(json.dumps(f"{azurite_blob_url(azurite)}/{container}/report.txt"), "json")
    # The worker's converter reads them into an InputStream.
    stream = BlobConverter.decode(
        Datum(first.data, "bytes"),
        trigger_metadata={key: _metadata_datum(value) for key, value in metadata.items()},
    )
    assert isinstance(stream, func.InputStream)
    assert (stream.name, stream.length, stream.read()) == (f"{container}/report.txt", 5, b"first")
    assert stream.uri == f"{azurite_blob_url(azurite)}/{container}/report.txt"


def azurite_blob_url(azurite: AzuriteInstance) -> str:
    return f"http://127.0.0.1:{azurite.blob_port}/devstoreaccount1"


def test_a_message_for_an_older_version_does_not_run_the_function(azurite: AzuriteInstance) -> None:
    container = new_container(azurite)
    scene = Scene(azurite, blob_function(f"{container}/{{name}}"))

    async def scenario() -> None:
        listener, blobs = scene.listener()
        await listener.start()
        try:
            scene.service.get_blob_client(container, "doc").upload_blob(b"now")
            stale = BlobTriggerMessage("Host.Functions.on_blob", container, "doc", '"0xOLD"')
            await listener.process(stale)
            gone = BlobTriggerMessage("Host.Functions.on_blob", container, "gone", '"0x1"')
            await listener.process(gone)
            unknown = BlobTriggerMessage("Host.Functions.nobody", container, "doc", '"0x1"')
            await listener.process(unknown)
            assert scene.calls.inputs == []
            # The newer version the stale message revealed is examined on the next poll.
            await listener.poll()
            await eventually(lambda: len(scene.calls.inputs) == 1)
        finally:
            await listener.stop()
            await blobs.close()

    run(scenario)
    assert scene.calls.inputs[0][1].data == b"now"


def test_a_restarted_listener_skips_blobs_older_than_its_cursor_and_trusts_receipts_for_the_rest(
    azurite: AzuriteInstance,
) -> None:
    container = new_container(azurite)
    scene = Scene(azurite, blob_function(f"{container}/{{name}}"))
    scene.service.get_blob_client(container, "old").upload_blob(b"1")
    time.sleep(1.1)  # blob timestamps have whole seconds: "new" is strictly newer than "old"
    scene.service.get_blob_client(container, "new").upload_blob(b"2")

    async def start_once(expected: int) -> None:
        listener, blobs = scene.listener()
        await listener.start()
        try:
            await eventually(lambda: len(scene.calls.inputs) >= expected)
            await listener.poll()
            await asyncio.sleep(0.3)
        finally:
            await listener.stop()
            await blobs.close()

    run(lambda: start_once(2))
    assert sorted(t.metadata["name"] for _, t in scene.calls.inputs) == ["new", "old"]
    cursor = scene.service.get_blob_client(
        "azure-webjobs-hosts", f"blobscaninfo/{scene.host}/devstoreaccount1/{container}/scanInfo"
    )
    latest = json.loads(cursor.download_blob().readall())["LatestScan"]
    new_modified = scene.service.get_blob_client(container, "new").get_blob_properties().last_modified
    assert latest == (new_modified - timedelta(milliseconds=1)).isoformat()

    # Without receipts only the cursor protects: the blob at the cursor is examined again, the older one is not.
    hosts = scene.service.get_container_client("azure-webjobs-hosts")
    for receipt in hosts.list_blobs(name_starts_with=f"blobreceipts/{scene.host}/"):
        hosts.delete_blob(receipt.name)
    scene.calls.inputs.clear()
    run(lambda: start_once(1))
    assert [t.metadata["name"] for _, t in scene.calls.inputs] == ["new"]


def test_listener_refuses_invalid_paths_and_missing_connections(azurite: AzuriteInstance) -> None:
    blobs = BlobBindings({})
    with pytest.raises(ValueError, match="Function 'on_blob': Invalid blob trigger path"):
        BlobTriggerListener([blob_function("{c}/x")], Calls(), blobs, host_connection="x", host="h", env={})
    with pytest.raises(ValueError, match="the storage connection setting 'AzureWebJobsStorage' is not set"):
        BlobTriggerListener([blob_function("cont/{name}")], Calls(), blobs, host_connection="x", host="h", env={})
    with pytest.raises(ValueError, match="refers to app setting 'MISSING'"):
        BlobTriggerListener([blob_function("%MISSING%/{name}")], Calls(), blobs, host_connection="x", host="h", env={})


def test_a_container_that_does_not_exist_yet_is_watched_until_it_does(azurite: AzuriteInstance) -> None:
    container = f"later-{uuid.uuid4().hex[:12]}"
    scene = Scene(azurite, blob_function(f"{container}/{{name}}"))

    async def scenario() -> None:
        listener, blobs = scene.listener()
        await listener.start()
        try:
            await listener.poll()  # the container is missing: nothing happens, nothing fails
            scene.service.create_container(container)
            scene.service.get_blob_client(container, "first").upload_blob(b"1")
            await listener.poll()
            await eventually(lambda: len(scene.calls.inputs) == 1)
        finally:
            await listener.stop()
            await blobs.close()

    run(scenario)
    assert scene.calls.inputs[0][1].metadata["name"] == "first"
