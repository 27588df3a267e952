"""Run the fake OpenAI server standalone: ``python -m durableagent.testing.openai_server --port N``.

Prints the base URL (``http://127.0.0.1:<port>/v1``) on one line once it listens, then serves
until SIGINT or SIGTERM. Azure OpenAI clients take the server root (the URL without ``/v1``) as
their endpoint. Program it from another process with ``POST /_script`` (or
``RemoteFakeOpenAIServer``); ``--script-file`` queues a JSON list of replies at start.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from ._openai_server import FakeOpenAIServer
from ._replies import Reply


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m durableagent.testing.openai_server", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (default: a free one)")
    parser.add_argument("--script-file", type=Path, help="JSON list of replies to queue at start")
    parser.add_argument("--api-key", help="require this key: bearer on /v1, api-key on Azure routes (default: any)")
    parser.add_argument("--azure-ad-token", help="on Azure routes, also accept this bearer token")
    return parser


async def _serve(server: FakeOpenAIServer) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        print(server.base_url, flush=True)
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, queue the script file, serve; returns the exit status."""
    args = _parser().parse_args(argv)
    server = FakeOpenAIServer(port=args.port, host=args.host, api_key=args.api_key, azure_ad_token=args.azure_ad_token)
    if args.script_file is not None:
        try:
            items = json.loads(args.script_file.read_text(encoding="utf-8"))
            if not isinstance(items, list):
                raise ValueError("the script file holds a JSON list of replies")
            server.script(*(Reply.from_dict(item) for item in items))
        except (OSError, ValueError) as exc:
            print(f"error: --script-file {args.script_file}: {exc}", file=sys.stderr)
            return 2
    asyncio.run(_serve(server))
    return 0


if __name__ == "__main__":
    sys.exit(main())
