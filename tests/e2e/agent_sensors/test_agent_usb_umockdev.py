"""The USB sensor against umockdev: simulated devices plugged in and out, the `authorized`
attribute read back from the testbed's sysfs, the events the sensor emitted checked.

The testbed is made by the system python (gi + UMockdev) under umockdev-wrapper; the sensor
runs in the venv as its child, so it sees the testbed through the preload library.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_tool

pytestmark = pytest.mark.e2e

HERE = Path(__file__).parent
ROOT = HERE.parents[2]
SYSTEM_PYTHON = "/usr/bin/python3"

MERILOCK = {"idVendor": "0951", "idProduct": "1666", "serial": "MERILOCK-DSL-0001",
            "manufacturer": "Merilock", "product": "Merilock Secure", "bNumInterfaces": " 1"}
STORAGE = {"bInterfaceClass": "08", "bInterfaceSubClass": "06", "bInterfaceProtocol": "50"}
KEYBOARD = {"bInterfaceClass": "03", "bInterfaceSubClass": "01", "bInterfaceProtocol": "01"}
# A generic stick described by its raw `descriptors` only (device, config, one mass-storage
# interface, two bulk endpoints), as the kernel shows it before configuring the device.
STICK_DESCRIPTORS = ("12010002000000408107675500010102030109022000010100803209040000020806"
                     "50000705810200020007050202000200")


def _umockdev_available() -> None:
    require_tool("umockdev-wrapper")
    probe = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import gi; gi.require_version('UMockdev', '1.0')"],
        capture_output=True, check=False,
    )
    if probe.returncode != 0:
        message = "gir1.2-umockdev-1.0 and python3-gi are not installed (scripts/test does it)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and {message}")
        pytest.skip(message)


class Bed:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.events_file = tmp / "events.jsonl"
        self.proc = subprocess.Popen(
            ["umockdev-wrapper", SYSTEM_PYTHON, str(HERE / "usb_testbed.py")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=tmp,
        )

    def cmd(self, op: str, **args: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self.proc.stdin.flush()
        reply: dict[str, Any] = json.loads(self.proc.stdout.readline())
        assert reply["ok"], reply
        return reply

    def plug(self, name: str, attrs: dict[str, str],
             interfaces: tuple[dict[str, str], ...] = (), authorized: str = "1") -> str:
        ifaces = [{"name": f"{name}:1.{n}", "attrs": a} for n, a in enumerate(interfaces)]
        reply = self.cmd("add", name=name, attrs={**attrs, "authorized": authorized},
                         interfaces=ifaces)
        return str(reply["path"])

    def authorized(self, path: str) -> str:
        return str(self.cmd("read", path=path, attr="authorized")["value"]).strip()

    def start_sensor(self, accounts: str, accounts_file: Path | None = None) -> None:
        extra = ["--accounts-file", str(accounts_file)] if accounts_file else []
        self.cmd("start", argv=[sys.executable, str(HERE / "usb_child.py"), "--accounts",
                                accounts, *extra],
                 out=str(self.events_file), err=str(self.tmp / "sensor.log"), cwd=str(ROOT))
        self.wait_for(lambda lines: any(e.get("ready") for e in lines), "sensor ready")

    def lines(self) -> list[dict[str, Any]]:
        if not self.events_file.exists():
            return []
        return [json.loads(x) for x in self.events_file.read_text().splitlines() if x.strip()]

    def wait_for(self, cond: Callable[[list[dict[str, Any]]], Any], what: str,
                 timeout: float = 15.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = cond(self.lines())
            if found:
                return found
            time.sleep(0.05)
        log = (self.tmp / "sensor.log").read_text() if (self.tmp / "sensor.log").exists() else ""
        raise AssertionError(f"timed out waiting for {what}; events={self.lines()} log={log}")

    def usb_event(self, path: str, action: str) -> dict[str, Any]:
        def find(lines: list[dict[str, Any]]) -> dict[str, Any] | None:
            for e in lines:
                usb = e.get("usb", {})
                if usb.get("devicePath") == path and usb.get("action") == action:
                    return e
            return None

        found: dict[str, Any] = self.wait_for(find, f"{action} for {path}")
        return found

    def wait_authorized(self, path: str, value: str) -> None:
        deadline = time.monotonic() + 15
        while self.authorized(path) != value:
            assert time.monotonic() < deadline, f"{path} authorized never became {value}"
            time.sleep(0.05)

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                self.cmd("stop")
                self.proc.wait(15)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(5)
            for stream in (self.proc.stdin, self.proc.stdout):
                if stream is not None:
                    stream.close()


@pytest.fixture
def bed(tmp_path: Path) -> Iterator[Bed]:
    _umockdev_available()
    b = Bed(tmp_path)
    try:
        yield b
    finally:
        b.close()


def test_agent_usb_devices_present_at_start_are_judged(bed: Bed) -> None:
    keyboard = bed.plug("1-1", {"idVendor": "046d", "idProduct": "c31c", "bNumInterfaces": " 1",
                                "product": "USB Keyboard"}, (KEYBOARD,))
    stick = bed.plug("1-2", {"idVendor": "0781", "idProduct": "5567", "serial": "4C530001",
                             "descriptors": STICK_DESCRIPTORS})
    bed.start_sensor(accounts="")
    kb = bed.usb_event(keyboard, "INSERTED_ALLOWED")
    assert kb.get("severity", 0) == 0 and kb["usb"]["interfaces"] == ["03:01:01"]
    blocked = bed.usb_event(stick, "INSERTED_BLOCKED")
    assert blocked["severity"] >= 3
    assert blocked["usb"]["vendorId"] == "0781" and blocked["usb"]["serial"] == "4C530001"
    assert blocked["usb"]["interfaces"] == ["08:06:50"]
    bed.wait_authorized(stick, "0")
    assert bed.authorized(keyboard) == "1"


def test_agent_usb_merilock_allowed_others_blocked_or_rejected(bed: Bed) -> None:
    bed.start_sensor(accounts="dsl")
    # The Merilock key, found deauthorised (authorized_default=0): the agent authorises it.
    key = bed.plug("2-1", MERILOCK, (STORAGE,), authorized="0")
    allowed = bed.usb_event(key, "INSERTED_ALLOWED")
    assert allowed["usb"]["rule"] == "Merilock encrypted key (DSL)"
    assert allowed["account"] == "dsl" and allowed["severity"] == 1
    bed.wait_authorized(key, "1")

    stick = bed.plug("2-2", {"idVendor": "0781", "idProduct": "5567", "serial": "4C530001",
                             "bNumInterfaces": " 1"}, (STORAGE,))
    assert bed.usb_event(stick, "INSERTED_BLOCKED")["severity"] >= 3
    bed.wait_authorized(stick, "0")

    keyboard = bed.plug("2-3", {"idVendor": "046d", "idProduct": "c31c",
                                "bNumInterfaces": " 1"}, (KEYBOARD,))
    bed.usb_event(keyboard, "INSERTED_ALLOWED")
    assert bed.authorized(keyboard) == "1"

    # Merilock ids and serial, but also a keyboard interface: BadUSB, rejected.
    composite = bed.plug("2-4", {**MERILOCK, "bNumInterfaces": " 2"}, (STORAGE, KEYBOARD))
    rejected = bed.usb_event(composite, "INSERTED_REJECTED")
    assert rejected["severity"] >= 4
    assert sorted(rejected["usb"]["interfaces"]) == ["03:01:01", "08:06:50"]
    bed.wait_authorized(composite, "0")

    # The Merilock serial on another vendor's stick: not the key.
    forged = bed.plug("2-5", {**MERILOCK, "idVendor": "1234"}, (STORAGE,))
    assert bed.usb_event(forged, "INSERTED_BLOCKED")["usb"]["serial"] == "MERILOCK-DSL-0001"
    bed.wait_authorized(forged, "0")
    assert bed.authorized(key) == "1"

    bed.cmd("remove", path=stick)
    removed = bed.usb_event(stick, "REMOVED")
    assert removed["usb"]["vendorId"] == "0781" and removed["usb"]["serial"] == "4C530001"
    # Exactly one decision per device: no flapping when the kernel removes interfaces.
    decisions = [e for e in bed.lines() if e.get("usb", {}).get("action", "").startswith("INS")]
    assert len(decisions) == 5


def test_agent_usb_merilock_blocked_without_a_dsl_logged_in(bed: Bed) -> None:
    bed.start_sensor(accounts="pupil1")
    key = bed.plug("3-1", MERILOCK, (STORAGE,))
    blocked = bed.usb_event(key, "INSERTED_BLOCKED")
    assert blocked["usb"]["rule"] == "Merilock encrypted key (DSL)"
    bed.wait_authorized(key, "0")


def test_agent_usb_merilock_is_blocked_when_the_dsl_logs_out_and_allowed_again(
    bed: Bed, tmp_path: Path
) -> None:
    logged_in = tmp_path / "accounts"
    logged_in.write_text("dsl")
    bed.start_sensor(accounts="", accounts_file=logged_in)
    key = bed.plug("4-1", MERILOCK, (STORAGE,))
    bed.usb_event(key, "INSERTED_ALLOWED")
    assert bed.authorized(key) == "1"
    logged_in.write_text("pupil1")  # the DSL logs out, the key still in the PC
    blocked = bed.usb_event(key, "INSERTED_BLOCKED")
    assert blocked["account"] == "pupil1" and not blocked["usb"].get("notEnforced")
    bed.wait_authorized(key, "0")
    logged_in.write_text("pupil1,dsl")

    def decisions(lines: list[dict[str, Any]]) -> list[str]:
        return [e["usb"]["action"] for e in lines if e.get("usb", {}).get("devicePath") == key]

    bed.wait_for(lambda lines: decisions(lines)[-1] == "INSERTED_ALLOWED", "allowed again")
    assert decisions(bed.lines()) == ["INSERTED_ALLOWED", "INSERTED_BLOCKED", "INSERTED_ALLOWED"]
    bed.wait_authorized(key, "1")
