"""Re-verify stored events from storage alone: each batch's chain and Ed25519 signature.

This is the check a DSL (or the police) can run long after the fact: the collector's own
records are not trusted, only the agent's key, the stored bytes and the stored signatures.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from collector.store import Store
from protos import envelope


def verify_range(store: Store, agent_id: str, first: int, last: int) -> dict[int, str]:
    """Status per stored seq in [first, last]: "verified" or what failed.

    Two queries whatever the size: the batches that cover the range, and their events.
    """
    rec = store.agent_records().get(agent_id)
    if rec is None:
        return {}
    key = envelope.public_key_from_raw(rec.public_key)
    batches = store.batches_covering(agent_id, first, last)
    lo = min([first, *(b[0] for b in batches)])
    hi = max([last, *(b[1] for b in batches)])
    rows = store.event_range(agent_id, lo, hi)
    by_seq = {seq: (raw, digest) for seq, raw, digest in rows}
    status: dict[int, str] = {}
    for b_first, b_last, prev_hash, head, nonce, signature in batches:
        covered = [(s, *by_seq[s]) for s in range(b_first, b_last + 1) if s in by_seq]
        verdict = _verify_batch(
            key, agent_id, b_first, b_last, prev_hash, head, nonce, signature, covered
        )
        if b_first == 1 and prev_hash != envelope.genesis(agent_id):
            verdict = "chain does not start at this agent's genesis"
        for seq, _, _ in covered:
            if first <= seq <= last and status.get(seq) != "verified":
                status[seq] = verdict
    for seq in by_seq:
        if first <= seq <= last:
            status.setdefault(seq, "no signed batch covers this event")
    return status


def _verify_batch(
    key: Ed25519PublicKey,
    agent_id: str,
    first: int,
    last: int,
    prev_hash: bytes,
    head: bytes,
    nonce: bytes,
    signature: bytes,
    rows: list[tuple[int, bytes, bytes]],
) -> str:
    try:
        key.verify(signature, envelope.batch_payload(agent_id, nonce, first, last, prev_hash, head))
    except InvalidSignature:
        return "batch signature does not verify"
    if [r[0] for r in rows] != list(range(first, last + 1)):
        return "events missing from storage"
    hashes = envelope.chain(prev_hash, [r[1] for r in rows])
    if hashes != [r[2] for r in rows] or hashes[-1] != head:
        return "stored bytes do not hash to the signed head"
    return "verified"
