"""Azurite: recognising development storage, finding the executable, starting, stopping, persisting."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from azure.storage.queue.aio import QueueClient
from conftest import AzuriteInstance

from durableagent.devhost._azurite import (
    DEV_ACCOUNT_KEY,
    AzuriteNotFoundError,
    AzuritePorts,
    AzuriteProcess,
    AzuriteStartError,
    default_location,
    development_connection_string,
    development_storage_ports,
    find_azurite,
    is_development_storage,
    is_listening,
    parse_connection_string,
    start_azurite_if_needed,
)

FreePorts = Callable[[int], list[int]]


def test_use_development_storage_is_development_storage() -> None:
    assert development_storage_ports("UseDevelopmentStorage=true") == AzuritePorts(10000, 10001, 10002)
    assert is_development_storage("usedevelopmentstorage=TRUE;")
    assert not is_development_storage("UseDevelopmentStorage=false")


def test_devstoreaccount1_on_loopback_is_development_storage() -> None:
    ports = AzuritePorts(20000, 20001, 20002)
    assert development_storage_ports(development_connection_string(ports)) == ports
    localhost = (
        f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={DEV_ACCOUNT_KEY};"
        "QueueEndpoint=http://localhost:30001/devstoreaccount1"
    )
    # Endpoints not given keep Azurite's default ports.
    assert development_storage_ports(localhost) == AzuritePorts(10000, 30001, 10002)


def test_other_accounts_are_not_development_storage() -> None:
    assert not is_development_storage(
        "DefaultEndpointsProtocol=https;AccountName=prodaccount;AccountKey=abc==;EndpointSuffix=core.windows.net"
    )
    # The development account name without local endpoints resolves to Azure's hosts.
    assert not is_development_storage(
        f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={DEV_ACCOUNT_KEY}"
    )
    assert not is_development_storage(
        "AccountName=devstoreaccount1;AccountKey=x;QueueEndpoint=http://10.0.0.5:10001/devstoreaccount1"
    )
    assert not is_development_storage("")


def test_connection_string_parsing_keeps_key_padding() -> None:
    parts = parse_connection_string(f"AccountName=devstoreaccount1;AccountKey={DEV_ACCOUNT_KEY};")
    assert parts == {"accountname": "devstoreaccount1", "accountkey": DEV_ACCOUNT_KEY}


def test_connection_string_for_ports() -> None:
    text = development_connection_string(AzuritePorts(1, 2, 3))
    parts = parse_connection_string(text)
    assert parts["blobendpoint"] == "http://127.0.0.1:1/devstoreaccount1"
    assert parts["queueendpoint"] == "http://127.0.0.1:2/devstoreaccount1"
    assert parts["tableendpoint"] == "http://127.0.0.1:3/devstoreaccount1"
    assert parts["accountkey"] == DEV_ACCOUNT_KEY


def test_not_found_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(AzuriteNotFoundError) as info:
        find_azurite(tmp_path, path="", extra_dirs=())
    message = str(info.value)
    assert "npm ci" in message and "npm install" in message
    assert "npm install -g azurite@3.37.0" in message
    assert str(tmp_path / "node_modules" / ".bin") in message


def test_found_in_node_modules_of_a_parent(tmp_path: Path) -> None:
    bin_dir = tmp_path / "node_modules" / ".bin"
    bin_dir.mkdir(parents=True)
    fake = bin_dir / "azurite"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    app = tmp_path / "apps" / "mine"
    app.mkdir(parents=True)
    assert find_azurite(app, path="", extra_dirs=()) == [str(fake)]


def test_found_on_path_first(tmp_path: Path) -> None:
    on_path = tmp_path / "bin"
    on_path.mkdir()
    fake = on_path / "azurite"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    assert find_azurite(tmp_path / "elsewhere", path=str(on_path), extra_dirs=()) == [str(fake)]


def test_the_repository_install_is_found_by_default() -> None:
    command = find_azurite(None, path="")
    assert command[-1].endswith("azurite.js") and Path(command[0]).name.startswith("node")


def test_start_and_stop_frees_the_ports(tmp_path: Path, free_ports: FreePorts) -> None:
    ports = AzuritePorts(*free_ports(3))
    process = AzuriteProcess(tmp_path / "azurite", ports=ports, in_memory=True, startup_timeout=30)
    with process:
        assert process.running and process.pid is not None
        assert all(is_listening(port) for port in ports)
        pid = process.pid
    assert not process.running
    assert not any(is_listening(port) for port in ports)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    process.stop()  # idempotent


def test_busy_port_is_reported(tmp_path: Path, free_ports: FreePorts) -> None:
    ports = AzuritePorts(*free_ports(3))
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", ports.queue))
        squatter.listen()
        with pytest.raises(AzuriteStartError, match=str(ports.queue)):
            AzuriteProcess(tmp_path, ports=ports, in_memory=True).start()


def test_data_survives_a_restart(tmp_path: Path, free_ports: FreePorts) -> None:
    ports = AzuritePorts(*free_ports(3))
    location = default_location(tmp_path)
    assert location == tmp_path / ".durableagent" / "azurite"

    async def put(connection_string: str) -> None:
        async with QueueClient.from_connection_string(connection_string, "kept") as client:
            await client.create_queue()
            await client.send_message("still here")

    async def get(connection_string: str) -> list[str]:
        async with QueueClient.from_connection_string(connection_string, "kept") as client:
            return [str(m.content) for m in await client.peek_messages()]

    with AzuriteProcess(location, ports=ports) as first:
        asyncio.run(put(first.connection_string))
    assert any(location.iterdir())
    with AzuriteProcess(location, ports=ports) as second:
        assert asyncio.run(get(second.connection_string)) == ["still here"]


def test_start_if_needed(azurite: AzuriteInstance, tmp_path: Path) -> None:
    # Not development storage: nothing to do.
    assert start_azurite_if_needed("AccountName=prod;AccountKey=k;EndpointSuffix=core.windows.net", tmp_path) is None
    # Already served (by the session's Azurite): nothing to do.
    assert start_azurite_if_needed(azurite.connection_string, tmp_path) is None


def test_start_if_needed_starts_one(tmp_path: Path, free_ports: FreePorts) -> None:
    ports = AzuritePorts(*free_ports(3))
    process = start_azurite_if_needed(development_connection_string(ports), tmp_path, in_memory=True)
    assert process is not None
    try:
        assert process.ports == ports and all(is_listening(p) for p in ports)
    finally:
        process.stop()
