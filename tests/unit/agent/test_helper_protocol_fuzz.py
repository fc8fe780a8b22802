"""Fuzz the keyboard helper's socket protocol: whatever arrives, ``decode`` returns a message
(a non-empty JSON array whose first item is a string) or raises ``ProtocolError``.

The socket is 0666, so any local account can write to it; any other exception would end
the service's conversation thread with a traceback instead of a logged refusal.
"""

from __future__ import annotations

import json
import socket
from typing import Any, cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.helper_protocol import MAX_LINE, LineReader, ProtocolError, decode, encode

pytestmark = pytest.mark.unit

FUZZ = settings(
    derandomize=True,
    deadline=None,
    max_examples=300,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def decoded_or_refused(line: bytes) -> list[Any] | None:
    """decode's result, checked to be a message; None for ProtocolError."""
    try:
        message = decode(line)
    except ProtocolError:
        return None
    assert isinstance(message, list) and message and isinstance(message[0], str)
    return message


TEXT = st.text(max_size=40)  # any code point but lone surrogates
MESSAGES = st.one_of(
    st.tuples(st.just("hello"), st.fixed_dictionaries(
        {"display": TEXT, "session": TEXT, "version": TEXT})).map(list),
    st.tuples(st.just("w"), TEXT, TEXT, st.booleans(), st.integers()).map(list),
    st.tuples(st.just("k"), st.lists(st.sampled_from(["a", "<bs>", "<enter>", " ", "é"])
                                     | TEXT, max_size=20)).map(list),
    st.tuples(st.just("s"), st.sampled_from(["running", "unavailable"]), TEXT).map(list),
    st.tuples(st.just("capture"), st.booleans(), TEXT).map(list),
    st.tuples(st.just("notice"), TEXT, TEXT).map(list),
    st.tuples(st.just("n"), st.sampled_from(["shown", "ok", "closed"]), TEXT,
              st.integers()).map(list),
    st.tuples(st.just("n"), st.just("failed"), TEXT).map(list),
)  # fmt: skip
NASTY = st.sampled_from([
    b"9" * 5000, b"-" + b"9" * 4400, b"[" * 100_000, b'{"a":' * 50_000, b"\xff", b"\xfe\xff",
    b"\x00", b'"\\ud800"', b'"\\u', b"NaN", b"-Infinity", b"1e99999", b",", b"]", b"\n",
    b"\xef\xbb\xbf", b'"' + b"x" * 70_000 + b'"', b"\\", b"true", b"null",
])  # fmt: skip


@FUZZ
@given(st.binary(max_size=400))
def test_random_bytes_decode_or_are_refused(line: bytes) -> None:
    decoded_or_refused(line)


@FUZZ
@given(MESSAGES)
def test_valid_messages_round_trip(message: list[Any]) -> None:
    frame = encode(message)
    assert frame.endswith(b"\n") and frame.count(b"\n") == 1  # one message, one line
    assert decode(frame.rstrip(b"\n")) == message


@st.composite
def mutated_frames(draw: st.DrawFn) -> bytes:
    """A valid frame with a few slices replaced by random or nasty bytes."""
    frame = encode(draw(MESSAGES)).rstrip(b"\n")
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(frame)))
        cut = draw(st.integers(0, 8))
        junk = draw(st.one_of(NASTY, st.binary(max_size=6)))
        frame = frame[:at] + junk + frame[at + cut :]
    return frame


@FUZZ
@given(mutated_frames())
def test_mutated_frames_decode_or_are_refused(frame: bytes) -> None:
    decoded_or_refused(frame)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)


@FUZZ
@given(JSON)
def test_any_json_is_a_message_exactly_when_it_is_a_list_led_by_a_string(value: Any) -> None:
    got = decoded_or_refused(json.dumps(value).encode())
    if isinstance(value, list) and value and isinstance(value[0], str):
        assert got == value
    else:
        assert got is None


@pytest.mark.parametrize("line", [
    b'["k",' + b"9" * 5000 + b"]",  # int() refuses >4300 digits: was a bare ValueError
    b'["k",-' + b"9" * 4400 + b"]",
    b"[" * 100_000,  # the C scanner recurses per bracket: was RecursionError
    b'["k",' + b"[" * 100_000,
    b'["k",' + b'{"a":' * 50_000,
])  # fmt: skip
def test_found_faults_are_protocol_errors(line: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode(line)


class _Chunks:
    """A socket whose recv returns the given chunks, then end of stream."""

    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = list(chunks)

    def recv(self, size: int) -> bytes:
        assert size > 0
        return self._chunks.pop(0) if self._chunks else b""


CHUNKS = st.lists(st.one_of(st.binary(max_size=300), MESSAGES.map(encode),
                            st.sampled_from([b"\n", b"x" * 40_000, b"\n\n"])),
                  max_size=8)  # fmt: skip


@settings(FUZZ, max_examples=150)
@given(CHUNKS)
def test_line_reader_frames_any_chunking(chunks: list[bytes]) -> None:
    """Lines come back in order without their newline, each decodes or is refused, and only
    a partial line longer than MAX_LINE is an error."""
    chunks = [c for c in chunks if c]  # recv gives b"" only at end of stream
    whole = b"".join(chunks)
    reader = LineReader(cast(socket.socket, _Chunks(chunks)))
    got: list[bytes] = []
    try:
        while (lines := reader.lines()) is not None:
            got += lines
    except ProtocolError:  # after some recv, the unfinished line was over MAX_LINE
        tails = (b"".join(chunks[:k]).rsplit(b"\n", 1)[-1] for k in range(1, len(chunks) + 1))
        assert any(len(tail) > MAX_LINE for tail in tails)
        assert got == whole.split(b"\n")[: len(got)]
    else:
        assert got == whole.split(b"\n")[:-1]
    for line in got:
        assert b"\n" not in line
        decoded_or_refused(line)
