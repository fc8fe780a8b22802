"""A verifier's side of the pipe: frames in, rows or a refusal out, never a crash."""

from __future__ import annotations

import io

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from collector.intake import event_table, verifier_worker
from protos import envelope, events_pb2

pytestmark = pytest.mark.unit

KEY = Ed25519PrivateKey.generate()
PUB = KEY.public_key().public_bytes_raw()
NONCE = b"n" * 16
AGENT = "ag-1"


def batch_bytes(*events: events_pb2.Event) -> bytes:
    raws = [envelope.event_bytes(e) for e in events]
    b = envelope.make_batch(KEY, AGENT, NONCE, events[0].seq, envelope.genesis(AGENT), raws)
    return bytes(b.SerializeToString())


def frames(out: bytes) -> list[tuple[int, bytes]]:
    found = []
    while out:
        status, size = verifier_worker.HEADER.unpack(out[: verifier_worker.HEADER.size])
        start = verifier_worker.HEADER.size
        found.append((status, out[start : start + size]))
        out = out[start + size :]
    return found


def serve(*requests: bytes) -> list[tuple[int, bytes]]:
    out = io.BytesIO()
    verifier_worker.serve(io.BytesIO(b"".join(requests)), out)
    return frames(out.getvalue())


def test_a_good_batch_comes_back_as_the_rows_the_store_writes() -> None:
    good = batch_bytes(
        events_pb2.Event(seq=1, severity=4, account="pupil.a", event_id="e1",
                         observed_unix_ms=1000, test_alert=events_pb2.TestAlert()),
        events_pb2.Event(seq=2, observed_unix_ms=2000, heartbeat=events_pb2.Heartbeat()),
    )  # fmt: skip
    [(status, body)] = serve(verifier_worker.request(PUB, NONCE, good))
    assert status == verifier_worker.OK
    rows = verifier_worker.from_ipc(body)
    assert rows.schema == event_table.ROWS_SCHEMA
    assert rows.column("seq").to_pylist() == [1, 2]
    assert rows.column("kind").to_pylist() == ["test_alert", "heartbeat"]
    assert rows.column("severity").to_pylist() == [4, 0]
    assert rows.column("account").to_pylist() == ["pupil.a", ""]
    assert rows.column("agent_id").to_pylist() == [AGENT, AGENT]
    assert rows.column("judge").to_pylist() == [True, True]  # a test alert; the latest beat
    raws = rows.column("raw").to_pylist()
    assert rows.column("hash").to_pylist() == envelope.chain(envelope.genesis(AGENT), raws)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (verifier_worker.request(PUB, NONCE, b"\xff\xff garbage"), "malformed"),
        (verifier_worker.request(PUB, b"m" * 16, batch_bytes(events_pb2.Event(seq=1))),
         "bad_signature"),
        # Past the uint8 column: before, it failed the whole commit, every agent's batches.
        (verifier_worker.request(PUB, NONCE, batch_bytes(events_pb2.Event(seq=1, severity=300))),
         "malformed"),
        (verifier_worker.request(b"\0" * 32, NONCE, batch_bytes(events_pb2.Event(seq=1))),
         "bad_signature"),
    ],
    # Named, not drawn from the bodies: PUB is a fresh key in each process, and pytest-xdist's
    # workers must collect the same test names.
    ids=["garbage", "other-nonce", "severity-out-of-range", "wrong-key"],
)  # fmt: skip
def test_a_bad_batch_is_refused_with_its_reason_and_the_next_is_still_served(
    body: bytes, reason: str
) -> None:
    good = batch_bytes(events_pb2.Event(seq=1, test_alert=events_pb2.TestAlert()))
    answers = serve(body, verifier_worker.request(PUB, NONCE, good))
    assert answers[0][0] == verifier_worker.REFUSED
    assert answers[0][1].decode().split(":")[0] == reason
    assert answers[1][0] == verifier_worker.OK


def test_a_fault_of_ours_is_failed_not_blamed_on_the_agent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*_: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(event_table, "from_checked", broken)
    good = batch_bytes(events_pb2.Event(seq=1, test_alert=events_pb2.TestAlert()))
    [(status, body)] = serve(verifier_worker.request(PUB, NONCE, good))
    assert status == verifier_worker.FAILED and b"a bug" in body


def test_a_torn_request_frame_stops_the_verifier_loudly() -> None:
    good = verifier_worker.request(PUB, NONCE, batch_bytes(events_pb2.Event(seq=1)))
    with pytest.raises(SystemExit, match="bad request frame"):
        serve(good[:-3])
    assert serve() == []  # a closed pipe: stop quietly
