"""The Linux USB sensor's decisions over a sysfs-shaped folder: judged again when the policy
changes, and a block that sysfs refuses is reported as not enforced.

(The umockdev tests drive the whole sensor with udev; these call its judging directly, so a
policy swap and a refused write can be staged without a testbed.)"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from agent.policy import ActivePolicy
from agent.sensors import SensorContext
from agent.sensors.usb_linux import UsbSensor
from protos import events_pb2
from rules.load import load_policy

pytestmark = pytest.mark.unit

MERILOCK = {"idVendor": "0951", "idProduct": "1666", "serial": "MERILOCK-DSL-0001",
            "manufacturer": "Merilock", "product": "Merilock Secure", "bNumInterfaces": " 1",
            "authorized": "1"}  # fmt: skip
STORAGE = {"bInterfaceClass": "08", "bInterfaceSubClass": "06", "bInterfaceProtocol": "50"}


def plug(sys: Path, name: str, attrs: dict[str, str]) -> str:
    dev = sys / name
    (dev / f"{name}:1.0").mkdir(parents=True)
    for key, value in attrs.items():
        (dev / key).write_text(value + "\n")
    for key, value in STORAGE.items():
        (dev / f"{name}:1.0" / key).write_text(value + "\n")
    return str(dev)


class Context:
    def __init__(self, active: ActivePolicy) -> None:
        self.active = active
        self.events: list[events_pb2.Event] = []
        self.ctx = SensorContext(self.events.append, lambda: self.active)


def actions(ctx: Context) -> list[str]:
    return [events_pb2.UsbDecision.Action.Name(e.usb.action) for e in ctx.events]


def test_a_key_struck_from_the_allowlist_is_blocked_without_being_unplugged(
    tmp_path: Path,
) -> None:
    shipped = load_policy()
    ctx = Context(ActivePolicy(1, shipped))
    sensor = UsbSensor(accounts=lambda: ["dsl"])
    key = plug(tmp_path, "1-1", MERILOCK)
    sensor.rejudge_if_changed(ctx.ctx)  # as at start: remembers what it judges under
    sensor._judge(ctx.ctx, key, final=True)
    assert actions(ctx) == ["INSERTED_ALLOWED"]
    sensor.rejudge_if_changed(ctx.ctx)  # nothing changed: nothing judged again
    assert actions(ctx) == ["INSERTED_ALLOWED"]
    revoked = tuple(r for r in shipped.usb if r.serial != "MERILOCK-DSL-0001")
    ctx.active = ActivePolicy(2, dataclasses.replace(shipped, usb=revoked))
    sensor.rejudge_if_changed(ctx.ctx)
    assert actions(ctx) == ["INSERTED_ALLOWED", "INSERTED_BLOCKED"]
    assert (Path(key) / "authorized").read_text() == "0"
    assert not ctx.events[-1].usb.not_enforced


def test_a_block_that_sysfs_refuses_is_reported_as_not_enforced(tmp_path: Path) -> None:
    ctx = Context(ActivePolicy(1, load_policy()))
    sensor = UsbSensor(accounts=lambda: [])
    stick = plug(tmp_path, "1-2", {**MERILOCK, "serial": "OTHER"})
    (Path(stick) / "authorized").unlink()
    (Path(stick) / "authorized").mkdir()  # a write to it fails, even for root
    sensor._judge(ctx.ctx, stick, final=True)
    (event,) = ctx.events
    assert event.usb.action == events_pb2.UsbDecision.INSERTED_BLOCKED
    assert "could not write 0" in event.usb.not_enforced and event.severity >= 4
