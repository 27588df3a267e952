"""Azurite for the local host: recognise development storage, find Azurite, run it, stop it.

``func start`` leaves Azurite to the user; we start it ourselves when the app's storage connection
string points at development storage and nothing listens there yet, so ``durableagent start`` works
with no other terminal open. Flags follow azure-conventions.md §4: ``--skipApiVersionCheck`` because
the current storage SDKs send API versions Azurite rejects, ``--disableTelemetry`` because Azurite
otherwise tries to reach the internet, and ``--silent`` to keep the access log out of ours.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit

__all__ = [
    "AZURITE_VERSION",
    "DEV_ACCOUNT_KEY",
    "DEV_ACCOUNT_NAME",
    "AzuriteError",
    "AzuriteNotFoundError",
    "AzuritePorts",
    "AzuriteProcess",
    "AzuriteStartError",
    "default_location",
    "development_connection_string",
    "development_storage_ports",
    "find_azurite",
    "is_development_storage",
    "is_listening",
    "parse_connection_string",
    "start_azurite_if_needed",
]

AZURITE_VERSION = "3.37.0"
"""The version the project pins in package.json; named in the install hint."""

DEV_ACCOUNT_NAME = "devstoreaccount1"
# Azurite's well-known development account key; public, and the same on every machine.
DEV_ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_POLL_SECONDS = 0.05
_KILL = getattr(signal, "SIGKILL", signal.SIGTERM)  # Windows has no SIGKILL; kill() is used there


class AzuriteError(RuntimeError):
    """Azurite could not be provided."""


class AzuriteNotFoundError(AzuriteError):
    """No Azurite executable (or no Node.js to run it) was found."""

    def __init__(self, searched: Sequence[str], detail: str = "") -> None:
        self.searched = tuple(searched)
        where = "\n".join(f"  - {place}" for place in self.searched)
        super().__init__(
            (detail or "Azurite (the local Azure Storage emulator) was not found.")
            + f"\nLooked on PATH and in:\n{where}\n"
            "Install it with `npm ci` (or `npm install`) in the project directory, which installs the "
            f"version pinned in package.json, or globally with `npm install -g azurite@{AZURITE_VERSION}`. "
            "Azurite needs Node.js."
        )


class AzuriteStartError(AzuriteError):
    """Azurite was found but did not come up."""


@dataclass(frozen=True)
class AzuritePorts:
    """The three ports Azurite serves (its defaults unless given)."""

    blob: int = 10000
    queue: int = 10001
    table: int = 10002

    def __iter__(self) -> Iterator[int]:
        return iter((self.blob, self.queue, self.table))


def parse_connection_string(connection_string: str) -> dict[str, str]:
    """Split ``Key=Value;...`` into a dict with lower-cased keys (storage keys are case-insensitive).

    Values keep any ``=`` they contain (account keys end in ``==``).
    """
    parts: dict[str, str] = {}
    for segment in connection_string.split(";"):
        key, sep, value = segment.partition("=")
        if sep and key.strip():
            parts[key.strip().lower()] = value.strip()
    return parts


def development_storage_ports(connection_string: str) -> AzuritePorts | None:
    """The Azurite ports a connection string points at, or ``None`` if it is not development storage.

    Development storage is ``UseDevelopmentStorage=true``, or the ``devstoreaccount1`` account with its
    endpoints on 127.0.0.1/localhost. An account with no explicit endpoints resolves to Azure's own
    hosts, so it is not local whatever its name.
    """
    parts = parse_connection_string(connection_string)
    if parts.get("usedevelopmentstorage", "").lower() == "true":
        return AzuritePorts()
    if parts.get("accountname") != DEV_ACCOUNT_NAME:
        return None
    defaults = AzuritePorts()
    ports: dict[str, int] = {}
    for service, default in (("blob", defaults.blob), ("queue", defaults.queue), ("table", defaults.table)):
        endpoint = parts.get(f"{service}endpoint")
        if endpoint is None:
            ports[service] = default
            continue
        url = urlsplit(endpoint)
        if url.hostname not in _LOOPBACK_HOSTS:
            return None
        ports[service] = url.port or default
    if not any(f"{service}endpoint" in parts for service in ("blob", "queue", "table")):
        return None
    return AzuritePorts(**ports)


def is_development_storage(connection_string: str) -> bool:
    """Whether a storage connection string points at a local Azurite."""
    return development_storage_ports(connection_string) is not None


def development_connection_string(ports: AzuritePorts | None = None, host: str = "127.0.0.1") -> str:
    """A connection string for Azurite's development account on the given ports."""
    ports = ports or AzuritePorts()
    account = DEV_ACCOUNT_NAME
    return (
        f"DefaultEndpointsProtocol=http;AccountName={account};AccountKey={DEV_ACCOUNT_KEY};"
        f"BlobEndpoint=http://{host}:{ports.blob}/{account};"
        f"QueueEndpoint=http://{host}:{ports.queue}/{account};"
        f"TableEndpoint=http://{host}:{ports.table}/{account};"
    )


def is_listening(port: int, host: str = "127.0.0.1", timeout: float = 0.25) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def default_location(app_dir: Path) -> Path:
    """Where the host keeps Azurite's data for an app: ``<app>/.durableagent/azurite``."""
    return Path(app_dir) / ".durableagent" / "azurite"


def _package_repo_dir() -> Path:
    # durableagent/devhost/_azurite.py -> the checkout (or site-packages) holding durableagent/.
    return Path(__file__).resolve().parents[2]


def find_azurite(
    app_dir: Path | None = None,
    *,
    path: str | None = None,
    extra_dirs: Sequence[Path] | None = None,
) -> list[str]:
    """The command that runs Azurite.

    Looks on ``PATH``, then for ``node_modules/.bin/azurite`` in ``app_dir`` and each of its parents,
    then in ``extra_dirs`` (by default the directory holding the ``durableagent`` package, i.e. this
    repository when it is checked out).

    Args:
        app_dir: The function app's directory.
        path: The search path to use instead of ``PATH`` (tests pass ``""``).
        extra_dirs: Directories to try after the app's; ``()`` for none.

    Returns:
        An argv prefix: ``[azurite]``, or ``[node, azurite.js]`` for an npm-installed script, so it
        also runs where shebangs do not (Windows).

    Raises:
        AzuriteNotFoundError: Azurite (or the Node.js it needs) is not installed anywhere we look.
    """
    search_path = os.environ.get("PATH", "") if path is None else path
    found = shutil.which("azurite", path=search_path) if search_path else None
    searched: list[str] = []
    if found is None:
        roots: list[Path] = []
        if app_dir is not None:
            start = Path(app_dir).resolve()
            roots.extend([start, *start.parents])
        roots.extend([_package_repo_dir()] if extra_dirs is None else [Path(d) for d in extra_dirs])
        names = ("azurite.cmd", "azurite") if sys.platform == "win32" else ("azurite",)
        for root in dict.fromkeys(roots):
            bin_dir = root / "node_modules" / ".bin"
            searched.append(str(bin_dir))
            candidate = next((bin_dir / n for n in names if (bin_dir / n).is_file()), None)
            if candidate is not None:
                found = str(candidate)
                break
    if found is None:
        raise AzuriteNotFoundError(searched)
    target = Path(found).resolve()
    if target.suffix != ".js":
        return [found]
    node = shutil.which("node", path=search_path) if search_path else None
    node = node or shutil.which("node")
    if node is None:
        raise AzuriteNotFoundError(searched, f"Azurite is installed at {found}, but Node.js (`node`) was not found.")
    return [node, str(target)]


class AzuriteProcess:
    """One Azurite child process, serving blob, queue and table on 127.0.0.1.

    Use as a context manager, or call :meth:`start` and :meth:`stop`. A started process is also
    stopped when the interpreter exits, so a crashed host does not leave it holding the ports.

    Args:
        location: Azurite's workspace (``--location``; its working directory when ``in_memory``);
            created if missing. The log goes to ``azurite.log`` inside it.
        ports: The ports to serve; tests pass free ones.
        host: The address to listen on; loopback only, by default.
        in_memory: ``--inMemoryPersistence``: keep nothing on disk (tests).
        command: The argv prefix that runs Azurite; found with :func:`find_azurite` when omitted.
        app_dir: Where :func:`find_azurite` starts looking.
        startup_timeout: Seconds to wait for the ports to accept connections.
        stop_grace: Seconds between SIGTERM and SIGKILL when stopping.
    """

    def __init__(
        self,
        location: Path,
        *,
        ports: AzuritePorts | None = None,
        host: str = "127.0.0.1",
        in_memory: bool = False,
        command: Sequence[str] | None = None,
        app_dir: Path | None = None,
        startup_timeout: float = 30.0,
        stop_grace: float = 5.0,
    ) -> None:
        self.location = Path(location)
        self.ports = ports or AzuritePorts()
        self.host = host
        self.in_memory = in_memory
        self._command = list(command) if command is not None else None
        self._app_dir = app_dir
        self._startup_timeout = startup_timeout
        self._stop_grace = stop_grace
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def connection_string(self) -> str:
        """The development-account connection string for this instance's ports."""
        return development_connection_string(self.ports, self.host)

    @property
    def log_path(self) -> Path:
        """Where Azurite's console output goes."""
        return self.location / "azurite.log"

    @property
    def pid(self) -> int | None:
        """The process id while running."""
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        """Whether the child process is alive."""
        return self._process is not None and self._process.poll() is None

    def argv(self) -> list[str]:
        """The full command line :meth:`start` runs."""
        command = self._command if self._command is not None else find_azurite(self._app_dir)
        args = [
            *command,
            "--blobHost", self.host, "--blobPort", str(self.ports.blob),
            "--queueHost", self.host, "--queuePort", str(self.ports.queue),
            "--tableHost", self.host, "--tablePort", str(self.ports.table),
            "--skipApiVersionCheck", "--disableTelemetry", "--silent",
        ]  # fmt: skip
        # Azurite refuses --location together with --inMemoryPersistence; it still runs in location.
        args += ["--inMemoryPersistence"] if self.in_memory else ["--location", str(self.location)]
        return args

    def start(self) -> None:
        """Start Azurite and wait until all three ports accept connections.

        Raises:
            AzuriteNotFoundError: Azurite is not installed.
            AzuriteStartError: A port is taken already, or Azurite exited or did not listen in time.
        """
        if self.running:
            return
        argv = self.argv()
        busy = [port for port in self.ports if is_listening(port, self.host)]
        if busy:
            raise AzuriteStartError(
                f"Cannot start Azurite: port(s) {', '.join(map(str, busy))} on {self.host} are already in use"
            )
        self.location.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            # A group of its own: Ctrl+C in the terminal reaches the host, which stops Azurite in
            # order, and stop() can signal npm/npx wrappers and node together.
            if sys.platform == "win32":
                self._process = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.location,
                    creationflags=subprocess.CREATE_NEW_PROCESS_GROUP,
                )
            else:
                self._process = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.location,
                    start_new_session=True,
                )
        atexit.register(self.stop)
        try:
            self._wait_until_listening()
        except BaseException:
            self.stop()
            raise

    def _wait_until_listening(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self._startup_timeout
        while True:
            if self._process.poll() is not None:
                raise AzuriteStartError(
                    f"Azurite exited with code {self._process.returncode} during start-up.\n" + self._log_tail()
                )
            if all(is_listening(port, self.host) for port in self.ports):
                return
            if time.monotonic() > deadline:
                raise AzuriteStartError(
                    f"Azurite did not listen on {self.host} ports {tuple(self.ports)} within "
                    f"{self._startup_timeout:.0f} s.\n{self._log_tail()}"
                )
            time.sleep(_POLL_SECONDS)

    def _log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no Azurite log)"
        return "Azurite log:\n" + "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """Stop Azurite: SIGTERM to its process group, SIGKILL after ``stop_grace`` seconds. Idempotent."""
        process, self._process = self._process, None
        atexit.unregister(self.stop)
        if process is None:
            return
        if process.poll() is None:
            _signal_group(process, signal.SIGTERM)
            try:
                process.wait(timeout=self._stop_grace)
            except subprocess.TimeoutExpired:
                _signal_group(process, _KILL)
                process.wait(timeout=self._stop_grace)
        # The leader is gone; children that outlived it (npx wrappers) still share its group.
        _signal_group(process, _KILL)

    def __enter__(self) -> AzuriteProcess:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_azurite_if_needed(
    connection_string: str,
    app_dir: Path,
    *,
    location: Path | None = None,
    in_memory: bool = False,
) -> AzuriteProcess | None:
    """Start Azurite for an app whose storage is development storage and not yet served.

    Returns:
        The started process (the caller stops it), or ``None`` when the connection string is not
        development storage or an Azurite (or anything else) already serves all its ports.

    Raises:
        AzuriteNotFoundError: It is needed but not installed.
        AzuriteStartError: Some of its ports are served by something else, or it failed to start.
    """
    ports = development_storage_ports(connection_string)
    if ports is None:
        return None
    busy = [port for port in ports if is_listening(port)]
    if len(busy) == 3:
        return None
    if busy:
        raise AzuriteStartError(
            f"Development storage needs ports {tuple(ports)}, but only {busy} answer; another program "
            "may hold them. Stop it, or start Azurite yourself."
        )
    process = AzuriteProcess(location or default_location(app_dir), ports=ports, in_memory=in_memory, app_dir=app_dir)
    process.start()
    return process


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError, OSError):
        if sys.platform == "win32":
            if sig == signal.SIGTERM:
                process.terminate()
            else:
                process.kill()
        else:
            # start_new_session made the child the leader of a group whose id is its pid.
            os.killpg(process.pid, sig)
