"""In-process hints that a run's outcome may be in the entity state: they wake a waiting request early.

A client function cannot be told when an entity commits, so it polls the state with a back-off. When
the entity operation runs in the same worker process as the waiter (always on the local host, often
on one Functions instance), the entity says so as it returns, and the waiter looks again at once
instead of sleeping out its back-off. A hint is never the answer: the waiter still reads the
committed state, and without hints (another instance) it polls exactly as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator

_lock = threading.Lock()
_waiting: dict[tuple[str, str], list[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}


@contextlib.contextmanager
def watch(entity: str, correlation_id: str) -> Iterator[asyncio.Event]:
    """An event set when ``notify(entity, correlation_id)`` is called in this process (on the running loop)."""
    key = (entity, correlation_id)
    entry = (asyncio.get_running_loop(), asyncio.Event())
    with _lock:
        _waiting.setdefault(key, []).append(entry)
    try:
        yield entry[1]
    finally:
        with _lock:
            entries = _waiting.get(key, [])
            if entry in entries:
                entries.remove(entry)
            if not entries:
                _waiting.pop(key, None)


def notify(entity: str, correlation_id: str) -> None:
    """Wake whoever in this process waits for this run (from any thread); does nothing when nobody does."""
    with _lock:
        entries = list(_waiting.get((entity, correlation_id), ()))
    for loop, event in entries:
        with contextlib.suppress(RuntimeError):  # a loop that closed meanwhile has no waiter left
            loop.call_soon_threadsafe(event.set)


def waiting() -> int:
    """How many waits are registered (for tests)."""
    with _lock:
        return sum(len(entries) for entries in _waiting.values())


async def pause(woken: asyncio.Event | None, seconds: float) -> bool:
    """Sleep ``seconds``, cut short when ``woken`` is or gets set; whether it was (the caller clears it)."""
    if woken is None:
        await asyncio.sleep(seconds)
        return False
    try:
        await asyncio.wait_for(woken.wait(), seconds)
    except asyncio.TimeoutError:  # the builtin TimeoutError from 3.11; a distinct class on 3.10
        return False
    return True
