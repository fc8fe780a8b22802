"""The envelope both ends share: chain, batch signatures, and what check_batch refuses."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from protos import envelope, events_pb2

pytestmark = pytest.mark.unit

KEY = Ed25519PrivateKey.generate()
NONCE = b"n" * envelope.NONCE_LEN


def raw(seq: int, note: str = "") -> bytes:
    return envelope.event_bytes(
        events_pb2.Event(seq=seq, severity=1, test_alert=events_pb2.TestAlert(note=note))
    )


def batch(first: int = 1, n: int = 3, agent: str = "ag-1"):  # type: ignore[no-untyped-def]
    prev = envelope.genesis(agent) if first == 1 else b"p" * 32
    return envelope.make_batch(KEY, agent, NONCE, first, prev, [raw(first + i) for i in range(n)])


def test_a_good_batch_checks_and_decodes() -> None:
    checked = envelope.check_batch(batch(), KEY.public_key(), NONCE)
    assert [e.seq for e in checked.events] == [1, 2, 3]
    assert checked.hashes[-1] == checked.batch.head_hash
    assert (checked.first_seq, checked.last_seq) == (1, 3)


def test_decoding_from_the_wire_in_one_parse_reads_what_decoding_each_event_reads() -> None:
    made = [
        events_pb2.Event(seq=1, observed_unix_ms=10, account="pupil.a", event_id="e1",
                         heartbeat=events_pb2.Heartbeat(agent_version="0.1")),
        events_pb2.Event(seq=2, observed_unix_ms=20, severity=4, event_id="e2",
                         keyword=events_pb2.KeywordDetection(category="extremism")),
        events_pb2.Event(seq=3, observed_unix_ms=5),  # no payload: a kind this one cannot tell
    ]  # fmt: skip
    b = envelope.make_batch(
        KEY, "ag-1", NONCE, 1, envelope.genesis("ag-1"), [envelope.event_bytes(e) for e in made]
    )
    each = envelope.check_batch(b, KEY.public_key(), NONCE)
    once = envelope.check_batch(b, KEY.public_key(), NONCE, b.SerializeToString())
    assert list(once.events) == list(each.events) == made
    assert once.fields == each.fields
    assert once.fields.kind == ("heartbeat", "keyword", "")
    assert once.fields.observed_ms == (10, 20, 5)
    assert once.fields.severity == (0, 4, 0)
    assert once.fields.account == ("pupil.a", "", "")
    assert once.fields.event_id == ("e1", "e2", "")


@pytest.mark.parametrize("from_wire", [False, True])
def test_signed_bytes_that_are_not_an_event_are_refused_either_way(from_wire: bool) -> None:
    b = envelope.make_batch(KEY, "ag-1", NONCE, 1, envelope.genesis("ag-1"), [raw(1), b"\xff\xff"])
    wire = b.SerializeToString() if from_wire else None
    with pytest.raises(envelope.EnvelopeError, match=r"^malformed: an event does not parse"):
        envelope.check_batch(b, KEY.public_key(), NONCE, wire)


def test_the_wire_of_another_batch_is_a_callers_bug_not_the_agents() -> None:
    with pytest.raises(ValueError, match="different batch") as raised:
        envelope.check_batch(batch(n=3), KEY.public_key(), NONCE, batch(n=2).SerializeToString())
    assert not isinstance(raised.value, envelope.EnvelopeError)  # not a refusal of the agent


def test_genesis_binds_the_chain_to_one_agent() -> None:
    assert envelope.genesis("ag-1") != envelope.genesis("ag-2")


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (lambda b: b.events.__setitem__(1, raw(2, "edited")), "bad_chain"),
        (lambda b: setattr(b, "head_hash", b"x" * 32), "bad_signature"),
        (lambda b: setattr(b, "first_seq", 2), "bad_signature"),
        (lambda b: setattr(b, "agent_id", "ag-2"), "bad_signature"),
        (lambda b: setattr(b, "signature", b"\0" * 64), "bad_signature"),
        (lambda b: setattr(b, "prev_hash", b"short"), "malformed"),
        (lambda b: b.ClearField("events"), "malformed"),
    ],
)
def test_tampered_batches_are_refused_with_a_reason(tamper, reason) -> None:  # type: ignore[no-untyped-def]
    b = batch()
    tamper(b)
    with pytest.raises(envelope.EnvelopeError, match=rf"^{reason}"):
        envelope.check_batch(b, KEY.public_key(), NONCE)


def test_a_signature_for_another_session_does_not_verify() -> None:
    with pytest.raises(envelope.EnvelopeError, match=r"^bad_signature"):
        envelope.check_batch(batch(), KEY.public_key(), b"m" * envelope.NONCE_LEN)


def test_events_whose_seqs_do_not_match_their_place_are_malformed() -> None:
    raws = [raw(1), raw(3)]
    b = envelope.make_batch(KEY, "ag-1", NONCE, 1, envelope.genesis("ag-1"), raws)
    with pytest.raises(envelope.EnvelopeError, match=r"^malformed"):
        envelope.check_batch(b, KEY.public_key(), NONCE)


def test_undecodable_event_bytes_are_malformed() -> None:
    b = envelope.make_batch(KEY, "ag-1", NONCE, 1, envelope.genesis("ag-1"), [b"\xff\xff\xff"])
    with pytest.raises(envelope.EnvelopeError, match=r"^malformed"):
        envelope.check_batch(b, KEY.public_key(), NONCE)


@given(st.lists(st.binary(max_size=64), min_size=1, max_size=20))
def test_stored_chain_reverifies_and_any_edit_is_caught(payloads: list[bytes]) -> None:
    hashes = envelope.chain(envelope.genesis("ag-1"), payloads)
    rows = [(i + 1, p, h) for i, (p, h) in enumerate(zip(payloads, hashes, strict=True))]
    assert envelope.verify_stored_chain("ag-1", rows) == len(rows)
    edited = [*rows]
    seq, p, h = edited[-1]
    edited[-1] = (seq, p + b"!", h)
    with pytest.raises(envelope.EnvelopeError, match="bad_chain"):
        envelope.verify_stored_chain("ag-1", edited)
    if len(rows) > 1:
        with pytest.raises(envelope.EnvelopeError, match="gap"):
            envelope.verify_stored_chain("ag-1", rows[1:])


@given(st.binary(max_size=400))
def test_check_batch_survives_arbitrary_bytes(data: bytes) -> None:
    from google.protobuf.message import DecodeError

    from protos import ingest_pb2

    try:
        b = ingest_pb2.Batch.FromString(data)
    except DecodeError:
        return
    with pytest.raises(envelope.EnvelopeError):
        envelope.check_batch(b, KEY.public_key(), NONCE)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _record(field: int, wire_type: int, value: bytes | int) -> bytes:
    tag = _varint(field << 3 | wire_type)
    if wire_type == 0:
        assert isinstance(value, int)
        return tag + _varint(value)
    assert isinstance(value, bytes)
    return tag + (_varint(len(value)) + value if wire_type == 2 else value)


_UNKNOWN = st.one_of(
    st.builds(lambda f, v: _record(f, 0, v), st.integers(7, 99), st.integers(0, 2**63)),
    st.builds(lambda f, v: _record(f, 1, v), st.integers(7, 99), st.binary(min_size=8, max_size=8)),
    st.builds(lambda f, v: _record(f, 2, v), st.integers(7, 99), st.binary(max_size=20)),
    st.builds(lambda v: _record(4, 0, v), st.integers(0, 2**20)),  # field 4, not as bytes
    st.builds(lambda v: _record(4, 5, v), st.binary(min_size=4, max_size=4)),
)


@given(st.data())
def test_one_parse_and_each_parse_agree_whatever_the_batch_layout(data: st.DataObject) -> None:
    """The signature covers the events' bytes, not the batch's layout: records in any order,
    with unknown fields between them, must decode to the same fields both ways (or be
    refused both ways)."""
    b = batch(n=3)
    records = [
        _record(1, 2, b.agent_id.encode()), _record(2, 0, b.first_seq), _record(3, 2, b.prev_hash),
        *(_record(4, 2, e) for e in b.events),
        _record(5, 2, b.head_hash), _record(6, 2, b.signature),
    ]  # fmt: skip
    records = data.draw(st.permutations(records))
    for _ in range(data.draw(st.integers(0, 4))):
        at = data.draw(st.integers(0, len(records)))
        records.insert(at, data.draw(_UNKNOWN))
    wire = b"".join(records)
    from protos import ingest_pb2

    parsed = ingest_pb2.Batch.FromString(wire)
    outcomes = []
    for w in (None, wire):
        try:
            outcomes.append(envelope.check_batch(parsed, KEY.public_key(), NONCE, w).fields)
        except envelope.EnvelopeError as exc:
            outcomes.append(str(exc).split(":")[0])
    assert outcomes[0] == outcomes[1]
