"""Queue triggers against a real Azurite: decoding, metadata, retries, poison queue, concurrency."""

from __future__ import annotations

import asyncio
import base64
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import azure.functions as func
import pytest
from azure.functions.meta import Datum
from azure.functions.queue import QueueMessageInConverter
from azure.storage.queue.aio import QueueClient
from conftest import AzuriteInstance

from durableagent.devhost._functions import IndexedFunction
from durableagent.devhost._queue_trigger import (
    QueueListener,
    QueueOptions,
    resolve_connection_string,
    send_queue_messages,
)
from durableagent.devhost._trigger_input import TriggerInput

FAST = QueueOptions(max_polling_interval=timedelta(milliseconds=200))


def unique_queue() -> str:
    return f"q-{uuid.uuid4().hex[:16]}"


def queue_function(queue_name: str, name: str = "work", connection: str = "AzureWebJobsStorage") -> IndexedFunction:
    trigger = {
        "direction": "IN",
        "type": "queueTrigger",
        "name": "msg",
        "queueName": queue_name,
        "connection": connection,
    }
    return IndexedFunction(name=name, trigger=trigger, bindings=(trigger,), user_function=lambda msg: None)


def settings(azurite: AzuriteInstance, **extra: str) -> dict[str, str]:
    return {"AzureWebJobsStorage": azurite.connection_string, **extra}


def to_queue_message(trigger: TriggerInput) -> func.QueueMessage:
    """Decode with the worker's converter, turning plain metadata into Datums as the invoker does."""
    metadata = {
        key: Datum(value, "int" if isinstance(value, int) else "string")
        for key, value in trigger.metadata.items()
        if value is not None
    }
    message = QueueMessageInConverter.decode(Datum(trigger.data, trigger.data_type), trigger_metadata=metadata)
    assert isinstance(message, func.QueueMessage)
    return message


async def eventually(condition: Callable[[], Awaitable[bool]] | Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def message_count(connection_string: str, queue: str) -> int:
    """Messages in a queue, invisible ones included (-1 if the queue does not exist)."""
    async with QueueClient.from_connection_string(connection_string, queue) as client:
        try:
            properties = await client.get_queue_properties()
        except Exception:
            return -1
        return int(properties.approximate_message_count or 0)


async def peek(connection_string: str, queue: str) -> list[str]:
    async with QueueClient.from_connection_string(connection_string, queue) as client:
        return [str(m.content) for m in await client.peek_messages(max_messages=32)]


class Calls:
    """The injected invoke: records each delivery, then runs an optional behaviour."""

    def __init__(self, behaviour: Callable[[TriggerInput], Awaitable[None]] | None = None) -> None:
        self.inputs: list[TriggerInput] = []
        self.behaviour = behaviour

    async def __call__(self, function: IndexedFunction, trigger: TriggerInput) -> None:
        self.inputs.append(trigger)
        if self.behaviour is not None:
            await self.behaviour(trigger)


def test_base64_message_is_delivered_decoded_with_metadata(azurite: AzuriteInstance) -> None:
    queue = unique_queue()
    calls = Calls()

    async def main() -> None:
        listener = QueueListener(queue_function(queue), calls, FAST, env=settings(azurite))
        await listener.start()
        try:
            await send_queue_messages(azurite.connection_string, queue, ['{"city": "Zürich"}'])
            await eventually(lambda: len(calls.inputs) == 1)
            # Success deletes the message (invisible ones count too, so a mere lease would show).
            await eventually(lambda: _count_is(azurite, queue, 0))
        finally:
            await listener.stop()

    asyncio.run(main())
    trigger = calls.inputs[0]
    assert trigger.data == '{"city": "Zürich"}'.encode()
    assert trigger.data_type == "bytes"
    assert set(trigger.metadata) == {
        "Id",
        "DequeueCount",
        "InsertionTime",
        "ExpirationTime",
        "NextVisibleTime",
        "PopReceipt",
    }
    assert trigger.metadata["DequeueCount"] == 1
    message = to_queue_message(trigger)
    assert message.get_json() == {"city": "Zürich"}
    assert message.id == trigger.metadata["Id"]
    assert message.dequeue_count == 1
    assert message.pop_receipt == trigger.metadata["PopReceipt"]
    for moment in (message.insertion_time, message.expiration_time, message.time_next_visible):
        assert isinstance(moment, datetime) and moment.tzinfo is not None
    assert message.insertion_time is not None and message.expiration_time is not None
    assert message.insertion_time < message.expiration_time


async def _count_is(azurite: AzuriteInstance, queue: str, expected: int) -> bool:
    return await message_count(azurite.connection_string, queue) == expected


def test_the_queue_is_created_when_missing(azurite: AzuriteInstance) -> None:
    queue = unique_queue()

    async def main() -> int:
        listener = QueueListener(queue_function(queue), Calls(), FAST, env=settings(azurite))
        await listener.start()
        await listener.stop()
        return await message_count(azurite.connection_string, queue)

    assert asyncio.run(main()) == 0


def test_plain_text_message_goes_to_poison_with_reason(
    azurite: AzuriteInstance, caplog: pytest.LogCaptureFixture
) -> None:
    queue = unique_queue()
    calls = Calls()

    async def main() -> list[str]:
        listener = QueueListener(queue_function(queue), calls, FAST, env=settings(azurite))
        await listener.start()
        try:
            await send_queue_messages(azurite.connection_string, queue, ["not base64!"], encoding="none")
            await eventually(lambda: _count_is(azurite, f"{queue}-poison", 1))
            await eventually(lambda: _count_is(azurite, queue, 0))
        finally:
            await listener.stop()
        return await peek(azurite.connection_string, f"{queue}-poison")

    with caplog.at_level(logging.WARNING, logger="durableagent.devhost.queue"):
        poisoned = asyncio.run(main())
    assert poisoned == ["not base64!"]
    assert calls.inputs == []
    reasons = [r.getMessage() for r in caplog.records if r.name == "durableagent.devhost.queue"]
    assert any("poison" in m and "not valid base64" in m for m in reasons), reasons


def test_message_encoding_none_delivers_text_as_is(azurite: AzuriteInstance) -> None:
    queue = unique_queue()
    calls = Calls()
    options = QueueOptions(max_polling_interval=timedelta(milliseconds=200), message_encoding="none")

    async def main() -> None:
        listener = QueueListener(queue_function(queue), calls, options, env=settings(azurite))
        await listener.start()
        try:
            await send_queue_messages(azurite.connection_string, queue, ["plain text"], encoding="none")
            await eventually(lambda: len(calls.inputs) == 1)
        finally:
            await listener.stop()

    asyncio.run(main())
    assert calls.inputs[0].data == b"plain text"


def test_failing_function_is_retried_then_poisoned(azurite: AzuriteInstance, caplog: pytest.LogCaptureFixture) -> None:
    queue = unique_queue()

    async def fail(trigger: TriggerInput) -> None:
        raise RuntimeError("handler failed")

    calls = Calls(fail)
    options = QueueOptions(max_dequeue_count=3, max_polling_interval=timedelta(milliseconds=200))

    async def main() -> tuple[list[str], int]:
        listener = QueueListener(queue_function(queue), calls, options, env=settings(azurite))
        await listener.start()
        try:
            await send_queue_messages(azurite.connection_string, queue, [b"\x00\x01binary"])
            await eventually(lambda: _count_is(azurite, f"{queue}-poison", 1))
        finally:
            await listener.stop()
        return await peek(azurite.connection_string, f"{queue}-poison"), await message_count(
            azurite.connection_string, queue
        )

    with caplog.at_level(logging.WARNING, logger="durableagent.devhost.queue"):
        poisoned, remaining = asyncio.run(main())
    assert [t.metadata["DequeueCount"] for t in calls.inputs] == [1, 2, 3]
    assert all(t.data == b"\x00\x01binary" for t in calls.inputs)
    # The poison queue holds the original (still base64) text.
    assert poisoned == [base64.b64encode(b"\x00\x01binary").decode()]
    assert remaining == 0
    failures = [r for r in caplog.records if r.levelno == logging.ERROR and "work" in r.getMessage()]
    assert len(failures) == 3


def test_message_over_the_limit_on_receipt_goes_straight_to_poison(azurite: AzuriteInstance) -> None:
    """A message whose earlier runs were cut short (host crash) reaches the limit without failing."""
    queue = unique_queue()
    calls = Calls()
    options = QueueOptions(max_dequeue_count=2, max_polling_interval=timedelta(milliseconds=200))

    async def main() -> list[str]:
        await send_queue_messages(azurite.connection_string, queue, ["payload"])
        async with QueueClient.from_connection_string(azurite.connection_string, queue) as client:
            for _ in range(2):  # two dequeues whose runs never completed
                message = await client.receive_message(visibility_timeout=30)
                assert message is not None
                await client.update_message(message, visibility_timeout=0)
        listener = QueueListener(queue_function(queue), calls, options, env=settings(azurite))
        await listener.start()
        try:
            await eventually(lambda: _count_is(azurite, f"{queue}-poison", 1))
        finally:
            await listener.stop()
        return await peek(azurite.connection_string, f"{queue}-poison")

    assert asyncio.run(main()) == [base64.b64encode(b"payload").decode()]
    assert calls.inputs == []


def test_concurrency_stays_within_batch_size(azurite: AzuriteInstance) -> None:
    queue = unique_queue()
    active = 0
    most_active = 0

    async def slow(trigger: TriggerInput) -> None:
        nonlocal active, most_active
        active += 1
        most_active = max(most_active, active)
        await asyncio.sleep(0.15)
        active -= 1

    calls = Calls(slow)
    options = QueueOptions(batch_size=4, max_polling_interval=timedelta(milliseconds=100))

    async def main() -> None:
        await send_queue_messages(azurite.connection_string, queue, [f"m{i}" for i in range(12)])
        listener = QueueListener(queue_function(queue), calls, options, env=settings(azurite))
        await listener.start()
        try:
            await eventually(lambda: len(calls.inputs) == 12)
            await eventually(lambda: _count_is(azurite, queue, 0))
        finally:
            await listener.stop()

    asyncio.run(main())
    assert 2 <= most_active <= 4
    assert sorted(t.data for t in calls.inputs) == sorted(f"m{i}".encode() for i in range(12))


def test_lease_is_renewed_while_the_function_runs(azurite: AzuriteInstance) -> None:
    """Without renewal a 2 s lease would lapse mid-run and the message would be delivered twice."""
    queue = unique_queue()

    async def longer_than_the_lease(trigger: TriggerInput) -> None:
        await asyncio.sleep(2.6)

    calls = Calls(longer_than_the_lease)

    async def main() -> None:
        listener = QueueListener(queue_function(queue), calls, FAST, env=settings(azurite), lease_seconds=2)
        await listener.start()
        try:
            await send_queue_messages(azurite.connection_string, queue, ["long job"])
            await eventually(lambda: _count_is(azurite, queue, 0), timeout=15)
        finally:
            await listener.stop()

    asyncio.run(main())
    assert len(calls.inputs) == 1


def test_stop_waits_for_running_functions(azurite: AzuriteInstance) -> None:
    queue = unique_queue()
    finished: list[bytes] = []

    async def slow(trigger: TriggerInput) -> None:
        await asyncio.sleep(0.3)
        assert isinstance(trigger.data, bytes)
        finished.append(trigger.data)

    calls = Calls(slow)

    async def main() -> int:
        listener = QueueListener(queue_function(queue), calls, FAST, env=settings(azurite))
        await listener.start()
        await send_queue_messages(azurite.connection_string, queue, ["one"])
        await eventually(lambda: listener.in_flight == 1)
        await listener.stop()
        return await message_count(azurite.connection_string, queue)

    assert asyncio.run(main()) == 0
    assert finished == [b"one"]


def test_send_queue_messages_round_trip(azurite: AzuriteInstance) -> None:
    queue = unique_queue()

    async def main() -> tuple[list[str], list[str]]:
        # The queue does not exist yet: sending creates it.
        await send_queue_messages(azurite.connection_string, queue, ["héllo", b"\xff\x00"])
        encoded = await peek(azurite.connection_string, queue)
        plain_queue = unique_queue()
        await send_queue_messages(azurite.connection_string, plain_queue, ["as is", b"bytes"], encoding="none")
        return encoded, await peek(azurite.connection_string, plain_queue)

    encoded, plain = asyncio.run(main())
    assert [base64.b64decode(m) for m in encoded] == ["héllo".encode(), b"\xff\x00"]
    assert plain == ["as is", "bytes"]
    with pytest.raises(ValueError, match="base64"):
        asyncio.run(send_queue_messages(azurite.connection_string, unique_queue(), [b"\xff"], encoding="none"))


def test_queue_name_from_app_setting(azurite: AzuriteInstance) -> None:
    queue = unique_queue()
    calls = Calls()

    async def main() -> QueueListener:
        env = settings(azurite, WORK_QUEUE=queue.upper())
        listener = QueueListener(queue_function("%WORK_QUEUE%"), calls, FAST, env=env)
        await listener.start()
        try:
            await send_queue_messages(azurite.connection_string, queue, ["via setting"])
            await eventually(lambda: len(calls.inputs) == 1)
        finally:
            await listener.stop()
        return listener

    listener = asyncio.run(main())
    # Resolved, then lower-cased, as the host does.
    assert listener.queue_name == queue
    assert listener.poison_queue_name == f"{queue}-poison"
    assert calls.inputs[0].data == b"via setting"


def test_bad_configuration_is_reported_with_the_function_name() -> None:
    env: Mapping[str, str] = {"AzureWebJobsStorage": "UseDevelopmentStorage=true"}

    async def invoke(function: IndexedFunction, trigger: TriggerInput) -> None:
        pass

    with pytest.raises(ValueError, match=r"work.*'MISSING'"):
        QueueListener(queue_function("%MISSING%"), invoke, env=env)
    with pytest.raises(ValueError, match=r"work.*queue name"):
        QueueListener(queue_function("a"), invoke, env=env)
    with pytest.raises(ValueError, match=r"work.*'OtherStorage' is not set"):
        QueueListener(queue_function("jobs", connection="OtherStorage"), invoke, env=env)
    with pytest.raises(ValueError, match="batchSize"):
        QueueListener(queue_function("jobs"), invoke, QueueOptions(batch_size=64), env=env)


def test_connection_lookup_follows_the_host() -> None:
    env: dict[str, Any] = {"AzureWebJobsStorage": "default", "AzureWebJobsOther": "prefixed", "Mine": "own"}
    assert resolve_connection_string(None, function_name="f", env=env) == "default"
    assert resolve_connection_string("", function_name="f", env=env) == "default"
    assert resolve_connection_string("Mine", function_name="f", env=env) == "own"
    assert resolve_connection_string("Other", function_name="f", env=env) == "prefixed"
    with pytest.raises(ValueError, match="identity-based"):
        resolve_connection_string("Managed", function_name="f", env={"Managed__queueServiceUri": "https://x"})
