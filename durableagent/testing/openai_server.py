"""``python -m durableagent.testing.openai_server --port N``: the fake OpenAI server, standalone."""

from __future__ import annotations

import argparse
import json
import signal
import threading
from pathlib import Path

from ._openai_server import FakeOpenAIServer
from ._replies import Reply


def main() -> None:
    """Serve until SIGINT/SIGTERM; prints the base URL once listening."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--script-file", type=Path, help="JSON list of replies to queue")
    args = parser.parse_args()
    server = FakeOpenAIServer(port=args.port)
    if args.script_file:
        server.script(*(Reply.from_dict(item) for item in json.loads(args.script_file.read_text())))
    server.start_in_thread()
    print(server.base_url, flush=True)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    server.stop()


if __name__ == "__main__":
    main()
