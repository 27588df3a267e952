"""Shared fixtures: a real Azurite for the session, a fake OpenAI server per module, and free local ports."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from durableagent.devhost._azurite import AzuritePorts, AzuriteProcess
from durableagent.testing import FakeOpenAIServer


def _free_ports(count: int) -> list[int]:
    """Ports nothing listens on right now (held open together so they are distinct)."""
    with contextlib.ExitStack() as stack:
        sockets = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]


@pytest.fixture
def free_ports() -> Callable[[int], list[int]]:
    """A function returning that many currently unused 127.0.0.1 ports."""
    return _free_ports


@dataclass(frozen=True)
class AzuriteInstance:
    """A running Azurite the tests share."""

    process: AzuriteProcess
    ports: AzuritePorts
    location: Path

    @property
    def connection_string(self) -> str:
        return self.process.connection_string

    @property
    def blob_port(self) -> int:
        return self.ports.blob

    @property
    def queue_port(self) -> int:
        return self.ports.queue

    @property
    def table_port(self) -> int:
        return self.ports.table


@contextlib.contextmanager
def running_azurite(location: Path) -> Iterator[AzuriteInstance]:
    """An Azurite on free ports, in memory, started through the host's own code; stopped on exit."""
    ports = AzuritePorts(*_free_ports(3))
    process = AzuriteProcess(location, ports=ports, in_memory=True)
    process.start()
    try:
        yield AzuriteInstance(process, ports, location)
    finally:
        process.stop()


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzuriteInstance]:
    """Azurite for the whole session."""
    with running_azurite(tmp_path_factory.mktemp("azurite")) as instance:
        yield instance


@pytest.fixture
def own_azurite(tmp_path: Path) -> Iterator[AzuriteInstance]:
    """An Azurite of one test's own: for a test that must see only its own queues or blobs."""
    with running_azurite(tmp_path / "azurite") as instance:
        yield instance


@pytest.fixture(scope="module")
def model() -> Iterator[FakeOpenAIServer]:
    """A fake OpenAI server (the real ``openai`` client talks HTTP to it) for one module's tests; a module
    that needs another kind (a responder, Azure keys) defines its own ``model``."""
    with FakeOpenAIServer() as server:
        yield server
