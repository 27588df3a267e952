"""Blob storage plumbing shared by the transcript and checkpoint stores."""

from __future__ import annotations

import contextlib
import os
import threading
from typing import TYPE_CHECKING

from azure.core.exceptions import ResourceExistsError

if TYPE_CHECKING:
    # The blob SDK costs ~80 ms to import: loaded only when storage is first touched.
    from azure.storage.blob import BlobServiceClient, ContainerClient


def service_from_environment(setting: str) -> BlobServiceClient:
    """A blob client from a Functions connection setting: a connection string or identity-based URIs."""
    from azure.storage.blob import BlobServiceClient

    from ._blob_transport import StdlibTransport

    connection = os.environ.get(setting)
    if connection:
        return BlobServiceClient.from_connection_string(connection, transport=StdlibTransport())
    uri = os.environ.get(f"{setting}__blobServiceUri") or os.environ.get(f"{setting}__serviceUri")
    if not uri:
        raise RuntimeError(f"no blob storage configured: set '{setting}' or '{setting}__blobServiceUri'")
    from azure.identity import DefaultAzureCredential

    client_id = os.environ.get(f"{setting}__clientId")
    credential = DefaultAzureCredential(managed_identity_client_id=client_id)
    return BlobServiceClient(uri, credential=credential, transport=StdlibTransport())


class ContainerOnce:
    """Creates a container the first time something is written to it (once per process)."""

    def __init__(self, container: ContainerClient) -> None:
        self.container = container
        self._created = False
        self._lock = threading.Lock()

    def ensure(self) -> None:
        if self._created:
            return
        with self._lock:
            if not self._created:
                with contextlib.suppress(ResourceExistsError):
                    self.container.create_container()
                self._created = True
