"""The events table's columns, and a checked batch turned into them.

Shared by the store (which writes these columns) and the verifier processes (which build them
from each batch they check), so a batch crosses from a verifier to the writer as one Arrow
table, without a Python object per event on the way.
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
)
EVENT_SCHEMA = pa.schema(list(zip(EVENT_COLUMNS, _EVENT_TYPES, strict=True)))
RECEIVED = EVENT_COLUMNS.index("received_ms")


def from_checked(checked: envelope.CheckedBatch) -> pa.Table:
    """The rows a checked batch would store; received_ms is 0 until the writer stamps it."""
    events = checked.events
    n = len(events)
    batch = checked.batch
    columns = [
        pa.array([batch.agent_id] * n, pa.string()),
        pa.array(range(checked.first_seq, checked.last_seq + 1), pa.uint64()),
        pa.array([e.event_id for e in events], pa.string()),
        pa.array([e.WhichOneof("payload") or "" for e in events], pa.string()),
        pa.array([e.severity for e in events], pa.uint8()),
        pa.array([e.account for e in events], pa.string()),
        pa.array([e.observed_unix_ms for e in events], pa.int64()),
        pa.array([0] * n, pa.int64()),
        pa.array(batch.events, pa.binary()),
        pa.array(checked.hashes, pa.binary()),
    ]
    return pa.Table.from_arrays(columns, schema=EVENT_SCHEMA)


def stamp_received(table: pa.Table, received_ms: int) -> pa.Table:
    """The same rows, received by the collector at received_ms."""
    column = pa.array([received_ms] * table.num_rows, pa.int64())
    return table.set_column(RECEIVED, EVENT_SCHEMA.field(RECEIVED), column)
