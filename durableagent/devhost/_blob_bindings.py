"""Blob input and output bindings: the host reads a blob before an invocation and writes one after it.

As the Functions host does with the Storage Blobs extension:

- ``path``: ``%SETTING%`` references resolved, then ``{expressions}`` bound from the invocation's
  binding data (:mod:`._binding_expressions`), then parsed as ``container/blob`` or an absolute blob
  URL and validated with the extension's rules and messages (``BlobPath.ParseAndValidate``,
  ``BlobNameValidationAttribute`` in Azure/azure-sdk-for-net,
  sdk/storage/Microsoft.Azure.WebJobs.Extensions.Storage.Blobs).
- input: the script host binds a non-trigger input with ``dataType ?? String``
  (``WorkerFunctionInvoker.BindInputsAsync`` in Azure/azure-functions-host). ``string`` sends the blob
  as text read by a .NET ``StreamReader`` (byte-order mark honoured, else UTF-8 with invalid bytes
  replaced), ``binary`` sends its bytes, and ``stream`` or ``undefined`` send no value
  (Azure/azure-functions-host#3995). A missing blob or container sends no value: the worker hands
  the function ``None``.
- output: the worker's value is written as a block blob, overwriting, the container created if
  missing; text as UTF-8, bytes as they are, JSON as its text (``FunctionBinding.ConvertValueToStream``).
"""

from __future__ import annotations

import codecs
import contextlib
import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.functions.meta import Datum
from azure.storage.blob.aio import BlobServiceClient

from ._binding_expressions import bind
from ._queue_trigger import resolve_connection_string
from ._trigger_input import resolve_setting_references

__all__ = ["BlobBindings", "BlobPath", "BlobPathError", "decode_text", "parse_blob_path", "validate_container_name"]


class BlobPathError(ValueError):
    """A blob path the extension would refuse (its message)."""


@dataclass(frozen=True)
class BlobPath:
    """A container and a blob name in it."""

    container: str
    name: str

    def __str__(self) -> str:
        return f"{self.container}/{self.name}" if self.name else self.container


# BlobNameValidationAttribute.IsValidContainerName (the odd character class is the extension's own).
_CONTAINER_NAME = re.compile(r"^[a-z0-9](([a-z0-9\-[^\-])){1,61}[a-z0-9]$")


def validate_container_name(name: str) -> None:
    """Raise :class:`BlobPathError` unless ``name`` is a valid container name (``$root`` is)."""
    if name != "$root" and not _CONTAINER_NAME.match(name):
        raise BlobPathError(f"Invalid container name: {name}")


def validate_blob_name(name: str) -> None:
    """Raise :class:`BlobPathError` with the extension's message unless ``name`` is a valid blob name."""
    if not name:
        raise BlobPathError(
            f"The given blob name '{name}' is too short. A blob name must be at least one character long "
            "and cannot be more than 1,024 characters long."
        )
    if len(name) > 1024:
        raise BlobPathError(
            f"The given blob name '{name}' is too long. A blob name must be at least one character long "
            "and cannot be more than 1,024 characters long."
        )
    if name.endswith((".", "/")):
        raise BlobPathError(
            f"The given blob name '{name}' has an invalid suffix. Avoid blob names that end with a dot ('.'), "
            "a forward slash ('/'), or a sequence or combination of the two."
        )
    if "\\" in name:
        raise BlobPathError(
            f"The given blob name '{name}' contain illegal characters. A blob name cannot the following "
            "character(s): '\\'."
        )


def _from_url(value: str) -> BlobPath | None:
    parts = urlsplit(value)
    if not parts.scheme or not parts.netloc:
        return None
    segments = parts.path.lstrip("/").split("/")
    host = parts.hostname or ""
    try:
        ipaddress.ip_address(host)
        path_style = True
    except ValueError:
        path_style = host == "localhost"
    if path_style:
        # IP-style URLs (Azurite) put the account name first.
        segments = segments[1:]
    if not segments or not segments[0]:
        return None
    return BlobPath(unquote(segments[0]), unquote("/".join(segments[1:])))


def parse_blob_path(value: str) -> BlobPath:
    """``container/blob`` (or an absolute blob URL) as the blob binding parses its bound ``path``.

    Raises:
        BlobPathError: The extension's message for the first rule broken.
    """
    from_url = _from_url(value)
    if from_url is not None:
        return from_url
    slash = value.find("/")
    if slash <= 0 or slash == len(value) - 1:
        raise BlobPathError(
            f"Invalid blob path specified : '{value}'. Blob identifiers must be in the format 'container/blob'."
        )
    path = BlobPath(value[:slash], value[slash + 1 :])
    validate_container_name(path.container)
    validate_blob_name(path.name)
    return path


_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


def decode_text(data: bytes) -> str:
    """Bytes read as .NET's default ``StreamReader`` does: a byte-order mark picks the encoding, else UTF-8;
    invalid sequences become U+FFFD."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return data[len(bom) :].decode(encoding, "replace")
    return data.decode("utf-8", "replace")


def _data_type(binding: Mapping[str, Any]) -> str:
    # The host parses dataType case-insensitively; the decorators write it upper-case.
    return str(binding.get("dataType") or "string").lower()


BlobWritten = Callable[[str, BlobPath], None]
"""Told the connection string and path of every blob an output binding wrote."""


class BlobBindings:
    """Reads ``blob`` inputs and writes ``blob`` outputs for the invokers, one client per storage account.

    Args:
        env: App settings (connection strings, ``%SETTING%`` references); the process environment by default.
        on_written: Called after each successful write; the host points it at the blob trigger listener,
            as the extension tells its blob-written watcher (``BlobCommittedAction``).
    """

    def __init__(self, env: Mapping[str, str] | None = None, on_written: BlobWritten | None = None) -> None:
        self._env = env
        self.on_written = on_written
        self._services: dict[str, BlobServiceClient] = {}

    def service(self, connection_string: str) -> BlobServiceClient:
        """The (shared) async client of a storage account."""
        client = self._services.get(connection_string)
        if client is None:
            client = BlobServiceClient.from_connection_string(connection_string)
            self._services[connection_string] = client
        return client

    def _target(self, binding: Mapping[str, Any], binding_data: Mapping[str, Any]) -> tuple[str, BlobPath]:
        owner = f"blob binding '{binding.get('name')}'"
        connection = resolve_connection_string(binding.get("connection"), function_name=owner, env=self._env)
        path = str(binding.get("path") or "")
        raw = resolve_setting_references(path, function_name=owner, what="path", env=self._env)
        return connection, parse_blob_path(bind(raw, binding_data))

    async def read(self, binding: Mapping[str, Any], binding_data: Mapping[str, Any]) -> Datum:
        """The value the host sends the worker for a ``blob`` input binding.

        Raises:
            BindingExpressionError: The path names binding data the invocation does not have.
            BlobPathError: The bound path is not a valid blob path.
        """
        connection, path = self._target(binding, binding_data)
        data_type = _data_type(binding)
        if data_type not in ("string", "binary"):
            return Datum(None, None)
        blob = self.service(connection).get_blob_client(path.container, path.name)
        try:
            downloader = await blob.download_blob()
            content = await downloader.readall()
        except ResourceNotFoundError:
            return Datum(None, None)
        return Datum(content, "bytes") if data_type == "binary" else Datum(decode_text(content), "string")

    async def write(self, binding: Mapping[str, Any], datum: Datum, binding_data: Mapping[str, Any]) -> None:
        """Write one ``blob`` output (``datum`` is what the worker returned for it).

        Raises:
            BindingExpressionError: The path names binding data the invocation does not have.
            BlobPathError: The bound path is not a valid blob path.
            TypeError: The value is of a kind the host cannot write to a blob.
        """
        connection, path = self._target(binding, binding_data)
        value = datum.value
        if datum.type in ("string", "json") and isinstance(value, str):
            content = value.encode("utf-8")
        elif datum.type == "bytes" and isinstance(value, bytes | bytearray):
            content = bytes(value)
        elif datum.type is None or value is None:
            return
        else:
            raise TypeError(f"a {datum.type!r} value cannot be written to the blob '{path}'")
        container = self.service(connection).get_container_client(path.container)
        try:
            await container.upload_blob(path.name, content, overwrite=True)
        except ResourceNotFoundError:
            with contextlib.suppress(ResourceExistsError):
                await container.create_container()
            await container.upload_blob(path.name, content, overwrite=True)
        if self.on_written is not None:
            self.on_written(connection, path)

    async def close(self) -> None:
        """Close every client."""
        for client in self._services.values():
            with contextlib.suppress(Exception):
                await client.close()
        self._services.clear()
