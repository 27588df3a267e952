"""Blob triggers: scan containers for new or changed blobs and run each blob-triggered function once per version.

Ported from the Storage Blobs extension (Azure/azure-sdk-for-net,
sdk/storage/Microsoft.Azure.WebJobs.Extensions.Storage.Blobs/src), ``source`` ``LogsAndContainerScan``:

- **Scan** (``ScanBlobScanLogHybridPollingStrategy``): every 10 s list each watched container, a page of
  at most 10,000 blobs (split between containers) per poll, continuing the listing on the next poll.
  A blob is a candidate when its Last-Modified is at or after the newest Last-Modified of the previous
  complete sweep. That cursor is kept, 1 ms early, in ``azure-webjobs-hosts/blobscaninfo/<hostId>/
  <account>/<container>/scanInfo`` (``StorageBlobScanInfoManager``), so a restarted host does not
  re-examine older blobs. (Azure also reads the storage analytics logs; Azurite has none.)
- **Receipts** (``BlobTriggerExecutor``, ``BlobReceiptManager``): for a candidate that matches the
  trigger's path pattern, the host reads its ETag and looks for ``azure-webjobs-hosts/blobreceipts/
  <hostId>/Host.Functions.<name>/<ETag>/<container>/<blob>``. A completed receipt means this version
  was already handled. Otherwise it creates the receipt (metadata ``Incomplete``), leases it for 30 s,
  enqueues a message for the blob and marks the receipt complete: each version fires once, across
  restarts, whatever happens to the function.
- **Execution** (``BlobQueueTriggerExecutor``, ``SharedBlobQueueListenerFactory``): the messages go to
  the host queue ``azure-webjobs-blobtrigger-<hostId>`` (base64 JSON ``BlobTriggerMessage``), which is
  processed like a queue trigger. A blob that is gone is dropped; one whose ETag changed is handed back
  to the scanner; otherwise the function runs on the blob's bytes. A failure releases the message for
  another attempt, and after ``extensions.blobs.poisonBlobThreshold`` (5) attempts the message goes to
  ``webjobs-blobtrigger-poison`` in the blob's storage account.

Blob-output writes by this host are reported to the scanner (``BlobCommittedAction`` →
``IBlobWrittenWatcher``) and examined on its next poll whatever their timestamp.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.functions.meta import Datum
from azure.storage.blob import BlobProperties
from azure.storage.blob.aio import BlobServiceClient, ContainerClient
from azure.storage.queue import QueueMessage
from azure.storage.queue.aio import QueueClient

from ._binding_expressions import capture, parameter_names
from ._blob_bindings import BlobBindings, BlobPath, BlobPathError, validate_blob_name, validate_container_name
from ._blob_store import (
    HOSTS_CONTAINER,
    POISON_QUEUE,
    BlobReceipts,
    BlobTriggerMessage,
    ScanInfo,
    function_id,
    receipt_name,
    trigger_queue_name,
)
from ._functions import BLOB_TRIGGER, IndexedFunction
from ._queue_trigger import QueueOptions, QueuePump, resolve_connection_string, send_queue_messages
from ._settings import BlobOptions
from ._trigger_input import InvokeTrigger, TriggerInput, resolve_setting_references

__all__ = [
    "DEFAULT_SOURCE",
    "POLLING_INTERVAL",
    "BlobTriggerListener",
    "BlobTriggerPath",
    "blob_properties_json",
    "trigger_metadata",
]

logger = logging.getLogger("durableagent.devhost.blob")

DEFAULT_SOURCE = "LogsAndContainerScan"
POLLING_INTERVAL = 10.0
_SCAN_BLOB_LIMIT_PER_POLL = 10_000
_EPOCH = datetime.min.replace(tzinfo=timezone.utc)


# ---------------------------------------------------------------------------------------------
# The trigger's path pattern
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BlobTriggerPath:
    """A blob trigger's ``path``: a container and a blob-name pattern with ``{name}``-style parameters.

    Attributes:
        container: The watched container.
        blob_pattern: The pattern blob names must match (``""`` matches every blob).
    """

    container: str
    blob_pattern: str

    @classmethod
    def parse(cls, pattern: str) -> BlobTriggerPath:
        """Check ``pattern`` as ``BlobPathSource.Create`` does.

        Raises:
            BlobPathError: The extension's message.
        """
        slash = pattern.find("/")
        container, blob_pattern = (pattern, "") if slash == -1 else (pattern[:slash], pattern[slash + 1 :])
        if (slash != -1 and not (0 < slash < len(pattern) - 1)) or "\\" in container:
            raise BlobPathError(f"Invalid blob trigger path '{pattern}'. Paths must be in the format 'container/blob'.")
        if "{" in container:
            raise BlobPathError(
                f"Invalid blob trigger path '{pattern}'. Container paths cannot contain {{resolve}} tokens."
            )
        try:
            has_parameters = bool(parameter_names(pattern))
        except ValueError as exc:
            raise BlobPathError(str(exc)) from None
        validate_container_name(container)
        if blob_pattern and not has_parameters:
            validate_blob_name(blob_pattern)
        return cls(container, blob_pattern)

    def match(self, container: str, blob_name: str) -> dict[str, str] | None:
        """The pattern's parameter values for a blob, or ``None`` when the blob does not match.

        Containers compare case-insensitively, names exactly (``ParameterizedBlobPathSource``).
        """
        if container.lower() != self.container.lower():
            return None
        if not self.blob_pattern:
            return {}
        return capture(self.blob_pattern, blob_name)

    def __str__(self) -> str:
        return f"{self.container}/{self.blob_pattern}" if self.blob_pattern else self.container


# ---------------------------------------------------------------------------------------------
# What the function is sent
# ---------------------------------------------------------------------------------------------


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def blob_properties_json(properties: BlobProperties) -> dict[str, Any]:
    """The blob's properties as the host serializes .NET ``BlobProperties`` into trigger metadata.

    A subset, under the .NET names: ``BlobConverter`` reads ``ContentLength`` for ``InputStream.length``.
    """
    settings = properties.content_settings
    content_hash = settings.content_md5
    return {
        "LastModified": _iso(properties.last_modified),
        "CreatedOn": _iso(properties.creation_time),
        "Metadata": dict(properties.metadata or {}),
        "ContentLength": properties.size,
        "ContentType": settings.content_type,
        "ContentEncoding": settings.content_encoding,
        "ContentLanguage": settings.content_language,
        "ContentDisposition": settings.content_disposition,
        "CacheControl": settings.cache_control,
        "ContentHash": base64.b64encode(bytes(content_hash)).decode("ascii") if content_hash else None,
        "IsServerEncrypted": bool(properties.server_encrypted),
    }


def trigger_metadata(
    path: BlobPath, uri: str, properties: BlobProperties, parameters: Mapping[str, str]
) -> dict[str, Any]:
    """The binding data the host sends with a blob (``BlobTriggerBinding.CreateBindingData``).

    ``Uri`` is a .NET ``Uri``, which the host sends as JSON; the path's parameters win over the
    built-in names on a clash.
    """
    metadata: dict[str, Any] = {
        "BlobTrigger": str(path),
        "Uri": Datum(json.dumps(uri), "json"),
        "Properties": blob_properties_json(properties),
        "Metadata": dict(properties.metadata or {}),
    }
    for name, value in parameters.items():
        for existing in [key for key in metadata if key.lower() == name.lower()]:
            del metadata[existing]
        metadata[name] = value
    return metadata


# ---------------------------------------------------------------------------------------------
# The listener
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Registration:
    function: IndexedFunction
    function_id: str
    path: BlobTriggerPath
    connection: str
    source: str


@dataclass
class _ContainerScan:
    """``ContainerScanInfo``: one watched container and where its sweep stands."""

    connection: str
    client: ContainerClient
    account: str
    registrations: list[_Registration] = field(default_factory=list)
    last_sweep: datetime = _EPOCH
    current_sweep: datetime = _EPOCH
    continuation: str | None = None


def _queue_options(options: BlobOptions) -> QueueOptions:
    """``SharedBlobQueueListenerFactory.BlobsOptionsToQueuesOptions``."""
    batch_size = min(32, options.max_degree_of_parallelism // 2 + 1)
    return QueueOptions(
        batch_size=batch_size,
        new_batch_threshold=options.max_degree_of_parallelism - batch_size,
        max_dequeue_count=options.poison_blob_threshold,
        message_encoding="base64",
    )


class _BlobQueue(QueuePump):
    """The host's blob trigger queue: one message per blob version to run a function on."""

    def __init__(self, listener: BlobTriggerListener, connection: str, queue_name: str, options: BlobOptions) -> None:
        super().__init__(
            label="Blob trigger queue",
            queue_name=queue_name,
            connection_string=connection,
            options=_queue_options(options),
            poison_queue_name=POISON_QUEUE,
        )
        self._listener = listener
        self._poison_clients: dict[str, QueueClient] = {}

    async def _handle(self, message: QueueMessage, body: bytes) -> None:
        await self._listener.process(BlobTriggerMessage.from_json(body))

    def _poison_client(self, message: QueueMessage) -> QueueClient:
        # The poison queue lives in the triggering blob's account (SharedBlobQueueProcessor.GetPoisonQueue).
        try:
            body = base64.b64decode(str(message.content or ""))
            registration = self._listener.registration(BlobTriggerMessage.from_json(body).function_id)
        except ValueError:
            registration = None
        if registration is None or registration.connection == self.connection_string:
            return super()._poison_client(message)
        client = self._poison_clients.get(registration.connection)
        if client is None:
            client = QueueClient.from_connection_string(registration.connection, POISON_QUEUE)
            self._poison_clients[registration.connection] = client
        return client

    async def _close_clients(self) -> None:
        for client in self._poison_clients.values():
            await client.close()
        self._poison_clients.clear()
        await super()._close_clients()


class BlobTriggerListener:
    """Watches the containers of every blob-triggered function of the app and runs them (see the module docstring).

    Args:
        functions: The app's functions; those with a ``blobTrigger`` are served.
        invoke: Runs a function for one blob; raises when it fails.
        blobs: The host's blob clients (shared with the blob bindings).
        host_connection: The host's storage (``AzureWebJobsStorage``): receipts, scan info, the trigger queue.
        host: The host id (:func:`host_id`).
        options: host.json ``extensions.blobs``.
        env: App settings, for connections and ``%SETTING%`` in paths.
        polling_interval: Seconds between scans (10 in Azure).

    Raises:
        ValueError: A trigger path or connection setting is invalid or missing.
    """

    def __init__(
        self,
        functions: Iterable[IndexedFunction],
        invoke: InvokeTrigger,
        blobs: BlobBindings,
        *,
        host_connection: str,
        host: str,
        options: BlobOptions | None = None,
        env: Mapping[str, str] | None = None,
        polling_interval: float = POLLING_INTERVAL,
    ) -> None:
        self._invoke = invoke
        self._blobs = blobs
        self._host_connection = host_connection
        self.host_id = host
        self.polling_interval = polling_interval
        self._registrations: dict[str, _Registration] = {}
        for fn in functions:
            if fn.trigger_type != BLOB_TRIGGER:
                continue
            raw_path = resolve_setting_references(
                str(fn.trigger.get("path") or ""), function_name=fn.name, what="path", env=env
            )
            try:
                path = BlobTriggerPath.parse(raw_path)
            except BlobPathError as exc:
                raise ValueError(f"Function '{fn.name}': {exc}") from None
            connection = resolve_connection_string(fn.trigger.get("connection"), function_name=fn.name, env=env)
            source = str(fn.trigger.get("source") or DEFAULT_SOURCE)
            registration = _Registration(fn, function_id(fn), path, connection, source)
            self._registrations[registration.function_id] = registration
        self._queue = _BlobQueue(self, host_connection, trigger_queue_name(host), options or BlobOptions())
        self._scans: dict[tuple[str, str], _ContainerScan] = {}
        self._notifications: list[tuple[tuple[str, str], str]] = []
        self._hosts: ContainerClient | None = None
        self._receipts: BlobReceipts | None = None
        self._scan_info: ScanInfo | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    @property
    def functions(self) -> list[IndexedFunction]:
        return [registration.function for registration in self._registrations.values()]

    def registration(self, function_id: str) -> _Registration | None:
        return self._registrations.get(function_id)

    async def start(self) -> None:
        """Load each container's scan cursor, start the trigger queue and the scanner."""
        if self._task is not None:
            raise RuntimeError("BlobTriggerListener already started")
        self._hosts = self._blobs.service(self._host_connection).get_container_client(HOSTS_CONTAINER)
        with contextlib.suppress(ResourceExistsError):
            await self._hosts.create_container()
        self._receipts = BlobReceipts(self._hosts)
        self._scan_info = ScanInfo(self._hosts, self.host_id)
        for registration in self._registrations.values():
            key = (registration.connection, registration.path.container.lower())
            scan = self._scans.get(key)
            if scan is None:
                service = self._blobs.service(registration.connection)
                scan = _ContainerScan(
                    registration.connection,
                    service.get_container_client(registration.path.container),
                    str(service.account_name),
                )
                scan.last_sweep = await self._scan_info.load(scan.account, registration.path.container) or _EPOCH
                self._scans[key] = scan
            scan.registrations.append(registration)
            if registration.source != DEFAULT_SOURCE:
                logger.info(
                    "Function '%s': blob trigger source '%s' needs Event Grid, which the local host does not have; "
                    "it scans the container instead",
                    registration.function.name,
                    registration.source,
                )
        await self._queue.start()
        self._stop.clear()
        self._task = asyncio.create_task(self._run(), name="blob-trigger-scan")

    async def stop(self) -> None:
        """Stop scanning, then stop the queue (running functions finish or are cancelled as for queues)."""
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._queue.stop()

    def notify_written(self, connection: str, path: BlobPath) -> None:
        """A blob this host just wrote: examine it on the next poll, whatever its timestamp."""
        key = (connection, path.container.lower())
        if key in self._scans:
            self._notifications.append((key, path.name))

    # -- scanning --------------------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                await self.poll()
            except Exception:
                logger.exception("Scanning for blobs failed; trying again in %.0f s", self.polling_interval)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=self.polling_interval)

    async def poll(self) -> None:
        """One scan: the blobs reported since the last one, then a page of each container."""
        failed: list[tuple[tuple[str, str], str]] = []
        pending, self._notifications = self._notifications, []
        for key, name in pending:
            scan = self._scans.get(key)
            if scan is not None and not await self._notify(scan, name):
                failed.append((key, name))
        for key, scan in self._scans.items():
            await self._poll_and_notify(key, scan, failed)
        self._notifications.extend(failed)

    async def _poll_and_notify(
        self, key: tuple[str, str], scan: _ContainerScan, failed: list[tuple[tuple[str, str], str]]
    ) -> None:
        assert self._scan_info is not None
        last = scan.last_sweep
        container_failed: list[str] = []
        for item in await self._new_blobs(scan):
            if not await self._notify(scan, item.name):
                failed.append((key, item.name))
                container_failed.append(item.name)
        if scan.last_sweep > last:
            latest = scan.last_sweep
            if container_failed:
                # Keep failed blobs in the next host's scan too.
                latest = min([latest, *[await self._last_modified(scan, name) for name in container_failed]])
            # 1 ms early: blob timestamps have whole seconds, so a blob written in the same second is seen again.
            await self._scan_info.save(scan.account, scan.client.container_name, latest - timedelta(milliseconds=1))

    async def _last_modified(self, scan: _ContainerScan, name: str) -> datetime:
        try:
            properties = await scan.client.get_blob_client(name).get_blob_properties()
        except ResourceNotFoundError:
            return scan.last_sweep
        return properties.last_modified or scan.last_sweep

    async def _new_blobs(self, scan: _ContainerScan) -> list[BlobProperties]:
        """``PollNewBlobsAsync``: one page of the container's listing, keeping the blobs at or after the cursor."""
        if scan.continuation is None:
            scan.current_sweep = _EPOCH
        pages = scan.client.list_blobs(results_per_page=_SCAN_BLOB_LIMIT_PER_POLL // len(self._scans)).by_page(
            continuation_token=scan.continuation
        )
        try:
            page = await pages.__anext__()
            items = [item async for item in page]
        except StopAsyncIteration:
            return []
        except ResourceNotFoundError:
            logger.debug("Container '%s' does not exist", scan.client.container_name)
            return []
        found: list[BlobProperties] = []
        for item in items:
            modified = item.last_modified or _EPOCH
            scan.current_sweep = max(scan.current_sweep, modified)
            if modified >= scan.last_sweep:
                found.append(item)
        # The async page iterator has the token; its annotation does not say so.
        scan.continuation = getattr(pages, "continuation_token", None) or None
        if scan.continuation is None and scan.current_sweep > scan.last_sweep:
            scan.last_sweep = scan.current_sweep
        return found

    async def _notify(self, scan: _ContainerScan, name: str) -> bool:
        """Hand one blob to each function watching its container; ``False`` to try it again next poll."""
        succeeded = True
        for registration in scan.registrations:
            try:
                succeeded = await self._enqueue_once(scan, registration, name) and succeeded
            except Exception:
                logger.exception("Function '%s': handling blob '%s' failed", registration.function.name, name)
                succeeded = False
        return succeeded

    async def _enqueue_once(self, scan: _ContainerScan, registration: _Registration, name: str) -> bool:
        """``BlobTriggerExecutor.ExecuteAsync``: one message per blob version, guarded by its receipt."""
        assert self._receipts is not None
        container = scan.client.container_name
        if registration.path.match(container, name) is None:
            return True
        try:
            properties = await scan.client.get_blob_client(name).get_blob_properties()
        except ResourceNotFoundError:
            return True
        etag = str(properties.etag or "")
        if not etag:
            return True
        receipt = receipt_name(self.host_id, registration.function_id, container, name, etag)
        state = await self._receipts.read(receipt)
        if state is True:
            return True
        if state is None and not await self._receipts.try_create(receipt):
            return False
        lease = await self._receipts.try_lease(receipt)
        if lease is None:
            return False
        try:
            if await self._receipts.read(receipt) is True:
                return True
            message = BlobTriggerMessage(
                function_id=registration.function_id,
                container_name=container,
                blob_name=name,
                etag=etag,
                blob_type=_blob_type(properties),
            )
            await send_queue_messages(self._host_connection, self._queue.queue_name, [message.to_json()], "base64")
            self._queue.notify()
            logger.debug("Function '%s': queued blob '%s/%s' (%s)", registration.function.name, container, name, etag)
            await self._receipts.mark_completed(receipt, lease)
            return True
        finally:
            await self._receipts.release(receipt, lease)

    # -- running a function ------------------------------------------------------------------------

    async def process(self, message: BlobTriggerMessage) -> None:
        """``BlobQueueTriggerExecutor.ExecuteAsync``: run the function on the blob, if it is still that version.

        Raises:
            Exception: The function failed (the queue retries, then poisons).
        """
        registration = self._registrations.get(message.function_id)
        if registration is None:
            logger.warning("Blob '%s': no function '%s' here; dropping it", message.blob_name, message.function_id)
            return
        service: BlobServiceClient = self._blobs.service(registration.connection)
        blob = service.get_blob_client(message.container_name, message.blob_name)
        try:
            downloader = await blob.download_blob()
            content = await downloader.readall()
        except ResourceNotFoundError:
            logger.info("Blob '%s/%s' no longer exists", message.container_name, message.blob_name)
            return
        properties = downloader.properties
        if registration.source == DEFAULT_SOURCE and str(properties.etag or "") != message.etag:
            # A newer version: the scanner queues that one.
            self.notify_written(registration.connection, BlobPath(message.container_name, message.blob_name))
            return
        path = BlobPath(message.container_name, message.blob_name)
        parameters = registration.path.match(path.container, path.name) or {}
        await self._invoke(
            registration.function,
            TriggerInput(
                data=content,
                data_type="bytes",
                metadata=trigger_metadata(path, blob.url, properties, parameters),
                reason=f"New blob detected({registration.source}): {path}",
            ),
        )


def _blob_type(properties: BlobProperties) -> str:
    value = getattr(properties.blob_type, "value", properties.blob_type)
    return str(value or "BlockBlob")
