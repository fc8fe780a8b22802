"""X11 key capture's pure part, on bytes: RECORD replies, core events, the keymap's rules, the
focus state, and the legacy keysym table against X.Org's keysymdef.h."""

from __future__ import annotations

import os
import struct
import sys
from pathlib import Path

import pytest

from agent.sensors.keyboard_keys import BACKSPACE, DELETE, ENTER, RESET
from agent.sensors.keyboard_x11_input import (
    FOCUS_IN,
    FOCUS_OUT,
    FROM_SERVER,
    KEY_PRESS,
    POINTER,
    START_OF_DATA,
    UNKNOWN,
    Focus,
    Keymap,
    ReplyReader,
    core_events,
    keysym_char,
)
from agent.sensors.keyboard_x11_keysyms import LEGACY
from agent.sensors.keyboard_x11_keysyms_gen import KEYSYMDEF, parse

pytestmark = pytest.mark.unit

NATIVE = "<" if sys.byteorder == "little" else ">"
SHIFT, LOCK, CONTROL, MOD1, MOD2, MOD4, MOD5 = 1, 2, 4, 8, 16, 64, 128
ROOT = 0x100


def key_press(keycode: int, state: int, order: str = NATIVE) -> bytes:
    # type, keycode, sequence, time, root, event, child, root x/y, event x/y, state, same screen
    return struct.pack(order + "BBHIIIIhhhhHBx", KEY_PRESS, keycode, 7, 1234, ROOT, 0, 0,
                       1, 2, 3, 4, state, 1)  # fmt: skip


def focus_event(kind: int, detail: int, window: int, mode: int = 0, order: str = NATIVE) -> bytes:
    return struct.pack(order + "BBHIB23x", kind, detail, 7, window, mode)


def reply(category: int, data: bytes, swapped: bool = False) -> bytes:
    head = struct.pack(NATIVE + "BBHIBBxxIII8x", 1, category, 3, len(data) // 4, 0, swapped,
                       0x400000, 99, 5)  # fmt: skip
    return head + data


def test_replies_are_split_from_the_stream_whatever_the_reads() -> None:
    keys = key_press(38, 0) + key_press(56, SHIFT)
    stream = (reply(START_OF_DATA, b"") + bytes([34]) + bytes(31)  # a MappingNotify: skipped
              + reply(FROM_SERVER, keys) + bytes(32)  # an error unit: skipped
              + reply(FROM_SERVER, focus_event(FOCUS_IN, 3, 0x600001)))  # fmt: skip
    whole = ReplyReader().feed(stream)
    assert [(c, s, len(d)) for c, s, d in whole] == [(4, False, 0), (0, False, 64), (0, False, 32)]
    reader, pieces = ReplyReader(), []
    for i in range(0, len(stream), 7):  # any split of the bytes gives the same replies
        pieces += reader.feed(stream[i : i + 7])
    assert pieces == whole
    assert reader.feed(b"") == []


def test_core_events_give_keys_with_their_state_and_focus_events_with_their_window() -> None:
    data = key_press(38, SHIFT | MOD2) + focus_event(FOCUS_OUT, 3, 0x600001, 0)
    data += focus_event(FOCUS_IN, 4, 0x800002, 3) + bytes([12]) + bytes(31)  # Expose: skipped
    assert list(core_events(data)) == [
        (KEY_PRESS, 38, 0, SHIFT | MOD2), (FOCUS_OUT, 3, 0x600001, 0), (FOCUS_IN, 4, 0x800002, 3),
    ]  # fmt: skip
    other = ">" if NATIVE == "<" else "<"  # recorded from a client of the other byte order
    swapped = key_press(38, SHIFT, other) + focus_event(FOCUS_IN, 3, 0x600001, 0, other)
    assert list(core_events(swapped, swapped=True)) == [(KEY_PRESS, 38, 0, SHIFT),
                                                        (FOCUS_IN, 3, 0x600001, 0)]  # fmt: skip


def test_focus_follows_the_events_and_says_when_only_the_server_can_tell() -> None:
    focus = Focus(ROOT)
    assert focus.window == UNKNOWN
    assert focus.event(FOCUS_IN, 3, 0x600001, 0) and focus.window == 0x600001  # Nonlinear
    assert not focus.event(FOCUS_IN, 3, 0x600001, 0)  # the same event delivered twice
    assert not focus.event(FOCUS_OUT, 3, 0x600001, 1)  # a keyboard grab: focus unchanged
    assert not focus.event(FOCUS_IN, 3, 0x700001, 2)  # its ungrab
    assert not focus.event(FOCUS_IN, 5, 0x700001, 0)  # detail Pointer: information only
    assert focus.window == 0x600001
    assert focus.event(FOCUS_OUT, 3, 0x600001, 0) and focus.window == UNKNOWN  # left, to where?
    assert focus.event(FOCUS_IN, 4, 0x800001, 3) and focus.window == 0x800001  # WhileGrabbed
    assert not focus.event(FOCUS_OUT, 2, 0x800001, 0)  # into a child: the same application
    assert focus.event(FOCUS_OUT, 3, 0x800001, 0) and focus.window == UNKNOWN
    assert focus.event(FOCUS_OUT, 2, 0x900001, 0) and focus.window == 0x900001  # inside it
    assert focus.event(FOCUS_IN, 6, ROOT, 0) and focus.window == POINTER  # PointerRoot
    assert focus.event(FOCUS_IN, 7, ROOT, 0) and focus.window == POINTER  # None
    assert focus.event(FOCUS_IN, 2, ROOT, 0) and focus.window == POINTER  # the root itself
    assert focus.event(FOCUS_IN, 1, ROOT, 0) and focus.window == UNKNOWN  # somewhere below it


# A British layout as Xvfb reports it after `setxkbmap gb` (keycode: keysyms), and a second
# group (Russian) on keycode 38, the way XKB lays groups and level 3 out in the core map.
GB = {
    10: [0x31, 0x21, 0x31, 0x21, 0xB9, 0xA1, 0xB9],  # 1 ! ¹ ¡
    12: [0x33, 0xA3, 0x33, 0xA3, 0xB3, 0x23, 0xB3],  # 3 £ ³ #
    13: [0x34, 0x24, 0x34, 0x24, 0x20AC, 0xBC, 0x20AC],  # 4 $ € ¼
    22: [0xFF08, 0xFF08, 0xFF08, 0xFF08],  # BackSpace
    23: [0xFF09, 0xFE20, 0xFF09, 0xFE20],  # Tab, ISO_Left_Tab
    24: [0x71, 0x51, 0x71, 0x51, 0x40, 0x7D9, 0x40],  # q Q @ Ω
    36: [0xFF0D, 0, 0xFF0D],  # Return
    38: [0x61, 0x41, 0x6C6, 0x6E6, 0xE6, 0xC6],  # a A, ф Ф (group 2), æ Æ
    50: [0xFFE1, 0, 0xFFE1],  # Shift_L
    37: [0xFFE3, 0, 0xFFE3],  # Control_L
    64: [0xFFE9, 0xFFE7, 0xFFE9, 0xFFE7],  # Alt_L Meta_L
    65: [0x20, 0, 0x20],  # space
    66: [0xFFE5, 0, 0xFFE5],  # Caps_Lock
    77: [0xFF7F, 0, 0xFF7F],  # Num_Lock
    87: [0xFF9C, 0xFFB1, 0xFF9C, 0xFFB1],  # KP_End KP_1
    92: [0xFE03, 0, 0xFE03],  # ISO_Level3_Shift
    119: [0xFFFF, 0, 0xFFFF],  # Delete
    133: [0xFFEB, 0, 0xFFEB],  # Super_L
    48: [0xFE51, 0xFE50],  # dead_acute dead_grave
    49: [0x1000175],  # ŵ (Welsh), one keysym: Shift gives Ŵ
    51: [0x1B3, 0x1A3],  # ł Ł (a Latin-2 keysym)
}
MODIFIERS = [[50], [66], [37], [64], [77], [], [133], [92]]  # Shift Lock Control Mod1 … Mod5


def gb() -> Keymap:
    first, last = min(GB), max(GB)
    return Keymap(first, [GB.get(code, []) for code in range(first, last + 1)], MODIFIERS)


@pytest.mark.parametrize(
    ("keycode", "state", "token"),
    [
        (24, 0, "q"), (24, SHIFT, "Q"), (24, LOCK, "Q"), (24, SHIFT | LOCK, "Q"),
        (10, SHIFT, "!"), (12, SHIFT, "£"), (13, SHIFT, "$"), (13, LOCK, "4"),
        (13, MOD5, "€"), (24, MOD5, "@"), (13, MOD5 | SHIFT, "¼"),  # AltGr: level 3 and 4
        (38, 0, "a"), (38, 1 << 13, "ф"), (38, (1 << 13) | SHIFT, "Ф"),  # XKB's second group
        (38, MOD2, "a"),  # NumLock does not change letters
        (87, 0, RESET), (87, MOD2, "1"), (87, MOD2 | SHIFT, RESET),  # keypad: NumLock rules
        (38, CONTROL, RESET), (38, MOD1, RESET), (38, MOD4, RESET),  # shortcuts are not text
        (22, 0, BACKSPACE), (22, CONTROL, BACKSPACE), (119, 0, DELETE), (36, 0, ENTER),
        (23, 0, RESET), (23, SHIFT, RESET), (65, 0, " "), (65, CONTROL, " "),
        (50, 0, None), (37, 0, None), (64, 0, None), (92, 0, None), (133, 0, None),
        (48, 0, None), (48, SHIFT, None),  # dead keys type nothing by themselves
        (49, 0, "ŵ"), (49, SHIFT, "Ŵ"), (51, 0, "ł"), (51, SHIFT, "Ł"),
        (200, 0, None), (9, 0, None),  # keycodes with no keysym
    ],
)  # fmt: skip
def test_keymap_tokens(keycode: int, state: int, token: str | None) -> None:
    assert gb().token(keycode, state) == token


def test_mode_switch_selects_the_second_group_on_servers_without_xkb() -> None:
    keymap = Keymap(38, [[0x61, 0x41, 0x6C6, 0x6E6], [0xFF7E]], [[], [], [], [], [], [39], [], []])
    assert keymap.token(38, 0) == "a"
    assert keymap.token(38, 32) == "ф"  # Mod3 holds Mode_switch here


def test_keysym_characters() -> None:
    assert keysym_char(0x41) == "A" and keysym_char(0xE9) == "é" and keysym_char(0xA3) == "£"
    assert keysym_char(0x1000175) == "ŵ" and keysym_char(0x101F600) == "\U0001f600"
    assert keysym_char(0x100D800) is None  # a surrogate is not a character
    assert keysym_char(0x1B3) == "ł" and keysym_char(0x6C1) == "\u0430"  # Cyrillic a
    assert keysym_char(0x7E1) == "\u03b1"  # Greek alpha
    assert keysym_char(0x20AC) == "€" and keysym_char(0xFFB7) == "7" and keysym_char(0xFFAB) == "+"
    assert keysym_char(0xFFBE) is None and keysym_char(0xFE51) is None  # F1, dead_acute
    assert keysym_char(0) is None


def test_the_legacy_keysym_table_is_keysymdef_h() -> None:
    """agent/sensors/keyboard_x11_keysyms.py is generated from x11proto-dev's keysymdef.h
    (`python -m agent.sensors.keyboard_x11_keysyms_gen`); this catches a hand edit."""
    if not KEYSYMDEF.exists():
        message = f"{KEYSYMDEF} is not installed (x11proto-dev; scripts/test installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and {message}")
        pytest.skip(message)
    assert parse(Path(KEYSYMDEF).read_text(encoding="utf-8")) == LEGACY
    assert len(LEGACY) > 700
