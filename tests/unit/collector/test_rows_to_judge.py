"""Which rows the incident engine classifies: marked by the verifier that decoded them."""

from __future__ import annotations

import pyarrow as pa
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from collector.incidents.engine import rows_to_judge
from collector.intake import event_table
from protos import envelope, events_pb2

pytestmark = pytest.mark.unit

KEY = Ed25519PrivateKey.generate()
NONCE = b"n" * 16
PAYLOADS = {
    "heartbeat": lambda: {"heartbeat": events_pb2.Heartbeat()},
    "keyword": lambda: {"keyword": events_pb2.KeywordDetection(category="bullying")},
    "url": lambda: {"url": events_pb2.UrlDetection(category="extremism")},
    "usb": lambda: {"usb": events_pb2.UsbDecision()},
    "status": lambda: {"status": events_pb2.AgentStatus()},
    "test_alert": lambda: {"test_alert": events_pb2.TestAlert()},
    "browser_visit": lambda: {},  # a kind this collector does not know: nothing set
}


def rows(agent: str, first: int, *events: tuple[str, int]) -> pa.Table:
    """A checked batch of (kind, observed_ms) events from seq `first`, as a verifier makes it."""
    made = [
        events_pb2.Event(seq=first + i, observed_unix_ms=at, **PAYLOADS[kind]())
        for i, (kind, at) in enumerate(events)
    ]
    raws = [envelope.event_bytes(e) for e in made]
    b = envelope.make_batch(KEY, agent, NONCE, first, b"\0" * 32, raws)
    return event_table.from_checked(envelope.check_batch(b, KEY.public_key(), NONCE))


def picked(table: pa.Table) -> list[tuple[str, int]]:
    return sorted((agent, seq) for agent, seq, *_ in rows_to_judge(table))


def test_every_kind_that_can_make_a_signal_and_the_latest_heartbeat() -> None:
    batch = rows(
        "a", 1, ("heartbeat", 100), ("keyword", 110), ("heartbeat", 120), ("url", 130),
        ("usb", 140), ("status", 150), ("test_alert", 160), ("browser_visit", 170),
    )  # fmt: skip
    assert picked(batch) == [("a", 2), ("a", 3), ("a", 4), ("a", 5), ("a", 6), ("a", 7)]
    assert event_table.stored_columns(batch).schema == event_table.EVENT_SCHEMA


def test_the_latest_heartbeat_is_by_the_agents_clock_and_a_tie_goes_to_the_later_seq() -> None:
    assert picked(rows("a", 1, ("heartbeat", 300), ("heartbeat", 200))) == [("a", 1)]
    assert picked(rows("b", 1, ("heartbeat", 700), ("heartbeat", 700))) == [("b", 2)]


def test_a_commit_of_several_batches_keeps_each_batchs_marks() -> None:
    commit = pa.concat_tables([
        rows("a", 1, ("heartbeat", 100), ("heartbeat", 150)),
        rows("b", 1, ("keyword", 900), ("heartbeat", 901)),
        rows("a", 3, ("heartbeat", 200), ("keyword", 210)),
    ])  # fmt: skip
    # One heartbeat per batch reaches the engine, which keeps each agent's latest.
    assert picked(commit) == [("a", 2), ("a", 3), ("a", 4), ("b", 1), ("b", 2)]
