"""Command line: ``durableagent start`` and ``python -m durableagent.devhost``."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from ._app_loader import AppLoadError
from ._azurite import AzuriteError
from ._host import AUTO_WORKER, WORKER_CHOICES, Host, HostOptions, HostStartError
from ._invoker import FunctionLoadError
from ._logging import ConsoleFormatter
from ._settings import HostConfigError

_log = logging.getLogger("durableagent.devhost")


def _add_start_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--app-dir", default=".", type=Path, help="the function app directory (default: .)")
    parser.add_argument("--port", default=7071, type=int, help="HTTP port (default: 7071)")
    parser.add_argument("--bind", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--verbose", action="store_true", help="debug logging")
    parser.add_argument(
        "--enforce-keys",
        action="store_true",
        help="require function keys for non-anonymous HTTP functions (func start does not)",
    )
    parser.add_argument("--no-azurite", action="store_true", help="never start Azurite, even for development storage")
    parser.add_argument(
        "--worker",
        choices=WORKER_CHOICES,
        default=AUTO_WORKER,
        help="who loads and invokes functions: 'runtime' is the Python worker library Azure runs on 3.13+ "
        "(azure-functions-runtime), 'builtin' is the host's own invoker; 'auto' (default) picks runtime "
        "where it is installed",
    )


def build_parser(prog: str, *, with_subcommand: bool) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Run an Azure Functions app on the local host.")
    if with_subcommand:
        commands = parser.add_subparsers(dest="command", required=True)
        _add_start_options(commands.add_parser("start", help="run the function app in --app-dir"))
    else:
        _add_start_options(parser)
    return parser


async def _serve(options: HostOptions) -> int:
    host = Host(options)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await host.start()
    except (AppLoadError, FunctionLoadError, HostStartError, HostConfigError, AzuriteError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        await host.stop()
        return 1
    for line in host.describe_functions():
        print(line)
    print(f"Host started on http://localhost:{options.port} (task hub state in {host.state_dir})", flush=True)
    settle_heap()
    await stop.wait()
    print("Stopping the host...", flush=True)
    await host.stop()
    return 0


def settle_heap() -> None:
    """Collect once, then freeze what survives: the modules, the app and the host live as long as the process.

    A full collection otherwise walks all of them again each time, 30-40 ms with the GIL held every few
    hundred turns under load, stalling every request in flight. Only this process's own entry point
    does it: the process is the host's for its whole life (tests that start hosts in process do not).
    """
    gc.collect()
    gc.freeze()


def run(argv: Sequence[str] | None, *, prog: str, with_subcommand: bool) -> int:
    args = build_parser(prog, with_subcommand=with_subcommand).parse_args(argv)
    console = logging.StreamHandler()
    console.setFormatter(
        ConsoleFormatter("[%(asctime)s] %(message)s" if not args.verbose else "[%(asctime)s] %(name)s: %(message)s")
    )
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, handlers=[console])
    if not args.verbose:
        for noisy in ("azure", "aiohttp.access", "asyncio"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    options = HostOptions(
        app_dir=args.app_dir,
        port=args.port,
        bind=args.bind,
        enforce_keys=args.enforce_keys,
        start_azurite=not args.no_azurite,
        worker=args.worker,
        verbose=args.verbose,
    )
    return asyncio.run(_serve(options))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``durableagent`` console script."""
    return run(argv, prog="durableagent", with_subcommand=True)


def main_exit() -> None:
    """Console-script wrapper: exit with :func:`main`'s status."""
    sys.exit(main())
