"""X11 key capture, the pure part: the bytes the X server's RECORD extension sends in, key
tokens and focus changes out. No X connection here (agent/sensors/keyboard_x11_record.py feeds
it), so all of it is tested on bytes.

    data connection bytes ─▶ ReplyReader ─▶ (category, swapped, data) per RECORD reply
        data: 32-byte core events, in the order the server processed them ─▶ core_events()
            KeyPress (keycode, state)       ─▶ Keymap.token() ─▶ "a", "<bs>", … or None
            FocusIn / FocusOut (window, …)  ─▶ Focus.event()  ─▶ which window keys go to

Only key *presses* are recorded: the modifiers held come with each press (its `state`), so
releases, half of the traffic, are not needed. Focus events travel in the same stream as the
keys, so a key typed just after a focus change is always seen after it, with no round trip.
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Iterator, Sequence

from agent.sensors.keyboard_keys import BACKSPACE, DELETE, ENTER, RESET
from agent.sensors.keyboard_x11_keysyms import LEGACY

KEY_PRESS, FOCUS_IN, FOCUS_OUT = 2, 9, 10
FROM_SERVER, START_OF_DATA, END_OF_DATA = 0, 4, 5  # RECORD reply categories

# X core protocol constants (X.h)
_SHIFT, _LOCK, _CONTROL = 0x01, 0x02, 0x04
_ANCESTOR, _VIRTUAL, _INFERIOR, _NONLINEAR, _NONLINEAR_VIRTUAL = 0, 1, 2, 3, 4
_POINTER, _POINTER_ROOT, _DETAIL_NONE = 5, 6, 7
_MODE_NORMAL, _MODE_WHILE_GRABBED = 0, 3

_NATIVE = "<" if sys.byteorder == "little" else ">"
_SWAPPED = ">" if _NATIVE == "<" else "<"
_REPLY_HEAD = struct.Struct(_NATIVE + "BBHI")  # type, category, sequence, length (4-byte units)


class ReplyReader:
    """Splits the RECORD data connection's byte stream into replies. Everything the server
    sends is a 32-byte unit, a reply longer by its length field; units that are not replies
    (a MappingNotify every client gets, an error) are skipped."""

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, data: bytes) -> list[tuple[int, bool, bytes]]:
        """(category, client_swapped, recorded data) of each reply completed by `data`."""
        buf = self._buf + data if self._buf else data
        out = []
        pos, end = 0, len(buf)
        while end - pos >= 32:
            kind, category, _seq, length = _REPLY_HEAD.unpack_from(buf, pos)
            size = 32 + 4 * length if kind == 1 else 32
            if end - pos < size:
                break
            if kind == 1:
                out.append((category, bool(buf[pos + 9]), buf[pos + 32 : pos + size]))
            pos += size
        self._buf = buf[pos:]
        return out


def core_events(data: bytes, swapped: bool = False) -> Iterator[tuple[int, int, int, int]]:
    """(type, detail, window or 0, state or mode) of each 32-byte core event recorded: for
    KeyPress detail is the keycode and the last field the modifier state; for FocusIn/Out the
    detail, the event window and the mode."""
    order = _SWAPPED if swapped else _NATIVE
    for pos in range(0, len(data) - 31, 32):
        kind = data[pos] & 0x7F
        if kind == KEY_PRESS:
            yield kind, data[pos + 1], 0, struct.unpack_from(order + "H", data, pos + 28)[0]
        elif kind in (FOCUS_IN, FOCUS_OUT):
            window = struct.unpack_from(order + "I", data, pos + 4)[0]
            yield kind, data[pos + 1], window, data[pos + 8]


UNKNOWN, POINTER = -1, -2  # Focus.window when it is not a window id


class Focus:
    """Where keys go, from the focus events in the stream: a window id (the focus window or an
    ancestor of it, which names the same application), POINTER (focus is PointerRoot, None or
    the root: keys go to the window under the pointer) or UNKNOWN (focus left a window and no
    event says where to: ask the server)."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.window = UNKNOWN

    def event(self, kind: int, detail: int, window: int, mode: int) -> bool:
        """Apply one FocusIn/FocusOut; True when the window keys go to may have changed.
        Keyboard grabs (mode Grab/Ungrab) do not move the focus and are ignored."""
        if mode not in (_MODE_NORMAL, _MODE_WHILE_GRABBED) or detail == _POINTER:
            return False
        if kind == FOCUS_IN:
            if detail in (_POINTER_ROOT, _DETAIL_NONE):
                new = POINTER
            elif window == self.root:  # focus on the root itself, or below it (Virtual)
                new = UNKNOWN if detail in (_VIRTUAL, _NONLINEAR_VIRTUAL) else POINTER
            else:
                new = window
        elif detail == _INFERIOR and window != self.root:
            new = window  # focus moved into a child of this window: the same application
        else:
            new = UNKNOWN
        changed = new != self.window or new in (UNKNOWN, POINTER)
        self.window = new
        return changed


_NAMED = {
    0xFF08: BACKSPACE, 0xFFFF: DELETE, 0xFF9F: DELETE,  # BackSpace, Delete, KP_Delete
    0xFF0D: ENTER, 0xFF8D: ENTER, 0xFF0A: ENTER,  # Return, KP_Enter, Linefeed (xdotool's "\n")
    0x0020: " ", 0xFF80: " ",  # space, KP_Space
    0xFF09: RESET, 0xFE20: RESET, 0xFF89: RESET, 0xFF1B: RESET,  # Tab, ISO_Left_Tab, KP_Tab, Esc
    **{k: RESET for k in range(0xFF50, 0xFF58)},  # Home, Left, Up, Right, Down, Prior, Next, End
    **{k: RESET for k in range(0xFF95, 0xFF9E)},  # the keypad's Home … Begin (NumLock off)
}  # fmt: skip
_KEYPAD = {0xFFAA: "*", 0xFFAB: "+", 0xFFAC: ",", 0xFFAD: "-", 0xFFAE: ".", 0xFFAF: "/",
           0xFFBD: "=", **{0xFFB0 + d: str(d) for d in range(10)}}  # fmt: skip
_ALT = {0xFFE7, 0xFFE8, 0xFFE9, 0xFFEA}  # Meta_L/R, Alt_L/R
_SUPER = {0xFFEB, 0xFFEC, 0xFFED, 0xFFEE}  # Super_L/R, Hyper_L/R
_NUM_LOCK, _MODE_SWITCH = 0xFF7F, 0xFF7E
_LEVEL3 = {0xFE03, 0xFE11}  # ISO_Level3_Shift, ISO_Level5_Shift


def keysym_char(keysym: int) -> str | None:
    """The character a keysym types, or None (function keys, modifiers, dead keys)."""
    if 0x20 <= keysym <= 0x7E or 0xA0 <= keysym <= 0xFF:
        return chr(keysym)
    if 0x01000100 <= keysym <= 0x0110FFFF:
        code = keysym - 0x01000000
        return None if 0xD800 <= code <= 0xDFFF else chr(code)
    if keysym in _KEYPAD:
        return _KEYPAD[keysym]
    legacy = LEGACY.get(keysym)
    return chr(legacy) if legacy is not None else None


class Keymap:
    """keycode + modifier state → token, by the core protocol's rules (and XKB's group in the
    state and its level 3 after the two groups in the core map, as the server presents them).

    `keysyms` is GetKeyboardMapping from `first` on; `modifiers` is GetModifierMapping (eight
    lists of keycodes: Shift, Lock, Control, Mod1 … Mod5)."""

    def __init__(self, first: int, keysyms: Sequence[Sequence[int]],
                 modifiers: Sequence[Sequence[int]]) -> None:  # fmt: skip
        self._codes: dict[int, tuple[int, ...]] = {
            first + i: tuple(syms) for i, syms in enumerate(keysyms) if any(syms)
        }

        def mask(keysyms: set[int]) -> int:  # the modifiers those keys are bound to
            bound = (any(s in keysyms for c in codes for s in self._codes.get(c, ()))
                     for codes in modifiers)  # fmt: skip
            return sum(1 << index for index, yes in enumerate(bound) if yes)

        self._num, self._mode = mask({_NUM_LOCK}), mask({_MODE_SWITCH})
        self._level3 = mask(_LEVEL3)
        self._shortcut = _CONTROL | mask(_ALT) | mask(_SUPER)  # Ctrl+C, Alt+F4 are not text

    def keysym(self, keycode: int, state: int) -> tuple[int, bool]:
        """The keysym for this key in this state, and whether its character is upper case
        where the map lists no separate upper-case keysym (or Caps Lock applies)."""
        syms = self._codes.get(keycode)
        if not syms:
            return 0, False
        group = 1 if (state >> 13) & 3 == 1 or (state & self._mode) else 0
        base = (4 if state & self._level3 else 0) + 2 * group
        for start in (base, base - 2 * group, 0):  # a level or group the key lacks: level 1
            pair = syms[start : start + 2]
            if any(pair):
                break
        low = pair[0] if pair else 0
        high = pair[1] if len(pair) > 1 else 0
        shift, lock = bool(state & _SHIFT), bool(state & _LOCK)
        if state & self._num and 0xFF80 <= high <= 0xFFBD:  # NumLock on a keypad key
            return (low if shift else high), False
        if not high:  # one keysym: upper case is the same keysym, upper-cased
            return low, shift != lock
        if shift:
            return high, lock
        return low, lock

    def token(self, keycode: int, state: int) -> str | None:
        sym, upper = self.keysym(keycode, state)
        named = _NAMED.get(sym)
        if named is not None:
            return named
        ch = keysym_char(sym)
        if ch is None:
            return None  # Shift, F1, a dead key …: nothing typed
        if state & self._shortcut or not ch.isprintable():
            return RESET  # shortcuts move or replace text we cannot see
        if upper and len(big := ch.upper()) == 1:
            return big
        return ch
