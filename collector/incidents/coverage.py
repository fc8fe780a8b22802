"""Candidates that are not about a pupil: tampering records, silent agents, the collector's
own storage outages; and re-running.

Tampering records come from the ingest path (a gap, a fork, a replay, a bad signature); the
engine turns each new one into a candidate. A silent agent (nothing received for longer than
`silent_agent_minutes`) is found by a periodic check, one candidate per silence.
"""

from __future__ import annotations

import logging
from typing import Any

from collector.incidents.engine import THROUGH_KEY, Engine
from collector.incidents.signals import Signal
from collector.integrity import records
from collector.storage.storage_health import Outage
from collector.storage.store import Store, now_ms

log = logging.getLogger(__name__)

_WHAT = {
    "gap": "events missing from the agent's chain",
    "fork": "a second, different history for events already stored",
    "replay": "a batch replayed from another connection",
    "bad_signature": "a batch whose signature does not verify",
    "flood": "refused batches sent over and over (counted on one record)",
    "malformed_field": "an event with a field no genuine agent sends (kept as evidence, not "
    "shown as a detection)",
    "screenshot": "a held screenshot that is not the one its event names, or does not open",
}
CHUNK = 50_000
STORAGE_SEVERITY = 3  # monitoring was at risk; the PCs kept the events, so none is missing


def tampering(engine: Engine, store: Store) -> list[int]:
    """Turn tampering records not yet seen into candidates (grouped per agent)."""
    con = store.con
    row = con.execute("SELECT value FROM settings WHERE key = 'engine.tampering_seen'").fetchone()
    seen = int(row[0]) if row else 0
    rows = con.execute(
        "SELECT id, agent_id, kind, first_seq, last_seq, detected_ms FROM tampering "
        "WHERE id > ? ORDER BY id",
        [seen],
    ).fetchall()
    if not rows:
        return []
    signals = []
    for _id, agent_id, kind, first, last, detected_ms in rows:
        severity = engine.rules.tampering_severity.get(kind, 4)
        what = _WHAT.get(kind, kind)
        signals.append(
            Signal(
                agent_id,
                0,
                "",
                detected_ms,
                "tampering",
                "tampering",
                "tampering",
                severity,
                f"{what} (seq {first}..{last})",
            )
        )
    with store.transaction():
        touched = engine.place(store, signals, notify=True)
        con.execute(
            "INSERT INTO settings VALUES ('engine.tampering_seen', ?) ON CONFLICT (key) "
            "DO UPDATE SET value = excluded.value",
            [str(rows[-1][0])],
        )
    return touched


def catch_up(engine: Engine, store: Store) -> int:
    """Judge events stored but not yet judged: the collector stopped (or the engine failed)
    between committing a batch and making its candidates. Returns how many were judged.

    A database without the mark (made before it existed) is taken as judged up to now."""
    con = store.con
    row = con.execute("SELECT value FROM settings WHERE key = ?", [THROUGH_KEY]).fetchone()
    latest = con.execute("SELECT max(received_ms) FROM events").fetchone()
    latest_ms = int(latest[0]) if latest and latest[0] is not None else 0
    if row is None:  # set it now (even to 0), so a failure before the first commit is seen
        with store.transaction():
            con.execute("INSERT INTO settings VALUES (?, ?)", [THROUGH_KEY, str(latest_ms)])
        return 0
    if int(row[0]) >= latest_ms:
        return 0
    cur = store.reader()
    judged = 0
    try:
        cur.execute(
            "SELECT agent_id, seq, kind, observed_ms, raw, received_ms, malformed FROM events "
            "WHERE received_ms > ? ORDER BY received_ms, agent_id, seq",
            [int(row[0])],
        )
        carry: list[tuple[Any, ...]] = []
        while True:
            fetched = cur.fetchmany(CHUNK)
            rows = carry + fetched
            if not rows:
                break
            if fetched and len(fetched) == CHUNK:
                # More may follow: end this chunk where received_ms changes, so the mark never
                # stands inside a millisecond whose rest is not judged yet.
                cut = len(rows)
                while cut > 0 and rows[cut - 1][5] == rows[-1][5]:
                    cut -= 1
                if not cut:  # all one millisecond so far: read on before judging
                    carry = rows
                    continue
                rows, carry = rows[:cut], rows[cut:]
            else:
                carry = []
            judged += len(rows)
            # A malformed event is evidence of tampering, never a detection (its record
            # became a candidate when it was stored); the mark moves past it all the same.
            judge = [r[:5] for r in rows if r[6] is None]
            engine.process(store, judge, notify=True, through_ms=rows[-1][5])
    finally:
        cur.close()
    log.warning("incidents.caught_up events=%d", judged)
    return judged


def silent_agents(engine: Engine, store: Store, now: int | None = None) -> list[int]:
    """One candidate per agent that has been silent past the threshold and has none open."""
    now = now or now_ms()
    limit = engine.rules.incidents.silent_agent_minutes * 60_000
    rows = store.con.execute(
        "SELECT a.agent_id, a.hostname, coalesce(a.last_seen_ms, a.enrolled_ms) FROM agents a "
        "WHERE a.revoked_ms IS NULL AND coalesce(a.last_seen_ms, a.enrolled_ms) < ? "
        "AND NOT EXISTS (SELECT 1 FROM incidents i WHERE i.kind = 'silent_agent' "
        "AND i.agent_id = a.agent_id AND i.status <> 'closed' AND i.last_ms >= "
        "coalesce(a.last_seen_ms, a.enrolled_ms))",
        [now - limit],
    ).fetchall()
    signals = [
        Signal(
            agent_id,
            0,
            "",
            last,
            "silent",
            "silent_agent",
            "silent_agent",
            engine.rules.silent_agent_severity,
            f"{hostname}: nothing received for {(now - last) // 60_000} minutes",
        )
        for agent_id, hostname, last in rows
    ]
    if not signals:
        return []
    with store.transaction():
        touched = engine.place(store, signals, notify=True)
    log.info("incidents.silent agents=%d", len(signals))
    return touched


def storage_outage(engine: Engine, store: Store, outage: Outage) -> list[int]:
    """One candidate for a time the collector could not write its database (recorded once it
    can): the DSL sees when monitoring was at risk, and why."""
    assert outage.ended_ms is not None
    minutes = max(1, (outage.ended_ms - outage.since_ms) // 60_000)
    signal = Signal(
        "", 0, "", outage.since_ms, "collector", "storage", "storage", STORAGE_SEVERITY,
        f"the collector could not write its database for {minutes} minute(s) ({outage.why}); "
        f"{outage.failed_commits} write(s) failed; PCs kept their events and sent them again",
    )  # fmt: skip
    with store.transaction():
        touched = engine.place(store, [signal], notify=False)  # the alarm has gone already
    log.info("incidents.storage_outage minutes=%d", minutes)
    return touched


def rerun(engine: Engine, store: Store) -> dict[str, int]:
    """Rebuild every candidate no one has triaged yet from the stored events, with the current
    rules. Triaged candidates, and the events that are their evidence, are kept as they are."""
    con = store.con
    with store.transaction():
        dropped = con.execute("SELECT count(*) FROM incidents WHERE NOT triaged").fetchone()
        con.execute(
            "DELETE FROM incident_signals WHERE incident_id IN "
            "(SELECT id FROM incidents WHERE NOT triaged)"
        )
        con.execute("DELETE FROM exempted_matches")
        gone = [r[0] for r in con.execute("SELECT id FROM incidents WHERE NOT triaged").fetchall()]
        if engine.record_key is not None:  # superseded in the record, never rewritten
            gone_entries = [records.Entry(i, "rebuilt_away", {}, "rerun") for i in gone]
            records.append(store, engine.record_key, gone_entries)
        con.execute("DELETE FROM incidents WHERE NOT triaged")
        con.execute("DELETE FROM settings WHERE key = 'engine.tampering_seen'")
    cur = store.reader()
    cur.execute(
        "SELECT e.agent_id, e.seq, e.kind, e.observed_ms, e.raw FROM events e "
        "WHERE e.kind IN ('keyword', 'url', 'usb', 'test_alert') AND e.malformed IS NULL "
        "AND NOT EXISTS (SELECT 1 FROM "
        "incident_signals s WHERE s.agent_id = e.agent_id AND s.seq = e.seq) "
        "ORDER BY e.observed_ms, e.agent_id, e.seq"
    )
    events = 0
    while rows := cur.fetchmany(CHUNK):
        events += len(rows)
        engine.process(store, rows, notify=False)
    cur.close()
    tampering(engine, store)
    made = con.execute("SELECT count(*) FROM incidents WHERE NOT triaged").fetchone()
    result = {
        "removed": int(dropped[0]) if dropped else 0,
        "events": events,
        "candidates": int(made[0]) if made else 0,
    }
    log.info("incidents.rerun removed=%d events=%d candidates=%d", *result.values())
    return result
