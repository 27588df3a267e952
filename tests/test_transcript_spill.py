"""Receipts leaving the entity state upload in the background (issue 13), against a real Azurite.

A receipt beyond the state's limit stays in the state until an upload is seen done; none is lost
when an upload fails, and a deleted session gets no receipt written after its deletion.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from azure.storage.blob import BlobServiceClient
from conftest import AzuriteInstance

from durableagent._session_id import AgentSessionId
from durableagent._transcript import TranscriptStore, _prefix


def _store(azurite: AzuriteInstance) -> TranscriptStore:
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    return TranscriptStore(service.get_container_client(f"spill-{uuid.uuid4().hex[:12]}"))


def _receipt(correlation_id: str) -> dict[str, Any]:
    return {"correlation_id": correlation_id, "status": "success", "at": "2026-12-03T00:00:00Z", "turn": 1}


def _settled(store: TranscriptStore, session: AgentSessionId, ids: list[str]) -> set[str]:
    """Call ``spill`` again until the background uploads are reported stored (bounded)."""
    deadline = time.monotonic() + 30
    stored: set[str] = set()
    while time.monotonic() < deadline and stored != set(ids):
        stored |= store.spill(session, [_receipt(i) for i in ids if i not in stored])
        time.sleep(0.01)
    return stored


def test_a_spill_returns_before_the_upload_and_a_later_call_reports_it_stored(azurite: AzuriteInstance) -> None:
    store = _store(azurite)
    session = AgentSessionId("Joker", "s1")
    assert store.spill(session, [_receipt("c1"), _receipt("c2")]) == set()  # started, not waited for
    assert _settled(store, session, ["c1", "c2"]) == {"c1", "c2"}
    assert store.read_receipt(session, "c1") == _receipt("c1")
    assert store.read_receipt(session, "c2") == _receipt("c2")
    assert store._spills == {}  # reported once, then no longer tracked


def test_the_oldest_beyond_the_backlog_are_waited_for(azurite: AzuriteInstance) -> None:
    store = _store(azurite)
    session = AgentSessionId("Joker", "s2")
    stored = store.spill(session, [_receipt("old"), _receipt("new")], wait=1)
    assert "old" in stored  # waited for: stored before spill returned
    assert store.read_receipt(session, "old") == _receipt("old")


def test_a_failed_upload_is_tried_again_and_the_receipt_is_not_reported_stored(
    azurite: AzuriteInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _store(azurite)
    session = AgentSessionId("Joker", "s3")
    real = store._upload_receipt
    failures = {"left": 1}

    def flaky(session: AgentSessionId, receipt: dict[str, Any]) -> None:
        if failures["left"]:
            failures["left"] -= 1
            raise OSError("storage unavailable")
        real(session, receipt)

    monkeypatch.setattr(store, "_upload_receipt", flaky)
    assert store.spill(session, [_receipt("c1")]) == set()
    deadline = time.monotonic() + 30
    while not store._spills[(_prefix(session), "c1")].done():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert store.spill(session, [_receipt("c1")]) == set()  # it failed: not stored, started again
    assert _settled(store, session, ["c1"]) == {"c1"}
    assert store.read_receipt(session, "c1") == _receipt("c1")


def test_a_failure_among_the_awaited_is_raised(azurite: AzuriteInstance, monkeypatch: pytest.MonkeyPatch) -> None:
    store = _store(azurite)
    session = AgentSessionId("Joker", "s4")

    def broken(session: AgentSessionId, receipt: dict[str, Any]) -> None:
        raise OSError("storage unavailable")

    monkeypatch.setattr(store, "_upload_receipt", broken)
    with pytest.raises(OSError):
        store.spill(session, [_receipt("c1")], wait=1)


def test_deleting_a_session_waits_for_its_uploads_in_flight(azurite: AzuriteInstance) -> None:
    store = _store(azurite)
    session = AgentSessionId("Joker", "s5")
    store.write_turn(session, 0, {"turn": 0})
    store.spill(session, [_receipt(f"c{i}") for i in range(20)])
    store.delete_session(session)
    time.sleep(0.2)  # an upload landing after the delete would show now
    assert all(store.read_receipt(session, f"c{i}") is None for i in range(20))
    assert store._spills == {}


def test_finished_uploads_are_forgotten_when_too_many_are_tracked(
    azurite: AzuriteInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("durableagent._transcript._SPILLS_TRACKED", 3)
    store = _store(azurite)
    quiet = [AgentSessionId("Joker", f"quiet{i}") for i in range(3)]
    for session in quiet:  # three sessions leave one upload each, then go quiet
        store.spill(session, [_receipt("c1")])
    deadline = time.monotonic() + 30
    while not all(f.done() for f in store._spills.values()):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    busy = AgentSessionId("Joker", "busy")
    assert store.spill(busy, [_receipt("c9")]) == set()  # still in the background: room was made
    assert set(store._spills) == {(_prefix(busy), "c9")}
    # A quiet session asked again uploads again (the same blob) rather than trusting a forgotten upload.
    assert _settled(store, quiet[0], ["c1"]) == {"c1"}
    assert store.read_receipt(quiet[0], "c1") == _receipt("c1")
