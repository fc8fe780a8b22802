"""USB devices: pure parsing of sysfs attributes, the policy decision, and the events.

The OS part (pyudev, reading and writing sysfs) lives in `agent/sensors/usb_linux.py`; this
module only sees bytes and dataclasses, so it is unit-tested on bytes (the osquery habit of
`parseEtcHostsContent` beside `genEtcHostsImpl`).

A decision is taken the way USBGuard does (`rules.usb.decide`: fixed BadUSB and HID rules
first, then the allowlist, first match wins, storage blocked when nothing matches). A rule
limited to accounts allows the device when any logged-in account is one of them.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from protos import event_fields as fields
from protos import events_pb2
from protos.event_fields import clean
from rules.schema import Policy
from rules.usb import STORAGE, UsbDecision, UsbDevice, decide

Action = events_pb2.UsbDecision.Action

# Attribute files read from a usb_device and from each of its usb_interface children.
DEVICE_ATTRS = ("idVendor", "idProduct", "serial", "manufacturer", "product",
                "bDeviceClass", "bNumInterfaces", "authorized", "descriptors")  # fmt: skip
INTERFACE_ATTRS = ("bInterfaceClass", "bInterfaceSubClass", "bInterfaceProtocol")

SEVERITY = {  # allowed storage is worth a low-severity record; a refusal is a candidate
    Action.INSERTED_ALLOWED: 0,
    Action.INSERTED_BLOCKED: 3,
    Action.INSERTED_REJECTED: 4,
    Action.REMOVED: 0,
}
_TO_ACTION = {"allow": Action.INSERTED_ALLOWED, "block": Action.INSERTED_BLOCKED,
              "reject": Action.INSERTED_REJECTED}  # fmt: skip


@dataclass(frozen=True)
class UsbInfo:
    """What identifies one USB device: ids, strings and its interfaces ("cc:ss:pp")."""

    path: str  # sysfs path, e.g. /sys/devices/pci0000:00/0000:00:14.0/usb1/1-2
    vendor: str  # four lower-case hex digits ("" when unknown)
    product_id: str
    serial: str = ""
    manufacturer: str = ""
    product: str = ""
    device_class: str = ""  # bDeviceClass, two hex digits
    interfaces: tuple[str, ...] = ()
    expected_interfaces: int | None = None  # bNumInterfaces of the active configuration
    authorized: bool | None = None

    @property
    def storage(self) -> bool:
        return any(i.startswith(STORAGE + ":") for i in self.interfaces)

    @property
    def complete(self) -> bool:
        """True once every interface of the active configuration is visible in sysfs."""
        if self.expected_interfaces is None:
            return bool(self.interfaces)
        return len(self.interfaces) >= self.expected_interfaces


def text(raw: bytes | None) -> str:
    """A sysfs string attribute: trailing newline gone, undecodable bytes replaced."""
    if raw is None:
        return ""
    return raw.decode("utf-8", "replace").strip().replace("\x00", "")


def hex_id(raw: bytes | None, width: int = 4) -> str:
    """`b"0951\\n"` -> "0951"; anything not hex -> ""."""
    value = text(raw).lower().removeprefix("0x")
    if not value or len(value) > width or any(c not in "0123456789abcdef" for c in value):
        return ""
    return value.zfill(width)


def interface_triplet(attrs: Mapping[str, bytes | None]) -> str | None:
    """`bInterfaceClass/SubClass/Protocol` -> "08:06:50"; None if the class is missing."""
    cls = hex_id(attrs.get("bInterfaceClass"), 2)
    if not cls:
        return None
    sub = hex_id(attrs.get("bInterfaceSubClass"), 2) or "00"
    proto = hex_id(attrs.get("bInterfaceProtocol"), 2) or "00"
    return f"{cls}:{sub}:{proto}"


def parse_device(path: str, attrs: Mapping[str, bytes | None],
                 interfaces: Iterable[Mapping[str, bytes | None]]) -> UsbInfo:  # fmt: skip
    """Build a UsbInfo from the raw attribute bytes of a device (including its `descriptors`
    blob, when there is one) and of its interface children."""
    found = {t for t in (interface_triplet(i) for i in interfaces) if t}
    from_descriptors = descriptor_interfaces(attrs.get("descriptors"))
    found.update(from_descriptors)
    count = text(attrs.get("bNumInterfaces"))
    auth = text(attrs.get("authorized"))
    return UsbInfo(
        path=path,
        vendor=hex_id(attrs.get("idVendor")),
        product_id=hex_id(attrs.get("idProduct")),
        serial=text(attrs.get("serial")),
        manufacturer=text(attrs.get("manufacturer")),
        product=text(attrs.get("product")),
        device_class=hex_id(attrs.get("bDeviceClass"), 2),
        interfaces=tuple(sorted(found)),
        expected_interfaces=0 if from_descriptors else int(count) if count.isdigit() else None,
        authorized={"1": True, "0": False}.get(auth),
    )


def descriptor_interfaces(raw: bytes | None) -> tuple[str, ...]:
    """Interfaces ("cc:ss:pp") of every configuration in a sysfs `descriptors` blob: the
    device descriptor followed by the raw configuration descriptors, as USBGuard reads them.
    Present before the kernel has configured (or after it has deauthorized) the device."""
    if not raw or len(raw) < 9:
        return ()
    found: set[str] = set()
    at = raw[0] if raw[1] == 1 else 0  # skip the device descriptor (type 1)
    while at + 2 <= len(raw):
        length, kind = raw[at], raw[at + 1]
        if length < 2:
            break  # malformed: stop rather than loop
        if kind == 4 and length >= 9 and at + 9 <= len(raw):  # an interface descriptor
            found.add(f"{raw[at + 5]:02x}:{raw[at + 6]:02x}:{raw[at + 7]:02x}")
        at += length
    return tuple(sorted(found))


def parse_product_env(value: str) -> tuple[str, str]:
    """The uevent PRODUCT variable ("951/1666/100") -> ("0951", "1666"); used on removal,
    when the sysfs attributes are already gone."""
    parts = value.strip().split("/")
    if len(parts) < 2:
        return "", ""
    return hex_id(parts[0].encode()), hex_id(parts[1].encode())


def judge(policy: Policy, info: UsbInfo, accounts: Iterable[str]) -> tuple[UsbDecision, str]:
    """The decision for a device and the account it was taken for.

    With several accounts logged in, a rule limited to accounts allows the device when any of
    them is listed; otherwise the decision with no account (or the first account) stands.
    """
    device = UsbDevice(info.vendor, info.product_id, info.serial, info.interfaces)
    names = list(dict.fromkeys(a for a in accounts if a)) or [""]
    first: tuple[UsbDecision, str] | None = None
    for name in names:
        decision = decide(policy.usb, replace(device, account=name))
        if decision.action == "allow":
            return decision, name
        first = first or (decision, name)
    assert first is not None  # names is never empty
    return first


def decision_event(
    info: UsbInfo, decision: UsbDecision, account: str, not_enforced: str = ""
) -> events_pb2.Event:
    """`not_enforced`: why the decision could not be applied; a block that did not happen is
    worth more attention than one that did (the device is usable)."""
    action = _TO_ACTION[decision.action]
    severity = SEVERITY[action]
    if action == Action.INSERTED_ALLOWED and info.storage:
        severity = 1  # an allowed storage device (the Merilock key) is recorded for audit
    if not_enforced and action != Action.INSERTED_ALLOWED:
        severity = max(severity, 4)
    usb = _message(info, action, decision.rule)
    usb.not_enforced = not_enforced
    return events_pb2.Event(severity=severity, account=account, usb=usb)


def removal_event(info: UsbInfo, account: str) -> events_pb2.Event:
    return events_pb2.Event(severity=0, account=account, usb=_message(info, Action.REMOVED, ""))


def _message(info: UsbInfo, action: events_pb2.UsbDecision.Action.ValueType,
             rule: str) -> events_pb2.UsbDecision:  # fmt: skip
    # The device names itself: its strings are cleaned as the collector expects
    # (protos/event_fields.py), or a device's bell character would read as a tampered PC.
    return events_pb2.UsbDecision(
        action=action, vendor_id=info.vendor, product_id=info.product_id,
        serial=clean(info.serial, fields.DEVICE_TEXT),
        manufacturer=clean(info.manufacturer, fields.DEVICE_TEXT),
        product=clean(info.product, fields.DEVICE_TEXT), interfaces=list(info.interfaces),
        rule=clean(rule, fields.DEVICE_TEXT), device_path=clean(info.path, fields.DEVICE_PATH),
    )  # fmt: skip


def device_row(policy: Policy, info: UsbInfo, accounts: Iterable[str]) -> dict[str, object]:
    """One line of `usb list`: what a technician needs to register a key."""
    decision, account = judge(policy, info, accounts)
    return {
        "path": info.path, "id": f"{info.vendor}:{info.product_id}", "serial": info.serial,
        "manufacturer": info.manufacturer, "product": info.product,
        "interfaces": list(info.interfaces), "authorized": info.authorized,
        "decision": decision.action, "rule": decision.rule, "reason": decision.reason,
        "account": account,
    }  # fmt: skip


def list_devices(policy: Policy) -> list[dict[str, object]]:
    """Every USB device plugged in now, with the decision the policy would take for it."""
    if sys.platform == "win32":
        from agent.sensors import usb_windows

        return usb_windows.list_devices(policy)
    from agent.sensors import usb_linux

    return [device_row(policy, info, usb_linux.logged_in_accounts())
            for info in usb_linux.present_devices()]  # fmt: skip


def format_devices(rows: list[dict[str, object]]) -> str:
    """A table for the terminal, plus the usb.toml lines that would allow each storage device."""
    if not rows:
        return "no USB devices found\n"
    out = [f"{'ID':<10} {'SERIAL':<24} {'DECISION':<7} {'INTERFACES':<27} NAME"]
    hints: list[str] = []
    for r in rows:
        listed = [str(i) for i in r["interfaces"]] if isinstance(r["interfaces"], list) else []
        ifaces = ",".join(listed)
        storage = [i for i in listed if i.startswith(STORAGE + ":")]
        name = f"{r['manufacturer']} {r['product']}".strip()
        out.append(f"{r['id']!s:<10} {r['serial'] or '-'!s:<24} {r['decision']!s:<7} "
                   f"{ifaces:<27} {name}")  # fmt: skip
        if storage:
            hints.append(
                f'[[rule]]\naction = "allow"\nid = "{r["id"]}"\nserial = "{r["serial"]}"\n'
                f'with_interface = {json.dumps(storage)}\nname = "{name or "USB key"}"\n'
                'why = "..."\naccounts = ["dsl", "deputy-dsl"]\n'
            )
    text_out = "\n".join(out) + "\n"
    if hints:
        text_out += "\nTo allow a storage device, add to usb.toml (then publish the policy):\n"
        text_out += "\n".join(hints)
    return text_out
