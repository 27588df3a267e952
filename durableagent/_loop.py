"""One long-lived event loop per worker process for agent coroutines.

Entity functions are synchronous in the Python SDK and run on worker threads; agents are async.
Async clients (httpx inside ``openai``) are bound to the loop they were first used on, so every
agent call must run on the same loop: a background thread owns it for the life of the process.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None


def _get_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _lock:
        if _loop is None or _loop.is_closed():
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="durableagent-agents", daemon=True)
            thread.start()
            _loop = loop
        return _loop


def run_coroutine(coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
    """Run ``coro`` on the shared agent loop and wait for its result from a worker thread.

    Must not be called from the shared loop itself (it would deadlock).
    """
    loop = _get_loop()
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        raise RuntimeError("run_coroutine called from the agent loop itself")
    future = asyncio.run_coroutine_threadsafe(coro, loop)
    return future.result(timeout)
