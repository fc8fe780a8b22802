"""The pure parts of keyboard capture: password windows, sessions, the local socket protocol."""

from __future__ import annotations

import socket

import pytest

from agent.helper_protocol import LineReader, ProtocolError, decode, encode, peer_credentials
from agent.sensors.keyboard import is_password_window, session_problem

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("app", "title", "password"),
    [
        ("pinentry-gtk-2", "", True),
        ("gcr-prompter", "Unlock Keyring", True),
        ("xterm", "Enter password", True),
        ("firefox-esr", "Sign in - Google Accounts - Mozilla Firefox", True),
        ("polkit-gnome-authentication-agent-1", "Authenticate", True),
        ("xterm", "notes", False),
        ("libreoffice", "Passover essay.odt", False),
        ("firefox-esr", "Pinball history - Wikipedia", False),
    ],
)
def test_password_windows(app: str, title: str, password: bool) -> None:
    assert is_password_window(app, title) is password


def test_sessions_that_cannot_be_captured_say_why() -> None:
    assert session_problem({"DISPLAY": ":0", "XDG_SESSION_TYPE": "x11"}) is None
    wayland = session_problem({"WAYLAND_DISPLAY": "wayland-0", "XDG_SESSION_TYPE": "wayland",
                               "DISPLAY": ":0"})  # fmt: skip
    assert wayland is not None and "Wayland" in wayland
    assert "DISPLAY" in (session_problem({}) or "")


def test_messages_round_trip_and_bad_ones_are_refused() -> None:
    assert decode(encode(["k", ["a", "<bs>"]]).rstrip(b"\n")) == ["k", ["a", "<bs>"]]
    for bad in (b"nope", b"{}", b"[]", b"[1]"):
        with pytest.raises(ProtocolError):
            decode(bad)


def test_lines_are_framed_and_bounded_and_peer_credentials_come_from_the_kernel() -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with a, b:
        import os

        assert peer_credentials(b)[1:] == (os.getuid(), os.getgid())
        reader = LineReader(b)
        a.sendall(encode(["s", "running", ""]) + b'["k",')
        assert reader.lines() == [b'["s","running",""]']
        a.sendall(b'["x"]]\n')
        assert reader.lines() == [b'["k",["x"]]']
        a.sendall(b"x" * 70_000)
        with pytest.raises(ProtocolError):
            while True:
                reader.lines()
        a.close()


def test_a_sessions_matcher_is_looked_up_again_only_when_it_could_change() -> None:
    """Asked for every key: the policy lookup runs again for a new policy or once the
    matcher's exemptions start or end (its valid_until), and otherwise not. The first is
    waited for; a later one runs aside while the matcher before it goes on judging."""
    import threading
    from datetime import UTC, datetime, timedelta
    from types import SimpleNamespace
    from typing import Any, cast

    from agent.sensors.keyboard_broker import _Matcher

    def new_policy() -> Any:  # a policy judges exemption edges by its (corrected) clock
        return SimpleNamespace(now=lambda: datetime.now(UTC), version=len(lookups))

    lookups: list[Any] = []
    policy = [new_policy()]
    until: list[datetime | None] = [None]
    compiling = threading.Event()
    compiling.set()  # (cleared: a lookup waits, as a compile of 15-30 s would)
    started = threading.Event()

    def lookup(active: Any) -> Any:
        assert active is policy[0]
        lookups.append(active)
        started.set()
        assert compiling.wait(30)
        return SimpleNamespace(valid_until=until[0])

    ctx = cast(Any, SimpleNamespace(policy=lambda: policy[0]))
    matcher = _Matcher(ctx, lookup)

    def after_aside() -> Any:
        """What the next key gets once the lookup aside is done."""
        assert matcher._aside is not None
        matcher._aside.join(30)
        assert not matcher._aside.is_alive()
        return matcher()

    first = matcher()  # waited for
    assert all(matcher() is first for _ in range(100)) and len(lookups) == 1
    compiling.clear()
    started.clear()
    policy[0] = new_policy()  # a new policy arrived: compiling it takes a while
    assert matcher() is first
    assert started.wait(30)
    assert all(matcher() is first for _ in range(100))  # meanwhile keys are still judged
    assert len(lookups) == 2  # by one lookup aside
    compiling.set()
    second = after_aside()
    assert second is not first and matcher() is second and len(lookups) == 2
    until[0] = datetime.now(UTC) - timedelta(seconds=1)  # an exemption edge, already passed
    policy[0] = new_policy()
    matcher()
    assert after_aside() is not second and len(lookups) == 3
    matcher()
    after_aside()
    assert len(lookups) == 4  # asked again each time until the lookup gives a later edge
    until[0] = datetime.now(UTC) + timedelta(hours=1)
    matcher()
    after_aside()
    matcher()
    matcher()
    assert len(lookups) == 5


def test_a_matcher_that_fails_to_compile_aside_keeps_the_one_before_and_retries_later(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from datetime import UTC, datetime
    from types import SimpleNamespace
    from typing import Any, cast

    from agent.sensors import keyboard_broker
    from agent.sensors.keyboard_broker import _Matcher

    policy = [SimpleNamespace(now=lambda: datetime.now(UTC), version=1)]
    answers: list[Any] = [SimpleNamespace(valid_until=None)]
    tries = [0]

    def lookup(active: Any) -> Any:
        tries[0] += 1
        if not answers:
            raise ValueError("cannot compile")
        return answers.pop()

    matcher = _Matcher(cast(Any, SimpleNamespace(policy=lambda: policy[0])), lookup)
    first = matcher()
    policy[0] = SimpleNamespace(now=policy[0].now, version=2)

    def settle() -> None:
        assert matcher._aside is not None
        matcher._aside.join(30)
        assert not matcher._aside.is_alive()

    assert matcher() is first
    settle()
    assert all(matcher() is first for _ in range(50)) and tries[0] == 2  # no retry at once
    monkeypatch.setattr(keyboard_broker, "RETRY_S", 0.0)
    matcher._retry = 0.0
    answers.append(SimpleNamespace(valid_until=None))
    assert matcher() is first
    settle()
    assert matcher() is not first and tries[0] == 3


def test_a_matcher_kept_on_disk_aside_is_swapped_in_after_the_old_one_is_freed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With somewhere to keep it, the thread aside only makes the new matcher (in a child,
    which keeps it); the swap has the detector let the old one go, then reads the new one
    back, so the allocator reuses its space. Not there to read: the old one goes on and it
    is made again. Not kept at all: the lookup is done aside as before."""
    import gc
    import weakref
    from datetime import UTC, datetime
    from types import SimpleNamespace
    from typing import Any, cast

    from agent.sensors import keyboard_broker
    from agent.sensors.keyboard_broker import KeptAside, _Matcher

    class Found:
        valid_until = None

    policy = [SimpleNamespace(now=lambda: datetime.now(UTC), version=1)]
    seen: list[tuple[str, int, bool]] = []  # (what, policy version, old matcher alive)
    old: list[weakref.ref[Found]] = []
    kept, readable = [True], [True]
    detector: list[object] = []  # what the detector holds

    def alive() -> bool:
        gc.collect()
        return bool(old) and old[-1]() is not None

    def lookup(active: Any) -> Found:
        seen.append(("lookup", active.version, alive()))
        return Found()

    def prepare(active: Any) -> bool:
        seen.append(("prepare", active.version, True))
        return kept[0]

    def read_back(active: Any) -> Found | None:
        seen.append(("kept", active.version, alive()))
        return Found() if readable[0] else None

    def ready(active: Any) -> bool:
        seen.append(("ready", active.version, True))
        return readable[0]

    matcher = _Matcher(cast(Any, SimpleNamespace(policy=lambda: policy[0])), lookup,
                       KeptAside(prepare, ready, read_back))  # fmt: skip
    matcher.before_swap = detector.clear

    def new_policy() -> None:
        found = matcher()
        detector[:] = [found]
        old.append(weakref.ref(cast(Found, found)))
        policy[0] = SimpleNamespace(now=policy[0].now, version=policy[0].version + 1)
        del found
        matcher()  # starts the thread aside
        assert matcher._aside is not None
        matcher._aside.join(30)

    assert matcher() is not None and seen == [("lookup", 1, False)]
    new_policy()
    assert seen[1:] == [("prepare", 2, True)]  # made and kept, not read in
    second = matcher()  # the swap
    assert seen[2:] == [("ready", 2, True), ("kept", 2, False)]  # the old one let go first
    assert second is not None and old[0]() is None and matcher() is second
    del second
    readable[0] = False  # gone before the swap: the old one goes on, made again aside
    monkeypatch.setattr(keyboard_broker, "AGAIN_S", 0.0)
    new_policy()
    third = matcher()
    assert [s[:2] for s in seen[4:]] == [("prepare", 3), ("ready", 3)] and third is old[1]()
    readable[0] = True
    assert matcher() is third and matcher._aside is not None
    matcher._aside.join(30)
    assert matcher() is not third
    assert [s[:2] for s in seen[6:]] == [("prepare", 3), ("ready", 3), ("kept", 3)]
    del third
    kept[0] = False  # nowhere to keep it: read in aside, while the old one still judges
    new_policy()
    assert [s[0] for s in seen[9:]] == ["prepare", "lookup"] and seen[-1][2]
    assert matcher() is not None and len(seen) == 11
