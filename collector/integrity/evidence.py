"""Re-verify stored events from storage alone: each batch's chain and Ed25519 signature, and
the links that join the batches into one chain.

This is the check a DSL (or the police) can run long after the fact: the collector's own
records are not trusted, only the agent's key, the stored bytes and the stored signatures.
For a range of seqs it checks every batch that covers the range:

- the batch signature, over `envelope.batch_payload`, against the agent's enrolled key;
- that every event the batch signed is still stored, and that the stored bytes chain from the
  batch's prev_hash to its signed head (and to each event's stored hash);
- that the batch links to what comes before it: its prev_hash is this agent's genesis (seq 1),
  the head of the covering batch that ends just before it, or the stored hash of the event just
  before it (for the first batch, where that event is still stored). Two batches that do not
  join, or a hole between them, break the chain there.

An event after a break is still signed, but it can no longer be tied to the events before it,
so it is not reported as verified either. `load` reads what is needed (three small queries,
whatever connection: the writer's Store or a console reader); `check` is pure, so the export
can put the same material in front of a third party.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from collector.storage.store import Store
from protos import envelope

VERIFIED = "verified"


@dataclass(frozen=True)
class BatchRow:
    first_seq: int
    last_seq: int
    prev_hash: bytes
    head_hash: bytes
    nonce: bytes
    signature: bytes


@dataclass(frozen=True)
class Material:
    """Everything a check of [first, last] needs, as stored.

    `events` holds every stored event of the covering batches and of the range, and the stored
    event just before the first covering batch when there is one: seq -> (raw, hash).
    """

    agent_id: str
    public_key: bytes | None
    first: int
    last: int
    batches: list[BatchRow]
    events: dict[int, tuple[bytes, bytes]]
    duplicates: list[int] = field(default_factory=list)

    @property
    def lo(self) -> int:
        """The first seq of the range or of its covering batches, whichever is lower."""
        return min([self.first, *(b.first_seq for b in self.batches)])

    @property
    def hi(self) -> int:
        return max([self.last, *(b.last_seq for b in self.batches)])

    @property
    def before_seq(self) -> int | None:
        """The seq of the stored event just before the first covering batch, if stored."""
        if not self.batches:
            return None
        seq = self.batches[0].first_seq - 1
        return seq if seq in self.events else None


@dataclass(frozen=True)
class RangeCheck:
    """Per stored seq in [first, last]: "verified" or what failed; and each problem found, named
    by batch or seq, in seq order."""

    status: dict[int, str]
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems and all(v == VERIFIED for v in self.status.values())


def load(con: duckdb.DuckDBPyConnection, agent_id: str, first: int, last: int) -> Material:
    """Three queries whatever the size: the agent's key, the batches that cover the range, and
    their events (with the one just before them)."""
    key_row = con.execute("SELECT public_key FROM agents WHERE agent_id = ?", [agent_id]).fetchone()
    batches = [
        BatchRow(int(r[0]), int(r[1]), r[2], r[3], r[4], r[5])
        for r in con.execute(
            "SELECT first_seq, last_seq, prev_hash, head_hash, nonce, signature FROM batches "
            "WHERE agent_id = ? AND last_seq >= ? AND first_seq <= ? "
            "ORDER BY first_seq, last_seq",
            [agent_id, first, last],
        ).fetchall()
    ]
    lo = min([first, *(b.first_seq for b in batches)])
    hi = max([last, *(b.last_seq for b in batches)])
    events: dict[int, tuple[bytes, bytes]] = {}
    duplicates: list[int] = []
    for seq, raw, digest in con.execute(
        "SELECT seq, raw, hash FROM events WHERE agent_id = ? AND seq BETWEEN ? AND ? ORDER BY seq",
        [agent_id, max(lo - 1, 0), hi],
    ).fetchall():
        if seq in events:
            duplicates.append(int(seq))
        events[int(seq)] = (raw, digest)
    return Material(
        agent_id=agent_id,
        public_key=None if key_row is None else key_row[0],
        first=first,
        last=last,
        batches=batches,
        events=events,
        duplicates=duplicates,
    )


def check(m: Material) -> RangeCheck:
    """Verify the material on its own terms (see the module docstring)."""
    in_range = [s for s in sorted(m.events) if m.first <= s <= m.last]
    if m.public_key is None:
        why = "no enrolled key for this agent"
        return RangeCheck({s: why for s in in_range}, [why])
    try:
        key = envelope.public_key_from_raw(m.public_key)
    except ValueError:  # EnvelopeError (wrong length) or a point the library refuses
        why = "the enrolled key is not an Ed25519 key"
        return RangeCheck({s: why for s in in_range}, [why])
    status: dict[int, str] = {}
    problems = [f"seq {s}: stored more than once" for s in m.duplicates]
    breaks: list[tuple[int, str]] = []  # (first seq the break affects, what broke)
    heads: dict[int, bytes] = {}  # last_seq -> head of the covering batches checked so far
    covered_to = 0
    for b in m.batches:
        name = f"batch {b.first_seq}..{b.last_seq}"
        own = _verify_batch(key, m.agent_id, b, m.events)
        # A re-sent batch can start where the first covering batch does: both join from before.
        link = _link(m, b, heads, covered_to, first=b.first_seq == m.batches[0].first_seq)
        if own != VERIFIED:
            problems.append(f"{name}: {own}")
            breaks.append((b.last_seq + 1, f"{name}: {own}"))
        if link:
            problems.append(f"{name}: {link}")
            breaks.append((b.first_seq, f"{name}: {link}"))
        verdict = own if own != VERIFIED else (link or VERIFIED)
        for seq in range(max(b.first_seq, m.first), min(b.last_seq, m.last) + 1):
            if seq in m.events and status.get(seq) != VERIFIED:
                status[seq] = verdict
        heads[b.last_seq] = b.head_hash
        covered_to = max(covered_to, b.last_seq)
    for seq in in_range:
        if seq not in status:
            status[seq] = "no signed batch covers this event"
            problems.append(f"seq {seq}: no signed batch covers it")
            breaks.append((seq, f"seq {seq}: no signed batch covers it"))
    if breaks:
        at, what = min(breaks)
        for seq in in_range:
            if seq >= at and status[seq] == VERIFIED:
                status[seq] = f"chain broken before this event ({what})"
    return RangeCheck(status, problems)


def check_range(store: Store, agent_id: str, first: int, last: int) -> RangeCheck:
    return check(load(store.con, agent_id, first, last))


def verify_range(store: Store, agent_id: str, first: int, last: int) -> dict[int, str]:
    """Status per stored seq in [first, last]: "verified" or what failed."""
    return check_range(store, agent_id, first, last).status


def _link(m: Material, b: BatchRow, heads: dict[int, bytes], covered_to: int, first: bool) -> str:
    """What is wrong with how the batch joins what is stored before it; "" when it joins."""
    if b.first_seq == 1:
        if b.prev_hash == envelope.genesis(m.agent_id):
            return ""
        return "prev_hash is not this agent's genesis"
    want = b.first_seq - 1
    if want in heads:
        if heads[want] == b.prev_hash:
            return ""
        return f"prev_hash is not the signed head of the batch before it (ending at seq {want})"
    if want in m.events:
        if m.events[want][1] == b.prev_hash:
            return ""
        return f"prev_hash is not the hash of the stored event before it (seq {want})"
    if first:
        return ""  # nothing before the range is stored any more (retention): nothing to join
    if covered_to < want:
        hole = _seqs(range(covered_to + 1, want + 1))
        return f"chain has a hole before it: {hole} in no stored batch"
    return f"cannot be joined to the chain: seq {want} is missing from storage"


def _verify_batch(
    key: Ed25519PublicKey,
    agent_id: str,
    b: BatchRow,
    events: dict[int, tuple[bytes, bytes]],
) -> str:
    payload = envelope.batch_payload(
        agent_id, b.nonce, b.first_seq, b.last_seq, b.prev_hash, b.head_hash
    )
    try:
        key.verify(b.signature, payload)
    except InvalidSignature:
        return "batch signature does not verify"
    seqs = range(b.first_seq, b.last_seq + 1)
    missing = [s for s in seqs if s not in events]
    if missing:
        return f"events missing from storage ({_seqs(missing)})"
    hashes = envelope.chain(b.prev_hash, [events[s][0] for s in seqs])
    for seq, h in zip(seqs, hashes, strict=True):
        if h != events[seq][1]:
            return f"stored bytes do not hash to the signed head (first difference at seq {seq})"
    if hashes[-1] != b.head_hash:
        return "stored bytes do not hash to the signed head"
    return VERIFIED


def _seqs(seqs: range | list[int]) -> str:
    """Seqs as short runs: "seq 4", "seqs 2..5, 9"."""
    items = list(seqs)
    runs: list[tuple[int, int]] = []
    for s in items:
        if runs and s == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], s)
        else:
            runs.append((s, s))
    text = ", ".join(str(a) if a == b else f"{a}..{b}" for a, b in runs)
    return f"seq {text}" if len(items) == 1 else f"seqs {text}"
