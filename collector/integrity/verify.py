"""Does a batch continue the chain this collector holds for its agent?

A verifier (`check_batch` in protos/envelope.py, run by collector/intake/verifier_worker.py) has
already shown the batch is well formed and signed. Here it is placed against what is stored:
the next link, a re-send of stored events, a gap, or a fork. Pure logic, with the stored
hashes passed in as a function.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa

from protos import ingest_pb2


@dataclass(frozen=True)
class VerifiedBatch:
    """A signed batch whose chain holds, with the rows it would store
    (collector/intake/event_table.py's columns; received_ms is stamped by the writer)."""

    batch: ingest_pb2.Batch
    rows: pa.Table

    @property
    def first_seq(self) -> int:
        return self.batch.first_seq

    @property
    def last_seq(self) -> int:
        return self.batch.first_seq + int(self.rows.num_rows) - 1

    def hashes(self, count: int) -> list[bytes]:
        """The chain hashes of the first `count` events."""
        return self.rows.column("hash").slice(0, count).to_pylist()  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Placement:
    """What to do with a signed batch. `store_from` indexes the first event to store."""

    store_from: int | None  # None: store nothing
    duplicate: bool = False
    tamper_kind: str | None = None
    tamper_detail: str = ""

    @property
    def rejected(self) -> bool:
        return self.store_from is None and not self.duplicate


def place(
    checked: VerifiedBatch,
    last_seq: int,
    head_hash: bytes,
    stored_hashes: Callable[[int, int], list[bytes]],
) -> Placement:
    first, last = checked.first_seq, checked.last_seq
    if first == last_seq + 1:
        if checked.batch.prev_hash == head_hash:
            return Placement(store_from=0)
        return Placement(
            None,
            tamper_kind="fork",
            tamper_detail=f"batch at seq {first} does not continue the stored head at {last_seq}",
        )
    if first > last_seq + 1:
        # Events are missing before this batch. Store what arrived (it is signed and chained
        # within itself) and record the hole, which is what a DSL needs to see.
        return Placement(
            store_from=0,
            tamper_kind="gap",
            tamper_detail=f"seqs {last_seq + 1}..{first - 1} never arrived",
        )
    # The batch starts at or before what is stored: a re-send, a replay, or a fork.
    overlap_last = min(last, last_seq)
    stored = stored_hashes(first, overlap_last)
    sent = checked.hashes(overlap_last - first + 1)
    if stored != sent:
        return Placement(
            None,
            tamper_kind="fork",
            tamper_detail=f"seqs {first}..{overlap_last} differ from the stored events",
        )
    if last <= last_seq:
        return Placement(None, duplicate=True)
    return Placement(store_from=last_seq - first + 1)


def classify_unsigned(batch_hashes: list[bytes], stored: list[bytes]) -> str:
    """A batch whose signature failed: a replay of stored events, or a forgery."""
    if batch_hashes and stored == batch_hashes:
        return "replay"
    return "bad_signature"
