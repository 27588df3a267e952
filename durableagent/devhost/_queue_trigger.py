"""Queue triggers: poll an Azure Storage queue and run a function per message, as the Functions host does.

Semantics ported from the WebJobs storage-queue extension (``QueueListener``, ``QueueProcessor``):

- poll with exponential back-off from 100 ms to ``maxPollingInterval`` while the queue is empty;
- lease each message for 10 minutes and renew the lease at half-time while the function runs;
- ``messageEncoding: base64`` (the default) decodes the body before delivery. A body that is not base64
  cannot be decoded, and the host moves it straight to the poison queue; so do we, with the reason
  logged, rather than hand the function bytes it was never meant to see;
- delete on success; on failure release the message after ``visibilityTimeout``, or, once its dequeue
  count reaches ``maxDequeueCount``, copy its original text to ``<queue>-poison`` and delete it. A
  message received with a dequeue count already above the limit (the host crashed mid-run) goes
  straight to the poison queue;
- run at most ``batchSize`` functions at once, fetching again when the number running falls to
  ``newBatchThreshold``. (The host allows ``batchSize + newBatchThreshold``; we keep to ``batchSize``.)
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Literal, Protocol

from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.storage.queue import QueueMessage
from azure.storage.queue.aio import QueueClient

from ._functions import QUEUE_TRIGGER, IndexedFunction
from ._trigger_input import InvokeTrigger, TriggerInput, resolve_setting_references

__all__ = [
    "DEFAULT_CONNECTION",
    "MessageEncoding",
    "QueueListener",
    "QueueOptions",
    "QueuePump",
    "QueueSettings",
    "resolve_connection_string",
    "send_queue_messages",
]

logger = logging.getLogger("durableagent.devhost.queue")

DEFAULT_CONNECTION = "AzureWebJobsStorage"
POISON_SUFFIX = "-poison"
MessageEncoding = Literal["base64", "none"]

_MIN_POLLING_SECONDS = 0.1
_MAX_BATCH = 32  # the most messages Get Messages returns in one call
# Azure queue names: 3-63 chars of lower-case letters, digits and single hyphens, no hyphen at the ends.
_QUEUE_NAME = re.compile(r"^(?=.{3,63}$)[a-z0-9](?:[a-z0-9]|-(?!-))*[a-z0-9]$")
# .NET's Convert.FromBase64String skips these; Python's strict decoder does not.
_BASE64_WHITESPACE = re.compile(r"[ \t\r\n]")


class QueueSettings(Protocol):
    """What a listener reads of host.json ``extensions.queues``.

    :class:`QueueOptions` has this shape, and so does the host's parsed ``host.json`` section, which
    can be passed as it is.
    """

    @property
    def batch_size(self) -> int: ...
    @property
    def new_batch_threshold(self) -> int | None: ...
    @property
    def max_dequeue_count(self) -> int: ...
    @property
    def visibility_timeout(self) -> timedelta: ...
    @property
    def max_polling_interval(self) -> timedelta: ...
    @property
    def message_encoding(self) -> str: ...


@dataclass(frozen=True)
class QueueOptions:
    """host.json ``extensions.queues`` with the Storage Queues extension's defaults.

    Attributes:
        batch_size: Most functions running at once per queue (1-32).
        new_batch_threshold: Fetch more when this few are running; ``None`` means ``batch_size // 2``.
        max_dequeue_count: Attempts before a message moves to the poison queue.
        visibility_timeout: How long a failed message stays invisible before its retry.
        max_polling_interval: Longest wait between polls of an empty queue.
        message_encoding: ``base64`` (decode bodies, encode outputs) or ``none``.
    """

    batch_size: int = 16
    new_batch_threshold: int | None = None
    max_dequeue_count: int = 5
    visibility_timeout: timedelta = timedelta(0)
    max_polling_interval: timedelta = timedelta(minutes=1)
    message_encoding: MessageEncoding = "base64"


@dataclass(frozen=True)
class _Limits:
    """Checked, effective values of a :class:`QueueSettings`."""

    batch_size: int
    threshold: int
    max_dequeue_count: int
    visibility_timeout: int  # whole seconds, as the queue service takes them
    max_polling_interval: float
    message_encoding: MessageEncoding

    @classmethod
    def of(cls, options: QueueSettings) -> _Limits:
        if not 1 <= options.batch_size <= _MAX_BATCH:
            raise ValueError(f"queues.batchSize must be between 1 and {_MAX_BATCH}, not {options.batch_size}")
        threshold = options.batch_size // 2 if options.new_batch_threshold is None else options.new_batch_threshold
        if threshold < 0:
            raise ValueError("queues.newBatchThreshold must not be negative")
        if options.max_dequeue_count < 1:
            raise ValueError("queues.maxDequeueCount must be at least 1")
        if options.visibility_timeout < timedelta(0):
            raise ValueError("queues.visibilityTimeout must not be negative")
        if options.max_polling_interval <= timedelta(0):
            raise ValueError("queues.maxPollingInterval must be positive")
        encoding = options.message_encoding.lower()
        if encoding not in ("base64", "none"):
            raise ValueError(f"queues.messageEncoding must be 'base64' or 'none', not {encoding!r}")
        return cls(
            batch_size=options.batch_size,
            threshold=threshold,
            max_dequeue_count=options.max_dequeue_count,
            visibility_timeout=round(options.visibility_timeout.total_seconds()),
            max_polling_interval=options.max_polling_interval.total_seconds(),
            message_encoding="base64" if encoding == "base64" else "none",
        )


def resolve_connection_string(
    connection: str | None, *, function_name: str, env: Mapping[str, str] | None = None
) -> str:
    """The storage connection string a binding's ``connection`` names.

    The host looks up the setting itself, then ``AzureWebJobs<name>``; no name means ``AzureWebJobsStorage``.

    Raises:
        ValueError: The setting is missing, or is an identity-based connection (``<name>__accountName``),
            which the local host does not support.
    """
    settings = os.environ if env is None else env
    name = connection or DEFAULT_CONNECTION
    for key in (name, f"AzureWebJobs{name}"):
        value = settings.get(key)
        if value:
            return value
    if any(key.startswith(f"{name}__") for key in settings):
        raise ValueError(
            f"Function '{function_name}': connection '{name}' is identity-based ({name}__...); the local "
            f"host needs a connection string in '{name}' (e.g. UseDevelopmentStorage=true)"
        )
    raise ValueError(
        f"Function '{function_name}': the storage connection setting '{name}' is not set "
        '(add it to local.settings.json Values, e.g. "UseDevelopmentStorage=true")'
    )


def _queue_name(raw: object, *, function_name: str, env: Mapping[str, str] | None) -> str:
    resolved = resolve_setting_references(str(raw or ""), function_name=function_name, what="queueName", env=env)
    # The host lower-cases queue names before validating them.
    name = resolved.strip().lower()
    if not _QUEUE_NAME.match(name):
        raise ValueError(
            f"Function '{function_name}': queue name {resolved!r} is invalid; use 3-63 lower-case letters, "
            "digits and single hyphens, starting and ending with a letter or digit"
        )
    return name


class _DecodeError(ValueError):
    pass


def _decode_body(content: str, encoding: MessageEncoding) -> bytes:
    if encoding == "none":
        return content.encode("utf-8")
    try:
        return base64.b64decode(_BASE64_WHITESPACE.sub("", content), validate=True)
    except (binascii.Error, ValueError):
        raise _DecodeError(
            "the message body is not valid base64 (host.json queues.messageEncoding is 'base64')"
        ) from None


def _encode_body(message: str | bytes, encoding: MessageEncoding) -> str:
    if encoding == "base64":
        raw = message.encode("utf-8") if isinstance(message, str) else message
        return base64.b64encode(raw).decode("ascii")
    if isinstance(message, bytes):
        try:
            return message.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError("binary queue messages need messageEncoding 'base64'") from None
    return message


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat()


def _message_metadata(message: QueueMessage) -> dict[str, Any]:
    """The trigger metadata the host sends with a queue message; QueueMessageInConverter reads these."""
    return {
        "Id": message.id,
        "DequeueCount": int(message.dequeue_count or 0),
        "InsertionTime": _iso(message.inserted_on),
        "ExpirationTime": _iso(message.expires_on),
        "NextVisibleTime": _iso(message.next_visible_on),
        "PopReceipt": message.pop_receipt,
    }


def _is_gone_or_taken(exc: HttpResponseError) -> bool:
    """404 (message or queue gone) or 400 PopReceiptMismatch (someone else holds it): nothing to do."""
    code = str(getattr(exc, "error_code", "") or "")
    return exc.status_code == 404 or (exc.status_code == 400 and code.endswith("PopReceiptMismatch"))


async def _create_queue_if_missing(client: QueueClient) -> None:
    with contextlib.suppress(ResourceExistsError):
        await client.create_queue()


async def _send_creating(client: QueueClient, content: str) -> None:
    try:
        await client.send_message(content)
    except ResourceNotFoundError:
        await _create_queue_if_missing(client)
        await client.send_message(content)


async def send_queue_messages(
    connection_string: str,
    queue_name: str,
    messages: Sequence[str | bytes],
    encoding: MessageEncoding = "base64",
) -> None:
    """Add messages to a queue, creating it if missing: what a ``queue`` output binding does.

    Args:
        connection_string: The storage account's connection string.
        queue_name: The target queue (already resolved and lower-cased).
        messages: Message bodies; ``str`` is sent as UTF-8.
        encoding: ``base64`` (the host's default ``messageEncoding``) or ``none``.
    """
    async with QueueClient.from_connection_string(connection_string, queue_name) as client:
        for message in messages:
            await _send_creating(client, _encode_body(message, encoding))


class _Lease:
    """A received message and its latest pop receipt (each visibility update issues a new one)."""

    def __init__(self, message: QueueMessage) -> None:
        self.message = message
        self.pop_receipt: str = str(message.pop_receipt)
        self.done = asyncio.Event()


class QueuePump:
    """Polls one queue and hands each message to :meth:`_handle`, with the Functions host's queue semantics.

    The listener of a queue-trigger function and the blob trigger's shared queue are both pumps
    (the host runs both through its ``QueueListener``/``QueueProcessor``). A subclass says what one
    message does; raising from :meth:`_handle` is a failed attempt.

    Args:
        label: Names the pump in log lines and task names (e.g. ``Queue function 'work'``).
        queue_name: The queue (already resolved and lower-cased).
        connection_string: Its storage account.
        options: host.json ``extensions.queues`` (:class:`QueueOptions` or the host's parsed section).
        poison_queue_name: Where messages go after ``max_dequeue_count`` failures.
        lease_seconds: How long a received message stays invisible while it is handled; renewed at
            half-time. The host uses 10 minutes.
        stop_timeout: How long :meth:`stop` waits for running handlers before cancelling them.
    """

    def __init__(
        self,
        *,
        label: str,
        queue_name: str,
        connection_string: str,
        options: QueueSettings | None = None,
        poison_queue_name: str | None = None,
        lease_seconds: float = 600.0,
        stop_timeout: float = 30.0,
    ) -> None:
        self.label = label
        self.options = options or QueueOptions()
        self._limits = _Limits.of(self.options)
        self.queue_name = queue_name
        self.poison_queue_name = poison_queue_name or queue_name + POISON_SUFFIX
        self.connection_string = connection_string
        self._lease_seconds = lease_seconds
        self._stop_timeout = stop_timeout
        self._client: QueueClient | None = None
        self._poison: QueueClient | None = None
        self._poll_task: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._stopping = False

    async def _handle(self, message: QueueMessage, body: bytes) -> None:
        """Process one message whose body is decoded; raise to fail the attempt."""
        raise NotImplementedError

    @property
    def in_flight(self) -> int:
        """How many messages are being processed now."""
        return len(self._running)

    async def start(self) -> None:
        """Create the queue if missing and start polling."""
        if self._poll_task is not None:
            raise RuntimeError(f"{self.label}: already started")
        self._stopping = False
        self._client = QueueClient.from_connection_string(self.connection_string, self.queue_name)
        self._poison = QueueClient.from_connection_string(self.connection_string, self.poison_queue_name)
        try:
            await _create_queue_if_missing(self._client)
        except BaseException:
            await self._close_clients()
            raise
        self._poll_task = asyncio.create_task(self._poll(), name=f"queue:{self.queue_name}")

    def notify(self) -> None:
        """Poll now: a message was just added to this queue (the host does this for its own outputs)."""
        self._wake.set()

    async def stop(self) -> None:
        """Stop polling, let running functions finish (up to ``stop_timeout``), then cancel the rest.

        Messages of cancelled runs stay leased and reappear once their lease lapses (at-least-once).
        """
        self._stopping = True
        self._wake.set()
        self._slot_freed.set()
        if self._poll_task is not None:
            # Let a receive in flight return, so messages it takes are processed rather than stranded.
            _, pending = await asyncio.wait({self._poll_task}, timeout=self._stop_timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(self._poll_task, return_exceptions=True)
            self._poll_task = None
        if self._running:
            _, late = await asyncio.wait(set(self._running), timeout=self._stop_timeout)
            for task in late:
                logger.warning(
                    "%s still running %.0f s after shutdown began; cancelling it", self.label, self._stop_timeout
                )
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        await self._close_clients()

    async def _close_clients(self) -> None:
        for client in (self._client, self._poison):
            if client is not None:
                await client.close()
        self._client = self._poison = None

    # -- polling ---------------------------------------------------------------------------------

    async def _poll(self) -> None:
        delay = _MIN_POLLING_SECONDS
        while not self._stopping:
            while self._is_full() and not self._stopping:
                self._slot_freed.clear()
                await self._slot_freed.wait()
            if self._stopping:
                return
            self._wake.clear()
            messages = await self._receive(self._limits.batch_size - len(self._running))
            for message in messages:
                task = asyncio.create_task(self._process(message), name=f"queue-message:{message.id}")
                self._running.add(task)
                task.add_done_callback(self._finished)
            if messages:
                delay = _MIN_POLLING_SECONDS
                continue
            with contextlib.suppress(asyncio.TimeoutError):  # what wait_for raises on 3.10 (TimeoutError from 3.11)
                await asyncio.wait_for(self._wake.wait(), timeout=delay)
            delay = _MIN_POLLING_SECONDS if self._wake.is_set() else min(delay * 2, self._limits.max_polling_interval)

    async def _receive(self, count: int) -> list[QueueMessage]:
        assert self._client is not None
        if count <= 0:
            return []
        try:
            pager = self._client.receive_messages(
                messages_per_page=count, max_messages=count, visibility_timeout=round(self._lease_seconds)
            )
            return [message async for message in pager]
        except Exception as exc:
            # Storage unreachable or the queue deleted under us: back off and try again, as the host does.
            logger.warning("Polling queue '%s' failed: %s", self.queue_name, exc)
            if isinstance(exc, ResourceNotFoundError):
                with contextlib.suppress(Exception):
                    await _create_queue_if_missing(self._client)
            return []

    def _is_full(self) -> bool:
        running = len(self._running)
        return running > self._limits.threshold or running >= self._limits.batch_size

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._slot_freed.set()

    # -- one message -----------------------------------------------------------------------------

    async def _process(self, message: QueueMessage) -> None:
        lease = _Lease(message)
        dequeue_count = int(message.dequeue_count or 0)
        limit = self._limits.max_dequeue_count
        try:
            if dequeue_count > limit:
                await self._to_poison(lease, f"its dequeue count {dequeue_count} is over maxDequeueCount {limit}")
                return
            try:
                body = _decode_body(str(message.content or ""), self._limits.message_encoding)
            except _DecodeError as exc:
                await self._to_poison(lease, str(exc))
                return
            succeeded = await self._run_function(lease, body)
            if succeeded:
                await self._delete(lease)
            elif dequeue_count >= limit:
                await self._to_poison(lease, f"it failed {dequeue_count} times (maxDequeueCount {limit})")
            else:
                await self._release(lease)
        except Exception:
            # A storage call failed; the lease lapses and the message comes back, so nothing is lost.
            logger.exception("Handling message %s of queue '%s' failed", message.id, self.queue_name)

    async def _run_function(self, lease: _Lease, body: bytes) -> bool:
        renewer = asyncio.create_task(self._keep_leased(lease), name=f"queue-lease:{lease.message.id}")
        try:
            await self._handle(lease.message, body)
            return True
        except Exception:
            logger.exception(
                "%s failed for message %s (dequeue count %s)",
                self.label,
                lease.message.id,
                lease.message.dequeue_count,
            )
            return False
        finally:
            # Stop renewing without cancelling a renewal mid-request: its new pop receipt is needed.
            lease.done.set()
            await renewer

    async def _keep_leased(self, lease: _Lease) -> None:
        assert self._client is not None
        interval = self._lease_seconds / 2
        while True:
            with contextlib.suppress(asyncio.TimeoutError):  # what wait_for raises on 3.10 (TimeoutError from 3.11)
                await asyncio.wait_for(lease.done.wait(), timeout=interval)
            if lease.done.is_set():
                return
            try:
                updated = await self._client.update_message(
                    lease.message.id, lease.pop_receipt, visibility_timeout=round(self._lease_seconds)
                )
                lease.pop_receipt = str(updated.pop_receipt)
            except Exception as exc:
                logger.warning("Renewing the lease on message %s failed: %s", lease.message.id, exc)

    async def _delete(self, lease: _Lease) -> None:
        assert self._client is not None
        try:
            await self._client.delete_message(lease.message.id, lease.pop_receipt)
        except HttpResponseError as exc:
            if not _is_gone_or_taken(exc):
                raise
            logger.debug("Message %s was already gone or re-leased: %s", lease.message.id, exc)

    async def _release(self, lease: _Lease) -> None:
        assert self._client is not None
        try:
            await self._client.update_message(
                lease.message.id, lease.pop_receipt, visibility_timeout=self._limits.visibility_timeout
            )
        except HttpResponseError as exc:
            if not _is_gone_or_taken(exc):
                raise

    def _poison_client(self, message: QueueMessage) -> QueueClient:
        """The poison queue for ``message`` (the blob trigger's depends on the message's function)."""
        assert self._poison is not None
        return self._poison

    async def _to_poison(self, lease: _Lease, reason: str) -> None:
        poison = self._poison_client(lease.message)
        logger.warning(
            "Moving message %s of queue '%s' to '%s': %s",
            lease.message.id,
            self.queue_name,
            poison.queue_name,
            reason,
        )
        # The original text, still encoded, so the message can be replayed as it was.
        await _send_creating(poison, str(lease.message.content or ""))
        await self._delete(lease)


class QueueListener(QueuePump):
    """Delivers the messages of one queue to one queue-trigger function until stopped.

    Args:
        function: A function whose trigger is ``queueTrigger``.
        invoke: Runs the function for one message; raises when it fails.
        options: host.json ``extensions.queues`` (:class:`QueueOptions` or the host's parsed section).
        env: App settings, for the connection string and ``%SETTING%`` in ``queueName``.
        lease_seconds, stop_timeout: As for :class:`QueuePump`.

    Raises:
        ValueError: The trigger's queue name or connection setting is invalid or missing, or an
            option is out of range.
    """

    def __init__(
        self,
        function: IndexedFunction,
        invoke: InvokeTrigger,
        options: QueueSettings | None = None,
        *,
        env: Mapping[str, str] | None = None,
        lease_seconds: float = 600.0,
        stop_timeout: float = 30.0,
    ) -> None:
        if function.trigger_type != QUEUE_TRIGGER:
            raise ValueError(f"Function '{function.name}' has no queue trigger")
        super().__init__(
            label=f"Queue function '{function.name}'",
            queue_name=_queue_name(function.trigger.get("queueName"), function_name=function.name, env=env),
            connection_string=resolve_connection_string(
                function.trigger.get("connection"), function_name=function.name, env=env
            ),
            options=options,
            lease_seconds=lease_seconds,
            stop_timeout=stop_timeout,
        )
        self.function = function
        self._invoke = invoke

    async def _handle(self, message: QueueMessage, body: bytes) -> None:
        await self._invoke(
            self.function, TriggerInput(data=body, data_type="bytes", metadata=_message_metadata(message))
        )
