"""Which of a commit's rows the incident engine classifies, picked in Arrow."""

from __future__ import annotations

import pyarrow as pa
import pytest

from collector.event_table import EVENT_COLUMNS, EVENT_SCHEMA
from collector.incidents.engine import rows_to_judge

pytestmark = pytest.mark.unit


def table(*rows: tuple[str, int, str, int]) -> pa.Table:
    """(agent, seq, kind, observed_ms) rows; raw names the row so a test can see which."""
    cols: dict[str, list[object]] = {c: [] for c in EVENT_COLUMNS}
    for agent, seq, kind, observed in rows:
        for name, value in (("agent_id", agent), ("seq", seq), ("event_id", ""), ("kind", kind),
                            ("severity", 0), ("account", ""), ("observed_ms", observed),
                            ("received_ms", 1), ("raw", f"{agent}#{seq}".encode()),
                            ("hash", b"")):  # fmt: skip
            cols[name].append(value)
    return pa.Table.from_pydict(cols, schema=EVENT_SCHEMA)


def picked(events: pa.Table) -> set[bytes]:
    return {raw for *_, raw in rows_to_judge(events)}


def test_every_signal_kind_and_each_agents_latest_heartbeat() -> None:
    events = table(
        ("a", 1, "heartbeat", 100),
        ("a", 2, "keyword", 110),
        ("a", 3, "heartbeat", 120),
        ("b", 1, "heartbeat", 500),
        ("a", 4, "url", 130),
        ("b", 2, "usb", 510),
        ("b", 3, "status", 520),
        ("b", 4, "test_alert", 530),
        ("b", 5, "future_kind", 540),
    )
    assert picked(events) == {b"a#2", b"a#3", b"b#1", b"a#4", b"b#2", b"b#3", b"b#4"}


def test_the_latest_heartbeat_is_by_the_agents_clock_and_a_tie_goes_to_the_later_seq() -> None:
    events = table(
        ("a", 1, "heartbeat", 300),  # the clock went back after this one
        ("a", 2, "heartbeat", 200),
        ("b", 1, "heartbeat", 700),
        ("b", 2, "heartbeat", 700),
        ("c", 9, "heartbeat", 5),
    )
    assert picked(events) == {b"a#1", b"b#2", b"c#9"}


def test_rows_from_several_batches_are_judged_as_one() -> None:
    first = table(("a", 1, "heartbeat", 100), ("b", 1, "heartbeat", 900))
    second = table(("a", 2, "heartbeat", 150), ("b", 2, "keyword", 950))
    assert picked(pa.concat_tables([first, second])) == {b"a#2", b"b#1", b"b#2"}
    assert rows_to_judge(table()) == []
    assert picked(table(("a", 1, "heartbeat", 1))) == {b"a#1"}
