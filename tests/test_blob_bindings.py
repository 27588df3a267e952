"""Blob input and output bindings: path parsing and validation, text decoding, reads and writes against Azurite."""

from __future__ import annotations

import asyncio
import codecs
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from azure.functions.meta import Datum
from azure.storage.blob import BlobServiceClient
from conftest import AzuriteInstance

from durableagent.devhost._binding_expressions import BindingData, BindingExpressionError
from durableagent.devhost._blob_bindings import (
    BlobBindings,
    BlobPath,
    BlobPathError,
    decode_text,
    parse_blob_path,
)

T = TypeVar("T")


def run(factory: Callable[[], Awaitable[T]]) -> T:
    async def main() -> T:
        return await factory()

    return asyncio.run(main())


def test_paths_are_container_slash_blob() -> None:
    assert parse_blob_path("docs/a/b/c.txt") == BlobPath("docs", "a/b/c.txt")
    assert parse_blob_path("$root/x") == BlobPath("$root", "x")
    assert str(BlobPath("docs", "a.txt")) == "docs/a.txt"


def test_absolute_blob_urls_name_their_container_and_blob() -> None:
    # Azurite's IP-style URLs put the account first; Azure's host-style ones do not.
    assert parse_blob_path("http://127.0.0.1:10000/devstoreaccount1/docs/a%20b.txt") == BlobPath("docs", "a b.txt")
    assert parse_blob_path("https://acct.blob.core.windows.net/docs/x/y.txt") == BlobPath("docs", "x/y.txt")


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("docs", "Invalid blob path specified : 'docs'. Blob identifiers must be in the format 'container/blob'."),
        ("docs/", "Invalid blob path specified : 'docs/'. Blob identifiers must be in the format 'container/blob'."),
        ("/a.txt", "Invalid blob path specified : '/a.txt'. Blob identifiers must be in the format 'container/blob'."),
        ("Docs/a.txt", "Invalid container name: Docs"),
        ("d/a.txt", "Invalid container name: d"),
        ("docs/a.", "The given blob name 'a.' has an invalid suffix."),
        ("docs/a\\b", "The given blob name 'a\\b' contain illegal characters."),
        ("docs/" + "x" * 1025, "is too long."),
    ],
)
def test_invalid_paths_fail_with_the_extensions_messages(path: str, message: str) -> None:
    with pytest.raises(BlobPathError) as info:
        parse_blob_path(path)
    assert message in str(info.value)


def test_text_is_decoded_as_a_dotnet_stream_reader_does() -> None:
    assert decode_text("héllo".encode()) == "héllo"
    assert decode_text(codecs.BOM_UTF8 + b"bom") == "bom"
    assert decode_text(codecs.BOM_UTF16_LE + "wide".encode("utf-16-le")) == "wide"
    assert decode_text(codecs.BOM_UTF16_BE + "wide".encode("utf-16-be")) == "wide"
    assert decode_text(codecs.BOM_UTF32_LE + "x".encode("utf-32-le")) == "x"
    assert decode_text(b"bad \xff byte") == "bad \ufffd byte"


@pytest.fixture
def container(azurite: AzuriteInstance) -> str:
    name = f"bind-{uuid.uuid4().hex[:12]}"
    BlobServiceClient.from_connection_string(azurite.connection_string).create_container(name)
    return name


def env(azurite: AzuriteInstance) -> dict[str, str]:
    return {"AzureWebJobsStorage": azurite.connection_string, "Other": azurite.connection_string}


def blob_binding(path: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "blob",
        "direction": "IN",
        "name": "doc",
        "path": path,
        "connection": "AzureWebJobsStorage",
        **extra,
    }


def test_an_input_reads_text_bytes_or_nothing_as_its_data_type_says(azurite: AzuriteInstance, container: str) -> None:
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    service.get_blob_client(container, "doc-1.txt").upload_blob(codecs.BOM_UTF8 + "déjà".encode())
    data = BindingData({"id": "1"})

    async def read_all() -> list[Datum]:
        bindings = BlobBindings(env(azurite))
        try:
            return [
                await bindings.read(blob_binding(f"{container}/doc-{{id}}.txt"), data),
                await bindings.read(blob_binding(f"{container}/doc-{{id}}.txt", dataType="STRING"), data),
                await bindings.read(blob_binding(f"{container}/doc-{{id}}.txt", dataType="BINARY"), data),
                await bindings.read(blob_binding(f"{container}/doc-{{id}}.txt", dataType="STREAM"), data),
                await bindings.read(blob_binding(f"{container}/missing.txt"), data),
                await bindings.read(blob_binding("no-such-container/doc.txt"), data),
            ]
        finally:
            await bindings.close()

    default, text, binary, stream, missing, no_container = run(read_all)
    assert (default.type, default.value) == ("string", "déjà")
    assert (text.type, text.value) == ("string", "déjà")
    assert (binary.type, binary.value) == ("bytes", codecs.BOM_UTF8 + "déjà".encode())
    # Azure/azure-functions-host#3995: dataType "stream" sends no value.
    for nothing in (stream, missing, no_container):
        assert (nothing.type, nothing.value) == (None, None)


def test_an_input_path_with_an_unknown_parameter_fails(azurite: AzuriteInstance, container: str) -> None:
    async def read() -> Datum:
        bindings = BlobBindings(env(azurite))
        try:
            return await bindings.read(blob_binding(f"{container}/{{nope}}.txt"), BindingData({"id": "1"}))
        finally:
            await bindings.close()

    with pytest.raises(BindingExpressionError, match=r"No value for named parameter 'nope'\."):
        run(read)


def test_an_output_creates_its_container_writes_text_as_utf8_and_reports_the_write(azurite: AzuriteInstance) -> None:
    target = f"out-{uuid.uuid4().hex[:12]}"
    written: list[tuple[str, BlobPath]] = []
    binding = {
        "type": "blob",
        "direction": "OUT",
        "name": "out",
        "path": f"{target}/{{name}}.out",
        "connection": "Other",
    }

    async def write() -> None:
        bindings = BlobBindings(env(azurite), on_written=lambda connection, path: written.append((connection, path)))
        try:
            await bindings.write(binding, Datum("é text", "string"), BindingData({"name": "a"}))
            await bindings.write(binding, Datum(b"\x00\xff", "bytes"), BindingData({"name": "b"}))
            await bindings.write(binding, Datum('{"k": 1}', "json"), BindingData({"name": "c"}))
            with pytest.raises(TypeError, match="cannot be written"):
                await bindings.write(binding, Datum(3, "int"), BindingData({"name": "d"}))
        finally:
            await bindings.close()

    run(write)
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    read = {name: service.get_blob_client(target, f"{name}.out").download_blob().readall() for name in "abc"}
    assert read == {"a": "é text".encode(), "b": b"\x00\xff", "c": b'{"k": 1}'}
    # "Other" resolves like any connection: the setting itself (or AzureWebJobsOther).
    assert written == [(azurite.connection_string, BlobPath(target, f"{name}.out")) for name in "abc"]
