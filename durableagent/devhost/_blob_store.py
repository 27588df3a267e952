"""What the blob trigger keeps in the host's storage: host id, receipts, scan cursors, queue messages.

Names and formats follow the Functions host and the Storage Blobs extension (see :mod:`._blob_trigger`):
``azure-webjobs-hosts/blobreceipts/<hostId>/<functionId>/<ETag>/<container>/<blob>`` receipts
(``BlobReceiptManager``, ``BlobReceipt``), ``azure-webjobs-hosts/blobscaninfo/<hostId>/<account>/
<container>/scanInfo`` cursors (``StorageBlobScanInfoManager``), ``BlobTriggerMessage`` JSON on the
``azure-webjobs-blobtrigger-<hostId>`` queue and the ``webjobs-blobtrigger-poison`` queue
(``HostQueueNames``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.storage.blob.aio import BlobLeaseClient, ContainerClient

from ._functions import IndexedFunction

__all__ = [
    "HOSTS_CONTAINER",
    "HOST_ID_SETTING",
    "POISON_QUEUE",
    "BlobReceipts",
    "BlobTriggerMessage",
    "ScanInfo",
    "default_host_id",
    "function_id",
    "host_id",
    "receipt_name",
    "trigger_queue_name",
]

logger = logging.getLogger("durableagent.devhost.blob")

HOSTS_CONTAINER = "azure-webjobs-hosts"
POISON_QUEUE = "webjobs-blobtrigger-poison"
HOST_ID_SETTING = "AzureFunctionsWebHost__hostid"
_RECEIPT_LEASE_SECONDS = 30
_INCOMPLETE = "Incomplete"
_MAX_HOST_ID_LENGTH = 32


# ---------------------------------------------------------------------------------------------
# Names
# ---------------------------------------------------------------------------------------------


def _stable_hash(text: str) -> int:
    """``Utility.GetStableHash``: ``hash * 31 + char`` over UTF-16 code units, in 32-bit signed arithmetic."""
    value = 23
    units = text.encode("utf-16-le")
    for i in range(0, len(units), 2):
        value = (value * 31 + int.from_bytes(units[i : i + 2], "little")) & 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def default_host_id(script_path: str, machine_name: str | None = None) -> str:
    """The host id ``func start`` derives locally: ``<machine>-<hash of the app path>``, 32 characters at most.

    ``ScriptHostIdProvider.GetDefaultHostId`` in Azure/azure-functions-host: letters and digits of the
    machine name, a dash, the absolute stable hash of the script root; truncated to 32 characters,
    lower-cased, trailing dashes trimmed.
    """
    machine = machine_name if machine_name is not None else socket.gethostname().split(".")[0]
    sanitized = "".join(char for char in machine if char.isalnum())
    return f"{sanitized}-{abs(_stable_hash(script_path))}"[:_MAX_HOST_ID_LENGTH].lower().rstrip("-")


def host_id(app_dir: Path, env: Mapping[str, str]) -> str:
    """``AzureFunctionsWebHost__hostid`` when set, else :func:`default_host_id` of ``app_dir``."""
    configured = env.get(HOST_ID_SETTING)
    return configured.strip().lower() if configured else default_host_id(str(app_dir.resolve()))


def trigger_queue_name(host: str) -> str:
    """The host's blob trigger queue (``HostQueueNames.GetHostBlobTriggerQueueName``)."""
    return f"azure-webjobs-blobtrigger-{host}"


def function_id(function: IndexedFunction) -> str:
    """The id the host gives a function (the generated method ``Host.Functions.<name>``)."""
    return f"Host.Functions.{function.name}"


def receipt_name(host: str, function: str, container: str, blob: str, etag: str) -> str:
    """A receipt's blob name in ``azure-webjobs-hosts``; the ETag comes before the blob name, which may hold slashes."""
    return f"blobreceipts/{host}/{function}/{etag}/{container}/{blob}"


# ---------------------------------------------------------------------------------------------
# Messages, receipts, scan info
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BlobTriggerMessage:
    """What the scanner enqueues for one blob version (``BlobTriggerMessage``)."""

    function_id: str
    container_name: str
    blob_name: str
    etag: str
    blob_type: str = "BlockBlob"

    def to_json(self) -> str:
        # Newtonsoft, indented, properties in declaration order (JsonSerialization.Settings).
        return json.dumps(
            {
                "Type": "BlobTrigger",
                "FunctionId": self.function_id,
                "BlobType": self.blob_type,
                "ContainerName": self.container_name,
                "BlobName": self.blob_name,
                "ETag": self.etag,
            },
            indent=2,
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> BlobTriggerMessage:
        """Raises ``ValueError`` for anything but a blob trigger message."""
        parsed = json.loads(text)
        if not isinstance(parsed, dict):
            raise ValueError("Invalid blob trigger message.")
        if not parsed.get("FunctionId"):
            raise ValueError("Invalid function ID.")
        return cls(
            function_id=str(parsed["FunctionId"]),
            container_name=str(parsed.get("ContainerName") or ""),
            blob_name=str(parsed.get("BlobName") or ""),
            etag=str(parsed.get("ETag") or ""),
            blob_type=str(parsed.get("BlobType") or "BlockBlob"),
        )


class BlobReceipts:
    """Receipt blobs in ``azure-webjobs-hosts`` (``BlobReceiptManager``)."""

    def __init__(self, hosts: ContainerClient) -> None:
        self._hosts = hosts

    async def read(self, name: str) -> bool | None:
        """``None`` without a receipt, else whether it is complete."""
        try:
            properties = await self._hosts.get_blob_client(name).get_blob_properties()
        except ResourceNotFoundError:
            return None
        return _INCOMPLETE not in (properties.metadata or {})

    async def try_create(self, name: str) -> bool:
        """Create an incomplete receipt unless one exists; ``False`` when someone else made it first."""
        blob = self._hosts.get_blob_client(name)
        for attempt in range(2):
            try:
                await blob.upload_blob(b"", metadata={_INCOMPLETE: _INCOMPLETE}, overwrite=False)
                return True
            except ResourceExistsError:
                return False
            except ResourceNotFoundError:
                if attempt:
                    raise
                with contextlib.suppress(ResourceExistsError):
                    await self._hosts.create_container()
            except HttpResponseError as exc:
                if exc.status_code == 412:  # a lease is held on it
                    return False
                raise
        return False

    async def try_lease(self, name: str) -> str | None:
        """A 30 s lease on the receipt, or ``None`` when it is leased already or gone."""
        try:
            lease = await self._hosts.get_blob_client(name).acquire_lease(lease_duration=_RECEIPT_LEASE_SECONDS)
        except ResourceNotFoundError:
            return None
        except HttpResponseError as exc:
            if exc.status_code == 409:
                return None
            raise
        return str(lease.id)

    async def mark_completed(self, name: str, lease_id: str) -> None:
        blob = self._hosts.get_blob_client(name)
        try:
            metadata = dict((await blob.get_blob_properties()).metadata or {})
            metadata.pop(_INCOMPLETE, None)
            await blob.set_blob_metadata(metadata, lease=lease_id)
        except ResourceNotFoundError:
            pass  # the user deleted the receipt or its container
        except HttpResponseError as exc:
            if exc.status_code != 412:  # 412: the lease expired; leave the receipt incomplete
                raise

    async def release(self, name: str, lease_id: str) -> None:
        blob = self._hosts.get_blob_client(name)
        with contextlib.suppress(ResourceNotFoundError):
            try:
                await BlobLeaseClient(blob, lease_id=lease_id).release()
            except HttpResponseError as exc:
                if exc.status_code != 409:  # another lease is active now
                    raise


class ScanInfo:
    """The newest Last-Modified of each container's last sweep (``StorageBlobScanInfoManager``)."""

    def __init__(self, hosts: ContainerClient, host: str) -> None:
        self._hosts = hosts
        self._host = host

    def _name(self, account: str, container: str) -> str:
        return f"blobscaninfo/{self._host}/{account}/{container}/scanInfo"

    async def load(self, account: str, container: str) -> datetime | None:
        try:
            downloader = await self._hosts.get_blob_client(self._name(account, container)).download_blob()
            text = (await downloader.readall()).decode("utf-8-sig")
        except ResourceNotFoundError:
            return None
        try:
            latest = json.loads(text).get("LatestScan")
        except (ValueError, AttributeError):
            return None  # unreadable: scan everything again, receipts keep versions from firing twice
        return _parse_time(latest) if isinstance(latest, str) else None

    async def save(self, account: str, container: str, latest: datetime) -> None:
        blob = self._hosts.get_blob_client(self._name(account, container))
        try:
            await blob.upload_blob(json.dumps({"LatestScan": latest.isoformat()}), overwrite=True)
        except Exception as exc:  # best effort, as in Azure
            logger.debug("Saving the scan info of container '%s' failed: %s", container, exc)


def _parse_time(text: str) -> datetime | None:
    """A .NET ``DateTimeOffset`` in JSON: up to seven fractional digits, ``Z`` or an offset (``None`` if not)."""
    # fromisoformat before 3.11 takes neither "Z" nor more than six digits.
    match = re.fullmatch(r"(.+T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)?", text.strip())
    if match is None:
        return None
    whole, fraction, zone = match.groups()
    micro = f".{(fraction + '000000')[:6]}" if fraction else ""
    offset = "+00:00" if zone in (None, "Z") else zone
    try:
        return datetime.fromisoformat(whole + micro + offset)
    except ValueError:
        return None
