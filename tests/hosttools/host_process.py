"""Run the local host as a real subprocess on a real port, as a user would, for end-to-end tests."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from durableagent.devhost._host import free_port

REPO = Path(__file__).resolve().parents[2]


class HostProcess:
    """``python -m durableagent.devhost`` for one app directory.

    Args:
        app_dir: The function app (copied in by the caller; state goes to ``app_dir/.durableagent``).
        env: Extra environment (e.g. ``AzureWebJobsStorage`` pointing at the test Azurite).
        port: The HTTP port; a free one by default.
        extra_args: More CLI arguments (e.g. ``--enforce-keys``).
        python: The interpreter to run the host with (another venv's); this test run's by default.
        cwd: The host's working directory; the checkout by default, whose ``durableagent`` then comes
            first on ``sys.path`` (``-m`` puts the working directory there).
    """

    def __init__(
        self,
        app_dir: Path,
        env: Mapping[str, str] | None = None,
        port: int | None = None,
        extra_args: list[str] | None = None,
        python: str | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.app_dir = app_dir
        self.python = python or sys.executable
        self.cwd = cwd or REPO
        self.port = port or free_port()
        self.env = {**os.environ, **(env or {})}
        self.env.setdefault("PYTHONUNBUFFERED", "1")
        self.extra_args = extra_args or []
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = app_dir / f"host-{self.port}.log"
        self._log_handle: Any = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> HostProcess:
        self._log_handle = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [
                self.python,
                "-m",
                "durableagent.devhost",
                "--app-dir",
                str(self.app_dir),
                "--port",
                str(self.port),
                "--no-azurite",
                *self.extra_args,
            ],
            cwd=str(self.cwd),
            env=self.env,
            stdout=self._log_handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"host exited with {self.process.returncode}:\n{self.log()}")
            try:
                urllib.request.urlopen(f"{self.base_url}/durabletask/instances/?top=1", timeout=1).close()
                return self
            except urllib.error.HTTPError:
                # Any HTTP answer means it serves (with --enforce-keys the RPC endpoint answers 401).
                return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.05)
        raise RuntimeError(f"host did not start within {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL, no clean-up: what a crash looks like."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        self._close_log()

    def stop(self, timeout: float = 20.0) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._close_log()

    def _close_log(self) -> None:
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None

    def __enter__(self) -> HostProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # Plain HTTP helpers (urllib: no event loop needed in tests) -------------------------------------

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 30.0,
    ) -> tuple[int, dict[str, str], bytes]:
        data: bytes | None = None
        all_headers = dict(headers or {})
        if isinstance(body, bytes):
            data = body
        elif body is not None:
            data = json.dumps(body).encode()
            all_headers.setdefault("Content-Type", "application/json")
        req = urllib.request.Request(self.base_url + path, data=data, method=method, headers=all_headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers), err.read()

    def management_headers(self) -> dict[str, str]:
        """Headers that open the management API: the durabletask_extension key when keys are enforced."""
        if "--enforce-keys" not in self.extra_args:
            return {}
        keys = json.loads((self.app_dir / ".durableagent" / "keys.json").read_text())
        return {"x-functions-key": keys["systemKeys"]["durabletask_extension"]}

    def status(self, instance_id: str) -> dict[str, Any] | None:
        code, _, body = self.request("GET", f"/durabletask/instances/{instance_id}", headers=self.management_headers())
        return json.loads(body) if code in (200, 202) else None

    def wait_for(
        self, instance_id: str, timeout: float = 60.0, done: Callable[[dict[str, Any]], bool] | None = None
    ) -> dict[str, Any]:
        """Poll until the instance is terminal (or ``done`` says so); returns its status."""
        check = done or (lambda s: s["runtimeStatus"] in ("Completed", "Failed", "Terminated", "Canceled"))
        deadline = time.monotonic() + timeout
        last: dict[str, Any] | None = None
        while time.monotonic() < deadline:
            last = self.status(instance_id)
            if last is not None and check(last):
                return last
            time.sleep(0.05)
        tail = self.log()[-4000:]
        raise AssertionError(f"instance {instance_id} not done after {timeout}s: {last}\n{tail}")


def copy_app(source: Path, destination: Path) -> Path:
    """Copy an app directory (without its state) so each test owns its task hub."""
    shutil.copytree(source, destination, ignore=shutil.ignore_patterns(".durableagent", "__pycache__"))
    return destination


def assert_eventually(check: Callable[[], bool], timeout: float = 30.0, message: str = "") -> None:
    """Poll ``check`` until it is true; fail with ``message`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(message or "condition not met in time")


@contextlib.contextmanager
def root_app_host(azurite: Any, model_env: Mapping[str, str], app_dir: Path, hub: str) -> Iterator[HostProcess]:
    """The repository's own ``function_app.py`` on the local host; ``model_env`` picks its model (the fake
    OpenAI server's environment, Azure's, or ``{"OPENAI_API_KEY": ""}`` for the offline one) and wins."""
    app_dir.mkdir(parents=True)
    for name in ("function_app.py", "host.json", "local.settings.sample.json"):
        shutil.copy(REPO / name, app_dir / name)
    env = {
        "AzureWebJobsStorage": azurite.connection_string,
        "TASKHUB_NAME": hub,
        "AZURE_OPENAI_ENDPOINT": "",
        **model_env,
        "NO_PROXY": "127.0.0.1,localhost",
        "PYTHONPATH": str(REPO),
    }
    with HostProcess(app_dir, env=env) as proc:
        yield proc
