"""Where a signed batch falls against the stored chain: next, re-send, gap or fork."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from collector.intake import verifier_worker
from collector.integrity import verify
from protos import envelope, events_pb2

pytestmark = pytest.mark.unit

KEY = Ed25519PrivateKey.generate()
NONCE = b"n" * 16
AGENT = "ag-1"
RAWS = [
    envelope.event_bytes(events_pb2.Event(seq=i, test_alert=events_pb2.TestAlert()))
    for i in range(1, 11)
]
HASHES = envelope.chain(envelope.genesis(AGENT), RAWS)


def checked(first: int, last: int) -> verify.VerifiedBatch:
    prev = envelope.genesis(AGENT) if first == 1 else HASHES[first - 2]
    b = envelope.make_batch(KEY, AGENT, NONCE, first, prev, RAWS[first - 1 : last])
    rows = verifier_worker.check(KEY.public_key(), NONCE, b.SerializeToString())
    return verify.VerifiedBatch(b, rows)


def stored_upto(last_seq: int):  # type: ignore[no-untyped-def]
    return lambda a, b: HASHES[a - 1 : min(b, last_seq)]


def head(last_seq: int) -> bytes:
    return envelope.genesis(AGENT) if last_seq == 0 else HASHES[last_seq - 1]


@pytest.mark.parametrize(
    ("stored", "first", "last", "expected"),
    [
        (0, 1, 3, verify.Placement(store_from=0)),
        (3, 4, 6, verify.Placement(store_from=0)),
        (6, 4, 6, verify.Placement(None, duplicate=True)),
        (6, 1, 3, verify.Placement(None, duplicate=True)),
        (5, 4, 8, verify.Placement(store_from=2)),
    ],
)
def test_honest_batches(stored: int, first: int, last: int, expected: verify.Placement) -> None:
    assert verify.place(checked(first, last), stored, head(stored), stored_upto(stored)) == expected


def test_a_gap_stores_what_arrived_and_says_what_is_missing() -> None:
    p = verify.place(checked(6, 8), 3, head(3), stored_upto(3))
    assert p.store_from == 0 and p.tamper_kind == "gap" and "4..5" in p.tamper_detail


def test_a_batch_that_does_not_continue_the_head_is_a_fork() -> None:
    p = verify.place(checked(4, 6), 3, b"other head".ljust(32), stored_upto(3))
    assert p.rejected and p.tamper_kind == "fork"


def test_rewritten_history_is_a_fork() -> None:
    p = verify.place(checked(2, 4), 4, head(4), lambda a, b: [b"x" * 32] * (b - a + 1))
    assert p.rejected and p.tamper_kind == "fork"


def test_an_unsigned_batch_matching_stored_events_is_a_replay() -> None:
    assert verify.classify_unsigned(HASHES[:3], HASHES[:3]) == "replay"
    assert verify.classify_unsigned(HASHES[:3], HASHES[:2]) == "bad_signature"
    assert verify.classify_unsigned([], []) == "bad_signature"
