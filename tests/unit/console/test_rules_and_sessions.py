"""Pure parts of the incident engine and console: classification, sessions, the throttle,
the notification text."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.console.sessions import Sessions, Throttle
from collector.incidents import config
from collector.incidents.signals import Health, Signal, classify
from collector.reporting.notify import NotifyConfig, message
from protos import envelope, events_pb2

pytestmark = pytest.mark.unit
RULES = config.EngineRules(config.DEFAULT_INCIDENTS, config.DEFAULT_RECURRENCES)


def _raw(**payload: object) -> bytes:
    return envelope.event_bytes(events_pb2.Event(seq=1, account="pupil.amy", **payload))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("category", "score", "severity"),
    [
        ("grooming", 25, 5),
        ("grooming", 5, 4),
        ("suicide", 0, 5),
        ("extremism", 10, 4),
        ("bullying", 40, 3),
        ("bullying", 5, 2),
    ],
)
def test_severity_comes_from_category_and_score(category: str, score: int, severity: int) -> None:
    kw = events_pb2.KeywordDetection(category=category, terms=["x"], score=score, context="ctx")
    out = classify(RULES, "ag", 1, "keyword", 0, _raw(keyword=kw))
    assert isinstance(out, Signal) and out.severity == severity
    assert "ctx" not in out.summary  # the typed context never reaches the list view


def test_usb_blocked_and_rejected_are_signals_allowed_is_not() -> None:
    usb = events_pb2.UsbDecision
    for action, severity in ((usb.INSERTED_BLOCKED, 3), (usb.INSERTED_REJECTED, 4)):
        out = classify(RULES, "ag", 1, "usb", 0, _raw(usb=usb(action=action, vendor_id="0781")))
        assert isinstance(out, Signal) and out.severity == severity and out.kind == "usb"
    assert classify(RULES, "ag", 1, "usb", 0, _raw(usb=usb(action=usb.INSERTED_ALLOWED))) is None
    failed = usb(action=usb.INSERTED_BLOCKED, not_enforced="could not write 0")
    out = classify(RULES, "ag", 1, "usb", 0, _raw(usb=failed))
    assert isinstance(out, Signal) and out.severity == 4 and "NOT blocked" in out.summary


def test_a_missing_keyboard_helper_is_a_candidate_for_the_pupil() -> None:
    st = events_pb2.AgentStatus(kind=events_pb2.AgentStatus.CAPTURE_MISSING, detail="amy: gone")
    out = classify(RULES, "ag", 1, "status", 0, _raw(status=st))
    assert isinstance(out, Signal) and out.kind == "capture_missing" and out.account == "pupil.amy"
    assert out.severity == 3 and out.summary == "amy: gone"


@pytest.mark.parametrize(("kind", "name", "severity"), [
    (events_pb2.AgentStatus.SENSOR_SHED, "sensor_shed", 2),
    (events_pb2.AgentStatus.HELPER_RESTARTED, "helper_restarted", 1),
])  # fmt: skip
def test_the_agents_watchdog_is_shown_like_a_missing_helper(
    kind: events_pb2.AgentStatus.Kind.ValueType, name: str, severity: int
) -> None:
    st = events_pb2.AgentStatus(kind=kind, detail="the browser sensor used 95% of a CPU core")
    out = classify(RULES, "ag", 1, "status", 0, _raw(status=st))
    assert isinstance(out, Signal) and out.kind == name and out.source == "agent"
    assert out.severity == severity and out.summary.startswith("the browser sensor used")


def test_exemption_is_carried_and_heartbeats_are_health() -> None:
    kw = events_pb2.KeywordDetection(category="violence", terms=["x"], exemption="ks2-history")
    out = classify(RULES, "ag", 1, "keyword", 0, _raw(keyword=kw))
    assert isinstance(out, Signal) and out.exemption == "ks2-history"
    hb = events_pb2.Heartbeat(policy_version="7", agent_version="0.2")
    health = classify(RULES, "ag", 2, "heartbeat", 5, _raw(heartbeat=hb))
    assert isinstance(health, Health) and health.policy_version == "7"


def test_packaged_incident_rules_load() -> None:
    rules = config.load()
    assert rules.incidents.group_window_minutes > 0
    assert rules.source.startswith("the shipped policy, version")


def test_throttle_slows_after_five_failures_and_doubles() -> None:
    now = [1000.0]
    t = Throttle(clock=lambda: now[0])
    for _ in range(4):
        t.failed("user:a")
    assert t.wait("user:a") == 0
    t.failed("user:a")
    assert t.wait("user:a") == 30
    now[0] += 30
    assert t.wait("user:a") == 0
    t.failed("user:a")
    assert t.wait("user:a") == 60
    t.succeeded("user:a")
    assert t.wait("user:a") == 0


def test_a_guesser_at_one_address_cannot_lock_the_dsl_out_elsewhere() -> None:
    t = Throttle(clock=lambda: 1000.0)

    def keys(addr: str) -> tuple[str, str, str]:
        return (f"user:dsl@{addr}", f"addr:{addr}", "wide:dsl")

    for _ in range(5):
        t.failed(*keys("10.0.0.66"))
    assert t.wait(*keys("10.0.0.66")) > 0  # the pupil's PC is slowed
    assert t.wait(*keys("10.0.0.5")) == 0  # the DSL's is not
    for n in range(25):  # many addresses together: then the account itself is slowed
        t.failed(*keys(f"10.0.1.{n}"))
    assert t.wait(*keys("10.0.0.5")) > 0


def test_sessions_expire_when_idle_and_rotate_on_login() -> None:
    from collector.accounts import Account

    now = [0.0]
    s = Sessions(idle_s=60, max_s=3600, clock=lambda: now[0])
    anon = s.new()
    me = s.login(anon, Account("dsl", "Dana", "dsl"))
    assert me.id != anon.id and me.csrf != anon.csrf and s.get(anon.id) is None
    now[0] = 59
    assert s.get(me.id) is me
    now[0] = 200
    assert s.get(me.id) is None


def test_notification_carries_no_detail() -> None:
    subject, body = message(NotifyConfig(base_url="https://c.example:8080"), 42, 5)
    assert "severity 5 incident needs review" in subject
    assert "https://c.example:8080/incidents/42" in body
    assert len(body) < 300


def test_recurrences_and_fixed_severities_come_from_the_policy(tmp_path: Path) -> None:
    import shutil

    from rules.load import DEFAULT_DIR

    folder = tmp_path / "rules"
    shutil.copytree(DEFAULT_DIR, folder)
    incidents = folder / "incidents.toml"
    text = incidents.read_text().replace("usb_blocked = 3", "usb_blocked = 4")
    incidents.write_text(text.replace("days = 2\n", "days = 3\n"))
    rules = config.load(folder)
    assert rules.usb_blocked_severity == 4 and rules.tampering_severity["fork"] == 4
    [rec] = rules.recurrences
    assert (rec.category, rec.days, rec.within_days) == ("grooming", 3, 14)
    shipped = config.load()
    assert shipped.usb_blocked_severity == 3 and shipped.recurrences[0].days == 2


def test_the_session_store_is_bounded_and_evicts_the_least_recently_used() -> None:
    from collector.accounts import Account

    now = [0.0]
    s = Sessions(idle_s=600, max_s=3600, clock=lambda: now[0], bound=3)
    a, b, c = (s.login(s.new(), Account(n, n, "dsl")) for n in ("a", "b", "c"))
    now[0] = 1
    assert s.get(a.id) is a  # a used again: b is now the stalest
    d = s.login(s.new(), Account("d", "d", "dsl"))
    assert len(s) == 3 and s.get(b.id) is None
    assert all(s.get(x.id) is x for x in (a, c, d))


def test_pre_login_tokens_are_signed_and_expire() -> None:
    from collector.console.sessions import PreLogin

    now = [1_000_000.0]
    p = PreLogin(b"k" * 32, clock=lambda: now[0])
    token = p.issue()
    assert p.valid(token)
    assert not PreLogin(b"x" * 32, clock=lambda: now[0]).valid(token)  # another key
    issued, nonce, mac = token.split(".")
    assert not p.valid(f"{int(issued) + 1}.{nonce}.{mac}")  # changed
    for odd in ("", "a.b", "a.b.c", "١٢.b.c", "x" * 500):
        assert not p.valid(odd)
    now[0] += PreLogin.MAX_AGE_S + 1
    assert not p.valid(token)


def test_failures_across_the_school_slow_everyone_without_a_second_factor() -> None:
    t = Throttle(clock=lambda: 1000.0)
    for n in range(100):  # one guess each from many PCs, at many accounts
        t.failed(f"user:u{n}@10.0.{n}.1", f"addr:10.0.{n}.1", f"wide:u{n}", "all")
    fresh = ("user:gov@10.9.9.9", "addr:10.9.9.9", "wide:gov", "all")
    assert t.wait(*fresh) > 0


def test_the_forwarded_address_is_believed_only_from_a_trusted_proxy() -> None:
    from collector.console.client_address import client, networks

    proxy = networks(("10.0.0.5", "192.168.0.0/24"))
    assert client("10.0.0.5", "10.1.2.3", proxy) == "10.1.2.3"
    assert client("10.0.0.9", "10.1.2.3", proxy) == "10.0.0.9"  # not a proxy: header ignored
    assert client("10.0.0.5", None, proxy) == "10.0.0.5"
    # What the client wrote itself sits to the left of what the proxies appended.
    assert client("10.0.0.5", "6.6.6.6, 10.1.2.3", proxy) == "10.1.2.3"
    assert client("10.0.0.5", "10.1.2.3, 192.168.0.7", proxy) == "10.1.2.3"  # two proxies
    assert client("10.0.0.5", "10.1.2.3, junk", proxy) == "10.0.0.5"
    assert client(None, "10.1.2.3", proxy) == "?"


def test_visitors_are_paced_and_a_long_line_is_refused() -> None:
    from collector.console.admission import Pacer

    now = [0.0]
    p = Pacer(rate=10, clock=lambda: now[0])
    waits = [p.slot() for _ in range(5)]
    assert waits == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])
    for _ in range(46):
        p.slot()
    assert p.slot() is None and p.refused == 1  # more than MAX_WAIT (5 s) in line
    now[0] = 10.0
    assert p.slot() == 0.0


def test_refusals_are_written_once_per_address_a_minute_then_counted() -> None:
    from collector.console.refusals import Refusals

    now = [600.0]
    r = Refusals(clock=lambda: now[0])
    first = r.note("10.0.0.66", "csrf_token", "", "/login")
    assert first == [("?", "refused", "/login", "kind=csrf_token addr=10.0.0.66")]
    for _ in range(99):
        assert r.note("10.0.0.66", "throttled", "", "/login") == []
    assert r.note("10.0.0.7", "forbidden", "tech", "/incidents")[0][0] == "tech"
    assert r.flush() == []  # the minute is not over
    now[0] += 60
    assert r.flush() == [("?", "refused_repeated", "console",
                          "addr=10.0.0.66 minute=1970-01-01T00:10Z count=100 "
                          "kinds=csrf_token:1,throttled:99")]  # fmt: skip
    assert r.flush() == []


def test_refusals_from_too_many_addresses_are_counted_together() -> None:
    from collector.console.refusals import Refusals

    r = Refusals(clock=lambda: 0.0)
    r.SOURCES = 3
    written = [r.note(f"10.0.0.{n}", "forbidden", "", "/") for n in range(10)]
    assert sum(len(w) for w in written) == 4  # three addresses, then "*" once
