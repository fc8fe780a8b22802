"""Pure: one stored event in, what the incident engine should make of it out.

No database and no I/O, so every rule is unit-tested on protobuf bytes. The summary of a
signal holds the matched terms or site, never the typed context (that stays in the evidence
event, shown only on the incident page).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from collector.incidents.config import EngineRules
from collector.intake.event_table import SIGNAL_KINDS
from collector.intake.vocabulary import UNKNOWN
from protos import events_pb2

# Kinds worth decoding; the rest (unknown ones) are skipped without parsing.
INTERESTING = SIGNAL_KINDS | {"heartbeat"}
_USB = events_pb2.UsbDecision
_WATCHDOG: dict[int, Callable[[EngineRules], tuple[str, int]]] = {
    events_pb2.AgentStatus.SENSOR_SHED: lambda r: ("sensor_shed", r.sensor_shed_severity),
    events_pb2.AgentStatus.HELPER_RESTARTED:
        lambda r: ("helper_restarted", r.helper_restarted_severity),
}  # fmt: skip


@dataclass(frozen=True)
class Signal:
    agent_id: str
    seq: int
    account: str
    observed_ms: int
    source: str  # keyword, url, usb, test
    kind: str  # the candidate kind: detection, usb, test
    category: str
    severity: int
    summary: str
    exemption: str = ""


@dataclass(frozen=True)
class Health:
    agent_id: str
    heartbeat_ms: int
    agent_version: str
    policy_version: str
    sensors: str
    outbox_pending: int
    notice_shown_ms: int = 0  # 0: this heartbeat names no showing of the notice
    notice_version: str = ""


@dataclass(frozen=True)
class Dropped:
    agent_id: str
    count: int


Outcome = Signal | Health | Dropped | None


def classify(
    rules: EngineRules, agent_id: str, seq: int, kind: str, observed_ms: int,
    raw: bytes | events_pb2.Event,
) -> Outcome:
    if kind not in INTERESTING:
        return None
    event = events_pb2.Event.FromString(raw) if isinstance(raw, bytes) else raw
    account = event.account
    if kind == "keyword":
        k = event.keyword
        where = k.source or "keyboard"
        terms = ", ".join(k.terms[:5])
        if not rules.knows(k.category):
            return _unknown(rules, agent_id, seq, account, observed_ms, "keyword")
        return Signal(
            agent_id,
            seq,
            account,
            observed_ms,
            "search" if where.startswith("search:") else "keyword",
            "detection",
            k.category or "other",
            rules.severity(k.category, k.score),
            f"{where}: {terms}" if terms else where,
            k.exemption,
        )
    if kind == "url":
        u = event.url
        if not rules.knows(u.category):
            return _unknown(rules, agent_id, seq, account, observed_ms, "url")
        return Signal(
            agent_id,
            seq,
            account,
            observed_ms,
            "url",
            "detection",
            u.category or "other",
            rules.severity(u.category, 0),
            f"site: {u.rule or _host(u.url)}",
            u.exemption,
        )
    if kind == "usb":
        return _usb(rules, agent_id, seq, account, observed_ms, event.usb)
    if kind == "test_alert":
        return Signal(
            agent_id,
            seq,
            account,
            observed_ms,
            "test",
            "test",
            "test_alert",
            rules.test_alert_severity,
            "test alert (technician's end-to-end check)",
        )
    if kind == "heartbeat":
        h = event.heartbeat
        sensors = ", ".join(f"{s.name}={s.state}" for s in h.sensors)
        return Health(agent_id, observed_ms, h.agent_version, h.policy_version, sensors,
                      h.outbox_pending, h.notice_shown_unix_ms, h.notice_version[:40])  # fmt: skip
    st = event.status
    if st.kind == events_pb2.AgentStatus.DROPPED:
        return Dropped(agent_id, st.count)
    if st.kind == events_pb2.AgentStatus.CAPTURE_MISSING:
        # Keystrokes are not being watched in a pupil's session: someone stopped the helper,
        # or it did not start at login. Grouped per machine and account like detections.
        kind_ = "capture_missing"
        return Signal(agent_id, seq, account, observed_ms, "capture", kind_, kind_,
                      rules.capture_missing_severity, st.detail[:200])  # fmt: skip
    if st.kind in _WATCHDOG:
        # The agent's watchdog stopped a sensor or restarted a helper: a gap in monitoring the
        # technician should see, shown like a missing helper.
        kind_, severity = _WATCHDOG[st.kind](rules)
        return Signal(agent_id, seq, account, observed_ms, "agent", kind_, kind_, severity,
                      st.detail[:200])  # fmt: skip
    return None


def _unknown(
    rules: EngineRules, agent_id: str, seq: int, account: str, observed_ms: int, source: str
) -> Signal:
    """A detection under a category no policy defines (ingest marks these; an event stored
    before it did may still come here): filed as "unknown", with none of the PC's strings, so
    no name a PC chose becomes a label on a page. The DSL still sees it, and its evidence."""
    return Signal(agent_id, seq, account, observed_ms, source, "detection", UNKNOWN,
                  rules.severity(UNKNOWN, 0),
                  "a detection under a category no policy defines (see its evidence)")  # fmt: skip


def _usb(
    rules: EngineRules,
    agent_id: str,
    seq: int,
    account: str,
    observed_ms: int,
    usb: events_pb2.UsbDecision,
) -> Signal | None:
    if usb.action == _USB.INSERTED_BLOCKED:
        severity, verb = rules.usb_blocked_severity, "blocked"
    elif usb.action == _USB.INSERTED_REJECTED:
        severity, verb = rules.usb_rejected_severity, "rejected (BadUSB: storage with HID/net)"
    else:
        return None
    device = " ".join(x for x in (usb.manufacturer, usb.product) if x) or "USB device"
    if usb.not_enforced:  # the device is usable: the block did not happen
        severity, verb = min(5, severity + 1), f"{verb} by policy but NOT blocked on the PC"
    return Signal(
        agent_id,
        seq,
        account,
        observed_ms,
        "usb",
        "usb",
        "usb",
        severity,
        f"{device} {usb.vendor_id}:{usb.product_id} {verb}",
    )


def _host(url: str) -> str:
    rest = url.split("://", 1)[-1]
    return rest.split("/", 1)[0]
