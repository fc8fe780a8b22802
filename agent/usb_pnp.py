"""Windows Plug and Play ids -> the same UsbInfo the Linux sensor builds. Pure strings in.

Windows names a USB device `USB\\VID_0951&PID_1666\\MERILOCK-DSL-0001` (the last part is the
serial when the device has one; Windows makes one up, containing `&`, when it has not), its
interfaces of a composite device `USB\\VID_0951&PID_1666&MI_01\\...`, and gives class codes
as compatible ids `USB\\Class_08&SubClass_06&Prot_50`. Kept apart from the OS calls in
`agent/sensors/usb_windows.py` so it is tested on any platform.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from agent.usb_devices import UsbInfo

_IDS = re.compile(r"^USB\\VID_([0-9A-F]{4})&PID_([0-9A-F]{4})(&MI_([0-9A-F]{2}))?\\(.*)$", re.I)
_CLASS = re.compile(
    r"^USB\\Class_([0-9A-F]{2})(?:&SubClass_([0-9A-F]{2}))?(?:&Prot_([0-9A-F]{2}))?$", re.I)


@dataclass(frozen=True)
class PnpId:
    vendor: str
    product: str
    interface: str | None  # "01" for an interface of a composite device (MI_01)
    instance: str  # the serial, or an id Windows made up (contains "&")


def parse_instance_id(instance_id: str) -> PnpId | None:
    found = _IDS.match(instance_id.strip())
    if not found:
        return None
    vendor, product, _, mi, instance = found.groups()
    return PnpId(vendor.lower(), product.lower(), mi, instance)


def class_triplet(compatible_ids: Iterable[str]) -> str | None:
    """The most specific `USB\\Class_cc&SubClass_ss&Prot_pp` as "cc:ss:pp"."""
    best: tuple[int, str] | None = None
    for cid in compatible_ids:
        found = _CLASS.match(cid.strip())
        if not found:
            continue
        cls, sub, proto = found.groups()
        depth = (sub is not None) + (proto is not None)
        triplet = f"{cls}:{sub or '00'}:{proto or '00'}".lower()
        if best is None or depth > best[0]:
            best = (depth, triplet)
    return best[1] if best else None


def _ids(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return []


def group_devices(rows: Iterable[Mapping[str, object]]) -> list[UsbInfo]:
    """Rows of `Get-PnpDevice` (InstanceId, CompatibleID, FriendlyName, Manufacturer, Status,
    and Parent for interfaces: DEVPKEY_Device_Parent) grouped into one UsbInfo per physical
    device, with the interfaces of the device itself and of its MI_ children. An interface
    whose parent is not given goes to the device with the same ids."""
    devices: dict[str, tuple[PnpId, Mapping[str, object]]] = {}
    loose: list[tuple[PnpId, str | None, str]] = []  # (ids, parent, triplet)
    interfaces: dict[str, set[str]] = {}
    for row in rows:
        instance = str(row.get("InstanceId", ""))
        ident = parse_instance_id(instance)
        if ident is None:
            continue
        triplet = class_triplet(_ids(row.get("CompatibleID")))
        if ident.interface is None:
            devices[instance.upper()] = (ident, row)
            if triplet and not triplet.startswith("00:"):  # class 00: "see the interfaces"
                interfaces.setdefault(instance.upper(), set()).add(triplet)
        elif triplet:
            parent = row.get("Parent")
            loose.append((ident, str(parent).upper() if parent else None, triplet))
    for ident, parent, triplet in loose:
        owner = parent if parent in devices else next(
            (k for k, (d, _) in devices.items()
             if (d.vendor, d.product) == (ident.vendor, ident.product)), None)  # fmt: skip
        if owner is not None:
            interfaces.setdefault(owner, set()).add(triplet)
    out = []
    for key, (ident, row) in devices.items():
        out.append(UsbInfo(
            path=str(row.get("InstanceId", "")), vendor=ident.vendor, product_id=ident.product,
            serial="" if "&" in ident.instance else ident.instance,
            manufacturer=str(row.get("Manufacturer") or ""),
            product=str(row.get("FriendlyName") or ""),
            interfaces=tuple(sorted(interfaces.get(key, ()))), expected_interfaces=0,
            authorized=str(row.get("Status", "OK")) != "Error",
        ))  # fmt: skip
    return out
