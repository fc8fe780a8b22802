"""The events table's columns, and a checked batch turned into them.

Shared by the store (which writes these columns) and the verifier processes (which build them
from each batch they check), so a batch crosses from a verifier to the writer as one Arrow
table, without a Python object per event on the way. The verifier also marks the rows the
incident engine will classify (`judge`), while it has the events decoded: every event of a kind
that can make a signal, and the batch's latest heartbeat. Heartbeats are most of the traffic
and only an agent's latest one matters, so the rest never reach Python again.
"""

from __future__ import annotations

import pyarrow as pa

from protos import envelope

EVENT_COLUMNS = (
    "agent_id",
    "seq",
    "event_id",
    "kind",
    "severity",
    "account",
    "observed_ms",
    "received_ms",
    "raw",
    "hash",
    "clock_skew_ms",  # the session's measured skew when beyond the setting, else null
    "malformed",  # the field no honest agent sends, and why (protos/event_fields.py), else null
)
_EVENT_TYPES = (
    pa.string(),
    pa.uint64(),
    pa.string(),
    pa.string(),
    pa.uint8(),
    pa.string(),
    pa.int64(),
    pa.int64(),
    pa.binary(),
    pa.binary(),
    pa.int64(),
    pa.string(),
)
EVENT_SCHEMA = pa.schema(list(zip(EVENT_COLUMNS, _EVENT_TYPES, strict=True)))
ROWS_SCHEMA = EVENT_SCHEMA.append(pa.field("judge", pa.bool_()))  # as a verifier hands them over
RECEIVED = EVENT_COLUMNS.index("received_ms")
SKEW = EVENT_COLUMNS.index("clock_skew_ms")
# Kinds the incident engine makes signals of (collector/incidents/signals.py); heartbeats set
# an agent's health instead.
SIGNAL_KINDS = frozenset({"keyword", "url", "usb", "test_alert", "status"})


def from_checked(
    checked: envelope.CheckedBatch, malformed: list[str | None] | None = None
) -> pa.Table:
    """The rows a checked batch would store, and `judge`; received_ms is 0 (and
    clock_skew_ms null) until the writer stamps them. `malformed`: per event, the field that
    breaks protos/event_fields.py's contract (None for none); such an event is never judged."""
    f = checked.fields
    n = len(f.seq)
    judge = [k in SIGNAL_KINDS for k in f.kind]
    if malformed is not None:
        judge = [j and m is None for j, m in zip(judge, malformed, strict=True)]
    beats = [i for i, k in enumerate(f.kind) if k == "heartbeat"]
    if malformed is not None:
        beats = [i for i in beats if malformed[i] is None]
    if beats:  # the latest by the agent's clock; max keeps the first of a tie: the later seq
        judge[max(reversed(beats), key=f.observed_ms.__getitem__)] = True
    columns = [
        pa.repeat(pa.scalar(checked.batch.agent_id, pa.string()), n),
        pa.array(f.seq, pa.uint64()),
        pa.array(f.event_id, pa.string()),
        pa.array(f.kind, pa.string()),
        pa.array(f.severity, pa.uint8()),
        pa.array(f.account, pa.string()),
        pa.array(f.observed_ms, pa.int64()),
        pa.repeat(pa.scalar(0, pa.int64()), n),
        pa.array(checked.batch.events, pa.binary()),
        pa.array(checked.hashes, pa.binary()),
        pa.nulls(n, pa.int64()),
        pa.nulls(n, pa.string()) if malformed is None else pa.array(malformed, pa.string()),
        pa.array(judge, pa.bool_()),
    ]
    return pa.Table.from_arrays(columns, schema=ROWS_SCHEMA)


def stamp_received(table: pa.Table, received_ms: int, skew_ms: int | None = None) -> pa.Table:
    """The same rows, received by the collector at received_ms, from a session whose clock
    skew was beyond the setting (skew_ms) or not (None)."""
    column = pa.array([received_ms] * table.num_rows, pa.int64())
    table = table.set_column(RECEIVED, EVENT_SCHEMA.field(RECEIVED), column)
    if skew_ms is None:
        return table
    skews = pa.array([skew_ms] * table.num_rows, pa.int64())
    return table.set_column(SKEW, EVENT_SCHEMA.field(SKEW), skews)


def stored_columns(rows: pa.Table) -> pa.Table:
    """Just the events table's columns (no copy)."""
    return rows.select(list(EVENT_COLUMNS))
